"""Latency lookup table: measure each distinct network part once per device, predict whole networks.

A network plan (``plan.network_plan``) is a sequence of hashable parts (stem, units, head); each distinct part
is measured once with ``measure_module``, in the memory format it receives inside the network, and its entry
records the format of its output. A network's latency is predicted as ``intercept + slope * sum(parts)``,
a ``Calibration`` fitted on whole networks measured at the same input resolution.

A table is one JSON file in the cache directory per measurement key (``table_key``: device, software,
measurement settings, speed anchor, a fingerprint of the code that builds the parts); another key opens
another table (a warning names a table left unused by a new speed anchor). Missing parts are measured on
first use and persisted, or, with ``estimate=True``, estimated from measured ones (``lut_estimate``). A file
with an entry of the wrong type or range is corrupt: it is set aside and the table starts afresh.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.jsonfile import checked, default_cache_dir, read_json_object, set_aside, write_json_atomic
from shufflenet_nas.nas.latency import (
    MeasureConfig,
    _normalisation,
    check_target,
    measure_latency,
    measure_module,
    reference_anchor_ms,
    seeded,
    software_provenance,
)
from shufflenet_nas.nas.lut_estimate import PartEntry, PartEstimator, entry_key
from shufflenet_nas.search_spaces import blocks, builder, channels, plan
from shufflenet_nas.search_spaces.builder import build_part
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import PartSpec, network_plan
from shufflenet_nas.search_spaces.spaces import SearchSpace

LUT_FORMAT = 4
CALIBRATION_NETWORKS = 6  # networks measured whole when a resolution has no calibration yet
CALIBRATION_SEED = 0


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the sources that define the parts (blocks, builder, channels, plan) and of the normalisation that
    scales their times: edit them and tables start over."""
    digest = hashlib.sha256()
    for module in (blocks, builder, channels, plan, _normalisation):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:12]


def table_key(config: MeasureConfig) -> dict[str, Any]:
    """Everything a table's entries depend on (with the speed anchor they are scaled to); the file name is its
    hash."""
    key = software_provenance(config) | {"code": code_fingerprint(), "format": LUT_FORMAT}
    return key | ({"reference_anchor_ms": reference_anchor_ms(config)} if config.normalized else {})


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

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Calibration:
        """The calibration stored as ``value`` (``asdict``); ``TypeError`` or ``ValueError`` when it is malformed
        or is no fit's (slope <= 0, or an intercept of half the fastest network or more)."""
        calibration = cls(**value)
        networks = tuple(tuple(network) for network in calibration.networks)
        for name, measured, summed in networks:
            checked("a network's genotype", name, "string")
            checked(f"{name}'s measured ms", measured, "positive number")
            checked(f"{name}'s sum of parts ms", summed, "positive number")
        checked("slope", calibration.slope, "positive number")
        intercept = checked("intercept", calibration.intercept, "number")
        if networks and abs(intercept) >= min(measured for _, measured, _ in networks) / 2:
            raise ValueError(f"intercept {intercept!r} is half the fastest network's ms or more")
        return cls(calibration.slope, intercept, networks)


class LatencyTable:
    """Per-part latencies for one device and measurement key, with a calibration per resolution."""

    def __init__(self, config: MeasureConfig, path: Path, key: dict[str, Any]) -> None:
        self.config = config
        self.path = path
        self.key = key
        self.entries: dict[str, PartEntry] = {}
        self.calibrations: dict[int, Calibration] = {}
        self._estimator = PartEstimator()

    @classmethod
    def open(cls, config: MeasureConfig, cache_dir: Path | None = None) -> LatencyTable:
        """The table for this device, software and config (empty if none is stored; a corrupt file is set aside)."""
        check_target(config)
        key = table_key(config)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = (cache_dir or default_cache_dir()) / f"{config.target}-{config.resolved_runtime}-{digest}.json"
        table = cls(config, path, key)
        if "reference_anchor_ms" in key and not path.exists():
            _warn_of_other_anchor(path, key)
        table._merge()
        return table

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def estimated(self) -> int:
        """Parts estimated so far (not measured, not stored)."""
        return self._estimator.count

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
            entry = self.entries.get(entry_key(spec, channels_last))
            if entry is None and estimate:
                entry = self._estimator.estimate(self.entries, spec, channels_last)
            if entry is None:
                entry = self._measure_part(spec, channels_last)
                measured = True
            total += entry.ms
            channels_last = entry.output_channels_last
        if measured:
            self.save()
        return total

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
            raise InvalidArgumentError(f"genotypes must share one resolution, got {sorted(resolutions)}")
        networks = [(g.to_string(), measure_latency(g, self.config).comparable_ms, self.parts_ms(g)) for g in genotypes]
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
        output_channels_last = result.provenance.get("output_channels_last", False)
        ci_rel = result.provenance.get("normalized_ci_rel", result.provenance["ci_rel"])
        entry = PartEntry.of(spec, channels_last_input, result.comparable_ms, output_channels_last, result.runs, ci_rel)
        self.entries[entry_key(spec, channels_last_input)] = entry
        return entry

    # ---- storage -----------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every entry and calibration (on disk too)."""
        self.entries.clear()
        self.calibrations.clear()
        self.path.unlink(missing_ok=True)

    def save(self) -> None:
        """Write the table atomically, merged with entries another process may have stored meanwhile."""
        self._merge(keep_own=True)
        data = {
            "key": self.key,
            "parts": {key: asdict(entry) for key, entry in self.entries.items()},
            "calibration": {str(r): asdict(c) for r, c in self.calibrations.items()},
        }
        write_json_atomic(self.path, data)

    def _read(self) -> tuple[dict[str, PartEntry], dict[int, Calibration]]:
        """The entries and calibrations on disk; a file that is no table of this key is set aside."""
        data = read_json_object(self.path)
        if not data:
            return {}, {}
        if data.get("key") != self.key:
            problem = "it holds the table of another measurement key"
        else:
            try:
                entries: dict[str, PartEntry] = {}
                calibrations: dict[int, Calibration] = {}
                for key, value in data["parts"].items():
                    entries[key] = _parsed(f"part {key!r}", PartEntry.from_dict, value)
                for r, value in data["calibration"].items():
                    resolution = checked("a calibration's resolution", int(r), "positive integer")
                    calibrations[resolution] = _parsed(f"calibration {r!r}", Calibration.from_dict, value)
                return entries, calibrations
            except (AttributeError, TypeError, KeyError, ValueError) as error:
                problem = f"it holds an invalid entry ({type(error).__name__}: {error})"
        set_aside(self.path, problem)
        return {}, {}

    def _merge(self, keep_own: bool = False) -> None:
        """Take the entries and calibrations on disk; with ``keep_own`` this table's own win over them."""
        entries, calibrations = self._read()
        if keep_own:
            entries |= self.entries
            calibrations |= self.calibrations
        self.entries, self.calibrations = entries, calibrations


def _parsed(what: str, parse: Any, value: Any) -> Any:
    """``parse(value)``; a ``ValueError`` whose message starts with ``what`` when it fails."""
    try:
        return parse(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what}: {error}") from error


_warned_tables: set[Path] = set()


def _warn_of_other_anchor(path: Path, key: dict[str, Any]) -> None:
    """Warn, once per file, of each table beside ``path`` that has ``key`` but another speed anchor: its
    parts are in that anchor's units, so none is used and every part is measured afresh."""
    same = {name: value for name, value in key.items() if name != "reference_anchor_ms"}
    for other in sorted(path.parent.glob(f"{path.name.rsplit('-', 1)[0]}-*.json")):
        if other == path or other in _warned_tables:
            continue
        try:
            other_key = json.loads(other.read_bytes())["key"]
            anchor = other_key.pop("reference_anchor_ms")
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # not a table of this kind (a corrupt one is set aside when its own key opens it)
        if other_key == same and anchor != key["reference_anchor_ms"]:
            _warned_tables.add(other)
            message = (
                f"{other} holds the latency table of this device and config for the speed anchor {anchor} ms, "
                f"but the anchor is now {key['reference_anchor_ms']} ms (measured again, as after anchors.json "
                f"was set aside or removed); its parts are not used, and are measured afresh into {path.name}"
            )
            warnings.warn(message, RuntimeWarning, stacklevel=3)


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
    measured = measure_latency(genotype, table.config).comparable_ms
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
