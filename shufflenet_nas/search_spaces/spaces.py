"""The searchable dimensions, their ranges, and ``sample(trial) -> Genotype``.

Parameter names are stable and hierarchical (``family``, ``v1.groups``, ``stage2.width``, ...), so a
trial's params rebuild the same genotype (``optuna.trial.FixedTrial(params)``). Sampled widths are
rounded to what the unit type needs (feasible by construction): V1 widths to a multiple of
lcm(2, groups), V2 widths to a multiple of 8 (so every split ratio gives whole channel counts).
Width ranges scale with the FLOPs budget (FLOPs grow with width squared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from shufflenet_nas.search_spaces.genotype import Genotype, StageGene

FAMILIES = ("v1", "v2")
V1_GROUPS = (1, 2, 3, 4, 8)
SPLIT_RATIOS = (0.25, 0.375, 0.5, 0.625, 0.75)
KERNELS = (3, 5, 7)
# Widths of the papers' 1x models (V1 g3, V2) that the ranges are centred on at 146 MFLOPs.
_REFERENCE_WIDTHS = {"v1": (240, 480, 960), "v2": (116, 232, 464)}
_REFERENCE_MFLOPS = 146.0
_DEPTHS = ((2, 6), (4, 10), (2, 6))
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
        if self.budget_mflops <= 0:
            raise ValueError(f"budget must be positive, got {self.budget_mflops} MFLOPs")

    @property
    def width_scale(self) -> float:
        """How far widths move from the 1x models: sqrt(budget / 146M) at 224 px."""
        pixels = (224 / self.resolution) ** 2 if self.resolution >= 128 else 1.0
        return math.sqrt(self.budget_mflops / _REFERENCE_MFLOPS * pixels)

    def width_range(self, family: str, stage: int) -> tuple[int, int]:
        """Sampling range of a stage's width (before rounding): 0.45x to 1.3x of the scaled 1x width."""
        reference = _REFERENCE_WIDTHS[family][stage] * self.width_scale
        return max(8, int(reference * 0.45)), max(16, int(reference * 1.3))

    def dimensions(self) -> list[Dimension]:
        """Every dimension with its range, in sampling order."""
        dims = [Dimension("family", " | ".join(self.families), "all", "unit type of every stage")]
        if "v1" in self.families:
            dims.append(Dimension("v1.groups", ", ".join(map(str, V1_GROUPS)), "v1", "pointwise group convs"))
        dims.append(Dimension("stem.width", f"{STEM_RANGE[0]}..{STEM_RANGE[1]}", "all", "rounded per family"))
        for index in range(3):
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

    def sample(self, trial: TrialLike) -> Genotype:
        """Draw a genotype; the same params always give the same genotype."""
        family = self.families[0] if len(self.families) == 1 else trial.suggest_categorical("family", self.families)
        groups = trial.suggest_categorical("v1.groups", V1_GROUPS) if family == "v1" else 1
        multiple = math.lcm(2, groups) if family == "v1" else 8
        stem = round_to(trial.suggest_int("stem.width", *STEM_RANGE), multiple)
        stages = []
        in_channels = stem
        for index in range(3):
            name = f"stage{index + 2}"
            depth = trial.suggest_int(f"{name}.depth", *_DEPTHS[index])
            width = round_to(trial.suggest_int(f"{name}.{family}_width", *self.width_range(family, index)), multiple)
            if family == "v1":
                width = max(width, in_channels + multiple)  # a stride-2 V1 unit must widen
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
