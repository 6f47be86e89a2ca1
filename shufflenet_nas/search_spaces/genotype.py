"""Architectures as data: frozen genotypes with canonical string and JSON forms.

A genotype string reads left to right like the network, sections joined by ``-``::

    stem24s4-v2_n4_c116_g1_r0.5_k3-v2_n8_c232_g1_r0.5_k3-v2_n4_c464_g1_r0.5_k3-head1024-down_tv-fc_bias-in224-cls1000

- ``stem24s4``: a 3x3 conv with 24 channels; total stem stride 4 (conv s2 + max-pool s2), 2 (conv s2) or 1.
- one section per stage: unit type, ``n`` repeats (the first unit has stride 2), ``c`` out channels,
  ``g`` pointwise groups, ``r`` split ratio (V2 only), ``k`` depthwise kernel, then the flags ``se`` and
  ``res`` when on, and ``noshuffle`` when the units run without channel shuffle (V1 paper, Table 3).
- ``head1024``: the 1x1 conv before global pooling (``head0``: none, as in V1).
- ``down_tv`` / ``down_official``: the V2 stride-2 variant (torchvision: branches of out/2 channels;
  official megvii code: the main branch outputs out - in).
- ``fc_bias`` / ``fc_nobias``: whether the classifier has a bias. ``in224``: input resolution.
  ``cls1000``: number of classes.

This module imports neither torch nor optuna.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from shufflenet_nas.search_spaces.channels import unit_channels

UnitType = Literal["v1", "v2"]
Downsample = Literal["tv", "official"]

UNIT_TYPES: tuple[str, ...] = ("v1", "v2")
KERNEL_SIZES: tuple[int, ...] = (3, 5, 7)
STEM_STRIDES: tuple[int, ...] = (1, 2, 4)
DOWNSAMPLE_VARIANTS: tuple[str, ...] = ("tv", "official")

# Limits checked before anything is built, generous for real use: the widest layer of the papers' models has
# 3072 channels (V1 g8 2x, stage 4) and one 1x1 conv at 8192 channels already holds 67M weights (256 MiB fp32);
# the papers stack 4-8 units in each of 3 stages (deep narrow stacks of a hundred units are useful for studying
# proxies; memory grows only linearly with depth, and the memory check bounds it); detection backbones take
# inputs of 800-1333 px; ImageNet-21k has 21,841 classes.
MAX_CHANNELS = 8192  # stem, stage and head widths
MAX_REPEATS = 256  # units per stage
MAX_STAGES = 8  # stride-2 stages (224 px with a stride-4 stem reaches 1 px after 6)
MAX_RESOLUTION = 2048  # input height = width
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class StageGene:
    """One stage: ``repeats`` units of one type; the first unit has stride 2."""

    unit: UnitType
    repeats: int
    out_channels: int
    groups: int = 1
    split_ratio: float = 0.5
    kernel: int = 3
    se: bool = False
    residual: bool = False
    shuffle: bool = True  # channel shuffle in each unit (off: V1 Table 3's ablation; V2: no cross-branch exchange)

    def to_string(self) -> str:
        parts = [self.unit, f"n{self.repeats}", f"c{self.out_channels}", f"g{self.groups}"]
        if self.unit == "v2":
            parts.append(f"r{self.split_ratio!r}")
        parts.append(f"k{self.kernel}")
        if self.se:
            parts.append("se")
        if self.residual:
            parts.append("res")
        if not self.shuffle:
            parts.append("noshuffle")
        return "_".join(parts)

    @classmethod
    def from_string(cls, text: str) -> StageGene:
        tokens = text.split("_")
        unit = tokens[0]
        if unit not in UNIT_TYPES:
            raise ValueError(f"stage {text!r}: unit type must be one of {', '.join(UNIT_TYPES)}, got {unit!r}")
        values: dict[str, Any] = {"unit": unit}
        names = {"n": "repeats", "c": "out_channels", "g": "groups", "k": "kernel"}
        for token in tokens[1:]:
            if token == "se":
                values["se"] = True
            elif token == "res":
                values["residual"] = True
            elif token == "noshuffle":
                values["shuffle"] = False
            elif token[:1] == "r" and _is_number(token[1:]):
                values["split_ratio"] = float(token[1:])
            elif token[:1] in names and token[1:].isdigit():
                values[names[token[:1]]] = int(token[1:])
            else:
                raise ValueError(
                    f"stage {text!r}: unknown token {token!r} (expected n<repeats>, c<channels>, g<groups>, "
                    "r<split>, k<kernel>, se, res, noshuffle)"
                )
        for required in ("repeats", "out_channels"):
            if required not in values:
                raise ValueError(f"stage {text!r}: missing {required} (write n<repeats> and c<channels>)")
        return cls(**values)


@dataclass(frozen=True)
class Genotype:
    """A whole network: stem, stages, head, classifier and input size."""

    stem_channels: int
    stages: tuple[StageGene, ...]
    head_channels: int = 1024
    stem_stride: int = 4
    downsample: Downsample = "tv"
    fc_bias: bool = True
    resolution: int = 224
    num_classes: int = 1000
    _arch_id: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        validate(self)

    # ---- canonical forms -------------------------------------------------------------------
    def to_string(self) -> str:
        sections = [f"stem{self.stem_channels}s{self.stem_stride}"]
        sections += [stage.to_string() for stage in self.stages]
        sections += [
            f"head{self.head_channels}",
            f"down_{self.downsample}",
            "fc_bias" if self.fc_bias else "fc_nobias",
            f"in{self.resolution}",
            f"cls{self.num_classes}",
        ]
        return "-".join(sections)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str) -> Genotype:
        """Parse a genotype string; sections after the stages may be left out (defaults apply)."""
        sections = text.strip().split("-")
        stem = re.fullmatch(r"stem(\d+)(?:s(\d+))?", sections[0])
        if stem is None:
            raise ValueError(f"genotype must start with stem<channels>[s<stride>], e.g. stem24s4; got {sections[0]!r}")
        values: dict[str, Any] = {"stem_channels": int(stem[1])}
        if stem[2] is not None:
            values["stem_stride"] = int(stem[2])
        stages: list[StageGene] = []
        for section in sections[1:]:
            if section.split("_")[0] in UNIT_TYPES:
                stages.append(StageGene.from_string(section))
            elif match := re.fullmatch(r"head(\d+)", section):
                values["head_channels"] = int(match[1])
            elif match := re.fullmatch(r"down_(\w+)", section):
                values["downsample"] = match[1]
            elif section in ("fc_bias", "fc_nobias"):
                values["fc_bias"] = section == "fc_bias"
            elif match := re.fullmatch(r"in(\d+)", section):
                values["resolution"] = int(match[1])
            elif match := re.fullmatch(r"cls(\d+)", section):
                values["num_classes"] = int(match[1])
            else:
                raise ValueError(
                    f"unknown genotype section {section!r} (expected v1_..., v2_..., head<c>, down_tv|down_official, "
                    "fc_bias|fc_nobias, in<resolution>, cls<classes>)"
                )
        return cls(stages=tuple(stages), **values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_arch_id")
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genotype:
        data = dict(data)
        try:
            stages = tuple(StageGene(**stage) for stage in data.pop("stages"))
            return cls(stages=stages, **data)
        except (KeyError, TypeError) as error:
            raise ValueError(f"genotype JSON does not match the schema: {error}") from None

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"genotype JSON is not valid JSON: {error}") from None
        if isinstance(data, dict) and "genotype" in data and isinstance(data["genotype"], str):
            return cls.from_string(data["genotype"])
        if not isinstance(data, dict):
            raise ValueError("genotype JSON must be an object with stem_channels, stages, ...")
        return cls.from_dict(data)

    @property
    def arch_id(self) -> str:
        """Short content hash of the canonical string: equal architectures share it."""
        if not self._arch_id:
            digest = hashlib.sha256(self.to_string().encode()).hexdigest()[:12]
            object.__setattr__(self, "_arch_id", digest)
        return self._arch_id

    @property
    def family(self) -> str:
        """``V1-style``, ``V2-style`` or ``mixed`` by the unit types of the stages."""
        units = {stage.unit for stage in self.stages}
        return "mixed" if len(units) > 1 else f"{units.pop().upper()}-style"

    def with_resolution(self, resolution: int) -> Genotype:
        """The same network at another input size (validated like any genotype)."""
        return replace(self, resolution=resolution)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- validation ----------------------------------------------------------------------------------
def validate(genotype: Genotype) -> None:
    """Raise ``ValueError`` naming the stage and the values when the genotype cannot be built."""
    g = genotype
    if g.stem_channels < 1:
        raise ValueError(f"stem: {g.stem_channels} channels; need at least 1")
    check_limit("stem", g.stem_channels, MAX_CHANNELS, "channels")
    if g.stem_stride not in STEM_STRIDES:
        raise ValueError(f"stem: stride {g.stem_stride} not supported; use one of {STEM_STRIDES}")
    if not g.stages:
        raise ValueError("genotype has no stages; give at least one v1_... or v2_... stage")
    check_limit("genotype", len(g.stages), MAX_STAGES, "stages")
    if g.head_channels < 0:
        raise ValueError(f"head: {g.head_channels} channels; use 0 for no head conv")
    check_limit("head", g.head_channels, MAX_CHANNELS, "channels")
    if g.downsample not in DOWNSAMPLE_VARIANTS:
        raise ValueError(f"downsample variant {g.downsample!r} unknown; use one of {DOWNSAMPLE_VARIANTS}")
    if g.num_classes < 1:
        raise ValueError(f"classifier: {g.num_classes} classes; need at least 1")
    check_limit("classifier", g.num_classes, MAX_CLASSES, "classes")
    check_resolution(g.resolution)
    min_resolution = g.stem_stride * 2 ** len(g.stages)
    if g.resolution < min_resolution:
        raise ValueError(
            f"input resolution {g.resolution} is too small for stem stride {g.stem_stride} and "
            f"{len(g.stages)} stride-2 stages; use at least {min_resolution}"
        )
    in_channels = g.stem_channels
    for index, stage in enumerate(g.stages):
        _validate_stage(index + 2, stage, in_channels, g.downsample)
        in_channels = stage.out_channels


def check_limit(where: str, value: int, limit: int, unit: str) -> None:
    """Raise ``ValueError`` when ``value`` is above ``limit``: "stage 3: 100000 channels is above the limit of 8192"."""
    if value > limit:
        raise ValueError(f"{where}: {value} {unit} is above the limit of {limit}")


def check_resolution(resolution: int) -> None:
    """Raise ``ValueError`` unless the input resolution lies in 1..MAX_RESOLUTION."""
    if resolution < 1:
        raise ValueError(f"input resolution {resolution}; need at least 1")
    if resolution > MAX_RESOLUTION:
        raise ValueError(f"input resolution {resolution} is above the limit of {MAX_RESOLUTION}")


def _validate_stage(number: int, s: StageGene, in_channels: int, downsample: str) -> None:
    where = f"stage {number}"
    if s.unit not in UNIT_TYPES:
        raise ValueError(f"{where}: unit type {s.unit!r} unknown; use v1 or v2")
    if s.repeats < 1:
        raise ValueError(f"{where}: {s.repeats} repeats; need at least 1")
    check_limit(where, s.repeats, MAX_REPEATS, "repeats")
    check_limit(where, s.out_channels, MAX_CHANNELS, "channels")
    if s.kernel not in KERNEL_SIZES:
        raise ValueError(f"{where}: kernel {s.kernel} not supported; use one of {KERNEL_SIZES}")
    if s.groups < 1:
        raise ValueError(f"{where}: groups={s.groups}; need at least 1")
    if s.out_channels % s.groups:
        raise ValueError(f"{where}: {s.out_channels} channels not divisible by groups={s.groups}")
    if not s.shuffle and s.unit == "v1" and s.groups == 1:
        raise ValueError(f"{where}: a v1 stage with groups=1 has no channel shuffle to turn off; drop noshuffle")
    if s.unit == "v1":
        _validate_v1(where, s, in_channels)
    else:
        _validate_v2(where, s, in_channels, downsample)


def _validate_v1(where: str, s: StageGene, in_channels: int) -> None:
    if s.split_ratio != 0.5:
        raise ValueError(f"{where}: split ratio {s.split_ratio} applies to v2 units only; leave it at 0.5 for v1")
    if s.out_channels <= in_channels:
        raise ValueError(
            f"{where}: stride-2 v1 unit needs more out channels than in channels "
            f"(its branch outputs out - in), got out={s.out_channels} in={in_channels}"
        )
    branch = unit_channels("v1", in_channels, s.out_channels, 2, s.groups).out
    if branch % s.groups:
        raise ValueError(
            f"{where}: stride-2 branch of {branch} channels (out {s.out_channels} - in {in_channels}) "
            f"not divisible by groups={s.groups}"
        )


def _validate_v2(where: str, s: StageGene, in_channels: int, downsample: str) -> None:
    if s.out_channels % 2:
        raise ValueError(f"{where}: {s.out_channels} channels is odd; the v2 concat + shuffle needs an even count")
    if not 0 < s.split_ratio < 1:
        raise ValueError(f"{where}: split ratio {s.split_ratio} must lie strictly between 0 and 1")
    if s.repeats > 1:
        passthrough = s.out_channels * s.split_ratio
        if abs(passthrough - round(passthrough)) > 1e-9:
            raise ValueError(
                f"{where}: split ratio {s.split_ratio} of {s.out_channels} channels is not a whole number "
                f"({passthrough:g}); pick a width that is a multiple of 1/ratio"
            )
    if s.groups > 1 and in_channels % s.groups:
        raise ValueError(f"{where}: {in_channels} input channels not divisible by groups={s.groups}")
    if downsample == "official" and s.out_channels <= in_channels:
        raise ValueError(
            f"{where}: official stride-2 v2 unit needs more out channels than in channels "
            f"(its main branch outputs out - in), got out={s.out_channels} in={in_channels}"
        )
    if s.groups > 1:
        for width in _v2_grouped_widths(s, in_channels, downsample):
            if width % s.groups:
                raise ValueError(f"{where}: branch of {width} channels not divisible by groups={s.groups}")


def _v2_grouped_widths(s: StageGene, in_channels: int, downsample: str) -> tuple[int, ...]:
    """Channel counts the grouped 1x1 convs of a V2 stage split into groups (besides its in and out channels)."""
    first = unit_channels("v2", in_channels, s.out_channels, 2, s.groups, downsample=downsample)
    widths = [first.mid, first.out]
    if s.repeats > 1:
        widths.append(unit_channels("v2", s.out_channels, s.out_channels, 1, s.groups, s.split_ratio).out)
    return tuple(widths)
