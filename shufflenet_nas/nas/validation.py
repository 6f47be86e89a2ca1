"""How well the proxies rank architectures: Kendall tau and Spearman rho against a ground truth.

Two ground truths: the papers' ImageNet top-1 accuracy (100 - published error) over every baseline that
has one, and short-training validation accuracy over architectures sampled from the search space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.proxies import (
    DEFAULT_BATCH_SIZE,
    REFERENCE_PROXIES,
    ZERO_COST_PROXIES,
    compute_proxies,
)
from shufflenet_nas.nas.training import TrainConfig
from shufflenet_nas.search_spaces.baselines import BASELINES
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.spaces import SearchSpace

ProgressCallback = Callable[[int, int, str], None]  # (done, total, what is being scored now)
DEFAULT_VALIDATION_PROXIES: tuple[str, ...] = (*ZERO_COST_PROXIES, *REFERENCE_PROXIES)


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
    """Per-architecture scores, the ground truth, and each proxy's rank correlations with it."""

    against: str  # "paper" or "train"
    target: str  # what the ground truth is, in words
    architectures: tuple[str, ...]  # baseline names or genotype strings
    truth: tuple[float, ...]
    scores: dict[str, tuple[float, ...]]
    seconds: dict[str, float]  # mean seconds per architecture, per proxy
    correlations: tuple[Correlation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "target": self.target,
            "n": len(self.architectures),
            "correlations": {c.proxy: {k: v for k, v in asdict(c).items() if k != "proxy"} for c in self.correlations},
            "mean_seconds": self.seconds,
            "architectures": [
                {"arch": arch, "truth": truth, **{name: values[i] for name, values in self.scores.items()}}
                for i, (arch, truth) in enumerate(zip(self.architectures, self.truth, strict=True))
            ],
        }


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
    score: Callable[[Genotype], dict[str, Any]],
    progress: ProgressCallback | None,
) -> Validation:
    scores: dict[str, list[float]] = {name: [] for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for index, (label, genotype, _) in enumerate(items):
        if progress is not None:
            progress(index, len(items), label)
        for name, result in score(genotype).items():
            scores[name].append(result.value)
            seconds[name].append(result.seconds)
    if progress is not None:
        progress(len(items), len(items), "done")
    truth = [t for _, _, t in items]
    return Validation(
        against,
        target,
        tuple(label for label, _, _ in items),
        tuple(truth),
        {name: tuple(values) for name, values in scores.items()},
        {name: float(np.mean(values)) for name, values in seconds.items()},
        tuple(rank_correlation(name, scores[name], truth) for name in names),
    )


def validate_against_paper(
    names: Sequence[str] = DEFAULT_VALIDATION_PROXIES,
    *,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
) -> Validation:
    """Rank correlation of each proxy with the papers' ImageNet top-1 accuracy over the published baselines."""
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
        lambda genotype: compute_proxies(genotype, names, seed=seed, batch_size=batch_size),
        progress,
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
    progress: ProgressCallback | None = None,
) -> Validation:
    """Rank correlation of each proxy with short-training accuracy over ``samples`` sampled architectures."""
    space = SearchSpace(budget_mflops=budget_mflops, resolution=data.resolution, num_classes=data.num_classes)
    items = []
    for index, genotype in enumerate(space.sample_architectures(samples, seed)):
        if progress is not None:
            progress(index, samples, f"training {genotype.arch_id}")
        trained = compute_proxies(genotype, ["train"], data=data, seed=seed, train_config=train_config)["train"]
        items.append((genotype.to_string(), genotype, 100 * trained.value))
    budget = f"{train_config.epochs:g} epochs" if train_config.epochs is not None else f"{train_config.steps} steps"
    return _validate(
        "train",
        f"validation accuracy % after {budget} of training on {data.path}",
        items,
        names,
        lambda genotype: compute_proxies(genotype, names, data=data, seed=seed, batch_size=batch_size),
        progress,
    )
