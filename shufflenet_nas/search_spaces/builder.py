"""Genotype -> torch.nn.Module, part by part (see plan.py)."""

from __future__ import annotations

import torch
from torch import nn

from shufflenet_nas.search_spaces.blocks import ShuffleV1Unit, ShuffleV2Unit, conv_bn
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.plan import HeadSpec, PartSpec, StemSpec, network_plan


class Head(nn.Module):
    """Optional 1x1 conv-BN-ReLU, global average pool, linear classifier."""

    def __init__(self, spec: HeadSpec) -> None:
        super().__init__()
        self.conv = conv_bn(spec.in_channels, spec.head_channels) if spec.head_channels else nn.Identity()
        features = spec.head_channels or spec.in_channels
        self.classifier = nn.Linear(features, spec.num_classes, bias=spec.fc_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(x).mean((2, 3)))  # global average pool; faster than AdaptiveAvgPool2d


def build_part(spec: PartSpec) -> nn.Module:
    """The module for one part of a network plan."""
    if isinstance(spec, StemSpec):
        layers: list[nn.Module] = [conv_bn(3, spec.out_channels, 3, stride=1 if spec.stride == 1 else 2)]
        if spec.stride == 4:
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        return nn.Sequential(*layers)
    if isinstance(spec, HeadSpec):
        return Head(spec)
    if spec.unit == "v1":
        return ShuffleV1Unit(
            spec.in_channels,
            spec.out_channels,
            spec.stride,
            spec.groups,
            spec.kernel,
            spec.se,
            spec.residual,
            spec.first_pointwise_grouped,
        )
    return ShuffleV2Unit(
        spec.in_channels,
        spec.out_channels,
        spec.stride,
        spec.split_ratio,
        spec.groups,
        spec.kernel,
        spec.se,
        spec.residual,
        spec.downsample,
    )


class ShuffleNet(nn.Module):
    """A network built from a genotype: ``stem``, ``stage2``..``stageN``, ``head``."""

    def __init__(self, genotype: Genotype) -> None:
        super().__init__()
        self.genotype = genotype
        plan = network_plan(genotype)
        self.stem = build_part(plan[0])
        units = iter(plan[1:-1])
        for number, stage in enumerate(genotype.stages, start=2):
            self.add_module(f"stage{number}", nn.Sequential(*(build_part(next(units)) for _ in range(stage.repeats))))
        self.head = build_part(plan[-1])
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


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
