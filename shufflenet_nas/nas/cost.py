"""Cost model: MACs (fvcore, the papers' convention), parameters, memory access cost, operators, memory.

"FLOPs" here means multiply-adds of conv and linear layers, the convention of both ShuffleNet papers:
fvcore counts one fused multiply-add as one flop, and only its ``conv`` and ``linear`` entries are
summed (fvcore's ``.total()`` would add BatchNorm, about 3.9M on V2 1.0x).

Every cost is additive over the parts of a network plan (stem, units, head), so each distinct part is
counted once and cached: a search pays for the parts it has not seen before, not for whole networks.

Two counts of a part agree exactly: ``traced_cost`` builds the module and runs it, fvcore counting the
multiply-adds and a dispatch trace the kernels, memory access and live memory (~15 ms); ``symbolic_cost``
replays the same kernels on shapes (~50 us). ``part_cost`` uses the replay, and checks it against the trace on
the first part of each kind (unit type, stride, SE, residual, grouped or not, ...) the process meets; a kind
that disagrees (a torch release that dispatches differently) is traced from then on, with a warning.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass
from typing import Any
from weakref import ref

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from shufflenet_nas.nas.symbolic_cost import symbolic_cost
from shufflenet_nas.search_spaces.builder import build_part
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import HeadSpec, PartSpec, StemSpec, network_plan

PAPER_FLOP_OPERATORS = ("conv", "linear")


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


@functools.lru_cache(maxsize=65536)
def part_cost(spec: PartSpec) -> Cost:
    """The cost of one part at batch 1 (cached: equal parts are counted once per process)."""
    kind = _kind(spec)
    if kind not in _checked_kinds:
        traced, replayed = traced_cost(spec), replayed_cost(spec)
        _checked_kinds[kind] = traced == replayed
        if traced != replayed:
            warnings.warn(
                f"symbolic cost of {kind} disagrees with the traced count ({replayed} vs {traced}): "
                "counting parts of this kind by tracing",
                RuntimeWarning,
                stacklevel=2,
            )
        return traced
    return replayed_cost(spec) if _checked_kinds[kind] else traced_cost(spec)


_checked_kinds: dict[tuple[object, ...], bool] = {}  # kind -> the replay matched the trace on it


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
    )


def replayed_cost(spec: PartSpec) -> Cost:
    """The cost of one part from its symbolic replay (``symbolic_cost``), unchecked."""
    tape = symbolic_cost(spec)
    return Cost(tape.macs, tape.params, tape.memory_access, tape.operators, tape.peak)


def traced_cost(spec: PartSpec) -> Cost:
    """The cost of one part counted on its module: fvcore's multiply-adds, a dispatch trace of the rest."""
    with torch.random.fork_rng(devices=[]):  # initialising weights must not move the caller's RNG
        module = build_part(spec).eval()
    x = torch.zeros(1, *spec.input_shape)
    with torch.inference_mode(False), torch.no_grad():
        macs = fvcore_macs(module, x)
        memory_access, operators, peak = _trace_memory(module, x)
    params = sum(p.numel() for p in module.parameters())
    return Cost(macs, params, memory_access, operators, peak)


def fvcore_macs(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Conv + linear multiply-adds of ``module(x)`` by fvcore's FlopCountAnalysis."""
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(module, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        by_operator = analysis.by_operator()
    return int(sum(by_operator.get(name, 0) for name in PAPER_FLOP_OPERATORS))


# Operators that only reinterpret memory or allocate it: no kernel, no traffic.
_NOT_KERNELS = {
    "empty",
    "view",
    "_unsafe_view",
    "reshape",
    "transpose",
    "permute",
    "slice",
    "select",
    "split",
    "split_with_sizes",
    "chunk",
    "narrow",
    "flatten",
    "unsqueeze",
    "squeeze",
    "expand",
    "t",
    "detach",
    "alias",
    "as_strided",
    "_reshape_alias",
    "unbind",
}


class _MemoryTrace(TorchDispatchMode):
    """Counts kernels, elements they touch, and the live activation bytes (weights excluded)."""

    def __init__(self, weights: set[int]) -> None:
        super().__init__()
        self.weights = weights
        self.memory_access = 0
        self.operators = 0
        self.live: dict[int, tuple[Any, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in _NOT_KERNELS:
            return out
        inputs = [t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outputs = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        self.operators += 1
        self.memory_access += sum(t.numel() for t in inputs + outputs)
        self.live = {key: entry for key, entry in self.live.items() if entry[0]() is not None}
        for tensor in inputs + outputs:
            self._track(tensor)
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.weights or key in self.live:
            return
        self.live[key] = (ref(tensor), storage.nbytes())


def _trace_memory(module: torch.nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    weights = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    trace = _MemoryTrace(weights)
    with trace:
        module(x)
    return trace.memory_access, trace.operators, trace.peak
