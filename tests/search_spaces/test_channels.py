"""The units' channel arithmetic, and the modules and genotype checks that read it."""

from __future__ import annotations

import pytest
from torch import nn

from shufflenet_nas.search_spaces import BASELINES, Genotype, StageGene
from shufflenet_nas.search_spaces.builder import build_part
from shufflenet_nas.search_spaces.channels import UnitChannels, se_channels, unit_channels, v1_bottleneck
from shufflenet_nas.search_spaces.plan import UnitSpec, network_plan


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # V1 g3 1x, stage 2 (V1 Table 1): the branch outputs 240 - 24 beside the pooled input; first 1x1 ungrouped
        (("v1", 24, 240, 2, 3, 0.5, "tv", False), UnitChannels(24, 60, 216, 24, 3, 1)),
        (("v1", 480, 480, 1, 3), UnitChannels(480, 120, 480, 0, 3, 3)),
        (("v1", 200, 200, 1, 2), UnitChannels(200, 50, 200, 0, 2, 2)),
        # V2 1x stage 2 (V2 Table 5): torchvision halves; megvii's projection keeps the input's 24 channels
        (("v2", 24, 116, 2), UnitChannels(24, 58, 58, 58, 1, 1)),
        (("v2", 24, 116, 2, 1, 0.5, "official"), UnitChannels(24, 58, 92, 24, 1, 1)),
        (("v2", 116, 116, 1), UnitChannels(58, 58, 58, 58, 1, 1)),
        (("v2", 64, 64, 1, 2, 0.25), UnitChannels(48, 48, 48, 16, 2, 2)),
    ],
)
def test_unit_channels(args: tuple[object, ...], expected: UnitChannels) -> None:
    assert unit_channels(*args) == expected  # type: ignore[arg-type]


def test_v1_bottleneck_and_se_widths() -> None:
    widths = {(240, 3): 60, (384, 8): 96, (272, 4): 68, (144, 1): 36, (24, 8): 8}  # out/4, a multiple of groups
    assert {key: v1_bottleneck(*key) for key in widths} == widths
    assert [se_channels(c) for c in (116, 128, 464, 1920)] == [8, 8, 29, 120]


def _conv_widths(module: nn.Module) -> list[tuple[int, int, int]]:
    return [(m.in_channels, m.out_channels, m.groups) for m in module.modules() if isinstance(m, nn.Conv2d)]


def _units(genotype: Genotype) -> list[UnitSpec]:
    return [part for part in network_plan(genotype) if isinstance(part, UnitSpec)]


@pytest.mark.parametrize("name", ["shufflenet_v1_g8_x0_5", "shufflenet_v2_x1_5_official", "shufflenet_v2_x2_0_se"])
def test_every_unit_module_has_the_widths_of_its_channels(name: str) -> None:
    for spec in _units(BASELINES[name].genotype):
        c = spec.channels
        convs = _conv_widths(build_part(spec).branch2)  # type: ignore[arg-type]
        expected = [(c.inputs, c.mid, c.first_groups), (c.mid, c.mid, c.mid), (c.mid, c.out, c.groups)]
        if spec.se:
            expected += [(c.out, se_channels(c.out), 1), (se_channels(c.out), c.out, 1)]
        assert convs == expected
        assert c.out + c.side == spec.out_channels


def test_genotype_checks_read_the_same_widths() -> None:
    # official V2 stride 2 with groups 4: the main branch outputs 120 - 24 = 96 (divisible), a split of 0.25
    # leaves a branch of 90 channels (not divisible)
    ok = StageGene("v2", 1, 120, groups=4)
    assert Genotype(24, (ok,), downsample="official").stages == (ok,)
    with pytest.raises(ValueError, match="stage 2: branch of 90 channels not divisible by groups=4"):
        Genotype(24, (StageGene("v2", 2, 120, groups=4, split_ratio=0.25),), downsample="official")
    with pytest.raises(ValueError, match=r"stride-2 branch of 116 channels \(out 128 - in 12\) not divisible"):
        Genotype(12, (StageGene("v1", 1, 128, groups=8),))
