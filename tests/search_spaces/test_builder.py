from __future__ import annotations

import pytest
import torch
from torch import nn

from shufflenet_nas import build_model
from shufflenet_nas.search_spaces import BASELINES, Genotype, StageGene
from shufflenet_nas.search_spaces.blocks import ShuffleV1Unit, ShuffleV2Unit, channel_shuffle


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    y = torch.randn(2, 12, 5, 5)
    permutation = torch.arange(12).view(3, 4).t().reshape(-1)
    assert torch.equal(channel_shuffle(y, 3), y[:, permutation])


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_runs_forward_at_small_resolution(name: str) -> None:
    genotype = BASELINES[name].genotype.with_resolution(64)
    model = build_model(genotype).eval()
    with torch.inference_mode():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()


def test_v1_unit_follows_the_paper() -> None:
    unit = ShuffleV1Unit(24, 240, stride=2, groups=3, first_pointwise_grouped=False)
    convs = [m for m in unit.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.groups, c.stride[0]) for c in convs] == [
        (24, 60, 1, 1),  # first pointwise of stage 2 is not grouped; bottleneck = out / 4
        (60, 60, 60, 2),  # depthwise, stride 2
        (60, 216, 3, 1),  # branch outputs out - in, grouped
    ]
    assert isinstance(unit.shortcut, nn.AvgPool2d)
    assert unit(torch.randn(1, 24, 16, 16)).shape == (1, 240, 8, 8)
    stride1 = ShuffleV1Unit(240, 240, stride=1, groups=3)
    assert [m.groups for m in stride1.modules() if isinstance(m, nn.Conv2d)] == [3, 60, 3]


@pytest.mark.parametrize(("downsample", "widths"), [("tv", (58, 58, 58)), ("official", (24, 58, 92))])
def test_v2_stride2_variants(downsample: str, widths: tuple[int, int, int]) -> None:
    unit = ShuffleV2Unit(24, 116, stride=2, downsample=downsample)
    proj_out = unit.project[2].out_channels  # type: ignore[index]
    branch = [m for m in unit.branch.modules() if isinstance(m, nn.Conv2d)]
    assert (proj_out, branch[0].out_channels, branch[-1].out_channels) == widths
    assert unit(torch.randn(1, 24, 16, 16)).shape == (1, 116, 8, 8)


def test_v2_split_ratio_passes_channels_through_untouched() -> None:
    unit = ShuffleV2Unit(64, 64, stride=1, split_ratio=0.25).eval()
    x = torch.randn(1, 64, 8, 8)
    y = unit(x)
    # after the 2-group shuffle, even output channels 0,2,...,30 hold the first 16 inputs interleaved
    unshuffled = channel_shuffle(y, 32)  # inverse of a 2-group shuffle on 64 channels
    assert torch.equal(unshuffled[:, :16], x[:, :16])
    branch = [m for m in unit.branch.modules() if isinstance(m, nn.Conv2d)]
    assert [c.in_channels for c in branch] == [48, 48, 48]


def test_options_add_modules() -> None:
    plain = Genotype(8, (StageGene("v2", 2, 32),), head_channels=64, resolution=32)
    rich = Genotype(8, (StageGene("v2", 2, 32, kernel=5, se=True, residual=True),), head_channels=64, resolution=32)
    count = sum(p.numel() for p in build_model(plain).parameters())
    assert sum(p.numel() for p in build_model(rich).parameters()) > count
    kernels = {m.kernel_size for m in build_model(rich).modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
    assert kernels == {(5, 5)}


def test_grouped_v2_and_mixed_families_build(tiny_v1: Genotype) -> None:
    grouped = Genotype(8, (StageGene("v2", 2, 32, groups=2), StageGene("v1", 2, 64, groups=2)), resolution=32)
    assert grouped.family == "mixed"
    assert build_model(grouped).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    assert build_model(tiny_v1)(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_stem_stride_sets_the_downsampling(stride: int) -> None:
    genotype = Genotype(8, (StageGene("v2", 1, 16),), head_channels=0, stem_stride=stride, resolution=32)
    model = build_model(genotype)
    features = model.stage2(model.stem(torch.randn(1, 3, 32, 32)))
    assert features.shape[-1] == 32 // stride // 2
