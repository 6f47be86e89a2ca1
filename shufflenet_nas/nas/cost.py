"""Cost model: MACs (the papers' "FLOPs", counted as fvcore does), parameters, memory access cost, operators,
memory.

Every cost is additive over the parts of a network plan (stem, units, head), so each distinct part is counted
once and cached. ``replayed_cost`` replays a part's kernels on shapes (``symbolic_cost``, no torch);
``trace_cost.traced_cost`` counts the built module (fvcore, a dispatch trace). ``part_cost`` uses the replay,
checked against the trace once per kind of part and code version (the verdict is kept in the cache folder); a
kind that disagrees is traced from then on, with a warning. Parts over ``TRACE_MAX_MACS`` or ``TRACE_MAX_BYTES``
are never built. ``check_fits_in_memory`` compares the memory estimate with what the device has free.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import math
import os
import warnings
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.jsonfile import default_cache_dir, read_json_object, write_json_atomic
from shufflenet_nas.nas.symbolic_cost import symbolic_cost
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import HeadSpec, PartSpec, StemSpec, network_plan
from shufflenet_nas.search_spaces.spaces import SearchSpace

# The largest part the replay is checked on by building and running it: twice the papers' largest part at 224 px
# (0.1 GMACs; 16 MiB of fp32 weights + peak activations at batch 1), a fraction of a second.
TRACE_MAX_MACS = 2 * 10**8
TRACE_MAX_BYTES = 64 * 2**20
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


@dataclass(frozen=True)
class Cost:
    """What a network costs, independent of any device."""

    macs: int  # conv + linear multiply-adds (the papers' "FLOPs")
    params: int
    memory_access: int  # elements read + written over all kernels (V2 paper's MAC, summed)
    operators: int  # kernels launched per forward (fragmentation, V2 guideline 3)
    peak_activation_bytes: int  # largest fp32 activation working set at batch 1

    @property
    def mflops(self) -> float:
        return self.macs / 1e6

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mflops"] = round(self.mflops, 3)
        return data

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.macs + other.macs,
            self.params + other.params,
            self.memory_access + other.memory_access,
            self.operators + other.operators,
            max(self.peak_activation_bytes, other.peak_activation_bytes),
        )


def count_cost(genotype: Genotype) -> Cost:
    """The cost of a whole network: the sum over its parts (peak memory: the max over parts)."""
    return functools.reduce(Cost.__add__, (part_cost(part) for part in network_plan(genotype)))


def cost_breakdown(genotype: Genotype) -> list[tuple[str, Cost]]:
    """Cost per section, in forward order: ``stem``, ``stage2`` ... ``stageN``, ``head``."""
    plan = network_plan(genotype)
    sections = [("stem", part_cost(plan[0]))]
    start = 1
    for number, stage in enumerate(genotype.stages, start=2):
        units = plan[start : start + stage.repeats]
        sections.append((f"stage{number}", functools.reduce(Cost.__add__, map(part_cost, units))))
        start += stage.repeats
    sections.append(("head", part_cost(plan[-1])))
    return sections


def count_macs(genotype: Genotype) -> int:
    """Conv + linear multiply-adds of the network (fvcore's count), part by part."""
    return count_cost(genotype).macs


def cost_range(space: SearchSpace) -> tuple[Cost, Cost]:
    """The least and the most each cost field (MACs, params, ...) takes over every sample of ``space``.

    Exact: at a fixed family and V1 group count every cost grows with each dimension, so the bounds are the
    smallest and largest genotype of each (family, groups); each field's bound may come from a different one.
    """
    smallest, largest = [], []
    for family in space.families:
        for groups in space.groups(family):
            smallest.append(count_cost(space.smallest(family, groups)))
            largest.append(count_cost(space.largest(family, groups)))
    names = [f.name for f in fields(Cost)]
    low = Cost(*(min(getattr(cost, name) for cost in smallest) for name in names))
    high = Cost(*(max(getattr(cost, name) for cost in largest) for name in names))
    return low, high


@functools.lru_cache(maxsize=65536)
def part_cost(spec: PartSpec) -> Cost:
    """The cost of one part at batch 1 (cached: equal parts are counted once per process)."""
    replayed = replayed_cost(spec)
    kind = repr(_kind(spec))
    checked = _checked_kinds()
    too_big = replayed.macs > TRACE_MAX_MACS or replayed.params * 4 + replayed.peak_activation_bytes > TRACE_MAX_BYTES
    if too_big and checked.get(kind) is not False:
        return replayed  # building it to trace would take seconds and gigabytes; the replay is right for its kind
    if kind not in checked:
        from shufflenet_nas.nas.trace_cost import traced_cost

        traced = traced_cost(spec)
        _record_check(kind, traced == replayed)
        if traced != replayed:
            warnings.warn(
                f"symbolic cost of {kind} disagrees with the traced count ({replayed} vs {traced}): "
                "counting parts of this kind by tracing",
                RuntimeWarning,
                stacklevel=2,
            )
        return traced
    if checked[kind]:
        return replayed
    from shufflenet_nas.nas.trace_cost import traced_cost

    return traced_cost(spec)


# The modules whose code decides a part's kernels and counts: a check holds for one version of them, torch and fvcore.
_COUNTED_BY = (
    "shufflenet_nas.nas.cost",
    "shufflenet_nas.nas.symbolic_cost",
    "shufflenet_nas.nas.trace_cost",
    "shufflenet_nas.search_spaces.blocks",
    "shufflenet_nas.search_spaces.builder",
    "shufflenet_nas.search_spaces.channels",
    "shufflenet_nas.search_spaces.plan",
)


@functools.cache
def _checks_fingerprint() -> str:
    """Hash of the counting code and the torch and fvcore versions, read without importing them."""
    digest = hashlib.sha256()
    for name in _COUNTED_BY:
        origin = importlib.util.find_spec(name).origin  # type: ignore[union-attr]
        digest.update(Path(origin or "").read_bytes())
    for package in ("torch", "fvcore"):
        digest.update(metadata.version(package).encode())
    return digest.hexdigest()[:16]


def _checks_path() -> Path:
    return default_cache_dir() / "cost_checks.json"


@functools.cache
def _checked_kinds() -> dict[str, bool]:
    """Kind of part -> whether the replay matched the trace on it, for this code version (kept on disk)."""
    stored = read_json_object(_checks_path()).get(_checks_fingerprint(), {})
    return {kind: bool(ok) for kind, ok in stored.items()} if isinstance(stored, dict) else {}


def _record_check(kind: str, ok: bool) -> None:
    """Keep one check's verdict in this process and on disk, beside other code versions' verdicts (several
    environments may share one cache folder)."""
    _checked_kinds()[kind] = ok
    path = _checks_path()
    stored = read_json_object(path)
    version = stored.get(_checks_fingerprint())
    stored[_checks_fingerprint()] = (version if isinstance(version, dict) else {}) | {kind: ok}
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-check in the next process
        write_json_atomic(path, stored)


def _kind(spec: PartSpec) -> tuple[object, ...]:
    """What decides which kernels a part runs (everything but sizes, kernel size and split ratio)."""
    if isinstance(spec, StemSpec):
        return ("stem", spec.stride)
    if isinstance(spec, HeadSpec):
        return ("head", spec.head_channels > 0, spec.fc_bias)
    return (
        spec.unit,
        spec.stride,
        spec.groups > 1,
        spec.se,
        spec.residual,
        spec.downsample,
        spec.first_pointwise_grouped,
        spec.shuffle,
    )


def replayed_cost(spec: PartSpec) -> Cost:
    """The cost of one part from its symbolic replay (``symbolic_cost``), unchecked."""
    tape = symbolic_cost(spec)
    return Cost(tape.macs, tape.params, tape.memory_access, tape.operators, tape.peak)


# ---- memory ------------------------------------------------------------------------------------------------
class InsufficientMemoryError(ShuffleNetNASError):
    """A network would not fit in the memory free on its device (raised before anything is built)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """What a forward pass holds: the weights, and the peak live activations at a batch size, in a dtype."""

    weights_bytes: int
    activation_bytes: int
    batch: int
    dtype: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.activation_bytes


def estimate_memory(genotype: Genotype, batch: int = 1, dtype: str = "fp32") -> MemoryEstimate:
    """Weights (params x dtype bytes) + the forward's peak live activations x batch, counted from the plan
    without building the network. Inference only: training holds more."""
    if dtype not in DTYPE_BYTES:
        raise InvalidArgumentError(f"dtype={dtype!r} unknown; use one of {', '.join(DTYPE_BYTES)}")
    if batch < 1:
        raise InvalidArgumentError(f"batch={batch}: need at least 1")
    plan = network_plan(genotype)
    costs = [part_cost(part) for part in plan]
    peak = max(cost.peak_activation_bytes + held for cost, held in zip(costs, _held_bytes(genotype, plan), strict=True))
    size = DTYPE_BYTES[dtype]
    return MemoryEstimate(sum(cost.params for cost in costs) * size, peak * batch * size // 4, batch, dtype)


def _held_bytes(genotype: Genotype, plan: tuple[PartSpec, ...]) -> list[int]:
    """Per part, the fp32 bytes its callers keep alive beside its own working set: the network's input (held by
    whoever calls the network) and, inside a stage after its first unit, the stage's input (held by the network's
    forward while the stage's ``nn.Sequential`` runs)."""
    network_input = 4 * math.prod(plan[0].input_shape)
    held = [0] + [network_input] * (len(plan) - 1)
    first = 1
    for stage in genotype.stages:
        stage_input = 4 * math.prod(plan[first].input_shape)
        for index in range(first + 1, first + stage.repeats):
            held[index] += stage_input
        first += stage.repeats
    return held


_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def available_memory_bytes(device: str = "cpu") -> int | None:
    """Memory free for a new allocation: on ``cuda`` the current GPU's free memory; on ``cpu`` the kernel's
    MemAvailable, or less when a cgroup (a container) limits the process. ``None`` where it cannot be read."""
    if device not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"device={device!r} unknown; use device='cpu' or device='cuda'")
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
    free = [value for value in (_meminfo_available(), _cgroup_free()) if value is not None]
    return min(free) if free else None


def _meminfo_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def _cgroup_free() -> int | None:
    """cgroup v2: memory.max - memory.current of the process's group (``None`` without a limit)."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        used = int((_CGROUP / "memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def check_fits_in_memory(
    genotype: Genotype, batch: int = 1, dtype: str = "fp32", device: str = "cpu"
) -> MemoryEstimate:
    """The memory estimate of ``genotype``; raises ``InsufficientMemoryError`` when it exceeds what is free on
    ``device`` (``cpu`` or ``cuda``). Call it before building: it counts, it allocates nothing."""
    estimate = estimate_memory(genotype, batch, dtype)
    free = available_memory_bytes(device)
    if free is not None and estimate.total_bytes > free:
        where = "on the GPU" if device == "cuda" else "in memory"
        raise InsufficientMemoryError(
            f"{genotype.arch_id} needs about {_size(estimate.total_bytes)} (weights {_size(estimate.weights_bytes)} "
            f"+ activations {_size(estimate.activation_bytes)} at batch {batch}, {dtype}) but {_size(free)} is "
            f"free {where}; lower the batch, the resolution or the widths"
        )
    return estimate


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"
