"""FLOPs and memory access cost: the paper's formulas on hand-computed cases, and the symbolic replay of each
block against a trace of its torch module."""

from __future__ import annotations

import pytest
import torch

from shufflenet_nas.guidelines import GUIDELINES, BlockSpec, build_stack, conv_cost, stack_cost
from shufflenet_nas.nas.trace_cost import _trace_memory, fvcore_macs


def test_a_1x1_conv_costs_the_papers_formula() -> None:
    # B = hw c1 c2 / g; MAC = hw (c1 + c2) + c1 c2 / g, at h = w = 56
    cost = conv_cost(56, 128, 128)
    assert (cost.flops, cost.mac) == (3136 * 128 * 128, 3136 * 256 + 128 * 128)
    assert (cost.flops, cost.mac) == (51_380_224, 819_200)
    grouped = conv_cost(56, 360, 360, groups=8)
    assert (grouped.flops, grouped.mac) == (50_803_200, 3136 * 720 + 16_200)
    unbalanced = conv_cost(56, 36, 432)
    assert unbalanced.mac == 3136 * 468 + 36 * 432 > cost.mac  # G1: same-ish FLOPs, more memory access


def test_a_3x3_conv_reads_its_nine_taps_of_weights() -> None:
    cost = conv_cost(56, 8, 8, kernel=3)
    assert (cost.flops, cost.mac, cost.operators) == (3136 * 8 * 8 * 9, 3136 * 16 + 576, 1)


def test_stacks_add_up_over_ten_blocks() -> None:
    pair = stack_cost(BlockSpec("pair", 32, 32))
    assert (pair.flops, pair.mac, pair.operators) == (20 * 3136 * 1024, 20 * (3136 * 64 + 1024), 20)
    # the bottleneck at c = 32, inner 8: conv 32->8, ReLU, 3x3 8->8, ReLU, conv 8->32, add, ReLU
    block = (3136 * 40 + 256) + 2 * 3136 * 8 + (3136 * 16 + 576) + 2 * 3136 * 8 + (3136 * 40 + 256)
    block += 3 * 3136 * 32 + 2 * 3136 * 32
    bottleneck = stack_cost(BlockSpec("bottleneck", 32, 8, relu=True, shortcut=True))
    assert (bottleneck.mac, bottleneck.operators) == (10 * block, 70)
    bare = stack_cost(BlockSpec("bottleneck", 32, 8))
    assert bare.flops == bottleneck.flops and bare.mac == 10 * (block - 3 * 3136 * 32 - 2 * 3136 * (8 + 8 + 32))


@pytest.mark.parametrize("guideline", GUIDELINES, ids=lambda g: g.key)
def test_the_replay_matches_a_trace_of_the_module(guideline: object) -> None:
    for row in guideline.rows:  # type: ignore[attr-defined]
        spec = row.block("arm", 1)
        module, x = build_stack(spec, blocks=2).eval(), torch.zeros(1, spec.channels, 6, 6)
        with torch.no_grad():
            memory_access, operators, _ = _trace_memory(module, x)
            flops = fvcore_macs(module, x)
        assert (stack_cost(spec, 6, blocks=2).flops, stack_cost(spec, 6, blocks=2).mac) == (flops, memory_access)
        assert stack_cost(spec, 6, blocks=2).operators == operators, row.label
