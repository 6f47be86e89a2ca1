"""Channel arithmetic of the units, in one place: the genotype checks, the torch blocks (``blocks``) and the
symbolic cost (``nas.symbolic_cost``) all take their widths from here. No torch import."""

from __future__ import annotations

import math
from dataclasses import dataclass

SE_REDUCTION = 16  # squeeze-excite reduction ratio (as SENet)
SE_MIN_CHANNELS = 8


def v1_bottleneck(out_channels: int, groups: int) -> int:
    """V1 bottleneck width: out/4 (V1 paper, Sec. 3.3), rounded to a multiple of ``groups``."""
    return groups * max(1, math.floor(out_channels / 4 / groups + 0.5))


def se_channels(channels: int) -> int:
    """Width of a squeeze-excite block's reduced 1x1 conv."""
    return max(SE_MIN_CHANNELS, channels // SE_REDUCTION)


@dataclass(frozen=True)
class UnitChannels:
    """A unit's channel counts.

    ``branch2``, the main branch: 1x1 conv ``inputs -> mid`` (``first_groups`` groups), kxk depthwise conv on
    ``mid``, 1x1 conv ``mid -> out`` (``groups`` groups). ``side``: the channels concatenated beside it, which
    are ``branch1``'s output at stride 2 (V1: the average-pooled input; V2: the projection) and the split's
    pass-through in a stride-1 V2 unit; 0 in a stride-1 V1 unit (its identity is added, not concatenated).
    """

    inputs: int
    mid: int
    out: int
    side: int
    groups: int
    first_groups: int


def unit_channels(
    unit: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    groups: int = 1,
    split_ratio: float = 0.5,
    downsample: str = "tv",
    first_pointwise_grouped: bool = True,
) -> UnitChannels:
    """The channel counts of a V1 or V2 unit (``downsample`` and ``split_ratio``: V2 only).

    V1: bottleneck ``v1_bottleneck``; at stride 2 the branch outputs out - in beside the pooled input.
    V2 stride 2: mid = out/2; the projection keeps in channels (``downsample="official"``) or gives out/2
    (``"tv"``), the main branch the rest. V2 stride 1: ``round(out * split_ratio)`` channels pass through.
    """
    first_groups = groups if first_pointwise_grouped else 1
    if unit == "v1":
        side = in_channels if stride == 2 else 0
        mid = v1_bottleneck(out_channels, groups)
        return UnitChannels(in_channels, mid, out_channels - side, side, groups, first_groups)
    if stride == 2:
        side = in_channels if downsample == "official" else out_channels // 2
        return UnitChannels(in_channels, out_channels // 2, out_channels - side, side, groups, first_groups)
    side = round(out_channels * split_ratio)
    branch = out_channels - side
    return UnitChannels(branch, branch, branch, side, groups, first_groups)
