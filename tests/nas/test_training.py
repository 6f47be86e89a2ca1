from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shufflenet_nas import Dataset, InvalidArgumentError, TrainConfig, compute_proxies, load_dataset, short_train
from shufflenet_nas.search_spaces import BASELINES, Genotype


@pytest.fixture(scope="module")
def shapes(shapes_dir: Path) -> Dataset:
    return load_dataset(shapes_dir)


def test_short_training_learns_the_shapes_well_above_chance(shapes: Dataset, tiny_v2: Genotype) -> None:
    result = short_train(tiny_v2, shapes, TrainConfig(steps=100, batch_size=32), seed=0)
    chance = 1 / shapes.num_classes
    assert result.accuracy >= chance + 0.35  # 4 classes: chance is 25% on the 52 held-out images
    assert [step for step, _ in result.history] == [20, 40, 60, 80, 100]
    assert not result.pruned and not result.diverged and result.steps == 100
    assert result.final_loss < 0.5


def test_same_seed_same_accuracy_and_global_rng_untouched(shapes: Dataset, tiny_v1: Genotype) -> None:
    config = TrainConfig(steps=12, batch_size=16, eval_every=4)
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    first = short_train(tiny_v1, shapes, config, seed=1)
    assert torch.equal(torch.rand(2), expected)
    second = short_train(tiny_v1, shapes, config, seed=1)
    assert first == second and len(first.history) == 3
    assert short_train(tiny_v1, shapes, config, seed=2).final_loss != first.final_loss


def test_report_sees_every_evaluation_and_true_prunes(shapes: Dataset, tiny_v2: Genotype) -> None:
    seen: list[tuple[int, float]] = []

    def report(step: int, accuracy: float) -> bool:
        seen.append((step, accuracy))
        return step >= 6

    result = short_train(tiny_v2, shapes, TrainConfig(steps=30, batch_size=16, eval_every=3), report=report)
    assert [step for step, _ in seen] == [3, 6] and result.pruned and result.steps == 6
    assert result.history == tuple(seen) and result.accuracy == seen[-1][1]
    scores = compute_proxies(
        tiny_v2,
        ["train"],
        data=shapes,
        report=lambda step, value: True,
        train_config=TrainConfig(steps=30, batch_size=16, eval_every=5),
    )
    assert scores["train"].pruned and 0 <= scores["train"].value <= 1


def test_epoch_budget_and_config_errors(shapes: Dataset) -> None:
    assert TrainConfig(epochs=2, batch_size=32).total_steps(len(shapes.train_labels)) == 13  # ceil(2 * 204 / 32)
    assert TrainConfig(steps=7).total_steps(204) == 7
    with pytest.raises(InvalidArgumentError, match="steps=0: the training budget must be positive"):
        TrainConfig(steps=0)
    with pytest.raises(InvalidArgumentError, match="epochs=0: the training budget must be positive"):
        TrainConfig(epochs=0)
    with pytest.raises(InvalidArgumentError, match="batch_size=1: BatchNorm needs at least 2"):
        TrainConfig(batch_size=1)


def test_a_diverging_run_scores_zero(shapes: Dataset, tiny_v2: Genotype) -> None:
    result = short_train(tiny_v2, shapes, TrainConfig(steps=20, batch_size=16, lr=1e30))
    assert result.diverged and result.accuracy == 0.0 and result.steps < 20


def test_imagenet_baseline_is_fitted_to_the_data(shapes: Dataset) -> None:
    genotype = BASELINES["shufflenet_v2_x0_5"].genotype
    result = short_train(genotype, shapes, TrainConfig(steps=2, batch_size=8, val_images=8))
    assert result.steps == 2 and result.history[-1][0] == 2 and 0 <= result.accuracy <= 1
