"""Speed normalisation: runs scaled to a reference network's anchor speed, so a shared host's swings cancel.

A fixed reference network runs before each block of runs of about ``BLOCK_REFERENCES`` times its own duration,
and each run of the block is scaled by ``anchor / reference``. Both networks run untimed first (the reference
``REFERENCE_WARMUP_RUNS`` times before its timed run, the network ``WARMUP_RUNS`` times after it), so each is
timed warm: right after another network the reference runs 10-15% slower for two runs, more so after a larger
network, which biased every scaled ratio towards 1 (+7% for V2 0.5x / V2 1.0x); and the network runs slower for
its first runs after the reference (V2 0.5x: raw median 3-4% above torch.utils.benchmark's with one warm-up run,
1.4% with three). The anchor, the reference's raw 10th percentile (its speed when the machine is least
disturbed), is measured once per device and config and kept in ``anchors.json`` in the cache directory, so
every process scales by the same number; each process re-checks it once, and lowers it when this run finds
the machine faster (an anchor taken while the machine was busy would inflate every scaled figure).
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shufflenet_nas.jsonfile import checked, default_cache_dir, read_json_object, set_aside, write_json_atomic
from shufflenet_nas.nas.latency._config import MeasureConfig, software_provenance
from shufflenet_nas.nas.latency._runtimes import Step, make_step, seeded
from shufflenet_nas.search_spaces.builder import build
from shufflenet_nas.search_spaces.genotype import Genotype

REFERENCE_ARCH = "shufflenet_v2_x1_0"  # the speed reference, at REFERENCE_RESOLUTION
REFERENCE_RESOLUTION = 96
REFERENCE = f"{REFERENCE_ARCH}@{REFERENCE_RESOLUTION}px"  # as provenance and anchor keys name it
ANCHOR_TIME_S = 5.0  # how long the reference is timed when its anchor is first measured
ANCHOR_CHECK_SHARE = 0.1  # each process re-checks the stored anchor with a tenth of that time
REANCHOR_BELOW = 0.05  # a re-check this much faster than the stored anchor replaces it
BLOCK_REFERENCES = 8  # a block of timed runs lasts about this many reference runs
REFERENCE_WARMUP_RUNS = 3  # after another network the reference runs 10-15% slower until its third run
WARMUP_RUNS = 3  # and the network measured: 1 left its raw median 3-4% above torch.utils.benchmark's


class NormalizedStep:
    """``step`` in blocks of about ``BLOCK_REFERENCES`` reference durations, each after ``REFERENCE_WARMUP_RUNS``
    untimed runs of the reference, a timed one and ``WARMUP_RUNS`` untimed runs of ``step``; returns each run's ms
    scaled by ``anchor_ms / the block's reference ms``. ``raw_ms`` keeps the unscaled runs."""

    def __init__(self, step: Step, reference: Step, anchor_ms: float) -> None:
        self.step, self.reference, self.anchor_ms = step, reference, anchor_ms
        self.raw_ms: list[float] = []
        self.reference_ms: list[float] = []
        self._block_left_ms = 0.0

    def __call__(self) -> float:
        if self._block_left_ms <= 0:
            for _ in range(REFERENCE_WARMUP_RUNS):
                self.reference()
            self.reference_ms.append(self.reference())
            for _ in range(WARMUP_RUNS):
                self.step()
            self._block_left_ms = BLOCK_REFERENCES * self.reference_ms[-1]
        ms = self.step()
        self._block_left_ms -= ms
        self.raw_ms.append(ms)
        return ms * self.anchor_ms / self.reference_ms[-1]

    def provenance(self) -> dict[str, Any]:
        """The reference, its anchor and its median during the measurement."""
        return {
            "reference": REFERENCE,
            "reference_anchor_ms": self.anchor_ms,
            "reference_median_ms": float(np.median(self.reference_ms)),
        }


def reference_genotype() -> Genotype:
    """The speed reference: ShuffleNet V2 1.0x at 96x96 (about the cost of a mid-sized searched network)."""
    from shufflenet_nas.search_spaces.baselines import BASELINES

    return BASELINES[REFERENCE_ARCH].genotype.with_resolution(REFERENCE_RESOLUTION)


def reference_step(config: MeasureConfig) -> Step:
    """A step timing one forward of the reference network on the configured target."""
    side = REFERENCE_RESOLUTION
    x = torch.randn(config.batch, 3, side, side, generator=torch.Generator().manual_seed(1))
    module = _reference_module(config.target, config.dtype, config.channels_last)
    return make_step(module, x, config, config.channels_last)[0]


@functools.lru_cache(maxsize=8)
def _reference_module(target: str, dtype: str, channels_last: bool) -> nn.Module:
    """The reference network, built once per process and placement (``make_step`` moves it in place)."""
    return seeded(lambda: build(reference_genotype())).eval()


_anchors: dict[tuple[Path, str], float] = {}


def stored_anchor_ms(config: MeasureConfig, measure: Callable[[MeasureConfig], float]) -> float:
    """The reference's anchor for ``config``: ``config.anchor_ms`` when given (a study keeps the anchor it began
    with), else the one stored in ``anchors.json`` in the cache directory. ``measure`` (given the raw config to time
    the reference with) makes it on the first run on a device and config, and re-checks it once per process with
    a tenth of that time: a re-check ``REANCHOR_BELOW`` faster replaces it, with a warning. Of two processes that
    race, the lower anchor wins."""
    if config.anchor_ms is not None:
        return config.anchor_ms
    raw = replace(config, normalize=False, isolate=False, max_time_s=ANCHOR_TIME_S, rel_precision=0.002)
    key = json.dumps(software_provenance(raw) | {"reference": REFERENCE}, sort_keys=True)
    path = default_cache_dir() / "anchors.json"
    if (path, key) not in _anchors:
        stored = _read_anchors(path).get(key)
        if stored is None:
            _anchors[path, key] = _store_anchor(path, key, measure(raw))
        else:
            check = measure(replace(raw, max_time_s=ANCHOR_TIME_S * ANCHOR_CHECK_SHARE))
            if check < stored * (1 - REANCHOR_BELOW):
                warnings.warn(
                    f"the stored speed anchor of {REFERENCE} ({stored:.3f} ms) is {stored / check - 1:.0%} slower "
                    f"than the machine runs it now ({check:.3f} ms): it was taken while the machine was busy, and "
                    f"is lowered to {check:.3f} ms (normalised figures taken before are in the old units; studies "
                    "keep the anchor they began with)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                stored = _store_anchor(path, key, check)
            _anchors[path, key] = float(stored)
    return _anchors[path, key]


def _store_anchor(path: Path, key: str, anchor_ms: float) -> float:
    """Store ``anchor_ms`` for ``key`` unless a lower one is stored by now; returns the stored one."""
    stored = _read_anchors(path)
    stored[key] = min(float(stored.get(key, anchor_ms)), anchor_ms)
    write_json_atomic(path, stored)
    return stored[key]


def _read_anchors(path: Path) -> dict[str, Any]:
    """The anchors stored at ``path``; a file with an anchor that is no finite positive number of ms is corrupt:
    it is set aside (``set_aside``) and read as ``{}``."""
    stored = read_json_object(path)
    for value in stored.values():
        try:
            checked("anchor", value, "positive number")
        except ValueError:
            set_aside(path, f"it holds an anchor of {value!r}, not a finite positive number of ms")
            return {}
    return stored
