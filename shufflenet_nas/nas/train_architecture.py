"""Training one architecture with the recipe, kill-safe: a checkpoint every epoch, an exact resume, weights on disk.

``train_architecture`` trains ``genotype`` (fitted to the data) for ``recipe.epochs`` epochs and validates it after
each one (top-1, top-5). In ``out_dir`` it keeps two files named after the architecture:

- ``<name>.ckpt``, the checkpoint, rewritten atomically after every epoch: model, optimiser, schedule, gradient
  scaler, random generator, epoch, the curve so far, and what identifies the run (genotype, recipe, seed, data).
  A run with the same identity resumes from it, exactly (on CPU, with the same number of threads, the final
  weights are bit for bit those of an uninterrupted run; another thread count is warned about); another identity
  is refused, naming what differs (``other_run``). It is deleted when the run ends.
- ``<name>.pt``, the result: the state dict with its genotype, recipe, seed, data and curve (``load_weights`` and
  ``build_model(arch, weights=...)`` read it; so does ``resolve_arch``, for the genotype). A finished run with
  the same identity is not trained again.

Files are read with ``torch.load(weights_only=True)``: plain tensors and containers, never code.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.jsonfile import set_aside
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.training import Trainer, TrainRecipe
from shufflenet_nas.search_spaces.genotype import Genotype

CHECKPOINT_FORMAT = "shufflenet-nas checkpoint 1"
WEIGHTS_FORMAT = "shufflenet-nas weights 1"


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss, held-out accuracy (0..1) after it, training throughput."""

    epoch: int
    loss: float
    top1: float
    top5: float | None  # None for 5 classes or fewer
    images_per_s: float
    lr: float  # the learning rate of the epoch's last step


@dataclass(frozen=True)
class TrainProgress:
    """What a progress display needs, sent after every step (``record`` is set at the end of an epoch)."""

    epoch: int  # the epoch in progress, 1-based
    epochs: int
    step: int  # steps done in this epoch
    steps_per_epoch: int
    loss: float
    images_per_s: float
    record: EpochRecord | None = None


@dataclass(frozen=True)
class TrainedModel:
    """A finished training run: its figures and where its weights are."""

    arch_id: str  # of the architecture as given (before it was fitted to the data)
    genotype: str  # as trained: the data's resolution and class count
    recipe: TrainRecipe
    seed: int
    data: dict[str, Any]  # data_identity(): path, format, classes, split sizes, resolution, fingerprint
    history: tuple[EpochRecord, ...]
    weights: Path
    device: str
    resumed_from_epoch: int | None = None  # the checkpoint's epoch, where the run resumed one
    reused: bool = False  # the weights were there already, from the same run: nothing was trained
    diverged: bool = False  # the loss became NaN or infinite: the run stopped
    seconds: float = 0.0  # training time in this process

    @property
    def top1(self) -> float:
        return self.history[-1].top1 if self.history and not self.diverged else 0.0

    @property
    def top5(self) -> float | None:
        """Top-5 accuracy; None for 5 classes or fewer."""
        return self.history[-1].top5 if self.history and not self.diverged else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch_id": self.arch_id,
            "genotype": self.genotype,
            "accuracy_top1": self.top1,
            "accuracy_top5": self.top5,
            "epochs": len(self.history),
            "recipe": self.recipe.to_dict(),
            "recipe_text": self.recipe.describe(),
            "seed": self.seed,
            "data": self.data,
            "history": [{**asdict(r), "loss": r.loss if math.isfinite(r.loss) else None} for r in self.history],
            "weights": str(self.weights),
            "device": self.device,
            "resumed_from_epoch": self.resumed_from_epoch,
            "reused": self.reused,
            "diverged": self.diverged,
            "seconds": round(self.seconds, 3),
        }


@functools.lru_cache(maxsize=4)  # a study's run checks and trains every architecture on one Dataset
def data_identity(data: Dataset) -> dict[str, Any]:
    """What identifies ``data``: where and what it is, and a hash of every image and label (BLAKE2b, 16 bytes).
    The same dict for the same Dataset object: do not change it."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (data.train_images, data.train_labels, data.val_images, data.val_labels):
        digest.update(tensor.contiguous().numpy().tobytes())
    digest.update("\0".join(data.classes).encode())
    return {
        "path": str(data.path),
        "format": data.format,
        "classes": data.num_classes,
        "train_images": len(data.train_labels),
        "val_images": len(data.val_labels),
        "resolution": data.resolution,
        "fingerprint": digest.hexdigest(),
        "description": data.describe(),
    }


def _identity(genotype: Genotype, recipe: TrainRecipe, seed: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"genotype": genotype.to_string(), "recipe": recipe.to_dict(), "seed": seed, "data": data["fingerprint"]}


def _difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    """The first setting in which two identities differ, as ``name=stored (now name=wanted)``."""
    for key in ("genotype", "seed", "data"):
        if stored.get(key) != wanted[key]:
            what = {"data": "data (another data set, or changed images)"}.get(key, key)
            return f"{what}: {stored.get(key)!r} (now {wanted[key]!r})"
    old, new = stored.get("recipe") or {}, wanted["recipe"]
    for key in new:
        if old.get(key) != new[key]:
            return f"{key}={old.get(key)!r} (now {key}={new[key]!r})"
    return "the recipe"


def save_atomic(data: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, flushed to disk, then renamed over ``path``: a kill at
    any moment leaves the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as file:
            torch.save(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ShuffleNetNASError(f"cannot write {path}: {error.strerror}; free space or pick another --out") from None


def read_trained_file(path: Path, kind: str) -> dict[str, Any] | None:
    """A checkpoint (``kind`` CHECKPOINT_FORMAT) or weights file; None if absent. An unreadable or foreign file
    is set aside (``<name>.corrupt-<time>``) with a warning, and None returned."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises pickle, zip and runtime errors of many kinds
        set_aside(path, f"torch.load cannot read it ({type(error).__name__})")
        return None
    if not isinstance(data, dict) or data.get("format") != kind:
        set_aside(path, f"it is not a {kind} file")
        return None
    return data


def other_run(
    genotype: Genotype, data: Dataset, recipe: TrainRecipe, *, out_dir: Path, name: str | None = None, seed: int = 0
) -> str | None:
    """Why ``train_architecture`` with these settings would refuse the files in ``out_dir`` (they come from
    another run: ``<path> is from another run: epochs=10 (now epochs=5)``); None where it would not."""
    return _Run(genotype, data, recipe, Path(out_dir), name, seed).conflict()


class _Run:
    """One training run's files and identity."""

    def __init__(
        self, genotype: Genotype, data: Dataset, recipe: TrainRecipe, out_dir: Path, name: str | None, seed: int
    ) -> None:
        name = name or genotype.arch_id
        self.checkpoint, self.weights = out_dir / f"{name}.ckpt", out_dir / f"{name}.pt"
        self.fitted = data.fit(genotype)
        self.data = data_identity(data)
        self.identity = _identity(self.fitted, recipe, seed, self.data)

    def stored(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The finished run's weights and the checkpoint found on disk (None where absent or unreadable)."""
        return read_trained_file(self.weights, WEIGHTS_FORMAT), read_trained_file(self.checkpoint, CHECKPOINT_FORMAT)

    def conflict(self) -> str | None:
        for stored, path in zip(self.stored(), (self.weights, self.checkpoint), strict=True):
            if stored is not None and stored.get("identity") != self.identity:
                return f"{path} is from another run: {_difference(stored.get('identity') or {}, self.identity)}"
        return None


def train_architecture(
    genotype: Genotype,
    data: Dataset,
    recipe: TrainRecipe = TrainRecipe(),
    *,
    out_dir: Path,
    name: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    restart: bool = False,
    on_progress: Callable[[TrainProgress], None] | None = None,
) -> TrainedModel:
    """Train ``genotype`` on ``data`` with ``recipe`` (see the module docstring); files go to ``out_dir`` as
    ``<name>.ckpt`` / ``<name>.pt`` (``name`` defaults to the arch id). Files a run with other settings left there
    are refused, naming the difference; ``restart`` replaces them instead. Files of these very settings are
    always used: finished weights are returned as they are, a checkpoint is resumed."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidArgumentError(f"out_dir={str(out_dir)!r}: cannot create it ({error.strerror})") from None
    run = _Run(genotype, data, recipe, out_dir, name, seed)
    finished, checkpoint = run.stored()
    for stored, path in ((finished, run.weights), (checkpoint, run.checkpoint)):
        if stored is not None and stored.get("identity") != run.identity:
            if not restart:
                raise ShuffleNetNASError(f"{run.conflict()}; pass restart=True to replace it, or another `out_dir`")
            path.unlink()
    if finished is not None and finished.get("identity") == run.identity:
        run.checkpoint.unlink(missing_ok=True)  # left by a run killed between writing its weights and this
        return _result(genotype, run, recipe, seed, finished["history"], finished.get("device", device), reused=True)
    if recipe.batch_size > len(data.train_labels):
        warnings.warn(
            f"batch_size={recipe.batch_size} is more than the {len(data.train_labels)} training images: every "
            f"batch is the whole training split",
            RuntimeWarning,
            stacklevel=2,
        )
    threads = torch.get_num_threads()
    with torch.inference_mode(False), torch.enable_grad():
        trainer = Trainer(run.fitted, data, recipe, seed=seed, device=device)
        history: list[dict[str, Any]] = []
        resumed = None
        if checkpoint is not None and checkpoint.get("identity") == run.identity:
            trainer.load_state_dict(checkpoint["trainer"])
            history, resumed = list(checkpoint["history"]), trainer.epoch
            if checkpoint.get("threads") != threads and torch.device(device).type == "cpu":
                warnings.warn(
                    f"resuming with {threads} CPU threads, the checkpoint was written with {checkpoint.get('threads')}:"
                    " the result is not bit for bit the uninterrupted run's (set `threads` as before)",
                    RuntimeWarning,
                    stacklevel=2,
                )
        started = time.perf_counter()
        diverged = False
        while trainer.epoch < recipe.epochs and not diverged:
            record, diverged = _epoch(trainer, recipe.epochs, on_progress)
            history.append(asdict(record))
            if not diverged:
                state = {"format": CHECKPOINT_FORMAT, "identity": run.identity, "trainer": trainer.state_dict()}
                save_atomic({**state, "history": history, "threads": threads}, run.checkpoint)
        weights = {
            "format": WEIGHTS_FORMAT,
            "identity": run.identity,
            "genotype": run.fitted.to_string(),
            "arch_id": genotype.arch_id,
            "state_dict": trainer.model.state_dict(),
            "recipe": recipe.to_dict(),
            "seed": seed,
            "data": run.data,
            "history": history,
            "diverged": diverged,
            "device": device,
            "threads": threads,
        }
    save_atomic(weights, run.weights)
    run.checkpoint.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return _result(genotype, run, recipe, seed, history, device, resumed=resumed, diverged=diverged, seconds=seconds)


def _epoch(
    trainer: Trainer, epochs: int, on_progress: Callable[[TrainProgress], None] | None
) -> tuple[EpochRecord, bool]:
    """Train one epoch and validate; returns its record and whether the loss diverged."""
    epoch = trainer.epoch + 1
    losses: list[float] = []
    started = time.perf_counter()
    for position in range(1, trainer.steps_per_epoch + 1):
        loss = trainer.train_step()
        if not math.isfinite(loss):
            return EpochRecord(epoch, loss, 0.0, None, 0.0, trainer.last_lr), True
        losses.append(loss)
        rate = position * trainer.batch / max(time.perf_counter() - started, 1e-9)
        if on_progress is not None:
            on_progress(TrainProgress(epoch, epochs, position, trainer.steps_per_epoch, loss, rate))
    rate = trainer.steps_per_epoch * trainer.batch / max(time.perf_counter() - started, 1e-9)
    accuracy = trainer.evaluate()
    record = EpochRecord(epoch, sum(losses) / len(losses), accuracy.top1, accuracy.top5, rate, trainer.last_lr)
    if on_progress is not None:
        steps = trainer.steps_per_epoch
        on_progress(TrainProgress(epoch, epochs, steps, steps, record.loss, rate, record))
    return record, False


def _result(
    genotype: Genotype,
    run: _Run,
    recipe: TrainRecipe,
    seed: int,
    history: list[dict[str, Any]],
    device: str,
    *,
    resumed: int | None = None,
    diverged: bool = False,
    seconds: float = 0.0,
    reused: bool = False,
) -> TrainedModel:
    records = tuple(EpochRecord(**record) for record in history)
    return TrainedModel(
        arch_id=genotype.arch_id,
        genotype=run.fitted.to_string(),
        recipe=recipe,
        seed=seed,
        data=run.data,
        history=records,
        weights=run.weights,
        device=device,
        resumed_from_epoch=resumed,
        reused=reused,
        diverged=diverged or any(not math.isfinite(r.loss) for r in records),
        seconds=seconds,
    )
