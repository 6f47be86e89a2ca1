"""Training what a study found: its Pareto front, its best architectures or chosen trials, and the paper models
it was seeded with, one after another with one recipe and seed. Weights go beside the study
(``<study>/weights/<arch_id>.pt``), accuracy into the study (``trained/<arch_id>``, see ``rows.TRAINED_PREFIX``),
where ``show``, ``summarise`` and ``validate-proxy --against STUDY`` read it. A killed run resumes where it was:
finished architectures are not trained again, the one in progress continues from its last epoch.
``refine_by_training`` is ``search --proxy-refine``: the study then ranks by trained top-1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.train_architecture import (
    TrainedModel,
    TrainProgress,
    data_identity,
    other_run,
    train_architecture,
)
from shufflenet_nas.nas.training import TrainRecipe
from shufflenet_nas.results.best import pareto_front
from shufflenet_nas.results.rows import RANK_ACCURACY, RANK_PROXY, TRAINED_PREFIX, TrialRow
from shufflenet_nas.results.summary import summarise
from shufflenet_nas.search_spaces import Genotype

WEIGHTS_DIR = "weights"


def record_training(study: optuna.Study, row: TrialRow, trained: TrainedModel, study_dir: Path) -> dict[str, Any]:
    """Store ``trained``'s figures in the study as ``trained/<arch_id>``; returns the record."""
    weights = trained.weights.relative_to(study_dir) if trained.weights.is_relative_to(study_dir) else trained.weights
    record = {
        "accuracy_top1": trained.top1,
        "accuracy_top5": trained.top5,
        "epochs": len(trained.history),
        "diverged": trained.diverged,
        "trial": row.number,
        "baseline": row.baseline,
        "genotype": row.genotype,
        "trained_genotype": trained.genotype,
        "recipe": trained.recipe.to_dict(),
        "recipe_text": trained.recipe.describe(),
        "seed": trained.seed,
        "data": trained.data,
        "weights": str(weights),
        "device": trained.device,
    }
    study.set_user_attr(TRAINED_PREFIX + row.arch_id, record)
    return record


def train_rows(
    study: optuna.Study,
    rows: list[TrialRow],
    data: Dataset,
    recipe: TrainRecipe,
    *,
    study_dir: Path,
    seed: int = 0,
    device: str = "cpu",
    restart: bool = False,
    on_start: Callable[[TrialRow, int, int], None] | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
) -> list[tuple[TrialRow, TrainedModel]]:
    """Train ``rows`` one after another (``train_architecture`` with weights in ``<study_dir>/weights``) and
    record each in ``study`` as it finishes. ``on_start(row, index, count)`` announces each. Files another run
    left are refused before anything trains (unless ``restart``), so a study is never left half retrained."""
    if not restart:
        for row in rows:
            genotype = Genotype.from_string(row.genotype)
            conflict = other_run(genotype, data, recipe, out_dir=study_dir / WEIGHTS_DIR, name=row.arch_id, seed=seed)
            if conflict:
                raise ShuffleNetNASError(
                    f"{conflict}; train with the settings of the weights there, or pass restart=True to replace "
                    "the weights that differ"
                )
    done = []
    for index, row in enumerate(rows):
        if on_start is not None:
            on_start(row, index, len(rows))
        trained = train_architecture(
            Genotype.from_string(row.genotype),
            data,
            recipe,
            out_dir=study_dir / WEIGHTS_DIR,
            name=row.arch_id,
            seed=seed,
            device=device,
            restart=restart,
            on_progress=on_progress,
        )
        record_training(study, row, trained, study_dir)
        done.append((row, trained))
    return done


def refine_by_training(
    study: optuna.Study,
    k: int,
    data: Dataset,
    recipe: TrainRecipe,
    *,
    study_dir: Path,
    seed: int = 0,
    device: str = "cpu",
    on_start: Callable[[TrialRow, int, int], None] | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
) -> list[tuple[TrialRow, TrainedModel]]:
    """``search --proxy-refine K``: train the ``k`` highest-proxy architectures of the Pareto front and the paper
    models the families are compared with, then make the study rank by trained top-1 (its ``rank_by``) of the
    architectures trained with this recipe, seed and data (its ``refine`` setting)."""
    if k < 1:
        raise InvalidArgumentError(f"k={k}: give the number of front architectures to train, 1 or more")
    study.set_user_attr("rank_by", RANK_PROXY)  # the families' references by proxy, whatever a refinement left
    summary = summarise(study)
    front = sorted(pareto_front(summary.trials), key=lambda row: (-row.proxy, row.latency_ms))[:k]
    rows = list({row.arch_id: row for row in [*front, *summary.references.values()]}.values())
    done = train_rows(
        study,
        rows,
        data,
        recipe,
        study_dir=study_dir,
        seed=seed,
        device=device,
        restart=True,  # the refinement's recipe is the one the study ranks by: weights of other recipes go
        on_start=on_start,
        on_progress=on_progress,
    )
    refine = {"k": k, "epochs": recipe.epochs, "trained": [row.number for row in rows]}
    refine |= {"recipe": recipe.to_dict(), "seed": seed, "data": data_identity(data)["fingerprint"]}
    study.set_user_attr("refine", refine)
    study.set_user_attr("rank_by", RANK_ACCURACY)
    return done
