"""Speed normalisation: runs scaled to a reference network's anchor speed, so a shared host's swings cancel.

A fixed reference network runs before each block of runs of about its own duration, and each run is scaled
by ``anchor / reference``. The anchor, the reference's raw 10th percentile, is measured once per device and
config and kept in ``anchors.json`` in the cache directory, so every process scales by the same number.
"""

from __future__ import annotations

import functools
import json
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


class NormalizedStep:
    """``step`` with a run of the reference before each block of about the reference's duration; returns
    each run's ms scaled by ``anchor_ms / ms of the block's reference run``."""

    def __init__(self, step: Step, reference: Step, anchor_ms: float) -> None:
        self.step, self.reference, self.anchor_ms = step, reference, anchor_ms
        self.raw_ms: list[float] = []
        self.reference_ms: list[float] = []
        self._block_left_ms = 0.0

    def __call__(self) -> float:
        if self._block_left_ms <= 0:
            self.reference_ms.append(self.reference())
            self._block_left_ms = self.reference_ms[-1]
        ms = self.step()
        self._block_left_ms -= ms
        self.raw_ms.append(ms)
        return ms * self.anchor_ms / self.reference_ms[-1]

    def provenance(self, timed_runs: int) -> dict[str, Any]:
        """The reference, its anchor and observed median, and the raw median of the last ``timed_runs``."""
        return {
            "reference": REFERENCE,
            "reference_anchor_ms": self.anchor_ms,
            "reference_median_ms": float(np.median(self.reference_ms)),
            "raw_median_ms": float(np.median(self.raw_ms[-timed_runs:])),
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
    """The reference's anchor for ``config``: ``measure`` (given the raw config to time the reference with)
    runs once per device and config, then the anchor is read from ``anchors.json`` in the cache directory;
    when two processes race, the first stored anchor wins."""
    raw = replace(config, normalize=False, isolate=False, max_time_s=ANCHOR_TIME_S, rel_precision=0.002)
    key = json.dumps(software_provenance(raw) | {"reference": REFERENCE}, sort_keys=True)
    path = default_cache_dir() / "anchors.json"
    if (path, key) not in _anchors:
        stored = _read_anchors(path)
        if key not in stored:
            measured = measure(raw)
            stored = _read_anchors(path)
            stored.setdefault(key, measured)
            write_json_atomic(path, stored)
        _anchors[path, key] = float(stored[key])
    return _anchors[path, key]


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
