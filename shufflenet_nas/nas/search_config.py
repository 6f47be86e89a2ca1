"""What defines a search (``SearchConfig``), the budget checks, and the paper models that seed a study."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.nas.cost import Cost, cost_range, count_cost
from shufflenet_nas.nas.latency import MeasureConfig
from shufflenet_nas.nas.proxies import DEFAULT_PROXY
from shufflenet_nas.search_spaces import BASELINES, Genotype, SearchSpace
from shufflenet_nas.search_spaces.spaces import SpaceRanges, stem_stride_for

FAMILY_CHOICES = ("v1", "v2", "mixed")
SAMPLERS = ("tpe", "nsga2", "random")
OBJECTIVES = ("pareto", "latency", "reward")
LATENCY_MODES = ("measured", "lut")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; the study stores it and a resume must agree with it."""

    study_name: str
    budget_flops: float
    measure: MeasureConfig
    params_budget: float | None = None
    latency_budget_ms: float | None = None
    proxy_floor: str | None = None  # a number, or a baseline name whose proxy score is the floor
    family: str = "mixed"
    sampler: str = "tpe"
    seed: int | None = None
    proxy: str = DEFAULT_PROXY
    objective: str = "pareto"
    latency_target_ms: float | None = None
    latency_mode: str = "measured"
    resolution: int = 224
    num_classes: int = 1000
    ranges: SpaceRanges = field(default_factory=SpaceRanges)
    data: Path | None = None
    results_dir: Path = Path("results")
    storage: str | None = None
    seed_baselines: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "results_dir", Path(self.results_dir))  # a str is fine too
        if self.data is not None:
            object.__setattr__(self, "data", Path(self.data))
        for name, value, choices in [
            ("family", self.family, FAMILY_CHOICES),
            ("sampler", self.sampler, SAMPLERS),
            ("objective", self.objective, OBJECTIVES),
            ("latency_mode", self.latency_mode, LATENCY_MODES),
        ]:
            if value not in choices:
                raise InvalidArgumentError(f"{name}={value!r} unknown; use one of {', '.join(choices)}")
        if self.objective == "reward" and not self.latency_target_ms:
            raise InvalidArgumentError("objective='reward' needs a latency target T: set e.g. latency_target_ms=2.0")
        if self.objective == "latency" and self.proxy_floor is None:
            raise InvalidArgumentError(
                "objective='latency' minimises latency alone: set `proxy_floor` (e.g. 'shufflenet_v2_x1_0') "
                "so that accuracy is not traded away"
            )
        if not (math.isfinite(self.budget_flops) and self.budget_flops > 0):
            raise InvalidArgumentError(f"budget_flops={self.budget_flops!r}: give a positive number of FLOPs")
        if self.resolution < 32:
            raise InvalidArgumentError(f"resolution={self.resolution} is too small; use 32 or more")
        if not _STUDY_NAME.fullmatch(self.study_name):
            raise InvalidArgumentError(
                f"study_name={self.study_name!r} is not a name: use up to 128 letters, digits, '.', '+', '_' or "
                "'-', starting with a letter or digit (the study's folder is <results_dir>/<study_name>)"
            )
        check_budget_reachable(self)  # builds the space: checks the resolution and the classes
        if self.proxy_floor is not None and self.proxy_floor not in BASELINES:
            try:
                if not math.isfinite(float(self.proxy_floor)):
                    raise ValueError
            except ValueError:
                raise InvalidArgumentError(
                    f"proxy_floor={self.proxy_floor!r} is neither a finite number nor a baseline name; "
                    "e.g. proxy_floor='107.5' or proxy_floor='shufflenet_v2_x1_0'"
                ) from None

    @property
    def directions(self) -> list[str]:
        """pareto: latency down, proxy up; latency: latency down (the proxy floor a constraint); reward: up."""
        return {"pareto": ["minimize", "maximize"], "latency": ["minimize"], "reward": ["maximize"]}[self.objective]

    @property
    def metric_names(self) -> list[str]:
        return {"pareto": ["latency_ms", self.proxy], "latency": ["latency_ms"], "reward": ["reward"]}[self.objective]

    @property
    def budget_mflops(self) -> float:
        return self.budget_flops / 1e6

    @property
    def study_dir(self) -> Path:
        return self.results_dir / self.study_name

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.study_dir / 'study.db'}"

    @property
    def space(self) -> SearchSpace:
        families = ("v1", "v2") if self.family == "mixed" else (self.family,)
        return SearchSpace(families, self.budget_mflops, self.resolution, self.num_classes, self.ranges)

    def study_attrs(self) -> dict[str, Any]:
        """What the study records about how it was made (checked on resume), defaults resolved."""
        return {
            "target": self.measure.target,
            "budget_mflops": self.budget_mflops,
            "params_budget": self.params_budget,
            "latency_budget_ms": self.latency_budget_ms,
            "latency_target_ms": self.latency_target_ms,
            "proxy_floor": self.proxy_floor,
            "family": self.family,
            "proxy": self.proxy,
            "objective": self.objective,
            "latency_mode": self.latency_mode,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "batch": self.measure.batch,
            "dtype": self.measure.dtype,
            "runtime": self.measure.resolved_runtime,
            "threads": self.measure.resolved_threads,
            "max_time_s": self.measure.max_time_s,
            "rel_precision": self.measure.rel_precision,
            "normalize": self.measure.normalized,
            "sampler": self.sampler,
            "seed": self.seed,
            **self.ranges.to_dict(),
            "space": [f"{d.name}: {d.choices}" for d in self.space.dimensions()],
            "data": str(self.data.resolve()) if self.data else None,
        }


def check_budget_reachable(config: SearchConfig) -> None:
    """Refuse budgets that no architecture of the space meets, or that every one meets by far (then the space's
    size limits, not the budget, would decide), before anything is created."""
    low, high = cost_range(config.space)
    where = f"at resolution={config.resolution}, family={config.family!r}"
    if config.budget_flops < low.macs:
        least = math.ceil(low.mflops * 100) / 100 * 1e6
        raise ShuffleNetNASError(
            f"budget_flops={config.budget_flops:.10g} is below the smallest architecture of the space "
            f"({low.mflops:.2f} MFLOPs {where}); give budget_flops={least:.10g} or more, or a lower `resolution`"
        )
    if config.params_budget is not None and config.params_budget < low.params:
        raise ShuffleNetNASError(
            f"params_budget={config.params_budget:.10g} is below the smallest architecture of the space "
            f"({low.params} params {where}); give params_budget={low.params} or more"
        )
    if config.budget_flops > high.macs:
        raise ShuffleNetNASError(
            f"budget_flops={config.budget_flops:.10g} is above the largest architecture the space can build "
            f"({high.mflops:,.0f} MFLOPs {where}); give budget_flops={math.floor(high.mflops) * 1e6:.10g} or less"
        )


def within_budgets(cost: Cost, config: SearchConfig) -> bool:
    """Whether a cost meets the FLOPs budget and the params budget, where there is one."""
    return cost.macs <= config.budget_flops and (config.params_budget is None or cost.params <= config.params_budget)


def baseline_genotype(name: str, config: SearchConfig) -> Genotype:
    """A paper model at the search's resolution and class count."""
    return baseline_at(name, config.resolution, config.num_classes)


def baseline_at(name: str, resolution: int, num_classes: int) -> Genotype:
    """A paper model at ``resolution`` and ``num_classes``, with the stem stride that suits the resolution."""
    genotype = BASELINES[name].genotype
    return Genotype.from_dict(
        {
            **genotype.to_dict(),
            "resolution": resolution,
            "num_classes": num_classes,
            "stem_stride": stem_stride_for(resolution),
        }
    )


def fitting_baselines(config: SearchConfig) -> list[str]:
    """Per paper model line (V2; V1 with g = 1, 2, 3, 4, 8) the widest model that fits the budgets."""
    best: dict[str, tuple[float, str]] = {}
    for name, baseline in BASELINES.items():
        unit = baseline.genotype.stages[0].unit
        if baseline.variant != "paper" or baseline.genotype.stages[0].se:
            continue
        if config.family != "mixed" and unit != config.family:
            continue
        cost = count_cost(baseline_genotype(name, config))
        if not within_budgets(cost, config):
            continue
        line = f"v1_g{baseline.genotype.stages[0].groups}" if unit == "v1" else "v2"
        if cost.macs > best.get(line, (-1.0, ""))[0]:
            best[line] = (cost.macs, name)
    return [name for _, name in sorted(best.values(), key=lambda item: item[1], reverse=True)]
