"""One architecture as a standalone PyTorch source file: torch only, no shufflenet_nas import.

The file is assembled from the package's own code (``inspect.getsource`` of the blocks, the stem and the head,
and of the channel arithmetic they call), so it cannot drift from the networks the package builds; only the
part specs become plain dataclasses, and the architecture becomes a table of them: one ``UnitSpec`` per unit,
every channel count written out. Its ``ShuffleNet`` has the package's module names, so the package's state
dicts (trained weights included) load into it by key and give identical outputs.
"""

from __future__ import annotations

import inspect
from dataclasses import fields

from shufflenet_nas import __version__
from shufflenet_nas.search_spaces import blocks, builder, channels
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import HeadSpec, StemSpec, UnitSpec, network_plan

_SPECS = '''
@dataclass(frozen=True)
class StemSpec:
    """conv1 (3x3 conv-BN-ReLU, stride conv_stride), then a 3x3 stride-2 max pool when has_maxpool."""

    in_channels: int
    out_channels: int
    conv_stride: int
    has_maxpool: bool


@dataclass(frozen=True)
class UnitSpec:
    """One unit: "v1" or "v2", its input channels, stride, depthwise kernel, options and channel counts."""

    unit: str
    in_channels: int
    stride: int
    kernel: int
    se: bool
    residual: bool
    shuffle: bool
    channels: UnitChannels


@dataclass(frozen=True)
class HeadSpec:
    """conv5 (1x1 conv-BN-ReLU, none when head_channels is 0), global average pool, fc over features."""

    in_channels: int
    head_channels: int
    features: int
    num_classes: int
    fc_bias: bool
'''

_NETWORK = '''
class ShuffleNet(nn.Module):
    """The network of the table above, with torchvision's module names: conv1, maxpool, stage2.., conv5, fc."""

    def __init__(self) -> None:
        super().__init__()
        stem, head = Stem(STEM), Head(HEAD)
        self.conv1, self.maxpool = stem.conv1, stem.maxpool
        for number, units in enumerate(STAGES, start=2):
            self.add_module(f"stage{number}", nn.Sequential(*(UNIT_TYPES[unit.unit](unit) for unit in units)))
        self.conv5, self.fc = head.conv5, head.fc
        self._ends = (stem, head)  # a tuple: the stem's and head's layers are registered once, above
        self.stage_count = len(STAGES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._ends[0](x)
        for number in range(2, self.stage_count + 2):
            x = getattr(self, f"stage{number}")(x)
        return self._ends[1](x)


if __name__ == "__main__":
    model = ShuffleNet().eval()
    with torch.no_grad():
        print(tuple(model(torch.randn(1, 3, RESOLUTION, RESOLUTION)).shape))
'''


def standalone_source(genotype: Genotype) -> str:
    """The source of a Python file defining ``ShuffleNet`` (this architecture) with torch only."""
    plan = network_plan(genotype)
    stem, units, head = plan[0], plan[1:-1], plan[-1]
    assert isinstance(stem, StemSpec) and isinstance(head, HeadSpec)
    stages: list[list[str]] = []
    for stage in genotype.stages:
        stages.append([_unit(unit) for unit in units[: stage.repeats] if isinstance(unit, UnitSpec)])
        units = units[stage.repeats :]
    lines = [
        f"RESOLUTION = {genotype.resolution}",
        f"STEM = StemSpec({stem.in_channels}, {stem.out_channels}, {stem.conv_stride}, {stem.has_maxpool})",
        "# UnitSpec(unit, in_channels, stride, kernel, se, residual, shuffle,",
        "#          UnitChannels(inputs, mid, out, side, groups, first_groups))",
        "STAGES = [",
    ]
    for number, rows in enumerate(stages, start=2):
        lines += [f"    [  # stage{number}", *(f"        {row}," for row in rows), "    ],"]
    lines += [
        "]",
        f"HEAD = HeadSpec({head.in_channels}, {head.head_channels}, {head.features}, {head.num_classes}, "
        f"{head.fc_bias})",
        'UNIT_TYPES = {"v1": ShuffleV1Unit, "v2": ShuffleV2Unit}',
    ]
    table = "\n".join(lines)
    code = [
        f'"""ShuffleNet {genotype.arch_id}, exported by shufflenet-nas {__version__}. Needs torch only.\n\n'
        f"    {genotype.to_string()}\n\n"
        "    model = ShuffleNet()\n"
        '    model.load_state_dict(torch.load("weights.pt"))  # a state dict of the same architecture\n"""\n\n'
        "from __future__ import annotations\n\n"
        "from dataclasses import dataclass\n\n"
        "import torch\nfrom torch import nn\nfrom torch.nn import functional as F\n\n"
        f"SE_REDUCTION = {channels.SE_REDUCTION}\nSE_MIN_CHANNELS = {channels.SE_MIN_CHANNELS}",
        inspect.getsource(channels.se_channels),
        inspect.getsource(channels.UnitChannels),
        _SPECS.strip("\n"),
        *(inspect.getsource(getattr(blocks, name)) for name in _BLOCKS),
        inspect.getsource(builder.Stem),
        inspect.getsource(builder.Head),
        "# ---- the architecture, part by part " + "-" * 70,
        table,
        _NETWORK.strip("\n"),
    ]
    return "\n\n\n".join(part.strip("\n") for part in code) + "\n"


_BLOCKS = (
    "channel_shuffle",
    "conv_bn",
    "SqueezeExcite",
    "ChannelShuffle",
    "main_branch",
    "ShuffleV1Unit",
    "ShuffleV2Unit",
)


def _unit(spec: UnitSpec) -> str:
    """``UnitSpec("v2", 116, 1, 3, False, False, True, UnitChannels(58, 58, 58, 58, 1, 1))``."""
    c = spec.channels
    numbers = ", ".join(str(getattr(c, f.name)) for f in fields(c))
    return (
        f'UnitSpec("{spec.unit}", {spec.in_channels}, {spec.stride}, {spec.kernel}, {spec.se}, '
        f"{spec.residual}, {spec.shuffle}, UnitChannels({numbers}))"
    )
