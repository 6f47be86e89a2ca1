"""Counting one part on its built module: fvcore's multiply-adds (the papers' "FLOPs": conv and linear entries
only) and a dispatch trace for kernels, memory access and live activation memory."""

from __future__ import annotations

import warnings
from typing import Any
from weakref import ref

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from shufflenet_nas.nas.cost import Cost
from shufflenet_nas.search_spaces.builder import build_part
from shufflenet_nas.search_spaces.plan import PartSpec

PAPER_FLOP_OPERATORS = ("conv", "linear")


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
