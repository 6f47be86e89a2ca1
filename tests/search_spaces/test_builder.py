from __future__ import annotations

import subprocess
import sys
from copy import deepcopy
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from shufflenet_nas import build_model
from shufflenet_nas.search_spaces import BASELINES, Genotype, StageGene
from shufflenet_nas.search_spaces.blocks import ShuffleV1Unit, ShuffleV2Unit, channel_shuffle
from shufflenet_nas.search_spaces.plan import UnitSpec


def _unit_spec(unit: str, in_channels: int, out_channels: int, stride: int, **options: Any) -> UnitSpec:
    fields: dict[str, Any] = {
        "groups": 1,
        "split_ratio": 0.5,
        "kernel": 3,
        "se": False,
        "residual": False,
        "downsample": "tv",
        "first_pointwise_grouped": True,
        "resolution": 16,
    }
    return UnitSpec(unit, in_channels, out_channels, stride, **(fields | options))


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
    unit = ShuffleV1Unit(_unit_spec("v1", 24, 240, 2, groups=3, first_pointwise_grouped=False))
    convs = [m for m in unit.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.groups, c.stride[0]) for c in convs] == [
        (24, 60, 1, 1),  # first pointwise of stage 2 is not grouped; bottleneck = out / 4
        (60, 60, 60, 2),  # depthwise, stride 2
        (60, 216, 3, 1),  # branch outputs out - in, grouped
    ]
    assert isinstance(unit.branch1, nn.AvgPool2d)
    assert unit(torch.randn(1, 24, 16, 16)).shape == (1, 240, 8, 8)
    stride1 = ShuffleV1Unit(_unit_spec("v1", 240, 240, 1, groups=3))
    assert [m.groups for m in stride1.modules() if isinstance(m, nn.Conv2d)] == [3, 60, 3]


@pytest.mark.parametrize(("downsample", "widths"), [("tv", (58, 58, 58)), ("official", (24, 58, 92))])
def test_v2_stride2_variants(downsample: str, widths: tuple[int, int, int]) -> None:
    unit = ShuffleV2Unit(_unit_spec("v2", 24, 116, 2, downsample=downsample))
    proj_out = unit.branch1[2].out_channels  # type: ignore[index]
    branch = [m for m in unit.branch2.modules() if isinstance(m, nn.Conv2d)]
    assert (proj_out, branch[0].out_channels, branch[-1].out_channels) == widths
    assert unit(torch.randn(1, 24, 16, 16)).shape == (1, 116, 8, 8)


def test_v2_split_ratio_passes_channels_through_untouched() -> None:
    unit = ShuffleV2Unit(_unit_spec("v2", 64, 64, 1, split_ratio=0.25)).eval()
    x = torch.randn(1, 64, 8, 8)
    y = unit(x)
    # after the 2-group shuffle, even output channels 0,2,...,30 hold the first 16 inputs interleaved
    unshuffled = channel_shuffle(y, 32)  # inverse of a 2-group shuffle on 64 channels
    assert torch.equal(unshuffled[:, :16], x[:, :16])
    branch = [m for m in unit.branch2.modules() if isinstance(m, nn.Conv2d)]
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


def test_the_data_side_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "import shufflenet_nas\n"
        "from shufflenet_nas.search_spaces import BASELINES, Genotype, SearchSpace, get_baseline, resolve_arch\n"
        "genotype = Genotype.from_string('stem24-v2_n4_c116-v2_n8_c232-v2_n4_c464')\n"
        "assert resolve_arch('shufflenet_v2_x1_0') == genotype == get_baseline('shufflenet_v2_x1_0').genotype\n"
        "assert BASELINES['shufflenet_v1_g3_x1_0'].genotype.stages[0].groups == 3\n"
        "loaded = [name for name in ('torch', 'optuna', 'fvcore') if name in sys.modules]\n"
        "assert not loaded, loaded\n"
        "from shufflenet_nas.search_spaces import ShuffleNet, build\n"
        "assert 'torch' in sys.modules and isinstance(build(genotype), ShuffleNet)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_modules_carry_torchvision_names() -> None:
    v2 = build_model("shufflenet_v2_x1_0")
    names = ["conv1", "maxpool", "stage2", "stage3", "stage4", "conv5", "fc"]
    assert [name for name, _ in v2.named_children()] == names
    assert isinstance(v2.maxpool, nn.MaxPool2d) and v2.stage3[7].branch1 is None
    v1 = build_model("shufflenet_v1_g3_x2_0_se")
    keys = v1.state_dict()
    assert {key.split(".")[0] for key in keys} == {"conv1", "stage2", "stage3", "stage4", "fc"}  # no head conv
    assert isinstance(v1.stage2[0].branch1, nn.AvgPool2d) and v1.stage2[1].branch1 is None
    # conv, BN, ReLU, shuffle, then the depthwise conv; the SE block closes the branch
    assert keys["stage2.0.branch2.4.weight"].shape == (120, 1, 3, 3)
    assert keys["stage4.3.branch2.8.reduce.weight"].shape == (120, 1920, 1, 1)


def test_parts_compose_to_the_network_and_their_hooks_fire(tiny_v1: Genotype) -> None:
    model = build_model(tiny_v1).eval()
    parts = model.parts()
    assert len(parts) == 2 + sum(stage.repeats for stage in tiny_v1.stages)
    assert parts[0] is model.stem and parts[1] is model.stage2[0] and parts[-1] is model.head
    assert model.stem.conv1 is model.conv1 and model.head.fc is model.fc
    seen: list[nn.Module] = []
    for part in parts:
        part.register_forward_hook(lambda module, _inputs, _output: seen.append(module))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
        assert [id(module) for module in seen] == [id(part) for part in parts]
        for part in parts:
            x = part(x)
    assert torch.equal(x, y)
    copy = deepcopy(model)
    assert copy.stem.conv1 is copy.conv1 and copy.head.fc is copy.fc and copy.conv1 is not model.conv1


class _CountReLUKernels(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += func.overloadpacket.__name__ in ("relu", "relu_")
        return func(*args, **(kwargs or {}))


def test_every_relu_is_an_nn_relu_module() -> None:
    stages = (StageGene("v1", 2, 32, groups=2, se=True, residual=True), StageGene("v2", 2, 64, se=True, residual=True))
    model = build_model(Genotype(8, stages, head_channels=64, resolution=32, downsample="official")).eval()
    calls: list[int] = []
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad(), _CountReLUKernels() as kernels:
        model(torch.randn(1, 3, 32, 32))
    # stem 1; v1 s2: 1 + SE 1 + out 1, v1 s1: 3; v2 s2: projection 1 + 1 + SE 1 + out 1, v2 s1: 3; head 1
    assert kernels.count == len(calls) == 15


# ---- units without channel shuffle -------------------------------------------------------------------------------
def test_a_v1_unit_without_shuffle_runs_the_same_convs_without_the_shuffle() -> None:
    from shufflenet_nas.search_spaces.blocks import ChannelShuffle

    on = ShuffleV1Unit(_unit_spec("v1", 240, 240, 1, groups=3, residual=True)).eval()
    off = ShuffleV1Unit(_unit_spec("v1", 240, 240, 1, groups=3, residual=True, shuffle=False)).eval()
    assert any(isinstance(m, ChannelShuffle) for m in on.modules())
    assert not any(isinstance(m, ChannelShuffle) for m in off.modules())
    convs = [
        [(c.in_channels, c.out_channels, c.groups) for c in u.modules() if isinstance(c, nn.Conv2d)] for u in (on, off)
    ]
    assert convs[0] == convs[1] == [(240, 60, 3), (60, 60, 60), (60, 240, 3)]
    # the same weights, in order: without the shuffle each output group reads only its own input group
    off.load_state_dict(dict(zip(off.state_dict(), on.state_dict().values(), strict=True)))
    x, bump = torch.randn(1, 240, 8, 8), torch.zeros(1, 240, 1, 1)
    bump[:, :80] = 1.0  # input group 0 of the first grouped conv
    with torch.no_grad():
        assert not torch.allclose(on(x), off(x))
        reached = [(unit(x + bump) - unit(x))[0, 80:].abs().max().item() for unit in (on, off)]
    assert reached[0] > 0 and reached[1] == 0


@pytest.mark.parametrize("stride", [1, 2])
def test_a_v2_unit_without_shuffle_is_the_unit_before_its_shuffle(stride: int) -> None:
    on = ShuffleV2Unit(_unit_spec("v2", 64, 64, stride)).eval()
    off = ShuffleV2Unit(_unit_spec("v2", 64, 64, stride, shuffle=False)).eval()
    assert list(off.state_dict()) == list(on.state_dict())  # its shuffle is no module: the same keys
    off.load_state_dict(on.state_dict())
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        assert torch.equal(channel_shuffle(off(x), 2), on(x))
    if stride == 1:
        assert torch.equal(off(x)[:, :32], x[:, :32])  # the pass-through half stays where it was


def test_networks_without_shuffle_build_and_name_their_modules_as_with_it() -> None:
    on, off = (build_model(BASELINES[name].genotype) for name in ("shufflenet_v2_x0_5", "shufflenet_v1_g3_x0_5"))
    v2_off = Genotype.from_string(str(BASELINES["shufflenet_v2_x0_5"].genotype).replace("_k3", "_k3_noshuffle"))
    assert list(build_model(v2_off).state_dict()) == list(on.state_dict())
    v1_off = build_model("shufflenet_v1_g3_x0_5_noshuffle")
    assert [name for name, _ in v1_off.named_children()] == [name for name, _ in off.named_children()]
    assert v1_off.stage2[1].branch2[3].kernel_size == (3, 3)  # the depthwise conv moves up into the shuffle's place


def test_zero_init_residual_makes_every_residual_unit_the_identity() -> None:
    import torch

    from shufflenet_nas.search_spaces import BASELINES, build

    model = build(BASELINES["shufflenet_v1_g3_x0_5"].genotype.with_resolution(32)).eval()
    residual = [unit for stage in model.stages() for unit in stage if unit.residual]
    assert model.zero_init_residual() == len(residual) == 13  # 3 + 7 + 3 stride-1 units
    features = torch.rand(2, residual[0].branch2[0].in_channels, 8, 8)  # non-negative, as after a ReLU
    assert torch.equal(residual[0](features), features)
