"""A genotype unrolled into its parts: stem, every unit, head; each part knows its input shape.

Parts are frozen and hashable, so costs and latencies can be measured once per distinct part and
summed (the cost model caches by part; the latency lookup table is keyed by part and device).
No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from shufflenet_nas.search_spaces.channels import UnitChannels, unit_channels
from shufflenet_nas.search_spaces.genotype import Genotype


class _Part:
    """What every part spec has: its input channels and input height = width."""

    in_channels: int
    resolution: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.resolution, self.resolution)


@dataclass(frozen=True)
class StemSpec(_Part):
    """``conv1``: 3x3 conv (stride 2 unless ``stride`` is 1) + BN + ReLU; ``maxpool``: 3x3 stride 2 when
    ``stride`` (the stem's total) is 4."""

    out_channels: int
    stride: int
    resolution: int
    in_channels: int = 3

    @property
    def conv_stride(self) -> int:
        return 1 if self.stride == 1 else 2

    @property
    def has_maxpool(self) -> bool:
        return self.stride == 4

    @property
    def out_resolution(self) -> int:
        size = conv_out(self.resolution, self.conv_stride)
        return conv_out(size, 2) if self.has_maxpool else size


@dataclass(frozen=True, repr=False)
class UnitSpec(_Part):
    """One ShuffleNet unit with its input size: everything that changes its cost.

    ``shuffle``: whether the unit shuffles channels; its ``repr`` (the latency table's key) names it only when
    off, so the keys of units with shuffle are as before the flag existed.
    """

    unit: str
    in_channels: int
    out_channels: int
    stride: int
    groups: int
    split_ratio: float
    kernel: int
    se: bool
    residual: bool
    downsample: str
    first_pointwise_grouped: bool
    resolution: int
    shuffle: bool = True

    def __repr__(self) -> str:
        shown = (f for f in fields(self) if f.name != "shuffle" or not self.shuffle)
        return f"UnitSpec({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    @property
    def channels(self) -> UnitChannels:
        return unit_channels(
            self.unit,
            self.in_channels,
            self.out_channels,
            self.stride,
            self.groups,
            self.split_ratio,
            self.downsample,
            self.first_pointwise_grouped,
        )

    def label(self) -> str:
        flags = {"+se": self.se, "+res": self.residual, "+noshuffle": not self.shuffle}
        extras = "".join(flag for flag, on in flags.items() if on)
        groups = f" g{self.groups}" if self.groups > 1 else ""
        split = f" r{self.split_ratio:g}" if self.unit == "v2" and self.stride == 1 else ""
        return (
            f"{self.unit} s{self.stride} {self.in_channels}->{self.out_channels}{groups}{split} "
            f"k{self.kernel}{extras} @{self.resolution}"
        )


@dataclass(frozen=True)
class HeadSpec(_Part):
    """``conv5``: 1x1 conv + BN + ReLU (none when ``head_channels`` is 0), global average pool, ``fc``."""

    in_channels: int
    head_channels: int
    num_classes: int
    fc_bias: bool
    resolution: int

    @property
    def features(self) -> int:
        """Channels the classifier reads."""
        return self.head_channels or self.in_channels


PartSpec = StemSpec | UnitSpec | HeadSpec


def conv_out(size: int, stride: int) -> int:
    """Spatial size after a 3x3 (or k x k, 'same' padding) conv or pool with this stride."""
    return (size - 1) // stride + 1


def network_plan(genotype: Genotype) -> tuple[PartSpec, ...]:
    """The parts of the network in forward order."""
    stem = StemSpec(genotype.stem_channels, genotype.stem_stride, genotype.resolution)
    parts: list[PartSpec] = [stem]
    size = stem.out_resolution
    channels = genotype.stem_channels
    for stage_index, stage in enumerate(genotype.stages):
        for unit_index in range(stage.repeats):
            stride = 2 if unit_index == 0 else 1
            parts.append(_unit_spec(genotype, stage_index, unit_index, channels, size))
            size = conv_out(size, stride)
            channels = stage.out_channels
    parts.append(HeadSpec(channels, genotype.head_channels, genotype.num_classes, genotype.fc_bias, size))
    return tuple(parts)


def _unit_spec(genotype: Genotype, stage_index: int, unit_index: int, in_channels: int, size: int) -> UnitSpec:
    """A unit's spec with the fields that do not affect it normalised, so equal units compare equal."""
    stage = genotype.stages[stage_index]
    stride = 2 if unit_index == 0 else 1
    is_v2 = stage.unit == "v2"
    return UnitSpec(
        unit=stage.unit,
        in_channels=in_channels,
        out_channels=stage.out_channels,
        stride=stride,
        groups=stage.groups,
        split_ratio=stage.split_ratio if is_v2 and stride == 1 else 0.5,
        kernel=stage.kernel,
        se=stage.se,
        residual=stage.residual and stride == 1,
        downsample=genotype.downsample if is_v2 and stride == 2 else "",
        first_pointwise_grouped=not (stage.unit == "v1" and stage_index == 0 and unit_index == 0),
        resolution=size,
        shuffle=stage.shuffle,
    )
