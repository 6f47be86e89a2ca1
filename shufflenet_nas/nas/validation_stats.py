"""Figures of a proxy validation that cannot flatter (``DEFINITIONS`` has them in full; the JSON carries it).

- Kendall tau-b and Spearman rho, each with a 95% percentile bootstrap interval (architectures resampled with
  replacement, seeded), and tau minus counted MFLOPs' tau on the same resamples.
- Equal-FLOPs pairs: counted MFLOPs within 10% of the larger of the two, ground truth differing; agreement is
  the share the proxy orders as the truth does, a proxy tie one half (0.5 is chance).
- Out of sample: the proxy with the best tau on the V1-style models scored on the V2-style ones, the reverse,
  and leave-one-out (chosen on the others, the held-out model's pairs scored).

Pure numpy/scipy; rank statistics are scale-free (accuracy in % or as a fraction gives the same figures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from shufflenet_nas.errors import InvalidArgumentError

DEFAULT_RESAMPLES = 2000
EQUAL_FLOPS_TOLERANCE = 0.10  # a pair is "equal-FLOPs" within 10% of the larger of its two MFLOPs
FAMILIES = ("V1-style", "V2-style")
_CELLS_PER_CHUNK = 2_000_000  # resamples x pairs held at once
_MFLOPS = "\0mflops"  # the counted MFLOPs among the bootstrap's columns (no proxy name starts with NUL)

DEFINITIONS: dict[str, str] = {
    "kendall_tau": "Kendall tau-b of the proxy's scores with the ground truth over the architectures (a proxy "
    "that ties every architecture: 0)",
    "spearman_rho": "Spearman rho (Pearson correlation of average ranks)",
    "interval": "95% percentile bootstrap interval: resamples of the architectures drawn with replacement (seeded), "
    "every figure recomputed on each; resamples where the ground truth is constant are dropped",
    "tau_minus_mflops": "the proxy's tau minus counted MFLOPs' tau, both on the same resample (paired): an "
    "interval above 0 ranks better than MFLOPs",
    "equal_flops_pairs": f"pairs of architectures whose counted MFLOPs are within {EQUAL_FLOPS_TOLERANCE:.0%} of "
    "the larger of the two (|a - b| <= 0.1 max(a, b)) and whose ground truth differs",
    "equal_flops_agreement": "share of the equal-FLOPs pairs the proxy orders as the ground truth does, a tie in "
    "the proxy counting one half: 0.5 is chance, MFLOPs itself sits near it",
    "tau_by_family": "tau within the V1-style and within the V2-style architectures (null under 3), with a "
    "bootstrap interval over that family's architectures (tau_by_family_ci): a proxy chosen on one family is "
    "judged out of sample by its tau on the other",
    "concordance": "mean over architectures of the share of the others (with a different ground truth) that the "
    "proxy orders against it as the ground truth does, ties one half",
    "chosen_on_v1": "selection out of sample: the proxy with the highest tau on the V1-style architectures (first "
    "in the proxy order on a tie), and its tau on the V2-style ones; with MFLOPs' and the best proxy's there",
    "chosen_on_v2": "the reverse: chosen on V2-style, scored on V1-style",
    "leave_one_out": "for each architecture held out, the proxy with the highest tau on the others is chosen and "
    "the held-out architecture's concordance under it recorded (the share of the others it is ordered against "
    "correctly); the mean over architectures, beside each fixed proxy's concordance: the best fixed one was "
    "chosen in hindsight, the leave-one-out figure was not",
}


@dataclass(frozen=True)
class ProxyFigures:
    """One proxy's figures: point estimates on all architectures, ``*_ci`` their bootstrap 95% intervals."""

    proxy: str
    kendall_tau: float
    kendall_tau_ci: tuple[float, float]
    spearman_rho: float
    spearman_rho_ci: tuple[float, float]
    tau_minus_mflops: float
    tau_minus_mflops_ci: tuple[float, float]
    equal_flops_agreement: float | None
    equal_flops_agreement_ci: tuple[float, float]
    tau_by_family: dict[str, float | None]
    tau_by_family_ci: dict[str, tuple[float, float]]
    concordance: float | None


@dataclass(frozen=True)
class Selection:
    """A proxy chosen by its tau on one set of architectures and scored on another."""

    chosen_on: str
    scored_on: str
    chosen: str | None  # None: a set holds under 3 architectures
    tau_chosen_on: float | None
    tau_scored_on: float | None
    mflops_tau_scored_on: float | None
    best_scored_on: str | None  # the best proxy there, in hindsight
    best_tau_scored_on: float | None
    reason: str | None = None  # why there is no figure


@dataclass(frozen=True)
class LeaveOneOut:
    """Leave-one-out selection: the mean held-out concordance and how often each proxy was chosen."""

    concordance: float | None
    chosen: dict[str, int]


@dataclass(frozen=True)
class Analysis:
    """Every figure of a validation beyond the plain correlations (``DEFINITIONS`` says what each is)."""

    n: int
    resamples: int
    seed: int
    tolerance: float
    equal_flops_pairs: int  # with a different ground truth
    equal_flops_tied: int  # equal-FLOPs pairs left out: the same ground truth
    proxies: tuple[ProxyFigures, ...]
    selections: tuple[Selection, ...]
    leave_one_out: LeaveOneOut

    def figures(self, proxy: str) -> ProxyFigures:
        """The figures of ``proxy``."""
        return {f.proxy: f for f in self.proxies}[proxy]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; a missing figure (NaN) is null."""
        return json_safe(
            {
                "resamples": self.resamples,
                "seed": self.seed,
                "equal_flops": {
                    "tolerance": self.tolerance,
                    "pairs": self.equal_flops_pairs,
                    "tied_pairs_left_out": self.equal_flops_tied,
                },
                "proxies": {f.proxy: {k: v for k, v in vars(f).items() if k != "proxy"} for f in self.proxies},
                "out_of_sample": {
                    **{f"chosen_on_{s.chosen_on[:2].lower()}": vars(s) for s in self.selections},
                    "leave_one_out": vars(self.leave_one_out),
                },
                "definitions": DEFINITIONS,
            }
        )


def json_safe(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---- batched statistics: one row per resample ------------------------------------------------------------
def _signs(values: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """sign(values[:, second] - values[:, first]) per pair, as int8."""
    return np.sign(values[:, second] - values[:, first]).astype(np.int8)


def _tau_b(proxy: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Kendall tau-b per row from pair signs; 0 where the proxy ties everything, NaN where the truth does."""
    numerator = np.einsum("ij,ij->i", proxy, truth, dtype=np.int64).astype(float)
    untied = np.count_nonzero(proxy, axis=1).astype(float) * np.count_nonzero(truth, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = numerator / np.sqrt(untied)
    tau[np.count_nonzero(proxy, axis=1) == 0] = 0.0
    tau[np.count_nonzero(truth, axis=1) == 0] = math.nan
    return tau


def _rho(proxy: np.ndarray, truth_ranks: np.ndarray) -> np.ndarray:
    """Spearman rho per row; 0 where the proxy is constant, NaN where the truth is."""
    ranks = stats.rankdata(proxy, axis=1)
    x = ranks - ranks.mean(1, keepdims=True)
    y = truth_ranks - truth_ranks.mean(1, keepdims=True)
    spread = np.sqrt((x * x).sum(1) * (y * y).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (x * y).sum(1) / spread
    rho[(x * x).sum(1) == 0] = 0.0
    rho[(y * y).sum(1) == 0] = math.nan
    return rho


def _agreement(proxy: np.ndarray, truth: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Share of the ``pairs`` (a boolean mask, truth differing) the proxy orders as the truth, ties one half."""
    right = ((proxy * truth) > 0) + 0.5 * (proxy == 0)
    count = pairs.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (right * pairs).sum(1) / count, math.nan)


def _equal_flops(mflops: np.ndarray, first: np.ndarray, second: np.ndarray, tolerance: float) -> np.ndarray:
    a, b = mflops[:, first], mflops[:, second]
    return np.abs(a - b) <= tolerance * np.maximum(a, b)


def kendall_tau(values: Sequence[float], truth: Sequence[float]) -> float:
    """Kendall tau-b (0 for a constant proxy, NaN for a constant truth)."""
    first, second = np.triu_indices(len(values), 1)
    x, y = np.asarray([values], float), np.asarray([truth], float)
    return float(_tau_b(_signs(x, first, second), _signs(y, first, second))[0])


def pairwise_agreement(
    values: Sequence[float], truth: Sequence[float], mflops: Sequence[float], tolerance: float = EQUAL_FLOPS_TOLERANCE
) -> tuple[float, int]:
    """The share of equal-FLOPs pairs (``DEFINITIONS``) ``values`` orders as ``truth`` does, and their count."""
    first, second = np.triu_indices(len(values), 1)
    x, y, m = (np.asarray([v], float) for v in (values, truth, mflops))
    truth_signs = _signs(y, first, second)
    pairs = _equal_flops(m, first, second, tolerance) & (truth_signs != 0)
    return float(_agreement(_signs(x, first, second), truth_signs, pairs)[0]), int(pairs.sum())


def _concordance(values: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per architecture: the share of the others (truth differing) ordered against it as the truth does."""
    proxy = np.sign(values[:, None] - values[None, :])
    real = np.sign(truth[:, None] - truth[None, :])
    right = ((proxy * real) > 0) + 0.5 * (proxy == 0)
    comparable = real != 0
    count = comparable.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (right * comparable).sum(1) / np.maximum(count, 1), math.nan)


def check_resamples(resamples: int) -> None:
    """Raise ``InvalidArgumentError`` for fewer than 1 bootstrap resample."""
    if resamples < 1:
        raise InvalidArgumentError(f"resamples={resamples}: give at least 1 bootstrap resample (2000 is usual)")


# ---- the analysis ----------------------------------------------------------------------------------------
def analyse(
    scores: Mapping[str, Sequence[float]],
    truth: Sequence[float],
    mflops: Sequence[float],
    families: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    tolerance: float = EQUAL_FLOPS_TOLERANCE,
) -> Analysis:
    """Every figure of ``DEFINITIONS`` for each proxy of ``scores`` (higher is better), ``mflops`` the counted
    MFLOPs of each architecture (the reference of the differences and of the equal-FLOPs pairs)."""
    check_resamples(resamples)
    n = len(truth)
    y = np.asarray(truth, float)
    m = np.asarray(mflops, float)
    values = {name: np.asarray(v, float) for name, v in scores.items()}
    first, second = np.triu_indices(n, 1)
    truth_signs = _signs(y[None], first, second)
    close = _equal_flops(m[None], first, second, tolerance)[0]
    tied = int((close & (truth_signs[0] == 0)).sum())
    boot = _bootstrap(values, y, m, resamples=resamples, seed=seed, tolerance=tolerance)
    full = {name: _point(v, y, m, tolerance) for name, v in values.items()}
    family = np.asarray(families)
    mflops_tau = kendall_tau(m, y)
    figures = []
    for name, v in values.items():
        tau, rho, agreement = full[name]
        by_family = {f: _subset_tau(v, y, family == f) for f in FAMILIES}
        by_family_ci = {f: _subset_tau_interval(v, y, family == f, resamples, seed) for f in FAMILIES}
        concordance = _concordance(v, y)
        figures.append(
            ProxyFigures(
                proxy=name,
                kendall_tau=tau,
                kendall_tau_ci=_interval(boot[name]["tau"]),
                spearman_rho=rho,
                spearman_rho_ci=_interval(boot[name]["rho"]),
                tau_minus_mflops=tau - mflops_tau,
                tau_minus_mflops_ci=_interval(boot[name]["tau"] - boot[_MFLOPS]["tau"]),
                equal_flops_agreement=None if math.isnan(agreement) else agreement,
                equal_flops_agreement_ci=_interval(boot[name]["agreement"]),
                tau_by_family=by_family,
                tau_by_family_ci=by_family_ci,
                concordance=_mean(concordance),
            )
        )
    return Analysis(
        n=n,
        resamples=resamples,
        seed=seed,
        tolerance=tolerance,
        equal_flops_pairs=int((close & (truth_signs[0] != 0)).sum()),
        equal_flops_tied=tied,
        proxies=tuple(figures),
        selections=(_select(values, y, m, family, *FAMILIES), _select(values, y, m, family, *FAMILIES[::-1])),
        leave_one_out=_leave_one_out(values, y),
    )


def _point(values: np.ndarray, truth: np.ndarray, mflops: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    tau = kendall_tau(values, truth)
    rho = float(_rho(values[None], stats.rankdata(truth)[None])[0])
    agreement, _ = pairwise_agreement(values, truth, mflops, tolerance)
    return tau, rho, agreement


def _subset_tau(values: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float | None:
    if mask.sum() < 3:
        return None
    tau = kendall_tau(values[mask], truth[mask])
    return None if math.isnan(tau) else tau


def _subset_tau_interval(
    values: np.ndarray, truth: np.ndarray, mask: np.ndarray, resamples: int, seed: int
) -> tuple[float, float]:
    """The bootstrap 95% interval of tau over the architectures of ``mask`` alone (NaN under 3)."""
    k = int(mask.sum())
    if k < 3:
        return math.nan, math.nan
    rows = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    first, second = np.triu_indices(k, 1)
    x, y = values[mask][rows], truth[mask][rows]
    return _interval(_tau_b(_signs(x, first, second), _signs(y, first, second)))


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None


def _interval(samples: np.ndarray) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if not len(samples):
        return math.nan, math.nan
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def _bootstrap(
    values: Mapping[str, np.ndarray],
    truth: np.ndarray,
    mflops: np.ndarray,
    *,
    resamples: int,
    seed: int,
    tolerance: float,
) -> dict[str, dict[str, np.ndarray]]:
    """Per proxy (and ``_MFLOPS``, the counted MFLOPs), tau, rho and equal-FLOPs agreement per resample."""
    n = len(truth)
    indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    first, second = np.triu_indices(n, 1)
    columns = {**values, _MFLOPS: mflops}
    out: dict[str, dict[str, list[np.ndarray]]] = {k: {"tau": [], "rho": [], "agreement": []} for k in columns}
    chunk = max(1, _CELLS_PER_CHUNK // max(1, len(first)))
    for start in range(0, resamples, chunk):
        rows = indices[start : start + chunk]
        resampled_truth = truth[rows]
        truth_signs = _signs(resampled_truth, first, second)
        truth_ranks = stats.rankdata(resampled_truth, axis=1)
        pairs = _equal_flops(mflops[rows], first, second, tolerance) & (truth_signs != 0)
        for name, column in columns.items():
            resampled = column[rows]
            signs = _signs(resampled, first, second)
            out[name]["tau"].append(_tau_b(signs, truth_signs))
            out[name]["rho"].append(_rho(resampled, truth_ranks))
            out[name]["agreement"].append(_agreement(signs, truth_signs, pairs))
    return {name: {k: np.concatenate(v) for k, v in figures.items()} for name, figures in out.items()}


def _best(values: Mapping[str, np.ndarray], truth: np.ndarray, mask: np.ndarray) -> tuple[str, float]:
    """The proxy with the highest tau on ``mask`` (the first in order on a tie) and its tau."""
    taus = {name: kendall_tau(v[mask], truth[mask]) for name, v in values.items()}
    taus = {name: -math.inf if math.isnan(t) else t for name, t in taus.items()}
    name = max(taus, key=lambda k: taus[k])  # max keeps the first of equal keys
    return name, taus[name]


def _select(
    values: Mapping[str, np.ndarray], truth: np.ndarray, mflops: np.ndarray, family: np.ndarray, on: str, to: str
) -> Selection:
    chosen_mask, scored_mask = family == on, family == to
    small = [f for f, mask in ((on, chosen_mask), (to, scored_mask)) if mask.sum() < 3]
    if small or len(set(truth[chosen_mask])) < 2 or len(set(truth[scored_mask])) < 2:
        reason = f"under 3 {small[0]} architectures" if small else "a constant ground truth"
        return Selection(on, to, None, None, None, None, None, None, reason)
    chosen, tau_on = _best(values, truth, chosen_mask)
    best, best_tau = _best(values, truth, scored_mask)
    return Selection(
        chosen_on=on,
        scored_on=to,
        chosen=chosen,
        tau_chosen_on=tau_on,
        tau_scored_on=kendall_tau(values[chosen][scored_mask], truth[scored_mask]),
        mflops_tau_scored_on=kendall_tau(mflops[scored_mask], truth[scored_mask]),
        best_scored_on=best,
        best_tau_scored_on=best_tau,
    )


def _leave_one_out(values: Mapping[str, np.ndarray], truth: np.ndarray) -> LeaveOneOut:
    n = len(truth)
    chosen: dict[str, int] = {}
    held_out = []
    if n < 4 or not values:
        return LeaveOneOut(None, {})
    concordance = {name: _concordance(v, truth) for name, v in values.items()}
    for index in range(n):
        rest = np.arange(n) != index
        if len(set(truth[rest])) < 2:
            continue
        name, _ = _best(values, truth, rest)
        chosen[name] = chosen.get(name, 0) + 1
        held_out.append(concordance[name][index])
    return LeaveOneOut(_mean(np.asarray(held_out, float)), chosen)
