"""The Optuna study: objectives, budget constraints, storage, seeding with the papers' models, dedup.

A trial samples a genotype, counts its cost first (no latency or proxy time is spent on an
over-budget architecture: it is recorded as infeasible through ``trial.set_constraint``), then
measures latency on the target (or predicts it from the lookup table) and scores the proxy.
Everything a user wants to read back is a user attribute of the trial.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from shufflenet_nas.errors import ShuffleNetNASError, UsageError, mask_password
from shufflenet_nas.nas.cost import Cost, InsufficientMemoryError, check_fits_in_memory, cost_range, count_cost
from shufflenet_nas.nas.latency import RUNTIMES, MeasureConfig, measure_latency
from shufflenet_nas.nas.lut import LatencyTable
from shufflenet_nas.nas.proxies import DEFAULT_PROXY, compute_proxies
from shufflenet_nas.nas.storage import WriteBehind, make_storage, recover_stale_trials, worker_identity
from shufflenet_nas.search_spaces import BASELINES, Genotype, SearchSpace
from shufflenet_nas.search_spaces.spaces import stem_stride_for

FAMILY_CHOICES = ("v1", "v2", "mixed")
SAMPLERS = ("tpe", "nsga2", "random")
OBJECTIVES = ("pareto", "latency", "reward")
LATENCY_MODES = ("measured", "lut")
MNASNET_WEIGHT = -0.07  # MnasNet (Tan et al., 2019): reward = ACC * (LAT / T) ** w, w = -0.07
# Study user attributes that must match when a study is resumed: everything that changes results.
_RESUME_KEYS = (
    "target",
    "budget_mflops",
    "params_budget",
    "latency_budget_ms",
    "latency_target_ms",
    "proxy_floor",
    "family",
    "proxy",
    "objective",
    "latency_mode",
    "resolution",
    "num_classes",
    "batch",
    "dtype",
    "runtime",
    "threads",
    "max_time_s",
    "rel_precision",
    "normalize",
    "sampler",
    "seed",
    "space",
    "data",
)
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
        if not _STUDY_NAME.fullmatch(self.study_name):
            raise UsageError(
                f"study name {self.study_name!r} is not a name: use up to 128 letters, digits, '.', '+', '_' or '-', "
                "starting with a letter or digit (the study's folder is <results-dir>/<name>)"
            )
        try:
            space = self.space  # checks the budget, resolution and classes
        except ValueError as error:
            raise UsageError(str(error)) from None
        check_budget_reachable(space, self)
        if self.proxy_floor is not None and self.proxy_floor not in BASELINES:
            try:
                if not math.isfinite(float(self.proxy_floor)):
                    raise ValueError
            except ValueError:
                raise UsageError(
                    f"--proxy-floor {self.proxy_floor!r} is neither a finite number nor a baseline name; "
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
            "space": [f"{d.name}: {d.choices}" for d in self.space.dimensions()],
            "data": str(self.data.resolve()) if self.data else None,
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


def check_budget_reachable(space: SearchSpace, config: SearchConfig) -> None:
    """Refuse budgets that no architecture of the space meets, or that every one meets by far (then the space's
    size limits, not the budget, would decide), before anything is created."""
    low, high = cost_range(space)
    where = f"at {config.resolution} px, family {config.family}"
    if config.budget_flops < low.macs:
        raise ShuffleNetNASError(
            f"budget {config.budget_mflops:g} MFLOPs is below the smallest architecture of the space "
            f"({low.mflops:.2f} MFLOPs {where}); raise --budget to at least {math.ceil(low.mflops * 100) / 100:g}M "
            "or lower --resolution"
        )
    if config.params_budget is not None and config.params_budget < low.params:
        raise ShuffleNetNASError(
            f"params budget {config.params_budget:,.0f} is below the smallest architecture of the space "
            f"({low.params:,} params {where}); raise --params-budget"
        )
    if config.budget_flops > high.macs:
        raise ShuffleNetNASError(
            f"budget {config.budget_mflops:g} MFLOPs is above the largest architecture the space can build "
            f"({high.mflops:,.0f} MFLOPs {where}); give at most {math.floor(high.mflops):d}M"
        )


def open_storage(config: SearchConfig) -> optuna.storages.RDBStorage:
    """The search's storage: ``--storage``, else ``<results-dir>/<study>/study.db`` (its folder made).
    Measured searches run their trials in it, with heartbeats (a killed worker's trial is failed and retried)."""
    if config.storage is None:
        config.study_dir.mkdir(parents=True, exist_ok=True)
    return make_storage(config.storage_url, heartbeat=config.latency_mode == "measured")


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
        recover_stale_trials(study, storage)
        _enqueue_missing_baselines(study, config)
        return study
    _record_settings(study, config)
    return study


def _enqueue_missing_baselines(study: optuna.Study, config: SearchConfig) -> None:
    """Enqueue each fitting paper model that has no trial that completed it, waits for it or runs it (seeding
    that its creator did not finish, or a baseline interrupted more than once, is made up on a resume)."""
    if not config.seed_baselines:
        return
    pending = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    present = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False, states=pending)}
    for name in fitting_baselines(config):
        if name not in present:
            study.enqueue_trial({}, user_attrs={"baseline": name})


def _record_settings(study: optuna.Study, config: SearchConfig) -> None:
    """The settings, then the baselines, then ``metric_names``: its presence marks a complete, seeded study."""
    for key, value in config.study_attrs().items():
        study.set_user_attr(key, value)
    _enqueue_missing_baselines(study, config)
    study.set_user_attr("metric_names", config.metric_names)


def _check_recorded_settings(study: optuna.Study, config: SearchConfig) -> None:
    """Refuse to resume with other settings; wait briefly for a worker that is still recording them."""
    deadline = time.monotonic() + 5.0
    while "metric_names" not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.1)
    recorded = dict(study.user_attrs)
    if "metric_names" not in recorded:  # its creator stopped before recording them
        _record_settings(study, config)
        return
    if recorded.get("runtime", "") is None:  # studies made before defaults were recorded resolved
        recorded["runtime"] = RUNTIMES[recorded["target"]][0]
    if recorded.get("threads", 1) is None:
        recorded["threads"] = 1
    wanted = config.study_attrs()
    different = [k for k in _RESUME_KEYS if k in recorded and recorded[k] != wanted[k]]
    if different:
        details = ", ".join(_difference(k, recorded[k], wanted[k]) for k in different)
        raise UsageError(
            f"study {config.study_name!r} was made with {details}; "
            "resume it with the same options or pick a new --study name"
        )
    for key in _RESUME_KEYS:  # a study made before a setting was recorded: record it now, check it later
        if key not in recorded:
            study.set_user_attr(key, wanted[key])


def _difference(key: str, recorded: Any, wanted: Any) -> str:
    if key == "space":  # a list of ranges: name the ones that differ
        changed = sorted(set(wanted) - set(recorded))
        return f"other space ranges ({'; '.join(changed) or 'fewer dimensions'})"
    return f"{key}={recorded!r} (now {wanted!r})"


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
        if self.config.latency_mode == "measured":  # run in the storage: a resume can tell a killed worker's trial
            trial.set_user_attr("worker", worker_identity())
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
                self.seen[genotype.arch_id] = self._evaluate_or_fail(genotype, trial, attrs)
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

    def _evaluate_or_fail(self, genotype: Genotype, trial: optuna.Trial, attrs: dict[str, Any]) -> dict[str, Any]:
        """``_evaluate``; an allocation error or a score that is not a finite number fails this trial alone,
        its reason in the ``failure_reason`` attribute (the search goes on)."""
        try:
            with self.guard.region():
                check_fits_in_memory(genotype)  # the proxies build it on the CPU (measuring checks its device)
                evaluation = self._evaluate(genotype, trial)
        except InsufficientMemoryError as error:
            raise self._failed(trial, attrs, str(error)) from None
        except (MemoryError, RuntimeError) as error:  # torch's out-of-memory errors are RuntimeErrors
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'out of memory'}"
            raise self._failed(trial, attrs, reason) from None
        bad = [k for k in ("latency_ms", "proxy") if not math.isfinite(evaluation[k])]
        if bad:
            raise self._failed(trial, attrs, ", ".join(f"{k} is {evaluation[k]}" for k in bad))
        return evaluation

    @staticmethod
    def _failed(trial: optuna.Trial, attrs: dict[str, Any], reason: str) -> TrialFailed:
        with contextlib.suppress(Exception):  # the reason is worth keeping, not worth a second failure
            for key, value in {**attrs, "failure_reason": reason}.items():
                trial.set_user_attr(key, value)
        return TrialFailed(reason)

    def _evaluate(self, genotype: Genotype, trial: optuna.Trial) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.table is not None:
            estimated = self.table.estimated
            attrs["latency_ms"] = float(self.table.predict_ms(genotype, estimate=True))  # not numpy: stored as JSON
            attrs["latency"] = {
                "median_ms": attrs["latency_ms"],
                "source": "lut",
                "estimated_parts": self.table.estimated - estimated,
                **self.table.key,
            }
        else:
            with device_lock(self.config.measure.target):
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


class TrialFailed(ShuffleNetNASError):
    """One trial could not be evaluated (its reason is in the trial's ``failure_reason``); the search goes on."""


class Interrupted(KeyboardInterrupt):
    """The search was stopped by a signal (SIGINT: exit code 130, SIGTERM: 143)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def device_lock(target: str) -> Iterator[None]:
    """Exclusive use of this machine's ``target`` for timing, among every shufflenet-nas process on it
    (workers of one search, or several searches): two processes timing at once disturb each other."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = Path(tempfile.gettempdir()) / f"shufflenet-nas-{target}.lock"
    try:
        handle = path.open("a")
    except OSError:  # e.g. another user's lock file: time without it
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    worker: int = 0,
) -> optuna.Study:
    """Create or resume the study and run trials (a lookup-table search on a write-behind copy: ``WriteBehind``).

    Ctrl-C (SIGINT) or SIGTERM, when called from the main thread, interrupts only the objective: Optuna marks
    the running trial FAIL (a resume retries it once) and ``Interrupted`` propagates. One that lands in Optuna's
    bookkeeping between trials lets that trial finish, stops the study, then raises ``Interrupted``. Finished
    trials are always stored. A trial that fails on its own (``TrialFailed``) does not stop the search.
    """
    storage = open_storage(config)
    study = open_or_create_study(config, storage)
    if config.seed is not None:  # a stream of its own per resume and per worker, reproducible from the history
        study.sampler = create_sampler(
            config.sampler, config.seed + 7919 * worker + len(study.get_trials(deepcopy=False))
        )
    copy = WriteBehind(study, storage) if config.latency_mode == "lut" else None
    running = copy.live if copy else study
    objective = Objective(config, running, data)
    store = [copy.write] if copy else []  # after each trial
    with objective.guard.installed():
        try:
            running.optimize(
                objective,
                n_trials=n_trials,
                timeout=timeout,
                catch=(TrialFailed,),
                callbacks=[*callbacks, *store, objective.guard.stop],
            )
        finally:
            if copy:
                copy.write()  # the trial that an interrupt or an error ended, marked failed
    if objective.guard.signum is not None:
        raise Interrupted(objective.guard.signum)
    return study


def run_workers(
    config: SearchConfig,
    n_trials: int,
    timeout: float | None,
    workers: int,
    on_progress: Callable[[int], None] = lambda _done: None,
) -> optuna.Study:
    """``run_search`` in ``workers`` local processes on one study (``n_trials`` shared among them). The study is
    created (settings recorded, baselines enqueued) before they start; only one process times on the device at
    a time (``device_lock``). ``on_progress`` gets the number of trials finished so far, a few times a second.
    SIGINT / SIGTERM stop every worker (each keeps its finished trials) and raise ``Interrupted``."""
    if not 1 <= workers <= (os.cpu_count() or 1):
        raise UsageError(f"workers={workers}: need 1 to {os.cpu_count()} (this machine's logical CPUs)")
    open_or_create_study(config, open_storage(config))
    context = multiprocessing.get_context("spawn")
    done = context.Value("i", 0)
    errors = context.SimpleQueue()
    shares = [n_trials // workers + (index < n_trials % workers) for index in range(workers)]
    processes = [
        context.Process(target=_worker, args=(config, index, share, timeout, done, errors), daemon=True)
        for index, share in enumerate(shares)
        if share
    ]
    guard = InterruptGuard()
    with guard.installed():
        for process in processes:
            process.start()
        forwarded = False
        while any(process.is_alive() for process in processes):
            if guard.signum is not None and not forwarded:  # the terminal signals all; pass a SIGTERM on
                forwarded = True
                for process in processes:
                    if process.is_alive() and process.pid is not None:
                        os.kill(process.pid, guard.signum)
            on_progress(done.value)
            time.sleep(0.2)
    on_progress(done.value)
    if guard.signum is not None:
        raise Interrupted(guard.signum)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    failed = [p for p in processes if p.exitcode != 0]
    if failed:
        reason = failures[0] if failures else f"exit code {failed[0].exitcode}"
        raise ShuffleNetNASError(f"{len(failed)} of {len(processes)} workers failed: {reason}")
    return optuna.load_study(study_name=config.study_name, storage=open_storage(config))


def _worker(config: SearchConfig, index: int, n_trials: int, timeout: float | None, done: Any, errors: Any) -> None:
    """One spawned worker of ``run_workers``: its trials, counted in ``done``; a failure's message in ``errors``."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def count(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        with done.get_lock():
            done.value += 1

    try:
        data = None
        if config.data is not None:
            from shufflenet_nas.nas.data import load_dataset

            data = load_dataset(config.data)
        run_search(config, n_trials, timeout, callbacks=[count], data=data, worker=index)
    except Interrupted as interrupt:
        raise SystemExit(interrupt.exit_code) from None
    except Exception as error:
        errors.put(
            mask_password(
                f"{type(error).__name__}: {error}" if not isinstance(error, ShuffleNetNASError) else str(error)
            )
        )
        raise SystemExit(1) from None


class InterruptGuard:
    """Ctrl-C (SIGINT) or SIGTERM that never lands in a storage write: the signal raises ``Interrupted`` at
    once only inside ``region()`` (pure computation: counting, measuring, scoring); anywhere else it is noted
    and raised at the next region, or the study stops after the current trial."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.interruptible = False
        self.signum: int | None = None

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        if self.interruptible:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM while the block runs (main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def region(self, interruptible: bool = True) -> Iterator[None]:
        """A block a signal may interrupt (or, with ``interruptible=False``, one it must not)."""
        if interruptible and self.signum is not None:
            raise Interrupted(self.signum)
        outer, self.interruptible = self.interruptible, interruptible
        try:
            yield
        finally:
            self.interruptible = outer
        if outer and self.signum is not None:
            raise Interrupted(self.signum)

    def stop(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: end the study after a trial during which a signal came."""
        if self.signum is not None:
            study.stop()
