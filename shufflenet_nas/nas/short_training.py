"""Short-training proxy: train a fresh network for a fixed budget on a dataset, report validation accuracy.

It runs the shared engine (``nas.training.Trainer``) with a plain recipe: SGD with Nesterov momentum and a cosine
decay, no warm-up, no augmentation, no label smoothing. Deterministic on CPU for a seed: the initial weights, the
batch order and the validation subset all come from seeded generators, and the global torch RNG is left as it
was. Validation accuracy is reported every ``eval_every`` steps (5 times per run by default) through
``report(step, accuracy) -> bool``; True stops the run (a pruned trial), so a search can wire optuna's
``trial.report`` + ``trial.should_prune`` into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.training import Trainer, TrainRecipe
from shufflenet_nas.search_spaces.genotype import Genotype

ReportCallback = Callable[[int, float], bool]


@dataclass(frozen=True)
class TrainConfig:
    """The short-training budget: SGD with Nesterov momentum and a cosine learning-rate decay."""

    steps: int = 200
    epochs: float | None = None  # when set, overrides ``steps``: epochs over the training split
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eval_every: int | None = None  # validate every this many steps; default: 5 times per run
    val_images: int = 2000  # validate on a fixed subset of at most this many held-out images

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise InvalidArgumentError(f"steps={self.steps}: the training budget must be positive")
        if self.epochs is not None and not self.epochs > 0:
            raise InvalidArgumentError(f"epochs={self.epochs}: the training budget must be positive")
        if self.batch_size < 2:
            raise InvalidArgumentError(f"batch_size={self.batch_size}: BatchNorm needs at least 2 images")
        if self.eval_every is not None and self.eval_every < 1:
            raise InvalidArgumentError(f"eval_every={self.eval_every}: must be positive")
        if self.val_images < 1:
            raise InvalidArgumentError(f"val_images={self.val_images}: must be positive")

    def total_steps(self, train_size: int) -> int:
        """Optimizer steps for a training split of ``train_size`` images."""
        if self.epochs is None:
            return self.steps
        return max(1, math.ceil(self.epochs * train_size / min(self.batch_size, train_size)))

    def recipe(self) -> TrainRecipe:
        """This budget as the engine's recipe: no warm-up, augmentation, label smoothing,
        BatchNorm recalibration or zero-initialised residual branches."""
        return TrainRecipe(
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            warmup_epochs=0,
            label_smoothing=0,
            crop_scale=1.0,
            flip=False,
            mixed_precision=False,
            batchnorm_images=0,
            zero_init_residual=False,
        )


@dataclass(frozen=True)
class TrainResult:
    """Validation accuracy (0..1) after the last evaluation, and how the run went."""

    accuracy: float
    steps: int
    pruned: bool  # ``report`` asked to stop
    diverged: bool  # the training loss became NaN or infinite: accuracy is 0
    history: tuple[tuple[int, float], ...]  # (step, validation accuracy) at every evaluation
    final_loss: float  # training loss of the last step


def short_train(
    genotype: Genotype,
    data: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    seed: int = 0,
    report: ReportCallback | None = None,
) -> TrainResult:
    """Train ``genotype`` (fitted to the data's resolution and classes) from scratch and validate it."""
    total = config.total_steps(len(data.train_labels))
    trainer = Trainer(genotype, data, config.recipe(), total_steps=total, seed=seed, augment=False)
    eval_every = config.eval_every or max(1, total // 5)
    val_index = torch.randperm(len(data.val_labels), generator=torch.Generator().manual_seed(seed))
    val_index = val_index[: config.val_images]
    history: list[tuple[int, float]] = []
    loss = math.nan
    with torch.inference_mode(False), torch.enable_grad():
        while trainer.step < total:
            loss = trainer.train_step()
            if not math.isfinite(loss):
                history.append((trainer.step + 1, 0.0))
                return TrainResult(0.0, trainer.step + 1, False, True, tuple(history), loss)
            step = trainer.step
            if step % eval_every == 0 or step == total:
                history.append((step, trainer.evaluate(val_index).top1))
                if report is not None and report(step, history[-1][1]):
                    return TrainResult(history[-1][1], step, True, False, tuple(history), loss)
    return TrainResult(history[-1][1], total, False, False, tuple(history), loss)
