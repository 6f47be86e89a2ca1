"""The training engine every trainer in the package shares: the recipe, the step loop and the evaluation.

``TrainRecipe`` is the one documented recipe of ``train``, in the spirit of the ShuffleNet papers and scaled to
small data: SGD with Nesterov momentum, weight decay on the weights of convolutions and linear layers only (none
on BatchNorm or biases), a linear warm-up then a cosine decay to zero, label smoothing, random-resized-crop and
flip augmentation, and mixed precision on a GPU. ``Trainer`` runs it step by step on a ``Dataset`` held in
memory; its whole state (model, optimiser, schedule, gradient scaler, random generator, step) is one
``state_dict``, so a run restored from it continues exactly as if it had never stopped (on CPU, bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from shufflenet_nas.errors import DeviceUnavailableError, InvalidArgumentError
from shufflenet_nas.nas.augment import crop_and_flip
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.search_spaces.builder import build
from shufflenet_nas.search_spaces.genotype import Genotype

EVAL_BATCH = 256


@dataclass(frozen=True)
class TrainRecipe:
    """How ``train`` trains: every figure it reports was made with one of these (stored beside the weights)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.05  # the peak learning rate, reached after the warm-up
    momentum: float = 0.9  # Nesterov
    weight_decay: float = 5e-4  # on conv and linear weights only
    warmup_epochs: float = 2.0  # linear warm-up (at most half the run), then cosine to zero
    label_smoothing: float = 0.1
    crop_scale: float = 0.35  # random-resized crop: the smallest area fraction kept; 1.0: no cropping
    flip: bool = True  # random horizontal flip
    # Before each evaluation, BatchNorm's running statistics are recomputed with the current weights over up to
    # this many training images, un-augmented ("precise BN", Wu & Johnson 2021); 0 keeps the running averages,
    # which lag far behind the weights on small data (a 2-class set: 57% held-out with them, 93% recomputed).
    batchnorm_images: int = 512
    # Residual units start as the identity (``ShuffleNet.zero_init_residual``): without it V1 g8 1.0x's loss
    # went from 0.83 to 6.4 after one warm-up step (lr 0.0036) on a 2-class set and reached 58% held-out after
    # 5 epochs; with it, 95%.
    zero_init_residual: bool = True
    mixed_precision: bool = True  # on a GPU: bf16 autocast, or fp16 with gradient scaling where bf16 is missing

    def __post_init__(self) -> None:
        for name, least in (("epochs", 1), ("batch_size", 2), ("batchnorm_images", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidArgumentError(f"{name}={value!r}: give a whole number, {least} or more")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidArgumentError(f"lr={self.lr}: the learning rate must be a positive number")
        for name in ("momentum", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name}={getattr(self, name)}: give a value in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InvalidArgumentError(f"weight_decay={self.weight_decay}: give a non-negative number")
        if not (math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0):
            raise InvalidArgumentError(f"warmup_epochs={self.warmup_epochs}: give a non-negative number")
        if not 0 < self.crop_scale <= 1:
            raise InvalidArgumentError(f"crop_scale={self.crop_scale}: give an area fraction in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line, e.g. ``30 epochs, batch 64, SGD nesterov lr 0.1 (2 warm-up epochs, cosine), ...``."""
        crop = f"random-resized crop {self.crop_scale:g}-1" if self.crop_scale < 1 else "no crop"
        return (
            f"{self.epochs} epoch{'s' * (self.epochs != 1)}, batch {self.batch_size}, "
            f"SGD nesterov lr {self.lr:g} momentum {self.momentum:g} "
            f"(warm-up {self.warmup_epochs:g} epochs or half the run, cosine), "
            f"weight decay {self.weight_decay:g} (not on BN/bias), "
            f"label smoothing {self.label_smoothing:g}, {crop}"
            + (", flip" if self.flip else "")
            + (", residual branches zero-initialised" if self.zero_init_residual else "")
            + (f", BatchNorm statistics recomputed on {self.batchnorm_images} images" if self.batchnorm_images else "")
        )


def training_device(device: str) -> str:
    """``device`` checked: "cpu", "cuda" (also "gpu") or "cuda:N"; "auto" is cuda where PyTorch sees a GPU, else
    cpu. A GPU PyTorch cannot see raises ``DeviceUnavailableError``."""
    wanted = {"gpu": "cuda", "auto": "cuda" if torch.cuda.is_available() else "cpu"}.get(device, device)
    try:
        kind = torch.device(wanted).type
    except RuntimeError:
        raise InvalidArgumentError(f"device={device!r}: give cpu, gpu, cuda:N or auto") from None
    if kind not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"device={device!r}: give cpu, gpu, cuda:N or auto")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device={device!r}: PyTorch {torch.__version__} sees no CUDA GPU; use device='cpu'"
        )
    return wanted


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The learning-rate factor of step ``s`` (0-based): ``(s + 1) / warmup_steps`` during the warm-up, then a
    cosine from 1 down to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass(frozen=True)
class Accuracy:
    """Held-out accuracy (0..1): top-1, and top-5 where there are more than 5 classes (else None: it would be 1)."""

    top1: float
    top5: float | None


class Trainer:
    """One network in training on ``data``: ``run(steps)`` trains, ``evaluate()`` validates, ``state_dict()`` /
    ``load_state_dict()`` save and restore everything a resumed run needs.

    ``steps_per_epoch`` is ``train size // batch``: every epoch visits a fresh seeded permutation and drops its
    incomplete tail (BatchNorm needs two images). ``total_steps`` (the schedule's length) defaults to
    ``recipe.epochs`` epochs. ``augment=False`` trains on the images as they are."""

    def __init__(
        self,
        genotype: Genotype,
        data: Dataset,
        recipe: TrainRecipe,
        *,
        total_steps: int | None = None,
        seed: int,
        device: str | torch.device = "cpu",
        augment: bool = True,
    ) -> None:
        train_size = len(data.train_labels)
        if train_size < 2 or len(data.val_labels) == 0:
            raise InvalidArgumentError(
                f"`data` ({data.path}) has {train_size} training and {len(data.val_labels)} validation images; "
                "training needs 2+ and 1+"
            )
        self.genotype = data.fit(genotype)
        self.data, self.recipe = data, recipe
        self.device = torch.device(device)
        self.batch = min(recipe.batch_size, train_size)
        self.steps_per_epoch = train_size // self.batch
        self.total_steps = total_steps or recipe.epochs * self.steps_per_epoch
        # BatchNorm statistics come from a fixed, seeded sample of the training split, in shuffled batches (an
        # ImageFolder is sorted by class: its first images are all of the first classes)
        sample = torch.randperm(train_size, generator=torch.Generator().manual_seed(seed))
        self._calibration = sample[: min(recipe.batchnorm_images, train_size)]
        self.augment = augment and (recipe.crop_scale < 1 or recipe.flip)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = build(self.genotype)
            if recipe.zero_init_residual:
                self.model.zero_init_residual()
            self.model.to(self.device)
        self.generator = torch.Generator().manual_seed(seed)
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.momentum > 0,
        )
        warmup = min(self.total_steps // 2, round(recipe.warmup_epochs * self.steps_per_epoch))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(warmup, self.total_steps))
        cuda = self.device.type == "cuda"
        self.autocast_dtype = None
        if cuda and recipe.mixed_precision:
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self.last_lr = 0.0
        self._order = torch.empty(0, dtype=torch.long)
        self._images = data.train_images.to(self.device)
        self._labels = data.train_labels.to(self.device)

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.step // self.steps_per_epoch

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 training images on the device -> normalised float inputs, augmented unless ``augment`` is off."""
        recipe = self.recipe
        if self.augment:
            images = crop_and_flip(images, self.generator, recipe.crop_scale, recipe.flip)
        return self.data.to_inputs(images)

    def train_step(self) -> float:
        """One optimiser step on the next batch; returns its loss (NaN or infinite: the run diverged)."""
        position = self.step % self.steps_per_epoch
        if position == 0:
            self._order = torch.randperm(len(self._labels), generator=self.generator)
        index = self._order[position * self.batch : (position + 1) * self.batch].to(self.device)
        inputs, labels = self.inputs(self._images[index]), self._labels[index]
        self.model.train()
        with self._autocast():
            loss = F.cross_entropy(self.model(inputs), labels, label_smoothing=self.recipe.label_smoothing)
        if not torch.isfinite(loss):
            return float(loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # this step's learning rate
        self.schedule.step()
        self.step += 1
        return float(loss.detach())

    @property
    def amp(self) -> bool:
        return self.autocast_dtype is not None

    def evaluate(self, index: torch.Tensor | None = None) -> Accuracy:
        """Top-1 and top-5 accuracy on the held-out images (those at ``index``, else all), in eval mode, after
        recomputing the BatchNorm statistics (``recipe.batchnorm_images``)."""
        if self.recipe.batchnorm_images:
            self.recalibrate_batchnorm()
        return evaluate(self.model, self.data, index, self.device, self.autocast_dtype)

    def recalibrate_batchnorm(self) -> None:
        """Replace every BatchNorm's running mean and variance by their exact averages over the first
        ``recipe.batchnorm_images`` training images (a fixed random sample, un-augmented, in training-size
        batches) with the current weights."""
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the batches that follow
        sample = self._calibration
        self.model.train()
        with torch.no_grad(), self._autocast():
            for start in range(0, len(sample) - 1, self.batch):  # a last batch of one image would fail BatchNorm
                index = sample[start : start + self.batch].to(self.device)
                self.model(self.data.to_inputs(self._images[index]))
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32, enabled=self.amp)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "order": self._order.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self._order = state["order"].clone()
        self.step = int(state["step"])


def evaluate(
    model: nn.Module,
    data: Dataset,
    index: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> Accuracy:
    """Top-1 and top-5 accuracy (top-5 None for 5 classes or fewer) of ``model`` in eval mode on the validation
    images at ``index`` (default: all of them)."""
    device = torch.device(device)
    index = torch.arange(len(data.val_labels)) if index is None else index
    k = min(5, data.num_classes)
    top1 = top5 = 0
    model.eval()
    autocast = torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None)
    with torch.no_grad(), autocast:
        for start in range(0, len(index), EVAL_BATCH):
            chunk = index[start : start + EVAL_BATCH]
            labels = data.val_labels[chunk].to(device)
            ranked = model(data.to_inputs(data.val_images[chunk].to(device))).topk(k, dim=1).indices
            hits = ranked == labels[:, None]
            top1 += int(hits[:, 0].sum())
            top5 += int(hits.any(dim=1).sum())
    return Accuracy(top1 / len(index), top5 / len(index) if data.num_classes > 5 else None)
