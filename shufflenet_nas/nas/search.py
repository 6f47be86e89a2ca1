"""The Optuna study: objectives, budget constraints, storage, seeding with the papers' models, dedup.

A trial samples a genotype, counts its cost first (no latency or proxy time is spent on an
over-budget architecture: it is recorded as infeasible through ``trial.set_constraint``), then
measures latency on the target (or predicts it from the lookup table) and scores the proxy.
Everything a user wants to read back is a user attribute of the trial.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from shufflenet_nas.errors import ShuffleNetNASError, UsageError
from shufflenet_nas.nas.cost import Cost, count_cost
from shufflenet_nas.nas.latency import MeasureConfig, measure_latency
from shufflenet_nas.nas.lut import LatencyTable
from shufflenet_nas.nas.proxies import DEFAULT_PROXY, compute_proxies
from shufflenet_nas.nas.storage import WriteBehind, make_storage
from shufflenet_nas.search_spaces import BASELINES, Genotype, SearchSpace
from shufflenet_nas.search_spaces.spaces import stem_stride_for

FAMILY_CHOICES = ("v1", "v2", "mixed")
SAMPLERS = ("tpe", "nsga2", "random")
OBJECTIVES = ("pareto", "latency", "reward")
LATENCY_MODES = ("measured", "lut")
MNASNET_WEIGHT = -0.07  # MnasNet (Tan et al., 2019): reward = ACC * (LAT / T) ** w, w = -0.07
# Study user attributes that must match when a study is resumed.
_RESUME_KEYS = (
    "target",
    "budget_mflops",
    "params_budget",
    "latency_budget_ms",
    "proxy_floor",
    "family",
    "proxy",
    "objective",
    "latency_mode",
    "resolution",
    "batch",
    "dtype",
    "runtime",
    "threads",
)


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
    data: Path | None = None
    results_dir: Path = Path("results")
    storage: str | None = None
    seed_baselines: bool = True

    def __post_init__(self) -> None:
        for name, value, choices in [
            ("--family", self.family, FAMILY_CHOICES),
            ("--sampler", self.sampler, SAMPLERS),
            ("--objective", self.objective, OBJECTIVES),
            ("--latency", self.latency_mode, LATENCY_MODES),
        ]:
            if value not in choices:
                raise UsageError(f"{name} {value!r} unknown; use one of {', '.join(choices)}")
        if self.objective == "reward" and not self.latency_target_ms:
            raise UsageError("--objective reward needs a latency target T: add --latency-target, e.g. 2ms")
        if self.objective == "latency" and self.proxy_floor is None:
            raise UsageError(
                "--objective latency minimises latency alone: add --proxy-floor (e.g. shufflenet_v2_x1_0) "
                "so that accuracy is not traded away"
            )
        if self.resolution < 32:
            raise UsageError(f"--resolution {self.resolution} is too small; use 32 or more")
        if self.proxy_floor is not None and self.proxy_floor not in BASELINES:
            try:
                float(self.proxy_floor)
            except ValueError:
                raise UsageError(
                    f"--proxy-floor {self.proxy_floor!r} is neither a number nor a baseline name; "
                    "e.g. 107.5 or shufflenet_v2_x1_0 (see `shufflenet-nas baselines`)"
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
        return SearchSpace(families, self.budget_mflops, self.resolution, self.num_classes)

    def study_attrs(self) -> dict[str, Any]:
        """What the study records about how it was made (checked on resume)."""
        return {
            "target": self.measure.target,
            "budget_mflops": self.budget_mflops,
            "params_budget": self.params_budget,
            "latency_budget_ms": self.latency_budget_ms,
            "proxy_floor": self.proxy_floor,
            "family": self.family,
            "proxy": self.proxy,
            "objective": self.objective,
            "latency_mode": self.latency_mode,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "batch": self.measure.batch,
            "dtype": self.measure.dtype,
            "runtime": self.measure.runtime,
            "threads": self.measure.threads,
            "sampler": self.sampler,
            "seed": self.seed,
        }


def create_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, grouped by family: V1 and V2 parameters are modelled jointly where they apply),
    NSGA-II, or random sampling."""
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # ``group`` is experimental
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    return optuna.samplers.RandomSampler(seed=seed)


def open_storage(config: SearchConfig) -> optuna.storages.RDBStorage:
    """The search's storage: ``--storage``, else ``<results-dir>/<study>/study.db`` (its folder made)."""
    if config.storage is None:
        config.study_dir.mkdir(parents=True, exist_ok=True)
    return make_storage(config.storage_url)


def open_or_create_study(config: SearchConfig, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The study named in ``config``: created (its settings recorded, the baselines enqueued), or resumed
    when its recorded settings match. Of workers starting together, only the one that creates it seeds it."""
    sampler = create_sampler(config.sampler, config.seed)
    try:
        study = optuna.create_study(
            storage=storage, study_name=config.study_name, sampler=sampler, directions=config.directions
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=config.study_name, storage=storage, sampler=sampler)
        _check_recorded_settings(study, config)
        return study
    _record_settings(study, config)
    if config.seed_baselines:
        for name in fitting_baselines(config):
            study.enqueue_trial({}, user_attrs={"baseline": name})
    return study


def _record_settings(study: optuna.Study, config: SearchConfig) -> None:
    for key, value in config.study_attrs().items():
        study.set_user_attr(key, value)
    study.set_user_attr("metric_names", config.metric_names)  # last: its presence marks a complete record


def _check_recorded_settings(study: optuna.Study, config: SearchConfig) -> None:
    """Refuse to resume with other settings; wait briefly for a worker that is still recording them."""
    deadline = time.monotonic() + 5.0
    while "metric_names" not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.1)
    recorded = study.user_attrs
    if "metric_names" not in recorded:  # its creator stopped before recording them
        _record_settings(study, config)
        return
    wanted = config.study_attrs()
    different = [k for k in _RESUME_KEYS if k in recorded and recorded[k] != wanted[k]]
    if different:
        details = ", ".join(f"{k}={recorded[k]!r} (now {wanted[k]!r})" for k in different)
        raise UsageError(
            f"study {config.study_name!r} was made with {details}; "
            "resume it with the same options or pick a new --study name"
        )


def baseline_genotype(name: str, config: SearchConfig) -> Genotype:
    """A paper model at the search's resolution and class count."""
    genotype = BASELINES[name].genotype
    stem_stride = stem_stride_for(config.resolution)
    return Genotype.from_dict(
        {
            **genotype.to_dict(),
            "resolution": config.resolution,
            "num_classes": config.num_classes,
            "stem_stride": stem_stride,
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
        if not _within_budgets(cost, config):
            continue
        line = f"v1_g{baseline.genotype.stages[0].groups}" if unit == "v1" else "v2"
        if cost.macs > best.get(line, (-1.0, ""))[0]:
            best[line] = (cost.macs, name)
    return [name for _, name in sorted(best.values(), key=lambda item: item[1], reverse=True)]


def _within_budgets(cost: Cost, config: SearchConfig) -> bool:
    return cost.macs <= config.budget_flops and (config.params_budget is None or cost.params <= config.params_budget)


_EVALUATION_KEYS = ("latency_ms", "latency", "proxy", "proxies", "pruned")  # what dedup reuses


class Objective:
    """Optuna objective: sample, count, constrain, measure, score. Equal architectures are evaluated once."""

    def __init__(self, config: SearchConfig, study: optuna.Study, data: Any = None) -> None:
        self.config = config
        self.data = data
        self.space = config.space
        self.table = LatencyTable.open(config.measure) if config.latency_mode == "lut" else None
        self.seen: dict[str, dict[str, Any]] = {}
        self.guard = InterruptGuard()
        self.proxy_floor = self._resolve_proxy_floor()
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if "latency_ms" in trial.user_attrs:
                evaluation = {k: trial.user_attrs[k] for k in _EVALUATION_KEYS if k in trial.user_attrs}
                self.seen.setdefault(trial.user_attrs["arch_id"], evaluation)

    def __call__(self, trial: optuna.Trial) -> Sequence[float] | float:
        baseline = trial.user_attrs.get("baseline")
        genotype = baseline_genotype(baseline, self.config) if baseline else self.space.sample(trial)
        with self.guard.region():
            cost = count_cost(genotype)
        attrs: dict[str, Any] = {
            "genotype": genotype.to_string(),
            "arch_id": genotype.arch_id,
            "family": genotype.family,
            "mflops": round(cost.mflops, 3),
            "params": cost.params,
            "memory_access": cost.memory_access,
            "operators": cost.operators,
            "peak_activation_bytes": cost.peak_activation_bytes,
        }
        trial.set_constraint("mflops_over_budget", cost.mflops - self.config.budget_mflops)
        if self.config.params_budget is not None:
            trial.set_constraint("params_over_budget", cost.params - self.config.params_budget)
        feasible = _within_budgets(cost, self.config)
        if feasible:
            if genotype.arch_id not in self.seen:
                with self.guard.region():
                    self.seen[genotype.arch_id] = self._evaluate(genotype, trial)
            attrs.update(self.seen[genotype.arch_id])
            if self.config.latency_budget_ms is not None:
                over = attrs["latency_ms"] - self.config.latency_budget_ms
                trial.set_constraint("latency_over_budget", over)
                feasible = feasible and over <= 0
            if self.proxy_floor is not None:
                below = self.proxy_floor - attrs["proxy"]
                trial.set_constraint("proxy_below_floor", below)
                feasible = feasible and below <= 0
        attrs["feasible"] = feasible
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if attrs.get("pruned"):
            raise optuna.TrialPruned(f"short training stopped early at accuracy {attrs['proxy']:.3f}")
        if "latency_ms" not in attrs:  # over the FLOPs/params budget: never measured, never a result
            worst = [math.inf if direction == "minimize" else -math.inf for direction in self.config.directions]
            return worst if len(worst) > 1 else worst[0]
        return self._values(attrs)

    def _resolve_proxy_floor(self) -> float | None:
        """``--proxy-floor`` as a score: the number, or the named baseline's proxy at the search's settings."""
        floor = self.config.proxy_floor
        if floor is None:
            return None
        if floor not in BASELINES:
            return float(floor)
        genotype = baseline_genotype(floor, self.config)
        scores = compute_proxies(genotype, [self.config.proxy], data=self.data, seed=self.config.seed or 0)
        return scores[self.config.proxy].value

    def _evaluate(self, genotype: Genotype, trial: optuna.Trial) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.table is not None:
            estimated = self.table.estimated
            attrs["latency_ms"] = self.table.predict_ms(genotype, estimate=True)
            attrs["latency"] = {
                "median_ms": attrs["latency_ms"],
                "source": "lut",
                "estimated_parts": self.table.estimated - estimated,
                **self.table.key,
            }
        else:
            result = measure_latency(genotype, self.config.measure)
            attrs["latency_ms"] = result.median_ms
            attrs["latency"] = {**result.to_dict(), "source": "measured"}
        # short training reports accuracy per epoch for pruning where it is the objective's direction: reward
        prunable = self.config.proxy == "train" and self.config.objective == "reward"
        report = self._pruning_reporter(trial) if prunable else None
        scores = compute_proxies(
            genotype, [self.config.proxy], data=self.data, seed=self.config.seed or 0, report=report
        )
        attrs["proxy"] = scores[self.config.proxy].value
        attrs["proxies"] = {name: score.value for name, score in scores.items()}
        if scores[self.config.proxy].pruned:
            attrs["pruned"] = True
        return attrs

    def _pruning_reporter(self, trial: optuna.Trial) -> Callable[[int, float], bool]:
        def report(step: int, value: float) -> bool:
            with self.guard.region(interruptible=False):  # a storage write
                trial.report(value, step)
                return trial.should_prune()

        return report

    def _values(self, attrs: dict[str, Any]) -> Sequence[float] | float:
        if self.config.objective == "pareto":
            return attrs["latency_ms"], attrs["proxy"]
        if self.config.objective == "latency":
            return attrs["latency_ms"]
        return mnasnet_reward(attrs["proxy"], attrs["latency_ms"], self.config.latency_target_ms or 1.0)


def mnasnet_reward(proxy: float, latency_ms: float, target_ms: float, weight: float = MNASNET_WEIGHT) -> float:
    """MnasNet's soft-constrained reward ACC * (LAT / T) ** w with the proxy standing in for ACC."""
    if proxy <= 0:
        raise ShuffleNetNASError(
            f"--objective reward needs a positive proxy (it scales it by (LAT/T)^w), got {proxy:.4g}; "
            "use --objective pareto or another --proxy"
        )
    return proxy * (latency_ms / target_ms) ** weight


def run_search(
    config: SearchConfig,
    n_trials: int | None,
    timeout: float | None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    data: Any = None,
) -> optuna.Study:
    """Create or resume the study and run trials (a lookup-table search on a write-behind copy: ``WriteBehind``).

    Ctrl-C (SIGINT, when called from the main thread) interrupts only the objective: Optuna marks the running
    trial FAIL and KeyboardInterrupt propagates. One that lands in Optuna's bookkeeping between trials lets
    that trial finish, stops the study, then raises KeyboardInterrupt. Finished trials are always stored.
    """
    storage = open_storage(config)
    study = open_or_create_study(config, storage)
    copy = WriteBehind(study, storage) if config.latency_mode == "lut" else None
    running = copy.live if copy else study
    objective = Objective(config, running, data)
    store = [copy.write] if copy else []  # after each trial
    with objective.guard.installed():
        try:
            running.optimize(
                objective, n_trials=n_trials, timeout=timeout, callbacks=[*callbacks, *store, objective.guard.stop]
            )
        finally:
            if copy:
                copy.write()  # the trial that Ctrl-C or an error ended, marked failed
    if objective.guard.requested:
        raise KeyboardInterrupt
    return study


class InterruptGuard:
    """Ctrl-C that never lands in a storage write: SIGINT raises KeyboardInterrupt at once only inside
    ``region()`` (pure computation: counting, measuring, scoring); anywhere else it is noted and raised at
    the next region, or the study stops after the current trial."""

    def __init__(self) -> None:
        self.interruptible = False
        self.requested = False

    def _handle(self, _signum: int, _frame: object) -> None:
        self.requested = True
        if self.interruptible:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT while the block runs (main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def region(self, interruptible: bool = True) -> Iterator[None]:
        """A block Ctrl-C may interrupt (or, with ``interruptible=False``, one it must not)."""
        if interruptible and self.requested:
            raise KeyboardInterrupt
        outer, self.interruptible = self.interruptible, interruptible
        try:
            yield
        finally:
            self.interruptible = outer
        if outer and self.requested:
            raise KeyboardInterrupt

    def stop(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: end the study after a trial during which Ctrl-C was pressed."""
        if self.requested:
            study.stop()
