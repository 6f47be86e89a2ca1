"""Latency lookup table: measure each distinct network part once per device, predict whole networks.

The FBNet / once-for-all technique, extended to ShuffleNet units. A network plan (``plan.network_plan``) is
a sequence of hashable parts (stem, units, head); each distinct part is measured once with
``latency.measure_module``, in the memory format it receives inside the network (a V2 unit's channel
shuffle returns NCHW even from channels-last input, so later units see NCHW), and the entry records the
format its output has. A network's latency is predicted as ``intercept + slope * sum(parts)``, a linear
fit of measured against summed latencies on a few calibration networks per input resolution (what the
parts do not see: the network's own forward overhead, caches shared between parts).

Tables live on disk, one JSON file per device, software and measurement key (target, runtime, device
name, torch / CUDA / onnxruntime versions, threads, batch, dtype, memory format, speed normalisation and
its anchor, a fingerprint of the code that builds the parts): a change to any of these opens a different,
empty table. Normalised parts and networks (the default on cpu) are all in the anchor's units, so a part
timed while the host was busy still adds up with one timed while it was quiet. Missing parts are
measured on first use and persisted; when all of a network's parts are known a prediction is a few
dictionary look-ups. A search may instead *estimate* a missing part (``estimate=True``): from the measured
parts of the same structure (everything but the channel counts: type, stride, groups, split, kernel, SE,
residual, input size, memory format), by a straight line of latency against the part's MACs through its
nearest neighbours; with fewer than two such neighbours, from the parts of its group (type, stride, groups,
input size, memory format) by a non-negative least-squares fit of latency on MACs, memory access and kernel
count; with fewer than ``GROUP_MIN_PARTS`` of those the part is measured after all. The directory is
``$SHUFFLENET_NAS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/shufflenet-nas/lut`` (``~/.cache/...``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from shufflenet_nas.jsonfile import read_json_object, write_json_atomic
from shufflenet_nas.nas.cost import Cost, part_cost
from shufflenet_nas.nas.latency import (
    MeasureConfig,
    check_target,
    default_cache_dir,
    measure_latency,
    measure_module,
    reference_anchor_ms,
    seeded,
    software_provenance,
)
from shufflenet_nas.search_spaces import blocks, builder, plan
from shufflenet_nas.search_spaces.builder import build_part
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import HeadSpec, PartSpec, StemSpec, UnitSpec, network_plan
from shufflenet_nas.search_spaces.spaces import SearchSpace

LUT_FORMAT = 4
CALIBRATION_NETWORKS = 6  # networks measured whole when a resolution has no calibration yet
ESTIMATE_NEIGHBOURS = 4  # measured parts of the same structure a missing part's line is fitted through
GROUP_MIN_PARTS = 6  # measured parts of a group its cost-feature fit needs
CALIBRATION_SEED = 0


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the sources that define the parts (blocks, builder, plan): edit them and tables start over."""
    digest = hashlib.sha256()
    for module in (blocks, builder, plan):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:12]


def table_key(config: MeasureConfig) -> dict[str, Any]:
    """Everything a table's entries depend on (with the speed anchor they are scaled to); the file name is its
    hash."""
    key = software_provenance(config) | {"code": code_fingerprint(), "format": LUT_FORMAT}
    return key | ({"reference_anchor_ms": reference_anchor_ms(config)} if config.normalized else {})


@functools.lru_cache(maxsize=65536)
def _entry_key(spec: PartSpec, channels_last_input: bool) -> str:
    return f"{spec!r}|{'nhwc' if channels_last_input else 'nchw'}"


@functools.lru_cache(maxsize=65536)
def _structure_key(spec: PartSpec, channels_last_input: bool) -> str:
    """The entry key with channel counts left out (whether a head has its 1x1 conv stays in)."""
    if isinstance(spec, StemSpec):
        spec = replace(spec, out_channels=0)
    elif isinstance(spec, HeadSpec):
        spec = replace(spec, in_channels=0, head_channels=min(spec.head_channels, 1))
    else:
        spec = replace(spec, in_channels=0, out_channels=0)
    return _entry_key(spec, channels_last_input)


@functools.lru_cache(maxsize=65536)
def _group_key(spec: PartSpec, channels_last_input: bool) -> str:
    """The structure key with kernel, split, SE and residual left out too (the cost features cover them)."""
    if isinstance(spec, UnitSpec):
        spec = replace(spec, in_channels=0, out_channels=0, kernel=0, split_ratio=0.0, se=False, residual=False)
        return _entry_key(spec, channels_last_input)
    return _structure_key(spec, channels_last_input)


def _features(macs: int, memory_access: int, operators: int) -> list[float]:
    """What a part's latency is fitted on in its group: a constant, MACs, memory access, kernels launched."""
    return [1.0, macs / 1e6, memory_access / 1e6, float(operators)]


def _cost_fields(cost: Cost) -> tuple[int, int, int]:
    return cost.macs, cost.memory_access, cost.operators


@dataclass(frozen=True)
class PartEntry:
    """One part's measured latency, the memory format of its output, and what estimation needs."""

    ms: float
    output_channels_last: bool
    runs: int
    ci_rel: float
    structure: str
    group: str
    macs: int
    memory_access: int
    operators: int


@dataclass(frozen=True)
class Calibration:
    """``predicted = intercept + slope * sum of parts``, fitted on whole networks at one resolution."""

    slope: float
    intercept: float
    networks: tuple[tuple[str, float, float], ...]  # (genotype string, measured ms, sum of parts ms)

    def apply(self, parts_ms: float) -> float:
        return self.intercept + self.slope * parts_ms

    @classmethod
    def fit(cls, networks: Sequence[tuple[str, float, float]]) -> Calibration:
        """Least squares on relative errors (each network weighs the same whatever its latency).

        With fewer than 3 networks, or when the line is implausible (slope <= 0, or an intercept of half the
        fastest network or more: sums of parts too close together to separate the two), the fit is a pure
        ratio: the geometric mean of measured / sum.
        """
        measured = np.array([m for _, m, _ in networks])
        summed = np.array([s for _, _, s in networks])
        ratio = cls(float(np.exp(np.mean(np.log(measured / summed)))), 0.0, tuple(networks))
        if len(networks) < 3:
            return ratio
        design = np.stack([1 / measured, summed / measured], axis=1)
        (intercept, slope), *_ = np.linalg.lstsq(design, np.ones(len(networks)), rcond=None)
        if slope <= 0 or abs(intercept) >= measured.min() / 2:
            return ratio
        return cls(float(slope), float(intercept), tuple(networks))


class LatencyTable:
    """Per-part latencies for one device and measurement key, with a calibration per resolution."""

    def __init__(self, config: MeasureConfig, path: Path, key: dict[str, Any]) -> None:
        self.config = config
        self.path = path
        self.key = key
        self.entries: dict[str, PartEntry] = {}
        self.calibrations: dict[int, Calibration] = {}
        self._by_structure: dict[str, list[PartEntry]] = {}  # measured entries per structure, for estimates
        self._by_group: dict[str, list[PartEntry]] = {}
        self._indexed = 0  # entries in the two indexes
        self._group_fits: dict[str, tuple[int, np.ndarray]] = {}  # group -> (parts fitted on, coefficients)
        self._estimates: dict[str, PartEntry] = {}  # entry key -> estimate, until the table grows
        self.estimated = 0  # parts estimated so far (not measured, not stored)

    @classmethod
    def open(cls, config: MeasureConfig, cache_dir: Path | None = None) -> LatencyTable:
        """The table for this device, software and config (empty if none is stored, or it is unreadable)."""
        check_target(config)
        key = table_key(config)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = (cache_dir or default_cache_dir()) / f"{config.target}-{config.resolved_runtime}-{digest}.json"
        table = cls(config, path, key)
        table._merge(table._read())
        return table

    def __len__(self) -> int:
        return len(self.entries)

    # ---- predicting ------------------------------------------------------------------------------
    def predict_ms(self, genotype: Genotype, estimate: bool = False) -> float:
        """Predicted latency of the whole network; missing parts are measured and persisted (or, with
        ``estimate``, estimated from measured parts of the same structure where there are two or more)."""
        return self.calibration(genotype.resolution).apply(self.parts_ms(genotype, estimate))

    def parts_ms(self, genotype: Genotype, estimate: bool = False) -> float:
        """Sum of the network's part latencies, measuring (or estimating) missing parts."""
        total = 0.0
        channels_last = self.config.channels_last
        measured = False
        for spec in network_plan(genotype):
            entry = self.entries.get(_entry_key(spec, channels_last))
            if entry is None and estimate:
                entry = self._estimate_part(spec, channels_last)
            if entry is None:
                entry = self._measure_part(spec, channels_last)
                measured = True
            total += entry.ms
            channels_last = entry.output_channels_last
        if measured:
            self.save()
        return total

    def _estimate_part(self, spec: PartSpec, channels_last_input: bool) -> PartEntry | None:
        """From the nearest measured parts of the same structure (a line in MACs), else from the part's group
        (a fit on cost features); ``None`` when the table has too few of either. Kept until the table grows:
        a stage repeats its units, and a search its parts."""
        self._index()
        key = _entry_key(spec, channels_last_input)
        if key in self._estimates:
            self.estimated += 1
            return self._estimates[key]
        cost = part_cost(spec)
        structure, group = _structure_key(spec, channels_last_input), _group_key(spec, channels_last_input)
        neighbours = self._by_structure.get(structure, [])
        if len(neighbours) >= 2:
            nearest = sorted(neighbours, key=lambda e: (abs(math.log(e.macs / cost.macs)), e.macs))  # ties: smaller
            nearest = nearest[:ESTIMATE_NEIGHBOURS]
            x, y = np.array([e.macs for e in nearest], dtype=float), np.array([e.ms for e in nearest])
            slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(np.mean(y)))
            ms = float(intercept + slope * cost.macs) if slope > 0 else float(np.mean(y))
            ms = max(ms, float(y.min()) * min(1.0, cost.macs / x.min()))  # not below the smallest, scaled by MACs
        elif len(members := self._by_group.get(group, [])) >= GROUP_MIN_PARTS:
            ms = float(np.dot(self._group_fit(group, members), _features(*_cost_fields(cost))))
        else:
            return None
        self.estimated += 1
        like = self._by_group[group][0]  # a part of the same type: its output has the same memory format
        entry = PartEntry(ms, like.output_channels_last, 0, float("nan"), structure, group, *_cost_fields(cost))
        self._estimates[key] = entry
        return entry

    def _group_fit(self, group: str, members: list[PartEntry]) -> np.ndarray:
        """Non-negative coefficients of the features, least squares on relative errors (cached per size)."""
        fitted, coefficients = self._group_fits.get(group, (0, np.empty(0)))
        if fitted != len(members):
            from scipy.optimize import nnls

            y = np.array([e.ms for e in members])
            x = np.array([_features(e.macs, e.memory_access, e.operators) for e in members])
            coefficients, _ = nnls(x / y[:, None], np.ones(len(members)))
            self._group_fits[group] = (len(members), coefficients)
        return coefficients

    def _index(self) -> None:
        """Measured entries by structure and by group (rebuilt, and estimates dropped, when the table has grown)."""
        if self._indexed != len(self.entries):
            self._by_structure, self._by_group, self._indexed = {}, {}, len(self.entries)
            self._estimates.clear()
            for entry in self.entries.values():
                self._by_structure.setdefault(entry.structure, []).append(entry)
                self._by_group.setdefault(entry.group, []).append(entry)

    def calibration(self, resolution: int) -> Calibration:
        """The resolution's calibration; fitted on ``CALIBRATION_NETWORKS`` sampled networks if missing."""
        if resolution not in self.calibrations:
            space = SearchSpace(resolution=resolution)
            self.calibrate(space.sample_architectures(CALIBRATION_NETWORKS, CALIBRATION_SEED))
        return self.calibrations[resolution]

    def calibrate(self, genotypes: Sequence[Genotype]) -> Calibration:
        """Measure whole networks (all at one resolution), fit measured vs sum of parts, persist."""
        resolutions = {genotype.resolution for genotype in genotypes}
        if len(resolutions) != 1:
            raise ValueError(f"calibration networks must share one resolution, got {sorted(resolutions)}")
        networks = [(g.to_string(), measure_latency(g, self.config).median_ms, self.parts_ms(g)) for g in genotypes]
        calibration = Calibration.fit(networks)
        self.calibrations[resolutions.pop()] = calibration
        self.save()
        return calibration

    def observe(self, genotype: Genotype, measured_ms: float, parts_ms: float) -> None:
        """Add a network measured whole (and the sum of its parts, as predicted) to its resolution's
        calibration and refit, persisted: every whole measurement makes later predictions better."""
        calibration = self.calibration(genotype.resolution)
        networks = [n for n in calibration.networks if n[0] != genotype.to_string()]
        networks.append((genotype.to_string(), measured_ms, parts_ms))
        self.calibrations[genotype.resolution] = Calibration.fit(networks)
        self.save()

    def _measure_part(self, spec: PartSpec, channels_last_input: bool) -> PartEntry:
        result = measure_module(seeded(lambda: build_part(spec)), spec.input_shape, self.config, channels_last_input)
        provenance = result.provenance
        entry = PartEntry(
            result.median_ms,
            provenance.get("output_channels_last", False),
            result.runs,
            provenance["ci_rel"],
            _structure_key(spec, channels_last_input),
            _group_key(spec, channels_last_input),
            *_cost_fields(part_cost(spec)),
        )
        self.entries[_entry_key(spec, channels_last_input)] = entry
        return entry

    # ---- storage -----------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every entry and calibration (on disk too)."""
        self.entries.clear()
        self.calibrations.clear()
        self.path.unlink(missing_ok=True)

    def save(self) -> None:
        """Write the table atomically, merged with entries another process may have stored meanwhile."""
        self._merge(self._read(), keep_own=True)
        data = {
            "key": self.key,
            "parts": {key: asdict(entry) for key, entry in self.entries.items()},
            "calibration": {str(r): asdict(c) for r, c in self.calibrations.items()},
        }
        write_json_atomic(self.path, data)

    def _read(self) -> dict[str, Any]:
        data = read_json_object(self.path)
        return data if data.get("key") == self.key else {}

    def _merge(self, data: dict[str, Any], keep_own: bool = False) -> None:
        try:
            entries = {key: PartEntry(**value) for key, value in data.get("parts", {}).items()}
            calibrations = {
                int(r): Calibration(c["slope"], c["intercept"], tuple(map(tuple, c["networks"])))
                for r, c in data.get("calibration", {}).items()
            }
        except (TypeError, KeyError, ValueError):
            return  # a file of another layout: ignored, and replaced on the next save
        if keep_own:
            entries |= self.entries
            calibrations |= self.calibrations
        self.entries, self.calibrations = entries, calibrations


# ---- sampling and evaluation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """Predicted vs measured latency of one network."""

    genotype: Genotype
    predicted_ms: float
    measured_ms: float
    predict_s: float  # one prediction (every part cached, or with estimate: estimating or measuring the rest)
    measure_s: float  # one measurement of the whole network
    estimated_parts: int = 0  # parts the prediction estimated

    @property
    def error(self) -> float:
        """Relative error of the prediction: predicted / measured - 1."""
        return self.predicted_ms / self.measured_ms - 1


def compare(table: LatencyTable, genotype: Genotype, estimate: bool = False) -> Comparison:
    """Fill the table for ``genotype``, then time a cached prediction and a whole-network measurement; the
    measured network then joins the calibration (``observe``), after its prediction was made.

    With ``estimate`` the prediction comes first, estimating the parts the table lacks (as a search does)."""
    if not estimate:
        table.parts_ms(genotype)
    begin, estimated = time.perf_counter(), table.estimated
    parts = table.parts_ms(genotype, estimate)
    predicted = table.calibration(genotype.resolution).apply(parts)
    predict_s, estimated = time.perf_counter() - begin, table.estimated - estimated
    begin = time.perf_counter()
    measured = measure_latency(genotype, table.config).median_ms
    measure_s = time.perf_counter() - begin
    table.observe(genotype, measured, parts)
    return Comparison(genotype, predicted, measured, predict_s, measure_s, estimated)


@dataclass(frozen=True)
class Evaluation:
    """How well a table predicts: share within +-10% and +-5%, mean absolute percentage error, timings."""

    within_10: float
    within_5: float
    mape: float
    predict_ms: float  # mean time of one cached prediction
    measure_s: float  # mean time of one whole-network measurement
    networks: int

    @classmethod
    def of(cls, comparisons: Sequence[Comparison]) -> Evaluation:
        errors = np.abs([c.error for c in comparisons])
        return cls(
            float(np.mean(errors <= 0.10)),
            float(np.mean(errors <= 0.05)),
            float(np.mean(errors) * 100),
            float(np.mean([c.predict_s for c in comparisons]) * 1e3),
            float(np.mean([c.measure_s for c in comparisons])),
            len(comparisons),
        )
