"""FLOPs and memory access cost of the guideline blocks, counted from their specs (no torch).

The V2 paper's formulas for a 1x1 conv on h x w features, c1 -> c2 channels, g groups: FLOPs B = hw c1 c2 / g
multiply-adds, memory access cost MAC = hw (c1 + c2) + c1 c2 / g elements (input read, output written, weights
read). ``conv_cost`` counts any k x k conv that way (the paper's formula for k = 1), on the project's symbolic
tape (``nas.symbolic_cost.Tape``, the replay the cost model uses); ``stack_cost`` replays one benchmark
network kernel by kernel as ``blocks.build_stack`` runs it: convs, and the element-wise kernels (ReLU: read and
write; addition: two reads, one write; concatenation: every branch read, the result written), at batch 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from shufflenet_nas.guidelines.configs import BLOCKS, RESOLUTION, BlockSpec
from shufflenet_nas.nas.symbolic_cost import Activation, Tape


@dataclass(frozen=True)
class StackCost:
    """Multiply-adds (the papers' FLOPs), memory access (elements read + written) and kernels of one image."""

    flops: int
    mac: int
    operators: int

    @property
    def mflops(self) -> float:
        return self.flops / 1e6


def conv_cost(size: int, c_in: int, c_out: int, kernel: int = 1, groups: int = 1) -> StackCost:
    """One k x k conv ('same' padding, stride 1) on ``size`` x ``size`` features, ``c_in`` -> ``c_out``."""
    tape = Tape()
    tape.conv(Activation(c_in, size), c_out, kernel=kernel, groups=groups)
    return StackCost(tape.macs, tape.memory_access, tape.operators)


def stack_cost(spec: BlockSpec, resolution: int = RESOLUTION, blocks: int = BLOCKS) -> StackCost:
    """The cost of ``blocks`` blocks of ``spec`` on ``resolution`` x ``resolution`` features, for one image."""
    tape = Tape()
    for _ in range(blocks):
        _block(tape, Activation(spec.channels, resolution), spec)
    return StackCost(tape.macs, tape.memory_access, tape.operators)


def _block(tape: Tape, x: Activation, spec: BlockSpec) -> Activation:
    """One block's kernels, in the order of its module's forward (``blocks``)."""
    if spec.kind == "pair":
        return tape.conv(tape.conv(x, spec.inner), spec.channels)
    if spec.kind == "group":
        return tape.conv(x, spec.channels, groups=spec.groups)
    if spec.kind == "series":
        for _ in range(spec.fragments):
            x = tape.conv(x, spec.channels)
        return x
    if spec.kind == "parallel":
        branches = [tape.conv(x, spec.inner) for _ in range(spec.fragments)]
        y = Activation(spec.channels, x.size)
        tape.kernel(branches, [y])
        return y
    y = tape.conv(x, spec.inner)
    y = tape.relu_(y) if spec.relu else y
    y = tape.conv(y, spec.inner, kernel=3)
    y = tape.relu_(y) if spec.relu else y
    y = tape.conv(y, spec.channels)
    y = tape.add(y, x) if spec.shortcut else y
    return tape.relu_(y) if spec.relu else y
