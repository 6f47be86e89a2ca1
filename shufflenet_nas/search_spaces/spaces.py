"""The searchable dimensions, their ranges, and ``sample(trial) -> Genotype``.

Parameter names are stable and hierarchical (``family``, ``v1.groups``, ``stage2.width``, ...), so a
trial's params rebuild the same genotype (``optuna.trial.FixedTrial(params)``). Sampled widths are
rounded to what the unit type needs (feasible by construction): V1 widths to a multiple of
lcm(2, groups), V2 widths to a multiple of 8 (so every split ratio gives whole channel counts).
Width ranges scale with the FLOPs budget (FLOPs grow with width squared), clipped to ``MAX_CHANNELS``.
``smallest`` and ``largest`` give a family's extreme genotypes, which bound the cost of every sample.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Protocol

from shufflenet_nas.search_spaces.genotype import (
    MAX_CHANNELS,
    MAX_CLASSES,
    Genotype,
    StageGene,
    check_limit,
    check_resolution,
)

FAMILIES = ("v1", "v2")
V1_GROUPS = (1, 2, 3, 4, 8)
SPLIT_RATIOS = (0.25, 0.375, 0.5, 0.625, 0.75)
KERNELS = (3, 5, 7)
# Widths of the papers' 1x models (V1 g3, V2) that the ranges are centred on at 146 MFLOPs.
_REFERENCE_WIDTHS = {"v1": (240, 480, 960), "v2": (116, 232, 464)}
_REFERENCE_MFLOPS = 146.0
_DEPTHS = ((2, 6), (4, 10), (2, 6))
_STAGES = len(_DEPTHS)
_WIDEST_MULTIPLE = 8  # the largest multiple widths are rounded to (V2; V1 with 8 groups)
STEM_RANGE = (8, 32)
_HEAD_RANGE = (512, 1536)


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

    def __post_init__(self) -> None:
        unknown = set(self.families) - set(FAMILIES)
        if not self.families or unknown:
            raise ValueError(f"families must be drawn from {FAMILIES}, got {self.families}")
        if not (math.isfinite(self.budget_mflops) and self.budget_mflops > 0):
            raise ValueError(f"budget must be a positive number, got {self.budget_mflops} MFLOPs")
        check_resolution(self.resolution)
        minimum = stem_stride_for(self.resolution) * 2**_STAGES
        if self.resolution < minimum:
            raise ValueError(f"input resolution {self.resolution} is too small for the space; use at least {minimum}")
        if self.num_classes < 1:
            raise ValueError(f"classifier: {self.num_classes} classes; need at least 1")
        check_limit("classifier", self.num_classes, MAX_CLASSES, "classes")

    @property
    def width_scale(self) -> float:
        """How far widths move from the 1x models: sqrt(budget / 146M) at 224 px."""
        pixels = (224 / self.resolution) ** 2 if self.resolution >= 128 else 1.0
        return math.sqrt(self.budget_mflops / _REFERENCE_MFLOPS * pixels)

    def width_range(self, family: str, stage: int) -> tuple[int, int]:
        """Sampling range of a stage's width (before rounding): 0.45x to 1.3x of the scaled 1x width,
        clipped below ``MAX_CHANNELS`` with room for the later stages to widen."""
        reference = _REFERENCE_WIDTHS[family][stage] * self.width_scale
        cap = _width_cap(_WIDEST_MULTIPLE, stage)
        return min(cap, max(8, int(reference * 0.45))), min(cap, max(16, int(reference * 1.3)))

    def dimensions(self) -> list[Dimension]:
        """Every dimension with its range, in sampling order."""
        dims = [Dimension("family", " | ".join(self.families), "all", "unit type of every stage")]
        if "v1" in self.families:
            dims.append(Dimension("v1.groups", ", ".join(map(str, V1_GROUPS)), "v1", "pointwise group convs"))
        dims.append(Dimension("stem.width", f"{STEM_RANGE[0]}..{STEM_RANGE[1]}", "all", "rounded per family"))
        for index in range(_STAGES):
            name = f"stage{index + 2}"
            low, high = _DEPTHS[index]
            dims.append(Dimension(f"{name}.depth", f"{low}..{high}", "all", "units; the first has stride 2"))
            for family in self.families:
                wl, wh = self.width_range(family, index)
                dims.append(Dimension(f"{name}.{family}_width", f"{wl}..{wh}", family, "rounded per family"))
            dims.append(Dimension(f"{name}.kernel", ", ".join(map(str, KERNELS)), "all", "depthwise kernel"))
            dims.append(Dimension(f"{name}.se", "false, true", "all", "squeeze-excite in the branch"))
            dims.append(Dimension(f"{name}.residual", "false, true", "all", "identity add in stride-1 units"))
            if "v2" in self.families:
                ratios = ", ".join(f"{r:g}" for r in SPLIT_RATIOS)
                dims.append(Dimension(f"{name}.split", ratios, "v2", "share of channels passed through"))
        if "v2" in self.families:
            dims.append(Dimension("head.width", f"{_HEAD_RANGE[0]}..{_HEAD_RANGE[1]} step 128", "v2", "1x1 conv5"))
        return dims

    def smallest(self, family: str, groups: int = 1) -> Genotype:
        """The cheapest sample of a family (V1: at ``groups``): narrowest and shallowest, kernel 3, no SE, no
        residual, the largest split ratio. Every cost (MACs, params, memory) grows with each dimension, so no
        sample of that family and group count costs less; ``nas.cost.cost_range`` takes the bounds over groups."""
        return self.sample(self._extreme_trial(family, groups, largest=False))

    def largest(self, family: str, groups: int = 1) -> Genotype:
        """The most expensive sample of a family (V1: at ``groups``): widest and deepest, kernel 7, SE, residual,
        the smallest split ratio."""
        return self.sample(self._extreme_trial(family, groups, largest=True))

    def _extreme_trial(self, family: str, groups: int, largest: bool) -> _EndsTrial:
        if family not in self.families:
            raise ValueError(f"family {family!r} is not in this space; use one of {self.families}")
        allowed = V1_GROUPS if family == "v1" else (1,)
        if groups not in allowed:
            raise ValueError(f"groups={groups} is not in the {family} space; use one of {allowed}")
        choices: dict[str, Any] = {"family": family, "v1.groups": groups}
        for index in range(_STAGES):
            name = f"stage{index + 2}"
            choices[f"{name}.kernel"] = max(KERNELS) if largest else min(KERNELS)
            choices[f"{name}.se"] = choices[f"{name}.residual"] = largest
            choices[f"{name}.split"] = min(SPLIT_RATIOS) if largest else max(SPLIT_RATIOS)
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
        family = self.families[0] if len(self.families) == 1 else trial.suggest_categorical("family", self.families)
        groups = trial.suggest_categorical("v1.groups", V1_GROUPS) if family == "v1" else 1
        multiple = math.lcm(2, groups) if family == "v1" else 8
        stem = round_to(trial.suggest_int("stem.width", *STEM_RANGE), multiple)
        stages = []
        in_channels = stem
        for index in range(_STAGES):
            name = f"stage{index + 2}"
            depth = trial.suggest_int(f"{name}.depth", *_DEPTHS[index])
            width = round_to(trial.suggest_int(f"{name}.{family}_width", *self.width_range(family, index)), multiple)
            if family == "v1":
                width = max(width, in_channels + multiple)  # a stride-2 V1 unit must widen
            width = min(width, _width_cap(multiple, index))
            kernel = trial.suggest_categorical(f"{name}.kernel", KERNELS)
            se = trial.suggest_categorical(f"{name}.se", (False, True))
            residual = trial.suggest_categorical(f"{name}.residual", (False, True))
            split = trial.suggest_categorical(f"{name}.split", SPLIT_RATIOS) if family == "v2" else 0.5
            stages.append(StageGene(family, depth, width, groups, split, kernel, se, residual))  # type: ignore[arg-type]
            in_channels = width
        head = trial.suggest_int("head.width", *_HEAD_RANGE, step=128) if family == "v2" else 0
        return Genotype(
            stem,
            tuple(stages),
            head_channels=head,
            stem_stride=stem_stride_for(self.resolution),
            fc_bias=True,
            resolution=self.resolution,
            num_classes=self.num_classes,
        )


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
