"""The searchable dimensions, their ranges, and ``sample(trial) -> Genotype``.

Parameter names are stable and hierarchical (``family``, ``v1.groups``, ``stage2.width``, ...), so a
trial's params rebuild the same genotype (``optuna.trial.FixedTrial(params)``). Sampled widths are
rounded to what the unit type needs (feasible by construction): V1 widths to a multiple of
lcm(2, groups), V2 widths to a multiple of 8 (so every split ratio gives whole channel counts).
Width ranges scale with the FLOPs budget (FLOPs grow with width squared), clipped to ``MAX_CHANNELS``.
``smallest`` and ``largest`` give a family's extreme genotypes, which bound the cost of every sample.
"""

from __future__ import annotations

import json
import math
import numbers
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.search_spaces.genotype import (
    KERNEL_SIZES,
    MAX_CHANNELS,
    MAX_CLASSES,
    MAX_REPEATS,
    MAX_RESOLUTION,
    Genotype,
    StageGene,
)

FAMILIES = ("v1", "v2")
V1_GROUPS = (1, 2, 3, 4, 8)  # the V1 paper's group counts: the default of ``SpaceRanges.v1_groups``
# Widths of the papers' 1x models (V1 g3, V2) that the ranges are centred on at 146 MFLOPs.
_REFERENCE_WIDTHS = {"v1": (240, 480, 960), "v2": (116, 232, 464)}
_REFERENCE_MFLOPS = 146.0
_STAGES = 3
_WIDEST_MULTIPLE = 8  # the largest multiple widths are rounded to (V2; V1 with 8 groups)
_HEAD_STEP = 128


class TrialLike(Protocol):
    """The part of ``optuna.Trial`` that sampling needs (Trial, FixedTrial and test doubles)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def stem_stride_for(resolution: int) -> int:
    """Stem downsampling for an input size: 4 at ImageNet sizes, 2 at 64-127 px, 1 for CIFAR-size inputs."""
    if resolution >= 128:
        return 4
    return 2 if resolution >= 64 else 1


def round_to(value: float, multiple: int) -> int:
    """Nearest positive multiple of ``multiple``."""
    return max(multiple, multiple * round(value / multiple))


def _width_cap(multiple: int, stage: int) -> int:
    """The widest width of a stage (index 0..2): a multiple of ``multiple`` at most ``MAX_CHANNELS``, leaving
    each later stage room to widen by one ``multiple`` (a stride-2 V1 unit must)."""
    return (MAX_CHANNELS // multiple - (_STAGES - 1 - stage)) * multiple


_STEM_MAX = _width_cap(_WIDEST_MULTIPLE, 0) - _WIDEST_MULTIPLE  # room for a V1 stage 2 to widen


def _as_tuple(name: str, value: Any, kind: type) -> tuple[Any, ...]:
    """``value`` (any sequence: a list from JSON too) as a tuple of ``kind``: int, float (an int will do),
    tuple (a pair of ints each) or bool; a bool is no number. Else an error naming the field."""
    what = {int: "ints", float: "numbers", tuple: "(low, high) pairs of ints", bool: "bools"}[kind]
    unlike = {float: "bools", bool: "numbers or strings"}.get(kind, "floats or bools")
    problem = f"{name}={value!r}: give a sequence of {what} (not {unlike})"
    try:
        if kind is tuple:
            return tuple(_as_tuple(name, item, int) for item in _items(value))
        items = _items(value)
    except InvalidArgumentError:
        raise InvalidArgumentError(problem) from None
    if kind is bool:
        if not all(isinstance(item, bool) for item in items):
            raise InvalidArgumentError(problem)
        return items
    wanted = numbers.Integral if kind is int else numbers.Real
    if not all(isinstance(item, wanted) and not isinstance(item, bool) for item in items):
        raise InvalidArgumentError(problem)
    return tuple(kind(item) for item in items)


def _items(value: Any) -> tuple[Any, ...]:
    """A sequence's items (a string is no sequence here)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgumentError("not a sequence")
    return tuple(value)


def _is_range(value: Sequence[float], low: float, high: float) -> bool:
    return len(value) == 2 and low <= value[0] <= value[1] <= high


def _check_range(name: str, value: Sequence[float], low: float, high: float) -> None:
    if not _is_range(value, low, high):
        raise InvalidArgumentError(f"{name}={value!r}: give (low, high) with {low:g} <= low <= high <= {high:g}")


def _check_choices(name: str, values: Sequence[Any], valid: Callable[[Any], bool], accepted: str) -> None:
    if not values or len(set(values)) != len(values) or not all(valid(v) for v in values):
        raise InvalidArgumentError(f"{name}={values!r}: give one or more distinct {accepted}")


_FIELD_KINDS = {"depth_ranges": tuple, "width_factors": float, "split_ratios": float, "shuffle": bool}  # else ints


@dataclass(frozen=True)
class SpaceRanges:
    """The ranges searched whatever the budget: stem width, depth per stage (stage2..4), stage widths as
    multiples of the budget-scaled 1x width, V2 head width (step 128), kernels, V2 split ratios, V1 groups,
    and whether units shuffle channels (``(False, True)``: a per-stage gene; the default, always).
    Any sequences will do (they become tuples); counts and widths must be ints (not floats or bools)."""

    stem_range: tuple[int, int] = (8, 32)
    depth_ranges: tuple[tuple[int, int], ...] = ((2, 6), (4, 10), (2, 6))
    width_factors: tuple[float, float] = (0.45, 1.3)
    head_range: tuple[int, int] = (512, 1536)
    kernels: tuple[int, ...] = (3, 5, 7)
    split_ratios: tuple[float, ...] = (0.25, 0.375, 0.5, 0.625, 0.75)
    v1_groups: tuple[int, ...] = V1_GROUPS
    shuffle: tuple[bool, ...] = (True,)

    def __post_init__(self) -> None:
        for f in fields(self):  # sequences (lists from JSON) become tuples: equal to the original, hashable
            kind = _FIELD_KINDS.get(f.name, int)
            object.__setattr__(self, f.name, _as_tuple(f.name, getattr(self, f.name), kind))
        _check_range("stem_range", self.stem_range, 1, _STEM_MAX)
        if len(self.depth_ranges) != _STAGES or not all(_is_range(d, 1, MAX_REPEATS) for d in self.depth_ranges):
            raise InvalidArgumentError(
                f"depth_ranges={self.depth_ranges!r}: give {_STAGES} (low, high) pairs, one per stage, "
                f"with 1 <= low <= high <= {MAX_REPEATS}"
            )
        _check_range("width_factors", self.width_factors, 0.01, 100)
        _check_range("head_range", self.head_range, 1, MAX_CHANNELS)
        if (self.head_range[1] - self.head_range[0]) % _HEAD_STEP:
            raise InvalidArgumentError(f"head_range={self.head_range!r}: high - low must be a multiple of {_HEAD_STEP}")
        _check_choices("kernels", self.kernels, lambda k: k in KERNEL_SIZES, f"kernel sizes of {KERNEL_SIZES}")
        _check_choices(
            "split_ratios",
            self.split_ratios,
            lambda r: 0 < r < 1 and float(r * _WIDEST_MULTIPLE).is_integer(),
            "multiples of 1/8 strictly between 0 and 1 (V2 widths are multiples of 8)",
        )
        _check_choices(
            "v1_groups",
            self.v1_groups,
            lambda g: isinstance(g, int) and g >= 1 and math.lcm(2, g) <= _WIDEST_MULTIPLE,
            "group counts of 1, 2, 3, 4, 6, 8 (V1 widths are multiples of lcm(2, groups), at most 8)",
        )
        _check_choices("shuffle", self.shuffle, lambda value: isinstance(value, bool), "bools")

    def to_dict(self) -> dict[str, Any]:
        """The ranges as JSON values (lists), as a study records them."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SpaceRanges:
        """The ranges ``to_dict`` gave, or a study's user attributes recorded (other keys are ignored; a
        missing field takes its default, as in studies made before the ranges were recorded)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass(frozen=True)
class Dimension:
    """One searchable dimension, for display (``shufflenet-nas space``)."""

    name: str
    choices: str
    applies_to: str
    note: str = ""


@dataclass(frozen=True)
class SearchSpace:
    """ShuffleNet V1/V2 design space at one resolution, with width ranges sized for a FLOPs budget."""

    families: tuple[str, ...] = FAMILIES
    budget_mflops: float = _REFERENCE_MFLOPS
    resolution: int = 224
    num_classes: int = 1000
    ranges: SpaceRanges = field(default_factory=SpaceRanges)

    def __post_init__(self) -> None:
        if not self.families or not set(self.families) <= set(FAMILIES):
            raise InvalidArgumentError(f"families={self.families!r}: draw them from {FAMILIES}")
        if not (math.isfinite(self.budget_mflops) and self.budget_mflops > 0):
            raise InvalidArgumentError(f"budget_mflops={self.budget_mflops!r}: give a positive number of MFLOPs")
        if self.resolution > MAX_RESOLUTION:
            raise InvalidArgumentError(f"resolution={self.resolution} is above the limit of {MAX_RESOLUTION}")
        minimum = stem_stride_for(self.resolution) * 2**_STAGES
        if self.resolution < minimum:
            raise InvalidArgumentError(
                f"resolution={self.resolution} is too small for the space; use at least {minimum}"
            )
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise InvalidArgumentError(f"num_classes={self.num_classes}: give 1 to {MAX_CLASSES} classes")

    @property
    def width_scale(self) -> float:
        """How far widths move from the 1x models: sqrt(budget / 146M) at 224 px."""
        pixels = (224 / self.resolution) ** 2 if self.resolution >= 128 else 1.0
        return math.sqrt(self.budget_mflops / _REFERENCE_MFLOPS * pixels)

    def width_range(self, family: str, stage: int) -> tuple[int, int]:
        """Sampling range of a stage's width (before rounding): ``ranges.width_factors`` times the scaled 1x
        width, clipped below ``MAX_CHANNELS`` with room for the later stages to widen."""
        reference = _REFERENCE_WIDTHS[family][stage] * self.width_scale
        low, high = self.ranges.width_factors
        cap = _width_cap(_WIDEST_MULTIPLE, stage)
        return min(cap, max(8, int(reference * low))), min(cap, max(16, int(reference * high)))

    def groups(self, family: str) -> tuple[int, ...]:
        """The pointwise group counts a family samples: ``ranges.v1_groups`` for V1, 1 for V2."""
        return self.ranges.v1_groups if family == "v1" else (1,)

    def dimensions(self) -> list[Dimension]:
        """Every dimension with its range, in sampling order."""
        r = self.ranges
        dims = [Dimension("family", " | ".join(self.families), "all", "unit type of every stage")]
        if "v1" in self.families:
            dims.append(Dimension("v1.groups", ", ".join(map(str, r.v1_groups)), "v1", "pointwise group convs"))
        dims.append(Dimension("stem.width", f"{r.stem_range[0]}..{r.stem_range[1]}", "all", "rounded per family"))
        for index in range(_STAGES):
            name = f"stage{index + 2}"
            low, high = r.depth_ranges[index]
            dims.append(Dimension(f"{name}.depth", f"{low}..{high}", "all", "units; the first has stride 2"))
            for family in self.families:
                wl, wh = self.width_range(family, index)
                dims.append(Dimension(f"{name}.{family}_width", f"{wl}..{wh}", family, "rounded per family"))
            dims.append(Dimension(f"{name}.kernel", ", ".join(map(str, r.kernels)), "all", "depthwise kernel"))
            dims.append(Dimension(f"{name}.se", "false, true", "all", "squeeze-excite in the branch"))
            dims.append(Dimension(f"{name}.residual", "false, true", "all", "identity add in stride-1 units"))
            if "v2" in self.families:
                ratios = ", ".join(f"{ratio:g}" for ratio in r.split_ratios)
                dims.append(Dimension(f"{name}.split", ratios, "v2", "share of channels passed through"))
            if len(r.shuffle) > 1:
                note = "channel shuffle in the units (v1: with groups > 1)"
                dims.append(Dimension(f"{name}.shuffle", "false, true", "all", note))
        if "v2" in self.families:
            head = f"{r.head_range[0]}..{r.head_range[1]} step {_HEAD_STEP}"
            dims.append(Dimension("head.width", head, "v2", "1x1 conv5"))
        return dims

    def smallest(self, family: str, groups: int = 1) -> Genotype:
        """The cheapest sample of a family (V1: at ``groups``): narrowest and shallowest, the smallest kernel, no
        SE, no residual, the largest split ratio, no shuffle where that is a choice. Every cost (MACs, params,
        memory) grows with each dimension, so no sample of that family and group count costs less;
        ``nas.cost.cost_range`` takes the bounds over groups."""
        return self.sample(self._extreme_trial(family, groups, largest=False))

    def largest(self, family: str, groups: int = 1) -> Genotype:
        """The most expensive sample of a family (V1: at ``groups``): widest and deepest, the largest kernel, SE,
        residual, the smallest split ratio, shuffle where that is a choice."""
        return self.sample(self._extreme_trial(family, groups, largest=True))

    def _extreme_trial(self, family: str, groups: int, largest: bool) -> _EndsTrial:
        if family not in self.families:
            raise InvalidArgumentError(f"family={family!r} is not in this space; use one of {self.families}")
        if groups not in self.groups(family):
            raise InvalidArgumentError(
                f"groups={groups} is not in the {family} space; use one of {self.groups(family)}"
            )
        pick = max if largest else min
        choices: dict[str, Any] = {"family": family, "v1.groups": groups}
        for index in range(_STAGES):
            name = f"stage{index + 2}"
            choices[f"{name}.kernel"] = pick(self.ranges.kernels)
            choices[f"{name}.se"] = choices[f"{name}.residual"] = largest
            choices[f"{name}.split"] = (min if largest else max)(self.ranges.split_ratios)
            choices[f"{name}.shuffle"] = pick(self.ranges.shuffle)
        return _EndsTrial(choices, largest)

    def sample_architectures(self, count: int, seed: int = 0) -> list[Genotype]:
        """``count`` distinct genotypes drawn uniformly from this space's choices with a seeded generator
        (fewer when 20 x ``count`` draws find fewer)."""
        trial = _RandomTrial(seed)
        found: dict[str, Genotype] = {}
        for _ in range(20 * count):
            genotype = self.sample(trial)
            found.setdefault(genotype.arch_id, genotype)
            if len(found) == count:
                break
        return list(found.values())

    def sample(self, trial: TrialLike) -> Genotype:
        """Draw a genotype; the same params always give the same genotype."""
        r = self.ranges
        family = self.families[0] if len(self.families) == 1 else trial.suggest_categorical("family", self.families)
        groups = trial.suggest_categorical("v1.groups", r.v1_groups) if family == "v1" else 1
        multiple = math.lcm(2, groups) if family == "v1" else _WIDEST_MULTIPLE
        stem = round_to(trial.suggest_int("stem.width", *r.stem_range), multiple)
        stages = []
        in_channels = stem
        for index in range(_STAGES):
            name = f"stage{index + 2}"
            depth = trial.suggest_int(f"{name}.depth", *r.depth_ranges[index])
            width = round_to(trial.suggest_int(f"{name}.{family}_width", *self.width_range(family, index)), multiple)
            if family == "v1":
                width = max(width, in_channels + multiple)  # a stride-2 V1 unit must widen
            width = min(width, _width_cap(multiple, index))
            kernel = trial.suggest_categorical(f"{name}.kernel", r.kernels)
            se = trial.suggest_categorical(f"{name}.se", (False, True))
            residual = trial.suggest_categorical(f"{name}.residual", (False, True))
            split = trial.suggest_categorical(f"{name}.split", r.split_ratios) if family == "v2" else 0.5
            shuffle = self._shuffle(trial, name, family, groups)
            stages.append(StageGene(family, depth, width, groups, split, kernel, se, residual, shuffle))  # type: ignore[arg-type]
            in_channels = width
        head = trial.suggest_int("head.width", *r.head_range, step=_HEAD_STEP) if family == "v2" else 0
        return Genotype(
            stem,
            tuple(stages),
            head_channels=head,
            stem_stride=stem_stride_for(self.resolution),
            fc_bias=True,
            resolution=self.resolution,
            num_classes=self.num_classes,
        )

    def _shuffle(self, trial: TrialLike, stage: str, family: str, groups: int) -> bool:
        """A stage's shuffle gene: drawn (``<stage>.shuffle``) only where the ranges give a choice and the units
        have a shuffle to drop (a V1 unit with groups=1 has none)."""
        choices = self.ranges.shuffle
        if family == "v1" and groups == 1:
            return True
        return choices[0] if len(choices) == 1 else bool(trial.suggest_categorical(f"{stage}.shuffle", choices))


class _EndsTrial:
    """Suggests the high (or low) end of every integer range and the given categorical choices; ``params``
    records what it suggested (a ``FixedTrial`` of them replays the same genotype)."""

    def __init__(self, choices: dict[str, Any], high: bool) -> None:
        self.choices, self.high = choices, high
        self.params: dict[str, Any] = {}

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.params[name] = low + (high - low) // step * step if self.high else low
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.params[name] = self.choices[name]
        return self.params[name]


class _RandomTrial:
    """Draws every suggestion uniformly at random from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return low + step * self.rng.randrange((high - low) // step + 1)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return choices[self.rng.randrange(len(choices))]
