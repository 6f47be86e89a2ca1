"""The Optuna objective: sample, count the cost, constrain, measure latency (or predict it), score the proxy.

No latency or proxy time is spent on an architecture over the FLOPs or params budget: it is recorded as
infeasible through ``trial.set_constraint``. Everything a user wants to read back is a user attribute.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna

from shufflenet_nas.errors import ShuffleNetNASError
from shufflenet_nas.nas.cost import InsufficientMemoryError, check_fits_in_memory, count_cost
from shufflenet_nas.nas.interrupts import InterruptGuard
from shufflenet_nas.nas.latency import measure_latency
from shufflenet_nas.nas.lut import LatencyTable
from shufflenet_nas.nas.proxies import ProxyError, compute_proxies
from shufflenet_nas.nas.search_config import SearchConfig, baseline_genotype, within_budgets
from shufflenet_nas.nas.storage import worker_identity
from shufflenet_nas.search_spaces import BASELINES, Genotype

MNASNET_WEIGHT = -0.07  # MnasNet (Tan et al., 2019): reward = ACC * (LAT / T) ** w, w = -0.07
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
        feasible = within_budgets(cost, self.config)
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
        """``config.proxy_floor`` as a score: the number, or the named baseline's proxy at the search's settings."""
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
        except (InsufficientMemoryError, ProxyError) as error:  # a network that does not fit, a score not defined
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
            attrs["latency"] = {  # a prediction in the table's units (normalised where the table is), not a median
                "predicted_ms": attrs["latency_ms"],
                "source": "lut",
                "estimated_parts": self.table.estimated - estimated,
                **self.table.key,
            }
        else:
            with device_lock(self.config.measure.target):
                result = measure_latency(genotype, self.config.measure)
            attrs["latency_ms"] = result.comparable_ms
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
            f"objective='reward' needs a positive proxy (it scales it by (LAT/T)^w), got {proxy:.4g}; "
            "use objective='pareto' or another `proxy`"
        )
    return proxy * (latency_ms / target_ms) ** weight
