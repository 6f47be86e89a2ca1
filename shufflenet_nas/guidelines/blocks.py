"""The guideline blocks as torch modules (see ``configs`` for what each is and why); ``cost._block`` replays the
same forwards kernel by kernel."""

from __future__ import annotations

import torch
from torch import nn

from shufflenet_nas.guidelines.configs import BLOCKS, BlockSpec


def _conv(c_in: int, c_out: int, kernel: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False)


class Parallel(nn.Module):
    """``fragments`` 1x1 convs c -> c / n on the same input, concatenated back to c channels."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.branches = nn.ModuleList(_conv(spec.channels, spec.inner) for _ in range(spec.fragments))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class Bottleneck(nn.Module):
    """ResNet bottleneck c -> c/4 (1x1) -> c/4 (3x3) -> c (1x1) without BatchNorm; ReLUs and the identity
    shortcut switchable."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.reduce = _conv(spec.channels, spec.inner)
        self.conv = _conv(spec.inner, spec.inner, kernel=3)
        self.expand = _conv(spec.inner, spec.channels)
        self.relu, self.shortcut = spec.relu, spec.shortcut

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(x) if self.relu else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self._activate(self.conv(self._activate(self.reduce(x)))))
        return self._activate(y + x if self.shortcut else y)


def build_block(spec: BlockSpec) -> nn.Module:
    """One building block of ``spec``."""
    if spec.kind == "pair":
        return nn.Sequential(_conv(spec.channels, spec.inner), _conv(spec.inner, spec.channels))
    if spec.kind == "group":
        return _conv(spec.channels, spec.channels, groups=spec.groups)
    if spec.kind == "series":
        return nn.Sequential(*(_conv(spec.channels, spec.channels) for _ in range(spec.fragments)))
    if spec.kind == "parallel":
        return Parallel(spec)
    return Bottleneck(spec)


def build_stack(spec: BlockSpec, blocks: int = BLOCKS) -> nn.Sequential:
    """The benchmark network: ``blocks`` blocks of ``spec`` in a row (input and output: ``spec.channels``)."""
    return nn.Sequential(*(build_block(spec) for _ in range(blocks)))
