"""How well the proxies rank architectures against a ground truth, in figures that cannot flatter.

Ground truths: the papers' ImageNet top-1 accuracy (100 - published error) over every baseline that has one;
short-training validation accuracy over architectures sampled from the search space; the user's own trained
results (a CSV or JSON file, or a study's trials with ``accuracy_top1``: ``nas.validation_results``).
Beside Kendall tau and Spearman rho (with p-values), every validation carries the figures of
``nas.validation_stats``: bootstrap intervals, the difference to MFLOPs, equal-FLOPs pairs, out-of-sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from shufflenet_nas.nas.cost import count_cost
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.proxies import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PROXY,
    PROXY_NAMES,
    REFERENCE_PROXIES,
    ZERO_COST_PROXIES,
    compute_proxies,
)
from shufflenet_nas.nas.short_training import TrainConfig
from shufflenet_nas.nas.validation_results import read_results
from shufflenet_nas.nas.validation_stats import DEFAULT_RESAMPLES, Analysis, analyse, check_resamples, json_safe
from shufflenet_nas.search_spaces.baselines import BASELINES
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.spaces import SearchSpace

ProgressCallback = Callable[[int, int, str], None]  # (done, total, what is being scored now)
# The references every validation shows beside the zero-cost proxies (relu_count where the library has it).
VALIDATION_REFERENCES: tuple[str, ...] = tuple(
    dict.fromkeys((*REFERENCE_PROXIES, *(name for name in ("relu_count",) if name in PROXY_NAMES)))
)
DEFAULT_VALIDATION_PROXIES: tuple[str, ...] = (
    *(name for name in ZERO_COST_PROXIES if name not in VALIDATION_REFERENCES),
    *VALIDATION_REFERENCES,
)


@dataclass(frozen=True)
class Correlation:
    """Rank agreement of one proxy with the ground truth (both higher-is-better)."""

    proxy: str
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    n: int


@dataclass(frozen=True)
class Validation:
    """Per-architecture scores, the ground truth, each proxy's rank correlations and ``analysis``'s figures."""

    against: str  # "paper", "train", "file" or "study"
    target: str  # what the ground truth is, in words
    architectures: tuple[str, ...]  # baseline names or genotype strings
    truth: tuple[float, ...]
    scores: dict[str, tuple[float, ...]]
    seconds: dict[str, float]  # mean seconds per architecture, per proxy
    inputs: dict[str, str]  # what each proxy ran on (the first architecture's batch: noise or the data's images)
    correlations: tuple[Correlation, ...]
    families: tuple[str, ...]  # V1-style, V2-style or mixed, per architecture
    mflops: tuple[float, ...]  # counted MFLOPs of each architecture as scored: the reference of ``analysis``
    analysis: Analysis

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the correlations, ``analysis``'s figures with their definitions, every architecture."""
        return {
            "against": self.against,
            "target": self.target,
            "n": len(self.architectures),
            "correlations": {c.proxy: {k: v for k, v in asdict(c).items() if k != "proxy"} for c in self.correlations},
            "mean_seconds": self.seconds,
            "inputs": self.inputs,
            "default_proxy": self._default_proxy(),
            **self.analysis.to_dict(),
            "architectures": [
                {
                    "arch": arch,
                    "truth": truth,
                    "family": self.families[i],
                    "counted_mflops": self.mflops[i],
                    **{name: values[i] for name, values in self.scores.items()},
                }
                for i, (arch, truth) in enumerate(zip(self.architectures, self.truth, strict=True))
            ],
        }

    def _default_proxy(self) -> dict[str, Any]:
        """The search's default proxy and the figures that chose it: its tau on all architectures and within
        each family (a proxy chosen on one family is judged out of sample on the other), its equal-FLOPs
        agreement, each with its bootstrap 95% interval, and how often leave-one-out chose it."""
        scored = {f.proxy: f for f in self.analysis.proxies}
        if DEFAULT_PROXY not in scored:
            return {"name": DEFAULT_PROXY, "scored": False}
        figures = scored[DEFAULT_PROXY]
        return json_safe(
            {
                "name": DEFAULT_PROXY,
                "scored": True,
                "kendall_tau": figures.kendall_tau,
                "kendall_tau_ci": figures.kendall_tau_ci,
                "tau_by_family": figures.tau_by_family,
                "tau_by_family_ci": figures.tau_by_family_ci,
                "equal_flops_agreement": figures.equal_flops_agreement,
                "equal_flops_agreement_ci": figures.equal_flops_agreement_ci,
                "leave_one_out_chosen": self.analysis.leave_one_out.chosen.get(DEFAULT_PROXY, 0),
            }
        )


def rank_correlation(proxy: str, values: Sequence[float], truth: Sequence[float]) -> Correlation:
    """Kendall tau-b and Spearman rho (scipy); a proxy that ties everything ranks nothing: 0, p = 1."""
    if len(values) < 3 or len(set(values)) < 2 or len(set(truth)) < 2:
        return Correlation(proxy, 0.0, 1.0, 0.0, 1.0, len(values))
    tau = stats.kendalltau(values, truth)
    rho = stats.spearmanr(values, truth)
    return Correlation(
        proxy, float(tau.statistic), float(tau.pvalue), float(rho.statistic), float(rho.pvalue), len(values)
    )


def _validate(
    against: str,
    target: str,
    items: Sequence[tuple[str, Genotype, float]],
    names: Sequence[str],
    progress: ProgressCallback | None,
    *,
    data: Dataset | None = None,
    batch_size: int,
    resamples: int,
    seed: int,
) -> Validation:
    """Score each item's genotype (already fitted to ``data`` where there is some) on ``data``'s images or
    seeded noise, then every figure."""
    scores: dict[str, list[float]] = {name: [] for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    inputs: dict[str, str] = {}
    for index, (label, genotype, _) in enumerate(items):
        if progress is not None:
            progress(index, len(items), label)
        for name, result in compute_proxies(genotype, names, data=data, seed=seed, batch_size=batch_size).items():
            scores[name].append(result.value)
            seconds[name].append(result.seconds)
            inputs.setdefault(name, result.inputs)
    if progress is not None:
        progress(len(items), len(items), "done")
    truth = [t for _, _, t in items]
    mflops = [count_cost(genotype).mflops for _, genotype, _ in items]
    families = [genotype.family for _, genotype, _ in items]
    return Validation(
        against,
        target,
        tuple(label for label, _, _ in items),
        tuple(truth),
        {name: tuple(values) for name, values in scores.items()},
        {name: float(np.mean(values)) for name, values in seconds.items()},
        inputs,
        tuple(rank_correlation(name, scores[name], truth) for name in names),
        tuple(families),
        tuple(mflops),
        analyse(scores, truth, mflops, families, resamples=resamples, seed=seed),
    )


def validate_against_paper(
    names: Sequence[str] = DEFAULT_VALIDATION_PROXIES,
    *,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resamples: int = DEFAULT_RESAMPLES,
    progress: ProgressCallback | None = None,
) -> Validation:
    """Each proxy against the papers' ImageNet top-1 accuracy over the published baselines (224x224);
    ``seed`` seeds the proxies and the bootstrap's ``resamples``."""
    check_resamples(resamples)
    items = [
        (name, baseline.genotype, 100 - baseline.paper_top1_error)
        for name, baseline in BASELINES.items()
        if baseline.paper_top1_error is not None
    ]
    return _validate(
        "paper",
        "ImageNet top-1 accuracy % (100 - the papers' top-1 error)",
        items,
        names,
        progress,
        batch_size=batch_size,
        resamples=resamples,
        seed=seed,
    )


def validate_against_training(
    data: Dataset,
    samples: int,
    names: Sequence[str] = DEFAULT_VALIDATION_PROXIES,
    *,
    budget_mflops: float = 146.0,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    train_config: TrainConfig = TrainConfig(),
    resamples: int = DEFAULT_RESAMPLES,
    progress: ProgressCallback | None = None,
) -> Validation:
    """Each proxy against short-training accuracy over ``samples`` architectures sampled from the space."""
    check_resamples(resamples)
    space = SearchSpace(budget_mflops=budget_mflops, resolution=data.resolution, num_classes=data.num_classes)
    items = []
    for index, genotype in enumerate(space.sample_architectures(samples, seed)):
        if progress is not None:
            progress(index, samples, f"training {genotype.arch_id}")
        trained = compute_proxies(genotype, ["train"], data=data, seed=seed, train_config=train_config)["train"]
        items.append((genotype.to_string(), data.fit(genotype), 100 * trained.value))
    budget = f"{train_config.epochs:g} epochs" if train_config.epochs is not None else f"{train_config.steps} steps"
    target = f"validation accuracy % after {budget} of training on {data.path}"
    scoring = {"data": data, "batch_size": batch_size, "resamples": resamples, "seed": seed}
    return _validate("train", target, items, names, progress, **scoring)


def validate_against_results(
    results: str | Path,
    names: Sequence[str] = DEFAULT_VALIDATION_PROXIES,
    *,
    data: Dataset | None = None,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resamples: int = DEFAULT_RESAMPLES,
    progress: ProgressCallback | None = None,
) -> Validation:
    """Each proxy against the user's trained accuracy: a CSV or JSON file (architecture, accuracy) or a study
    directory whose trials hold ``accuracy_top1`` (``nas.validation_results``). Architectures are scored as
    given (their own resolution), or fitted to ``data`` and scored on its images."""
    check_resamples(resamples)
    kind, target, items = read_results(results)
    if data is not None:
        items = [(label, data.fit(genotype), truth) for label, genotype, truth in items]
    return _validate(
        kind, target, items, names, progress, data=data, batch_size=batch_size, resamples=resamples, seed=seed
    )
