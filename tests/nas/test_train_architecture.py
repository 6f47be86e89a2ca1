"""The training recipe, the engine and kill-safe training of one architecture (``nas.train_architecture``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from shufflenet_nas import Dataset, InvalidArgumentError, ShuffleNetNASError, build_model, load_dataset
from shufflenet_nas.nas.augment import crop_and_flip
from shufflenet_nas.nas.train_architecture import TrainedModel, TrainProgress, train_architecture
from shufflenet_nas.nas.training import Trainer, TrainRecipe, warmup_cosine
from shufflenet_nas.search_spaces import BASELINES, Genotype, resolve_arch

QUICK = TrainRecipe(epochs=3, batch_size=32, batchnorm_images=64)


@pytest.fixture(scope="module")
def shapes(shapes_dir: Path) -> Dataset:
    return load_dataset(shapes_dir)


def _curve(trained: TrainedModel) -> list[tuple[float, ...]]:
    """The figures of each epoch that a run determines (not its throughput)."""
    return [(r.epoch, r.loss, r.top1, r.top5, r.lr) for r in trained.history]


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_crop_and_flip_keeps_or_mirrors_the_image_without_cropping() -> None:
    images = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    same = crop_and_flip(images, generator, min_scale=1.0, flip=False)
    assert torch.allclose(same, images.float(), atol=1e-3)
    flipped = crop_and_flip(images, generator, min_scale=1.0, flip=True)
    mirrored = [torch.allclose(f, i.float().flip(-1), atol=1e-3) for f, i in zip(flipped, images, strict=True)]
    kept = [torch.allclose(f, i.float(), atol=1e-3) for f, i in zip(flipped, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and 0 < sum(mirrored) < 16


def test_crop_zooms_in_within_the_pixel_range_and_repeats_for_a_seed() -> None:
    side = 32
    columns = torch.arange(side, dtype=torch.uint8) * 8  # each pixel's value is 8x its column: a ramp
    images = columns.expand(64, 3, side, side).contiguous()
    first = crop_and_flip(images, torch.Generator().manual_seed(3), min_scale=0.25, flip=False)
    again = crop_and_flip(images, torch.Generator().manual_seed(3), min_scale=0.25, flip=False)
    assert torch.equal(first, again) and first.shape == images.shape
    assert first.min() >= 0 and first.max() <= 248 + 1e-3  # bilinear blends of pixels, nothing outside
    rows = first[:, 0, 0]
    assert (rows.diff(dim=1) >= -1e-3).all()  # not flipped: the ramp still rises left to right
    span = (rows[:, -1] - rows[:, 0]) / 248  # the share of the image's width each crop took
    smallest = math.sqrt(0.25 * 3 / 4) * (side - 1) / side - 0.05  # area 1/4 at the widest aspect, 3:4
    assert span.min() >= smallest and span.max() <= 1 and span.std() > 0.1


def test_warm_up_then_cosine() -> None:
    factor = warmup_cosine(4, 14)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5) and factor(14) == pytest.approx(0.0)
    assert warmup_cosine(0, 10)(0) == 1.0


def test_recipe_checks_and_round_trip() -> None:
    recipe = TrainRecipe(epochs=5, lr=0.2, flip=False)
    assert TrainRecipe(**recipe.to_dict()) == recipe
    assert "5 epochs, batch 32, SGD nesterov lr 0.2" in recipe.describe() and "flip" not in recipe.describe()
    with pytest.raises(InvalidArgumentError, match="epochs=0: give a whole number, 1 or more"):
        TrainRecipe(epochs=0)
    with pytest.raises(InvalidArgumentError, match="batch_size=1: give a whole number, 2 or more"):
        TrainRecipe(batch_size=1)
    with pytest.raises(InvalidArgumentError, match=r"lr=nan"):
        TrainRecipe(lr=math.nan)
    with pytest.raises(InvalidArgumentError, match="warmup_epochs=-1: give a non-negative number"):
        TrainRecipe(epochs=5, warmup_epochs=-1)


def test_no_weight_decay_on_batchnorm_and_biases(shapes: Dataset, tiny_v2: Genotype) -> None:
    trainer = Trainer(tiny_v2, shapes, TrainRecipe(weight_decay=1e-3), total_steps=10, seed=0)
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    norms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {id(m.weight) for m in norms} <= {id(p) for p in no_decay["params"]}
    assert trainer.model.fc.bias is not None and any(p is trainer.model.fc.bias for p in no_decay["params"])


def test_v2_0_5x_learns_two_clear_patterns_to_90_percent_in_a_few_epochs(stripes_dir: Path, tmp_path: Path) -> None:
    data = load_dataset(stripes_dir)
    trained = train_architecture(
        BASELINES["shufflenet_v2_x0_5"].genotype, data, TrainRecipe(epochs=4), out_dir=tmp_path
    )
    assert trained.top1 >= 0.9, [r.top1 for r in trained.history]
    assert trained.history[-1].loss < trained.history[0].loss
    assert trained.weights == tmp_path / f"{BASELINES['shufflenet_v2_x0_5'].genotype.arch_id}.pt"


def test_an_interrupted_run_resumes_to_the_same_final_weights(shapes: Dataset, tiny_v2: Genotype, tmp_path: Path):
    whole = train_architecture(tiny_v2, shapes, QUICK, out_dir=tmp_path / "whole", seed=4)
    assert whole.resumed_from_epoch is None and len(whole.history) == 3

    class Killed(Exception):
        pass

    def kill_in_epoch_3(progress: TrainProgress) -> None:
        if progress.epoch == 3 and progress.step == 2:
            raise Killed

    with pytest.raises(Killed):
        train_architecture(tiny_v2, shapes, QUICK, out_dir=tmp_path / "parts", seed=4, on_progress=kill_in_epoch_3)
    assert (tmp_path / "parts" / f"{tiny_v2.arch_id}.ckpt").is_file()
    resumed = train_architecture(tiny_v2, shapes, QUICK, out_dir=tmp_path / "parts", seed=4)
    assert resumed.resumed_from_epoch == 2 and _curve(resumed) == _curve(whole)
    first, second = _state(whole.weights), _state(resumed.weights)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert not (tmp_path / "parts" / f"{tiny_v2.arch_id}.ckpt").exists()  # removed once the run ended


def test_same_seed_same_weights_and_a_finished_run_is_reused(shapes: Dataset, tiny_v1: Genotype, tmp_path: Path):
    recipe = TrainRecipe(epochs=1, batch_size=32, batchnorm_images=64)
    first = train_architecture(tiny_v1, shapes, recipe, out_dir=tmp_path / "a", seed=1)
    second = train_architecture(tiny_v1, shapes, recipe, out_dir=tmp_path / "b", seed=1)
    other = train_architecture(tiny_v1, shapes, recipe, out_dir=tmp_path / "c", seed=2)
    a, b, c = (_state(t.weights) for t in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    again = train_architecture(tiny_v1, shapes, recipe, out_dir=tmp_path / "a", seed=1)
    assert again.reused and again.history == first.history and again.top1 == first.top1


def test_another_run_in_the_same_place_is_refused_unless_restarted(
    shapes: Dataset, tiny_v2: Genotype, tmp_path: Path
) -> None:
    recipe = TrainRecipe(epochs=1, batch_size=32, batchnorm_images=64)
    train_architecture(tiny_v2, shapes, recipe, out_dir=tmp_path)
    longer = TrainRecipe(epochs=2, batch_size=32, batchnorm_images=64)
    with pytest.raises(ShuffleNetNASError, match=r"is from another run: epochs=1 \(now epochs=2\); pass restart=True"):
        train_architecture(tiny_v2, shapes, longer, out_dir=tmp_path)
    with pytest.raises(ShuffleNetNASError, match=r"another run: seed: 0 \(now 3\)"):
        train_architecture(tiny_v2, shapes, recipe, out_dir=tmp_path, seed=3)
    assert len(train_architecture(tiny_v2, shapes, longer, out_dir=tmp_path, restart=True).history) == 2
    again = train_architecture(tiny_v2, shapes, longer, out_dir=tmp_path, restart=True)
    assert again.reused  # restart replaces other runs' files only: the same settings' weights are kept


def test_a_corrupt_checkpoint_is_set_aside_and_training_starts_afresh(
    shapes: Dataset, tiny_v2: Genotype, tmp_path: Path
) -> None:
    (tmp_path / f"{tiny_v2.arch_id}.ckpt").write_bytes(b"half a file")
    recipe = TrainRecipe(epochs=1, batch_size=32, batchnorm_images=64)
    with pytest.warns(RuntimeWarning, match=r"\.ckpt is corrupt: torch.load cannot read it"):
        trained = train_architecture(tiny_v2, shapes, recipe, out_dir=tmp_path)
    assert trained.resumed_from_epoch is None and list(tmp_path.glob("*.ckpt.corrupt-*"))


def test_trained_weights_load_back_with_their_genotype(shapes: Dataset, tiny_v2: Genotype, tmp_path: Path) -> None:
    recipe = TrainRecipe(epochs=1, batch_size=32, batchnorm_images=64)
    trained = train_architecture(tiny_v2, shapes, recipe, out_dir=tmp_path)
    genotype = resolve_arch(str(trained.weights))
    assert genotype.to_string() == trained.genotype and genotype.num_classes == 4  # fitted to the data
    model = build_model(genotype, weights=trained.weights).eval()
    state = _state(trained.weights)
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)
    with pytest.raises(ShuffleNetNASError, match="do not fit architecture"):
        build_model(tiny_v2, weights=trained.weights)  # 10 classes, not the data's 4


def test_top5_is_none_for_five_classes_or_fewer(shapes: Dataset, tiny_v2: Genotype, tmp_path: Path) -> None:
    trained = train_architecture(tiny_v2, shapes, TrainRecipe(epochs=1, batchnorm_images=64), out_dir=tmp_path)
    assert shapes.num_classes == 4 and trained.top5 is None and trained.history[-1].top5 is None
    assert trained.to_dict()["accuracy_top5"] is None and trained.history[-1].lr > 0  # the last step's rate


def test_batchnorm_statistics_come_from_a_sample_of_every_class(shapes: Dataset, tiny_v2: Genotype) -> None:
    trainer = Trainer(tiny_v2, shapes, TrainRecipe(batchnorm_images=64), seed=0)
    labels = shapes.train_labels[trainer._calibration]
    assert len(labels) == 64 and set(labels.tolist()) == {0, 1, 2, 3}  # the split is sorted by class


def test_resuming_with_another_thread_count_is_warned_about(shapes: Dataset, tiny_v2: Genotype, tmp_path: Path):
    class Killed(Exception):
        pass

    def kill_in_epoch_2(progress: TrainProgress) -> None:
        if progress.epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_architecture(tiny_v2, shapes, QUICK, out_dir=tmp_path, on_progress=kill_in_epoch_2)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(
            RuntimeWarning, match=rf"resuming with {threads + 1} CPU threads, the checkpoint was written"
        ):
            train_architecture(tiny_v2, shapes, QUICK, out_dir=tmp_path)
    finally:
        torch.set_num_threads(threads)
