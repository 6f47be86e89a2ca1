"""A study's trials as rows: results (feasible, one per architecture), paper baselines, every trial's status."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import optuna

from shufflenet_nas.nas.latency import comparable_ms

FAMILIES = ("V1-style", "V2-style")
PROXY_FORMAT = ".4g"  # how proxies are printed: values that print the same are equal
LATENCY_FORMAT = ".3f"  # milliseconds
TIE_REL = 1e-3  # without a reference: proxies this close (relative) are a tie, won by the faster architecture
_SEARCHED = {"v1": ("V1-style",), "v2": ("V2-style",)}
# Trained accuracy of an architecture lives in the study's user attribute ``trained/<arch_id>`` (Optuna refuses to
# change a finished trial's attributes); rows show it on every trial of that architecture.
TRAINED_PREFIX = "trained/"
RANK_PROXY = "proxy"
RANK_ACCURACY = "accuracy_top1"  # after `search --proxy-refine`: the study's ``rank_by`` setting

# How a family's best was chosen (``StudySummary.rules``).
RULE_REFERENCE = "reference"  # fastest with proxy >= the family's paper model and lower latency
RULE_FLOOR = "proxy_floor"  # fastest feasible (the floor and the budgets are the bar)
RULE_REWARD = "reward"  # highest reward
RULE_PROXY = "highest_proxy"  # no reference: highest proxy, ties to the faster


@dataclass(frozen=True)
class TrialRow:
    """One evaluated architecture as the summary shows it."""

    number: int
    arch_id: str
    genotype: str
    family: str
    mflops: float
    params: int
    latency_ms: float
    proxy: float
    baseline: str | None
    reward: float | None = None
    latency_source: str = "measured"
    feasible: bool = True
    why_not: str | None = None  # why a (baseline) row is not a result: "below the proxy floor (...)"
    accuracy_top1: float | None = None  # trained held-out accuracy (0..1), where `train` recorded one
    accuracy_top5: float | None = None
    rank_by: str = RANK_PROXY  # the figure the summary ranks by: RANK_PROXY, or RANK_ACCURACY after a refinement

    @property
    def score(self) -> float:
        """What the front and the best are chosen by: the proxy, or the trained top-1 (``rank_by``)."""
        if self.rank_by == RANK_ACCURACY:
            return math.nan if self.accuracy_top1 is None else self.accuracy_top1
        return self.proxy

    @property
    def score_name(self) -> str:
        return "top-1" if self.rank_by == RANK_ACCURACY else "proxy"

    @property
    def score_text(self) -> str:
        """The score as printed: ``91.7%`` top-1, or the proxy in ``PROXY_FORMAT``."""
        return f"{100 * self.score:.1f}%" if self.rank_by == RANK_ACCURACY else f"{self.proxy:{PROXY_FORMAT}}"


@dataclass(frozen=True)
class TrialStatus:
    """One trial of the study, whatever its state: a result, or why not."""

    number: int
    state: str  # complete, pruned, failed, running, waiting
    result: bool
    reason: str | None  # why it is not a result: over a budget, below the floor, failed, duplicate of trial N
    baseline: str | None = None
    arch_id: str | None = None
    genotype: str | None = None
    family: str | None = None
    mflops: float | None = None
    params: int | None = None
    latency_ms: float | None = None
    proxy: float | None = None


def searched_families(settings: dict[str, Any]) -> tuple[str, ...]:
    """The families a study searched (from its ``family`` setting), in display order."""
    return _SEARCHED.get(str(settings.get("family")), FAMILIES)


def is_baseline_name(floor: object) -> bool:
    """Whether a proxy floor names a baseline (it is not a number)."""
    try:
        float(str(floor))
    except ValueError:
        return True
    return False


def trained_records(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """What `train` recorded in the study, per arch id: accuracy_top1, accuracy_top5, recipe, data, weights, ..."""
    attrs = study.user_attrs
    return {
        key.removeprefix(TRAINED_PREFIX): value
        for key, value in attrs.items()
        if key.startswith(TRAINED_PREFIX) and isinstance(value, dict)
    }


def _row(
    trial: optuna.trial.FrozenTrial,
    remeasured: dict[str, Any],
    reward: bool,
    why_not: str | None = None,
    trained: dict[str, dict[str, Any]] | None = None,
) -> TrialRow:
    a = trial.user_attrs
    measured = remeasured.get(a["arch_id"])
    record = (trained or {}).get(a["arch_id"], {})
    return TrialRow(
        number=trial.number,
        arch_id=a["arch_id"],
        genotype=a["genotype"],
        family=a["family"],
        mflops=a["mflops"],
        params=a["params"],
        latency_ms=comparable_ms(measured) if measured else a["latency_ms"],
        proxy=a["proxy"],
        baseline=a.get("baseline"),
        reward=trial.values[0] if reward and trial.values else None,
        latency_source="re-measured" if measured else a["latency"]["source"],
        feasible=bool(a.get("feasible")),
        why_not=why_not,
        accuracy_top1=record.get("accuracy_top1"),
        accuracy_top5=record.get("accuracy_top5"),
    )


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's completed trials."""
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def evaluated_rows(study: optuna.Study) -> list[TrialRow]:
    """The results: feasible, completed trials, one row per architecture (the baseline's trial where a paper
    model was evaluated, else the first trial that evaluated it)."""
    remeasured = study.user_attrs.get("remeasured", {})
    reward = study.user_attrs.get("objective") == "reward"
    trained = trained_records(study)
    rows: dict[str, TrialRow] = {}
    for trial in complete_trials(study):
        if trial.user_attrs.get("feasible") and "latency_ms" in trial.user_attrs:
            row = _row(trial, remeasured, reward, trained=trained)
            if row.arch_id not in rows or (row.baseline and not rows[row.arch_id].baseline):
                rows[row.arch_id] = row
    return sorted(rows.values(), key=lambda r: r.number)


def baseline_rows(study: optuna.Study) -> list[TrialRow]:
    """Every evaluated paper baseline, feasible or not (a proxy floor above it, a latency budget below it):
    baselines are always shown; ``why_not`` says why one is not a result."""
    remeasured = study.user_attrs.get("remeasured", {})
    reward = study.user_attrs.get("objective") == "reward"
    trained = trained_records(study)
    rows: dict[str, TrialRow] = {}
    for trial in complete_trials(study):
        a = trial.user_attrs
        if a.get("baseline") and "latency_ms" in a and a["baseline"] not in rows:
            why_not = None if a.get("feasible") else "; ".join(constraint_reasons(trial, study.user_attrs))
            rows[a["baseline"]] = _row(trial, remeasured, reward, why_not or None, trained)
    return sorted(rows.values(), key=lambda r: r.number)


def constraint_reasons(trial: optuna.trial.FrozenTrial, settings: dict[str, Any]) -> list[str]:
    """Why a completed trial is infeasible, from its constraints (else its attributes and the settings)."""
    a = trial.user_attrs
    c: dict[str, float] = getattr(trial, "constraints", {}) or {}
    reasons = []
    budget = settings.get("budget_mflops")
    if c.get("mflops_over_budget", 0) > 0 or (not c and budget is not None and a.get("mflops", 0) > budget):
        reasons.append(f"over the FLOPs budget ({a.get('mflops', math.nan):.1f} > {budget:g} MFLOPs)")
    params_budget = settings.get("params_budget")
    if c.get("params_over_budget", 0) > 0 or (not c and params_budget and a.get("params", 0) > params_budget):
        reasons.append(f"over the params budget ({a.get('params', 0):,} > {params_budget:,.0f})")
    latency_budget = settings.get("latency_budget_ms")
    if c.get("latency_over_budget", 0) > 0 or (not c and latency_budget and a.get("latency_ms", 0) > latency_budget):
        reasons.append(f"over the latency budget ({a['latency_ms']:{LATENCY_FORMAT}} > {latency_budget:g} ms)")
    if c.get("proxy_below_floor", 0) > 0 and "proxy" in a:
        floor = a["proxy"] + c["proxy_below_floor"]
        reasons.append(f"below the proxy floor ({a['proxy']:{PROXY_FORMAT}} < {floor:{PROXY_FORMAT}})")
    elif not c and settings.get("proxy_floor") is not None and not is_baseline_name(settings["proxy_floor"]):
        floor = float(settings["proxy_floor"])
        if a.get("proxy", math.inf) < floor:
            reasons.append(f"below the proxy floor ({a['proxy']:{PROXY_FORMAT}} < {floor:{PROXY_FORMAT}})")
    if not reasons and not a.get("feasible", True):
        reasons.append("infeasible")
    return reasons


def proxy_floor_value(study: optuna.Study, trials: Iterable[optuna.trial.FrozenTrial] | None = None) -> float | None:
    """The proxy floor as a score: the number, or (a baseline name) as the search resolved it."""
    floor = study.user_attrs.get("proxy_floor")
    if floor is None:
        return None
    if not is_baseline_name(floor):
        return float(floor)
    for trial in trials if trials is not None else complete_trials(study):
        c = getattr(trial, "constraints", {}) or {}
        if "proxy_below_floor" in c and "proxy" in trial.user_attrs:
            return float(trial.user_attrs["proxy"] + c["proxy_below_floor"])
    return None


def trial_statuses(study: optuna.Study, results: list[TrialRow]) -> list[TrialStatus]:
    """Every trial, in order, with its state and, unless it is one of ``results``, why it is not."""
    result_numbers = {r.number for r in results}
    by_arch = {r.arch_id: r.number for r in results}
    states = optuna.trial.TrialState
    statuses = []
    for trial in study.get_trials(deepcopy=False):
        a = trial.user_attrs
        reason: str | None = None
        if trial.state == states.COMPLETE:
            state = "complete"
            if trial.number not in result_numbers:
                if a.get("feasible") and a.get("arch_id") in by_arch:
                    reason = f"duplicate of trial {by_arch[a['arch_id']]}"
                else:
                    reason = "; ".join(constraint_reasons(trial, study.user_attrs)) or "not evaluated"
        elif trial.state == states.PRUNED:
            state = "pruned"
            reason = "pruned" + (f" (proxy {a['proxy']:{PROXY_FORMAT}} when stopped)" if "proxy" in a else "")
        elif trial.state == states.FAIL:
            state = "failed"
            reason = f"failed: {a['failure_reason']}" if a.get("failure_reason") else "failed"
        elif trial.state == states.RUNNING:
            state, reason = "running", "running"
        else:
            state = "waiting"
            reason = "waiting" + (" (a seeded paper model not run yet)" if a.get("baseline") else "")
        statuses.append(
            TrialStatus(
                number=trial.number,
                state=state,
                result=reason is None,
                reason=reason,
                baseline=a.get("baseline"),
                arch_id=a.get("arch_id"),
                genotype=a.get("genotype"),
                family=a.get("family"),
                mflops=a.get("mflops"),
                params=a.get("params"),
                latency_ms=a.get("latency_ms"),
                proxy=a.get("proxy"),
            )
        )
    return statuses
