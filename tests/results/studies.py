"""Tiny studies written the way `shufflenet-nas search` writes them (trial and study user attributes,
constraints), without running a search: the summary's rules are tested on exact numbers."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from shufflenet_nas.search_spaces import BASELINES, Genotype

optuna.logging.set_verbosity(optuna.logging.WARNING)

SETTINGS: dict[str, Any] = {
    "target": "cpu",
    "budget_mflops": 146.0,
    "params_budget": None,
    "latency_budget_ms": None,
    "proxy_floor": None,
    "family": "mixed",
    "proxy": "naswot",
    "objective": "pareto",
    "latency_mode": "measured",
    "resolution": 224,
    "num_classes": 1000,
    "batch": 1,
    "dtype": "fp32",
    "runtime": None,
    "threads": None,
    "sampler": "tpe",
    "seed": 0,
}
V1 = "V1-style"
V2 = "V2-style"


def genotype_for(family: str, variant: int) -> Genotype:
    """A distinct, valid genotype of the family (a paper model with another stem width)."""
    base = BASELINES["shufflenet_v2_x1_0" if family == V2 else "shufflenet_v1_g3_x1_0"].genotype
    return dataclasses.replace(base, stem_channels=6 * (variant + 5))  # never 24, the papers' stem


@dataclass
class T:
    """One trial: a searched architecture (``variant``) or a seeded paper model (``baseline``)."""

    latency_ms: float | None = None
    proxy: float | None = None
    family: str = V2
    variant: int = 0
    baseline: str | None = None
    feasible: bool = True
    mflops: float = 140.0
    params: int = 2_000_000
    reward: float | None = None
    state: optuna.trial.TrialState = optuna.trial.TrialState.COMPLETE
    constraints: dict[str, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def genotype(self) -> Genotype:
        return BASELINES[self.baseline].genotype if self.baseline else genotype_for(self.family, self.variant)


def make_study(trials: list[T], storage: Any = None, name: str = "tiny", **settings: Any) -> optuna.Study:
    """A study with the search's study attributes (``settings`` override them) and the given trials."""
    values = {**SETTINGS, **settings}
    objective = values["objective"]
    values["metric_names"] = {"pareto": ["latency_ms", values["proxy"]], "latency": ["latency_ms"]}.get(
        objective, ["reward"]
    )
    directions = {"pareto": ["minimize", "maximize"], "latency": ["minimize"]}.get(objective, ["maximize"])
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    for key, value in values.items():
        study.set_user_attr(key, value)
    for t in trials:
        study.add_trial(_frozen(t, objective))
    return study


def write_study_dir(directory: Path, trials: list[T], **settings: Any) -> optuna.Study:
    """A study in ``directory/study.db`` (named after the folder) through the search's own storage (SQLite in
    WAL mode), closed as a finished search leaves it."""
    from shufflenet_nas.nas.storage import make_storage

    directory.mkdir(parents=True, exist_ok=True)
    storage = make_storage(f"sqlite:///{directory / 'study.db'}")
    study = make_study(trials, storage=storage, name=directory.name, **settings)
    storage.engine.dispose()  # the search has ended: no -wal / -shm files
    return study


def small_study(directory: Path, **settings: Any) -> Path:
    """A 32 px study in ``directory``: V2 0.5x (seeded), a faster V2 variant that beats it (best V2-style), a V1
    variant (best V1-style, the front's best proxy) and a dominated V2 variant (not on the front)."""
    trials = [
        T(3.0, 1.3e6, baseline="shufflenet_v2_x0_5"),
        T(2.5, 1.4e6, variant=1),
        T(4.0, 1.9e6, family=V1, variant=2),
        T(5.0, 1.0e6, variant=3),
    ]
    write_study_dir(directory, trials, **{"proxy": "params", "resolution": 32, **settings})
    return directory


def _frozen(t: T, objective: str) -> optuna.trial.FrozenTrial:
    states = optuna.trial.TrialState
    if t.state == states.WAITING:
        return optuna.trial.create_trial(state=t.state, user_attrs={"baseline": t.baseline} if t.baseline else {})
    genotype = t.genotype()
    attrs: dict[str, Any] = {
        "genotype": genotype.to_string(),
        "arch_id": genotype.arch_id,
        "family": genotype.family,
        "mflops": t.mflops,
        "params": t.params,
        "feasible": t.feasible,
    }
    if t.baseline:
        attrs["baseline"] = t.baseline
    if t.latency_ms is not None:
        attrs["latency_ms"] = t.latency_ms
        attrs["latency"] = {"median_ms": t.latency_ms, "source": "measured"}
    if t.proxy is not None:
        attrs["proxy"] = t.proxy
        attrs["proxies"] = {"naswot": t.proxy}
    attrs.update(t.attrs)
    values: list[float] | None = None
    if t.state == states.COMPLETE:
        if t.latency_ms is None:
            values = [math.inf, -math.inf] if objective == "pareto" else [math.inf if objective == "latency" else -1e9]
        elif objective == "pareto":
            values = [t.latency_ms, t.proxy or 0.0]
        elif objective == "latency":
            values = [t.latency_ms]
        else:
            values = [t.reward if t.reward is not None else 0.0]
    return optuna.trial.create_trial(
        state=t.state, values=values, user_attrs=attrs, constraints={"mflops_over_budget": -1.0, **t.constraints}
    )
