"""The guideline figures (nas.explain) on cases whose answer is known: hand-counted tiny networks, the V2 unit's
equal widths, V1's grouped 1x1 convs, squeeze-excite's fragments, and the profiler on pure conv and pure
element-wise stacks."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest
from torch import nn

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.cost import cost_breakdown, count_cost
from shufflenet_nas.nas.explain import (
    ELEMENTWISE,
    compare_measured,
    compare_to_reference,
    explain,
    measured_elementwise_share,
    profile_operators,
    reference_like,
)
from shufflenet_nas.nas.latency import MeasureConfig
from shufflenet_nas.nas.symbolic_cost import KINDS, replay_kernels, symbolic_cost
from shufflenet_nas.search_spaces import BASELINES, Genotype, StageGene
from shufflenet_nas.search_spaces.plan import network_plan

V2_1X = BASELINES["shufflenet_v2_x1_0"].genotype
V1_G8 = BASELINES["shufflenet_v1_g8_x1_0"].genotype


def one_v2_stage() -> Genotype:
    """stem 8 (stride 1) at 16 px, then a stride-2 and a stride-1 V2 unit of 16 channels: every 1x1 conv 8 -> 8."""
    return Genotype(8, (StageGene("v2", 2, 16),), head_channels=0, stem_stride=1, resolution=16, num_classes=10)


def test_a_tiny_v2_stage_counts_as_by_hand() -> None:
    # stride-2 unit (16x16 -> 8x8; tv: projection and branch of 8 channels each), elements read + written:
    # dw s2 2048+512+72, BN 1056, 1x1 1088, BN 1056, ReLU 1024 | 1x1@16 4160, BN@16 4128, ReLU@16 4096,
    # dw s2 2632, BN 1056, 1x1 1088, BN 1056, ReLU 1024 | cat 2048, shuffle 2048 = 30192 (element-wise 18592)
    # stride-1 unit at 8x8 (8 pass through): 1x1 1088, BN 1056, ReLU 1024, dw 1096, BN 1056, 1x1 1088, BN 1056,
    # ReLU 1024, cat 2048, shuffle 2048 = 12584 (element-wise 9312)
    stage = explain(one_v2_stage()).stages[0]
    assert (stage.memory_access, stage.elementwise_memory_access) == (30192 + 12584, 18592 + 9312)
    assert stage.elementwise_share == pytest.approx(27904 / 42776)
    assert (stage.operators, stage.elementwise_operators) == (15 + 10, 10 + 7)
    assert (stage.fragments, stage.fragments_per_unit, stage.branches) == (8, 4.0, 2)
    assert (stage.balance_worst, stage.balance_mean, stage.balance_excess) == (1.0, 1.0, 0.0)  # G1 holds exactly
    assert stage.groups == (1,) and stage.group_share == 0.0


def test_v1_balance_and_group_share_count_as_by_hand(tiny_v1: Genotype) -> None:
    # stage 2 (8 -> 24 channels, g2, bottleneck 6): stride-2 unit 1x1 8 -> 6 (ungrouped, the paper's first
    # pointwise conv) at 32x32 and 6 -> 16 (g2) at 16x16; stride-1 unit 24 -> 6 -> 24 (g2) at 16x16
    convs = [(1024, 8, 6, 1), (256, 6, 16, 2), (256, 24, 6, 2), (256, 6, 24, 2)]  # hw, c1, c2, g
    mac = [hw * (c1 + c2) + c1 * c2 // g for hw, c1, c2, g in convs]
    bound = [2 * hw * math.sqrt(c1 * c2) + c1 * c2 / g for hw, c1, c2, g in convs]  # 2*sqrt(g*hw*B) + B/hw
    stage = explain(tiny_v1).stages[0]
    assert stage.pointwise_convs == 4 and stage.pointwise_memory_access == sum(mac) == 35568
    assert (stage.balance_worst, stage.balance_mean) == (4.0, (8 / 6 + 16 / 6 + 4 + 4) / 4)
    assert stage.balance_excess == pytest.approx(sum(mac) / sum(bound) - 1) and stage.balance_excess > 0.12
    assert stage.groups == (1, 2) and stage.group_conv_memory_access == sum(mac[1:]) == 21184
    stage_cost = dict(cost_breakdown(tiny_v1))["stage2"]
    assert stage.group_share == 21184 / stage_cost.memory_access


@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "shufflenet_v1_g3_x1_0", "shufflenet_v2_x2_0_se"])
def test_figures_add_up_to_the_cost_model(name: str) -> None:
    genotype = BASELINES[name].genotype
    explanation, cost = explain(genotype), count_cost(genotype)
    assert (explanation.network.memory_access, explanation.network.operators) == (cost.memory_access, cost.operators)
    assert [s.name for s in explanation.sections] == [name for name, _ in cost_breakdown(genotype)]
    assert sum(s.memory_access for s in explanation.sections) == cost.memory_access
    assert sum(explanation.network.memory_access_by_kind.values()) == cost.memory_access


def test_the_tape_records_without_changing_its_counts() -> None:
    for part in network_plan(V1_G8):
        tape, kernels = symbolic_cost(part), replay_kernels(part)
        assert (len(kernels), sum(k.memory_access for k in kernels)) == (tape.operators, tape.memory_access)
        assert tape.kernels is None and {k.kind for k in kernels} <= set(KINDS)
    assert set(KINDS) >= ELEMENTWISE


def test_stride_1_v2_units_have_equal_widths_and_v1_units_a_4_to_1_bottleneck() -> None:
    v2 = explain(V2_1X)
    assert all((s.balance_worst, s.balance_excess) == (1.0, 0.0) for s in v2.stages[1:])
    assert v2.stages[0].balance_worst == pytest.approx(58 / 24)  # the first unit's 1x1 convs 24 -> 58
    v1 = explain(V1_G8)
    assert all(s.balance_worst == 4.0 for s in v1.stages) and v1.network.balance_excess > 0.15


def test_v1_g8_spends_a_large_share_of_its_memory_access_in_group_convs() -> None:
    v1, v2 = explain(V1_G8).network, explain(V2_1X).network
    assert v1.groups == (1, 8) and v2.groups == (1,)
    assert v1.group_share > 0.15 and v2.group_share == 0.0
    assert [s.group_share for s in explain(V1_G8).stages] == sorted(s.group_share for s in explain(V1_G8).stages)


def test_squeeze_excite_adds_fragments_operators_and_a_path(tiny_v2: Genotype) -> None:
    se = replace(tiny_v2, stages=tuple(replace(stage, se=True) for stage in tiny_v2.stages))
    plain, gated = explain(tiny_v2).network, explain(se).network
    # per unit: global pool, reduce conv, ReLU, expand conv, sigmoid, multiply; three of them conv or pool
    assert gated.operators - plain.operators == 6 * plain.units
    assert gated.unit_fragments - plain.unit_fragments == 3 * plain.units
    assert (plain.branches, gated.branches) == (2, 3)


def test_paths_through_units() -> None:
    residual = explain(replace(V2_1X, stages=tuple(replace(s, residual=True) for s in V2_1X.stages)))
    assert residual.network.branches == 3  # pass-through, branch, and the branch's identity
    plain_v1 = Genotype(24, (StageGene("v1", 2, 240, groups=3),), head_channels=0, fc_bias=False)
    assert [s.branches for s in explain(plain_v1).sections] == [1, 2, 1]  # stride-2 pool beside the branch
    assert explain(V1_G8).stages[1].branches == 2  # the residual add


def test_compare_to_reference_says_which_follows_each_guideline_better() -> None:
    verdicts = {v.guideline: v for v in compare_to_reference(explain(V1_G8), explain(V2_1X))}
    assert [verdicts[g].better for g in ("G1", "G2", "G3", "G4")] == ["reference", "reference", "this", "reference"]
    assert verdicts["G3"].value == 3.1875 and verdicts["G3"].reference_value == 3.375  # fragments per unit
    assert verdicts["G3"].difference == pytest.approx((3.1875 / 3.375 - 1) * 100)
    assert verdicts["G2"].difference == pytest.approx(round(100 * explain(V1_G8).network.group_share, 1))
    assert verdicts["G2"].text().startswith("G2 group convs: 18.8% of MAC in grouped 1x1 convs (groups 1/8) vs 0.0%")
    assert verdicts["G3"].text().endswith("better than V2 1.0x (-5.6%)")
    same = compare_to_reference(explain(V2_1X), explain(V2_1X))
    assert {v.better for v in same} == {"equal"} and same[0].text().endswith(": as V2 1.0x (+0.0 pts)")
    half = {
        v.guideline: v for v in compare_to_reference(explain(BASELINES["shufflenet_v2_x0_5"].genotype), explain(V2_1X))
    }
    assert half["G1"].difference == pytest.approx(0.2) and half["G1"].better == "equal"  # the same design: within NEAR
    assert half["G3"].better == "equal" and half["G4"].better == "this"  # -3.7 points of element-wise MAC


def test_the_reference_takes_the_networks_input(tiny_v2: Genotype) -> None:
    reference = reference_like(tiny_v2)
    assert reference.stages == V2_1X.stages
    assert (reference.resolution, reference.num_classes, reference.stem_stride) == (32, 10, 1)
    assert reference_like(Genotype(8, (StageGene("v2", 1, 16),), stem_stride=1, resolution=4)) is None  # < 8 px


CPU = MeasureConfig(target="cpu")


def test_a_pure_conv_stack_has_no_element_wise_time_and_an_element_wise_stack_nothing_else() -> None:
    convs = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 3, padding=1))
    measured = profile_operators(convs, (8, 16, 16), CPU, runs=3)
    assert measured.elementwise == 0.0 and measured.shares["conv/linear"] > 0.9
    assert [(op.name, op.calls) for op in measured.operators if op.kind == "conv/linear"] == [("aten::conv2d", 2)]
    elementwise = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU(inplace=True))
    measured = profile_operators(elementwise, (8, 16, 16), CPU, runs=3)
    assert measured.elementwise > 0.9 and measured.shares["conv/linear"] == 0.0
    assert sum(measured.shares.values()) == pytest.approx(1.0)


def test_the_profiled_operators_are_the_replayed_kernels(tiny_v1: Genotype) -> None:
    measured = measured_elementwise_share(tiny_v1, CPU, runs=2)
    kinds = Counter(kernel.kind for part in network_plan(tiny_v1) for kernel in replay_kernels(part))
    calls = {op.name: op.calls for op in measured.operators}
    assert calls["aten::conv2d"] == kinds["conv"] and calls["aten::batch_norm"] == kinds["batch_norm"]
    assert (calls["aten::add"], calls["aten::cat"], calls["aten::reshape"]) == (
        kinds["add"],
        kinds["cat"],
        kinds["shuffle"],
    )
    assert 0 < measured.elementwise < 1 and measured.profiled_ms > 0 and measured.forward_ms > 0
    assert measured.provenance["channels_last"] and measured.provenance["arch_id"] == tiny_v1.arch_id
    assert "element-wise" in measured.text() and "slowest: conv2d" in measured.text()
    verdict = compare_measured(measured, measured)
    assert verdict.guideline == "G4" and verdict.better == "equal"


def test_only_the_cpu_is_profiled(tiny_v2: Genotype) -> None:
    with pytest.raises(InvalidArgumentError, match="target='onnxruntime': the element-wise time share"):
        measured_elementwise_share(tiny_v2, MeasureConfig(target="onnxruntime"))
    with pytest.raises(InvalidArgumentError, match="runs=0"):
        measured_elementwise_share(tiny_v2, CPU, runs=0)
