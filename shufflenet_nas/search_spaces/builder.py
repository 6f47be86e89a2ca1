"""Genotype -> torch.nn.Module, part by part (see plan.py), with torchvision's ShuffleNetV2 module names."""

from __future__ import annotations

import torch
from torch import nn

from shufflenet_nas.search_spaces.blocks import ShuffleV1Unit, ShuffleV2Unit, conv_bn
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import HeadSpec, PartSpec, StemSpec, network_plan


class Stem(nn.Module):
    """``conv1`` (3x3 conv-BN-ReLU), then ``maxpool`` (3x3, stride 2) when the stem stride is 4."""

    def __init__(self, spec: StemSpec) -> None:
        super().__init__()
        self.conv1 = conv_bn(spec.in_channels, spec.out_channels, 3, spec.conv_stride)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if spec.has_maxpool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv1(x))


class Head(nn.Module):
    """``conv5`` (1x1 conv-BN-ReLU, or none), global average pool, ``fc`` (linear classifier)."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.conv5 = conv_bn(spec.in_channels, spec.head_channels) if spec.head_channels else nn.Identity()
        self.fc = nn.Linear(spec.features, spec.num_classes, bias=spec.fc_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv5(x).mean((2, 3)))  # global average pool; faster than AdaptiveAvgPool2d


def build_part(spec: PartSpec) -> nn.Module:
    """The module for one part of a network plan."""
    if isinstance(spec, StemSpec):
        return Stem(spec)
    if isinstance(spec, HeadSpec):
        return Head(spec)
    return ShuffleV1Unit(spec) if spec.unit == "v1" else ShuffleV2Unit(spec)


class ShuffleNet(nn.Module):
    """A network built from a genotype, named as torchvision's ShuffleNetV2: ``conv1``, ``maxpool`` (an
    ``Identity`` below stem stride 4), ``stage2`` .. ``stageN`` (``nn.Sequential`` of units), ``conv5`` (an
    ``Identity`` for ``head0``), ``fc``.

    ``stem`` (conv1, maxpool) and ``head`` (conv5, pool, fc) are modules over the same layers, kept out of the
    module tree so that every weight has one state-dict key; ``forward`` runs them, so hooks on ``parts()`` fire.
    """

    def __init__(self, genotype: Genotype) -> None:
        super().__init__()
        self.genotype = genotype
        plan = network_plan(genotype)
        stem = Stem(plan[0])  # built in forward order: the same seed gives the same weights
        self.conv1, self.maxpool = stem.conv1, stem.maxpool
        self.stage_names = tuple(f"stage{number}" for number in range(2, len(genotype.stages) + 2))
        units = iter(plan[1:-1])
        for name, stage in zip(self.stage_names, genotype.stages, strict=True):
            self.add_module(name, nn.Sequential(*(build_part(next(units)) for _ in range(stage.repeats))))
        head = Head(plan[-1])
        self.conv5, self.fc = head.conv5, head.fc
        self._ends = (stem, head)  # a tuple: not registered as submodules
        _init_weights(self)

    @property
    def stem(self) -> Stem:
        return self._ends[0]

    @property
    def head(self) -> Head:
        return self._ends[1]

    def stages(self) -> list[nn.Sequential]:
        """``stage2`` .. ``stageN`` in forward order."""
        return [getattr(self, name) for name in self.stage_names]

    def parts(self) -> list[nn.Module]:
        """The stem, every unit and the head in forward order, each callable on the previous one's output."""
        return [self.stem, *(unit for stage in self.stages() for unit in stage), self.head]

    def zero_init_residual(self) -> int:
        """Zero the scale of the last BatchNorm of every residual branch, so that each unit that adds its input
        starts as the identity (Goyal et al. 2017, "zero gamma"): deep V1 stacks of residual units otherwise
        sum their branches into activations large enough to wreck the first steps of training. Returns how many
        units it changed."""
        changed = 0
        for stage in self.stages():
            for unit in stage:
                if getattr(unit, "residual", False):
                    norms = [m for m in unit.branch2.modules() if isinstance(m, nn.BatchNorm2d)]
                    nn.init.zeros_(norms[-1].weight)
                    changed += 1
        return changed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages():
            x = stage(x)
        return self.head(x)


def _init_weights(model: nn.Module) -> None:
    """He-normal convs, unit BN, small normal classifier (as torchvision's ImageNet models)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build(genotype: Genotype) -> ShuffleNet:
    """Build the network of a genotype (in train mode, freshly initialised)."""
    return ShuffleNet(genotype)
