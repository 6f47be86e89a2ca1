"""The latency table's entries, their keys, and estimates of parts the table has not measured.

A missing part is estimated from the measured parts of the same structure (everything but the channel
counts) by a straight line of latency against MACs through its nearest neighbours; with fewer than two such
parts, from the parts of its group (type, stride, groups, input size, memory format) by a non-negative
least-squares fit of latency on MACs, memory access and kernel count; with fewer than ``GROUP_MIN_PARTS``
of those there is no estimate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from shufflenet_nas.jsonfile import checked
from shufflenet_nas.nas.cost import Cost, part_cost
from shufflenet_nas.search_spaces.plan import HeadSpec, PartSpec, StemSpec, UnitSpec

ESTIMATE_NEIGHBOURS = 4  # measured parts of the same structure a missing part's line is fitted through
GROUP_MIN_PARTS = 6  # measured parts of a group its cost-feature fit needs


@functools.lru_cache(maxsize=65536)
def entry_key(spec: PartSpec, channels_last_input: bool) -> str:
    """A part and the memory format of its input: what one table entry is measured for."""
    return f"{spec!r}|{'nhwc' if channels_last_input else 'nchw'}"


@functools.lru_cache(maxsize=65536)
def structure_key(spec: PartSpec, channels_last_input: bool) -> str:
    """The entry key with channel counts left out (whether a head has its 1x1 conv stays in)."""
    if isinstance(spec, StemSpec):
        spec = replace(spec, out_channels=0)
    elif isinstance(spec, HeadSpec):
        spec = replace(spec, in_channels=0, head_channels=min(spec.head_channels, 1))
    else:
        spec = replace(spec, in_channels=0, out_channels=0)
    return entry_key(spec, channels_last_input)


@functools.lru_cache(maxsize=65536)
def group_key(spec: PartSpec, channels_last_input: bool) -> str:
    """The structure key with kernel, split, SE and residual left out too (the cost features cover them)."""
    if isinstance(spec, UnitSpec):
        spec = replace(spec, in_channels=0, out_channels=0, kernel=0, split_ratio=0.0, se=False, residual=False)
        return entry_key(spec, channels_last_input)
    return structure_key(spec, channels_last_input)


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

    @classmethod
    def of(
        cls, spec: PartSpec, channels_last_input: bool, ms: float, output_channels_last: bool, runs: int, ci_rel: float
    ) -> PartEntry:
        """The entry of ``spec`` (with ``channels_last_input``): the figures given, its keys and its cost."""
        cost = part_cost(spec)
        structure, group = structure_key(spec, channels_last_input), group_key(spec, channels_last_input)
        return cls(
            ms, output_channels_last, runs, ci_rel, structure, group, cost.macs, cost.memory_access, cost.operators
        )

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> PartEntry:
        """The entry stored as ``value`` (``asdict``); ``TypeError`` or ``ValueError`` when a field is missing,
        unknown, of another type or out of range."""
        entry = cls(**value)
        for field in fields(cls):
            checked(field.name, getattr(entry, field.name), _FIELD_KINDS[field.name])
        return entry


_FIELD_KINDS = {
    "ms": "positive number",
    "output_channels_last": "boolean",
    "runs": "positive integer",
    "ci_rel": "non-negative number",
    "structure": "string",
    "group": "string",
    "macs": "positive integer",
    "memory_access": "non-negative integer",
    "operators": "non-negative integer",
}


def _features(part: Cost | PartEntry) -> list[float]:
    """What a part's latency is fitted on in its group: a constant, MACs, memory access, kernels launched."""
    return [1.0, part.macs / 1e6, part.memory_access / 1e6, float(part.operators)]


class PartEstimator:
    """Estimates of missing parts from a table's measured entries. Indexes, fits and estimates are kept until
    the entries grow: a stage repeats its units, and a search its parts."""

    def __init__(self) -> None:
        self._by_structure: dict[str, list[PartEntry]] = {}
        self._by_group: dict[str, list[PartEntry]] = {}
        self._indexed = 0  # entries in the two indexes
        self._group_fits: dict[str, tuple[int, np.ndarray]] = {}  # group -> (parts fitted on, coefficients)
        self._estimates: dict[str, PartEntry] = {}  # entry key -> estimate
        self.count = 0  # parts estimated so far

    def estimate(self, entries: dict[str, PartEntry], spec: PartSpec, channels_last_input: bool) -> PartEntry | None:
        """An estimate of ``spec`` from ``entries`` (the measured ones), or ``None`` when they are too few."""
        self._index(entries)
        key = entry_key(spec, channels_last_input)
        if key in self._estimates:
            self.count += 1
            return self._estimates[key]
        cost = part_cost(spec)
        group = group_key(spec, channels_last_input)
        neighbours = self._by_structure.get(structure_key(spec, channels_last_input), [])
        if len(neighbours) >= 2:
            nearest = sorted(neighbours, key=lambda e: (abs(math.log(e.macs / cost.macs)), e.macs))  # ties: smaller
            nearest = nearest[:ESTIMATE_NEIGHBOURS]
            x, y = np.array([e.macs for e in nearest], dtype=float), np.array([e.ms for e in nearest])
            slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(np.mean(y)))
            ms = float(intercept + slope * cost.macs) if slope > 0 else float(np.mean(y))
            ms = max(ms, float(y.min()) * min(1.0, cost.macs / x.min()))  # not below the smallest, scaled by MACs
        elif len(members := self._by_group.get(group, [])) >= GROUP_MIN_PARTS:
            ms = float(np.dot(self._group_fit(group, members), _features(cost)))
        else:
            return None
        self.count += 1
        like = self._by_group[group][0]  # a part of the same type: its output has the same memory format
        entry = PartEntry.of(spec, channels_last_input, ms, like.output_channels_last, 0, float("nan"))
        self._estimates[key] = entry
        return entry

    def _group_fit(self, group: str, members: list[PartEntry]) -> np.ndarray:
        """Non-negative coefficients of the features, least squares on relative errors (cached per size)."""
        fitted, coefficients = self._group_fits.get(group, (0, np.empty(0)))
        if fitted != len(members):
            from scipy.optimize import nnls

            y = np.array([e.ms for e in members])
            x = np.array([_features(e) for e in members])
            coefficients, _ = nnls(x / y[:, None], np.ones(len(members)))
            self._group_fits[group] = (len(members), coefficients)
        return coefficients

    def _index(self, entries: dict[str, PartEntry]) -> None:
        """Entries by structure and by group (rebuilt, and estimates dropped, when the entries have grown)."""
        if self._indexed != len(entries):
            self._by_structure, self._by_group, self._indexed = {}, {}, len(entries)
            self._estimates.clear()
            for entry in entries.values():
                self._by_structure.setdefault(entry.structure, []).append(entry)
                self._by_group.setdefault(entry.group, []).append(entry)
