"""Short-training proxy: train a fresh network for a fixed budget on a dataset, report validation accuracy.

Deterministic on CPU for a seed: the initial weights, the batch order and the validation subset all come
from seeded generators, and the global torch RNG is left as it was. Validation accuracy is reported every
``eval_every`` steps (5 times per run by default) through ``report(step, accuracy) -> bool``; True stops the
run (a pruned trial), so a search can wire optuna's ``trial.report`` + ``trial.should_prune`` into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.search_spaces.builder import build
from shufflenet_nas.search_spaces.genotype import Genotype

ReportCallback = Callable[[int, float], bool]


@dataclass(frozen=True)
class TrainConfig:
    """The training budget and recipe: SGD with Nesterov momentum and a cosine learning-rate decay."""

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
    genotype = data.fit(genotype)
    train_size = len(data.train_labels)
    if train_size < 2 or len(data.val_labels) == 0:
        raise InvalidArgumentError(
            f"`data` ({data.path}) has {train_size} training and {len(data.val_labels)} validation images; "
            "short training needs 2+ and 1+"
        )
    batch = min(config.batch_size, train_size)
    total = config.total_steps(train_size)
    eval_every = config.eval_every or max(1, total // 5)
    generator = torch.Generator().manual_seed(seed)
    val_index = torch.randperm(len(data.val_labels), generator=generator)[: config.val_images]
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
        torch.manual_seed(seed)
        model = build(genotype)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=True,
            weight_decay=config.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total))
        )
        history: list[tuple[int, float]] = []
        order = torch.empty(0, dtype=torch.long)
        for step in range(1, total + 1):
            if len(order) < batch:  # a new epoch; the incomplete tail is dropped (BatchNorm needs 2+ images)
                order = torch.randperm(train_size, generator=generator)
            index, order = order[:batch], order[batch:]
            model.train()
            loss = F.cross_entropy(model(data.to_inputs(data.train_images[index])), data.train_labels[index])
            if not torch.isfinite(loss):
                history.append((step, 0.0))
                return TrainResult(0.0, step, False, True, tuple(history), float(loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % eval_every == 0 or step == total:
                history.append((step, evaluate(model, data, val_index)))
                if report is not None and report(step, history[-1][1]):
                    return TrainResult(history[-1][1], step, True, False, tuple(history), float(loss.detach()))
    return TrainResult(history[-1][1], total, False, False, tuple(history), float(loss.detach()))


def evaluate(model: nn.Module, data: Dataset, index: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of ``model`` in eval mode on the validation images at ``index``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            chunk = index[start : start + batch_size]
            logits = model(data.to_inputs(data.val_images[chunk]))
            correct += int((logits.argmax(1) == data.val_labels[chunk]).sum())
    return correct / len(index)
