"""ShuffleNet building blocks as torch modules (no printing, no configuration parsing).

Units name their parts as torchvision's ``InvertedResidual``: ``branch1`` (the stride-2 side: V2's projection,
V1's average pool; None at stride 1), ``branch2`` (the main branch), then ``relu`` on the main branch's output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from shufflenet_nas.search_spaces.channels import se_channels
from shufflenet_nas.search_spaces.plan import UnitSpec


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave channels across ``groups``: a view, a transpose and one copy (V1 paper, Fig. 1)."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


def conv_bn(
    in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, 1x1 reduce (``se_channels``) + ReLU, 1x1 expand, sigmoid gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = se_channels(channels)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.expand(self.relu(self.reduce(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(scale)


class ChannelShuffle(nn.Module):
    """Channel shuffle as a module, so it shows in the module tree and in profiles."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def main_branch(spec: UnitSpec) -> nn.Sequential:
    """A unit's ``branch2``: 1x1 conv-BN-ReLU, [channel shuffle], kxk depthwise conv-BN, 1x1 conv-BN, [SE].

    The shuffle comes with grouped 1x1 convs, unless ``spec.shuffle`` is off. The conv-BN(-ReLU) layers are
    spliced flat: no nested container call per layer.
    """
    c = spec.channels
    layers: list[nn.Module] = [*conv_bn(c.inputs, c.mid, groups=c.first_groups)]
    if c.groups > 1 and spec.shuffle:
        layers.append(ChannelShuffle(c.groups))
    layers += [
        *conv_bn(c.mid, c.mid, spec.kernel, spec.stride, groups=c.mid, relu=False),
        *conv_bn(c.mid, c.out, groups=c.groups, relu=False),
    ]
    if spec.se:
        layers.append(SqueezeExcite(c.out))
    return nn.Sequential(*layers)


class ShuffleV1Unit(nn.Module):
    """ShuffleNet V1 unit of a ``UnitSpec`` (V1 paper, Fig. 2b/c).

    1x1 group conv, BN, ReLU, channel shuffle (none when ``spec.shuffle`` is off: V1 Table 3's ablation),
    kxk depthwise conv, BN, 1x1 group conv, BN. Stride 1: add the identity (``residual``), then ReLU.
    Stride 2: concatenate a 3x3 average-pool shortcut (``branch1``) with the ReLU of ``branch2`` (which outputs
    out - in channels).
    """

    def __init__(self, spec: UnitSpec) -> None:
        super().__init__()
        self.residual = spec.residual and spec.stride == 1
        self.branch1 = nn.AvgPool2d(3, stride=2, padding=1) if spec.stride == 2 else None
        self.branch2 = main_branch(spec)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch2(x)
        if self.branch1 is not None:
            return torch.cat((self.branch1(x), self.relu(y)), 1)
        if self.residual:
            y = y + x
        return self.relu(y)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet V2 unit of a ``UnitSpec`` (V2 paper, Fig. 3c/d).

    Stride 1: split the channels (``split_ratio`` pass through untouched), run the rest through
    1x1 conv-BN-ReLU, kxk depthwise conv-BN, 1x1 conv-BN-ReLU, concatenate, shuffle 2 groups.
    Stride 2: no split; a depthwise-s2 + 1x1 projection (``branch1``) beside the main branch, concatenated.
    ``downsample="tv"`` (torchvision): both stride-2 branches output out/2 channels.
    ``downsample="official"`` (megvii code): projection keeps in channels, main branch outputs out - in.
    ``groups > 1`` groups the 1x1 convs and shuffles after the first one. ``residual`` adds the branch
    input to its output before the last ReLU (the V2 paper's large models). ``shuffle`` off drops every
    shuffle: the branches then never exchange channels.
    """

    def __init__(self, spec: UnitSpec) -> None:
        super().__init__()
        c, inputs = spec.channels, spec.in_channels
        self.residual = spec.residual and spec.stride == 1
        self.shuffle = spec.shuffle
        self.split_sizes = (c.side, c.inputs)  # pass-through, branch2 (stride 1)
        self.branch1 = (
            nn.Sequential(
                *conv_bn(inputs, inputs, spec.kernel, spec.stride, groups=inputs, relu=False),
                *conv_bn(inputs, c.side, groups=c.groups),
            )
            if spec.stride == 2
            else None
        )
        self.branch2 = main_branch(spec)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is not None:
            out = torch.cat((self.branch1(x), self.relu(self.branch2(x))), 1)
        else:
            # split_with_sizes binds straight to C++: Tensor.split or slicing cost ~1.5% of a unit (measured)
            left, right = x.split_with_sizes(self.split_sizes, 1)
            y = self.branch2(right)
            if self.residual:
                y = y + right
            out = torch.cat((left, self.relu(y)), 1)
        return channel_shuffle(out, 2) if self.shuffle else out
