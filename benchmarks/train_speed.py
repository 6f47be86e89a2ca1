"""Training throughput: the project's training loop against a plain PyTorch loop, same network, same data.

    python benchmarks/train_speed.py [--arch shufflenet_v2_x0_5] [--threads 1] [--rounds 7] [--steps 20]
                                     [--epochs 1] [--train-images 1024] [--val-images 256] [--batch 32]

The data is an in-memory ``Dataset`` of random uint8 images (``--resolution`` px, ``--classes`` classes); the
network is ``--arch`` fitted to it (``data.fit``), built with the same seed on both sides, so both start from
the same weights. The plain loop is the textbook one and nothing else: a seeded permutation per epoch, the
package's own ``crop_and_flip`` and ``data.to_inputs`` (the same augmentation and normalisation), the model,
``F.cross_entropy(..., label_smoothing)``, ``zero_grad``, ``backward``, and ``torch.optim.SGD(model.parameters(),
lr, momentum, nesterov=True, weight_decay)``: one parameter group, no schedule, no checks, no callbacks.

Two ratios, each project images/s divided by plain images/s (above 1: the project is faster):

(a) step loop: ``Trainer.train_step()`` called ``--steps`` times against the plain loop for as many steps: the
    pure per-step overhead of the project's engine (two parameter groups, LambdaLR schedule step, loss
    finiteness check, gradient scaler calls, ``model.train()`` every step).
(b) whole path: one ``train_architecture`` call (``--epochs`` epochs, what ``shufflenet-nas train`` runs, with a
    light progress callback in place of the CLI's display; fresh output folder each round) against the plain loop
    for the same number of steps. Its wall time includes everything: building the model, hashing the data for
    the run's identity, BatchNorm recalibration and validation after every epoch (the recipe's defaults),
    checkpoint and weights writes. It is reported with a breakdown of where train_architecture's time goes; the
    plain loop does none of that work, so (b) measures what the whole command costs, not loop overhead; the
    same rounds' ratio with the evaluation's seconds taken out is printed beside it (no verdict on it). The
    evaluation's share scales with (BatchNorm images + validation images) / training images per epoch: large on
    this small data set, small on a large one (try ``--train-images``).

Both sides are timed in one process with ``torch.set_num_threads(--threads)``. After an untimed warm-up, each round
times the plain loop and the project's loop back to back, for the same number of steps, in alternating order (plain
first in rounds 1, 3, 5, ..., the project first in rounds 2, 4, ...), so a slow spell of a shared host falls on
both; the figure is the median over rounds of each round's ratio, with a 95% bootstrap interval of that median. The
verdict is PASS when the median ratio is 0.95 or more, FAIL otherwise; the exit code is 0 either way. The
defaults take about 100 s on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from shufflenet_nas.nas.augment import crop_and_flip
from shufflenet_nas.nas.data import Dataset
from shufflenet_nas.nas.train_architecture import TrainProgress, train_architecture
from shufflenet_nas.nas.training import Trainer, TrainRecipe
from shufflenet_nas.search_spaces import build, resolve_arch
from shufflenet_nas.search_spaces.genotype import Genotype

THRESHOLD = 0.95
WARMUP_STEPS = 3


def random_dataset(train: int, val: int, resolution: int, classes: int, seed: int = 0) -> Dataset:
    """Random uint8 images and labels, with the per-channel mean and std of the training images."""
    generator = torch.Generator().manual_seed(seed)
    train_images = torch.randint(0, 256, (train, 3, resolution, resolution), dtype=torch.uint8, generator=generator)
    val_images = torch.randint(0, 256, (val, 3, resolution, resolution), dtype=torch.uint8, generator=generator)
    scaled = train_images.double() / 255
    mean, std = scaled.mean(dim=(0, 2, 3)), scaled.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return Dataset(
        Path("<random in memory>"),
        "memory",
        tuple(f"class{i}" for i in range(classes)),
        train_images,
        torch.randint(0, classes, (train,), generator=generator),
        val_images,
        torch.randint(0, classes, (val,), generator=generator),
        (float(mean[0]), float(mean[1]), float(mean[2])),
        (float(std[0]), float(std[1]), float(std[2])),
    )


class PlainLoop:
    """The textbook training loop over the same in-memory data, augmentation and normalisation."""

    def __init__(self, genotype: Genotype, data: Dataset, recipe: TrainRecipe, seed: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # as Trainer builds it: the same initial weights
            self.model = build(genotype)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=True,
            weight_decay=recipe.weight_decay,
        )
        self.data, self.recipe = data, recipe
        self.generator = torch.Generator().manual_seed(seed)
        self.batch = min(recipe.batch_size, len(data.train_labels))
        self.steps_per_epoch = len(data.train_labels) // self.batch
        self.position = 0
        self.order = torch.empty(0, dtype=torch.long)
        self.last_loss = 0.0

    def run(self, steps: int) -> None:
        data, recipe, model, optimizer = self.data, self.recipe, self.model, self.optimizer
        model.train()
        for _ in range(steps):
            if self.position == 0:
                self.order = torch.randperm(len(data.train_labels), generator=self.generator)
            index = self.order[self.position * self.batch : (self.position + 1) * self.batch]
            images = crop_and_flip(data.train_images[index], self.generator, recipe.crop_scale, recipe.flip)
            loss = F.cross_entropy(
                model(data.to_inputs(images)), data.train_labels[index], label_smoothing=recipe.label_smoothing
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.position = (self.position + 1) % self.steps_per_epoch
        self.last_loss = float(loss.detach())


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``run()`` took, and what it returned."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def bootstrap_median(values: Sequence[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """The median of ``values`` and a 95% percentile-bootstrap interval of it."""
    array = np.asarray(values, dtype=np.float64)
    draws = np.random.default_rng(seed).choice(array, size=(resamples, len(array)), replace=True)
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    return float(np.median(array)), float(low), float(high)


def verdict(label: str, low: float, median: float, high: float) -> str:
    """PASS when the median ratio is THRESHOLD or more; the interval says how sure that is."""
    figures = f"median {median:.3f}, 95% CI [{low:.3f}, {high:.3f}]"
    if median < THRESHOLD:
        return f"FAIL {label}: {figures}, median below {THRESHOLD}"
    return f"PASS {label}: {figures}, median >= {THRESHOLD}"


@dataclass
class ProgressClock:
    """A light ``on_progress`` callback: the time of each step's report and of each epoch's record."""

    steps: list[float]
    records: list[tuple[float, float]]  # (time of the record, time of the epoch's last step report)

    def __call__(self, progress: TrainProgress) -> None:
        now = time.perf_counter()
        if progress.record is None:
            self.steps.append(now)
        else:
            self.records.append((now, self.steps[-1]))


def whole_run(genotype: Genotype, data: Dataset, recipe: TrainRecipe, seed: int) -> tuple[float, dict[str, float]]:
    """Wall seconds of one fresh ``train_architecture`` run, and its parts: training steps (the epochs' own
    throughput figures), evaluation (BatchNorm recalibration and validation) and the rest (set-up, files)."""
    clock = ProgressClock([], [])
    with tempfile.TemporaryDirectory(prefix="train_speed_") as folder:
        start = time.perf_counter()
        trained = train_architecture(genotype, data, recipe, out_dir=Path(folder), seed=seed, on_progress=clock)
        seconds = time.perf_counter() - start
    if trained.diverged:
        raise RuntimeError("train_architecture diverged: its timing would not be comparable; lower the lr")
    batch = min(recipe.batch_size, len(data.train_labels))
    images = len(data.train_labels) // batch * batch  # one epoch's training images
    training = sum(images / record.images_per_s for record in trained.history)
    evaluation = sum(after - before for after, before in clock.records)
    return seconds, {"training": training, "evaluation": evaluation, "rest": seconds - training - evaluation}


def interleave(
    rounds: int, plain: Callable[[], Any], project: Callable[[], Any], images: int
) -> tuple[list[float], list[float], list[float], list[Any]]:
    """Per round: plain images/s, project images/s, their ratio (project / plain), and what project returned."""
    plain_rates, project_rates, ratios, extras = [], [], [], []
    for number in range(rounds):
        if number % 2 == 0:
            plain_s, _ = timed(plain)
            project_s, extra = timed(project)
        else:
            project_s, extra = timed(project)
            plain_s, _ = timed(plain)
        plain_rates.append(images / plain_s)
        project_rates.append(images / project_s)
        ratios.append(plain_s / project_s)
        extras.append(extra)
    return plain_rates, project_rates, ratios, extras


def report(
    label: str, plain_rates: list[float], project_rates: list[float], ratios: list[float]
) -> tuple[float, float, float]:
    for number, (plain, project, ratio) in enumerate(zip(plain_rates, project_rates, ratios, strict=True), 1):
        print(f"  round {number}: plain {plain:.1f} img/s, project {project:.1f} img/s, ratio {ratio:.3f}")
    median, low, high = bootstrap_median(ratios)
    print(
        f"  images/s, median over rounds: plain {statistics.median(plain_rates):.1f}, "
        f"project {statistics.median(project_rates):.1f}"
    )
    print(f"  {label} project / plain: median {median:.3f}, 95% bootstrap CI [{low:.3f}, {high:.3f}]")
    return low, median, high


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="shufflenet_v2_x0_5", help="baseline name or genotype string")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds (default 7)")
    parser.add_argument("--steps", type=int, default=20, help="steps per loop per round in (a) (default 20)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each train_architecture run in (b)")
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--val-images", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("threads", "rounds", "steps", "epochs", "val_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: give 1 or more")
    if args.batch < 2 or args.train_images < args.batch:
        parser.error(f"--batch {args.batch} / --train-images {args.train_images}: need 2 <= batch <= train images")

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    data = random_dataset(args.train_images, args.val_images, args.resolution, args.classes, args.seed)
    genotype = data.fit(resolve_arch(args.arch))
    recipe = TrainRecipe(epochs=args.epochs, batch_size=args.batch)
    steps_per_epoch = args.train_images // args.batch
    fitted = "" if args.arch == genotype.to_string() else f" as {genotype.to_string()}"
    print(
        f"train speed: {args.arch}{fitted}; {data.describe()}; batch {args.batch}; "
        f"torch {torch.__version__} on cpu, torch.set_num_threads({args.threads}) "
        f"({platform.processor() or platform.machine()})"
    )
    print(f"recipe: {recipe.describe()}")

    # (a) the step loop
    total = WARMUP_STEPS + args.rounds * args.steps
    trainer = Trainer(genotype, data, recipe, total_steps=total, seed=args.seed, device="cpu")
    plain = PlainLoop(genotype, data, recipe, args.seed)
    losses: list[float] = []

    def project_steps() -> None:
        for _ in range(args.steps):
            losses.append(trainer.train_step())

    for _ in range(WARMUP_STEPS):
        trainer.train_step()
    plain.run(WARMUP_STEPS)
    print(
        f"(a) step loop: Trainer.train_step vs the plain loop, {args.rounds} rounds x {args.steps} steps "
        f"x {args.batch} images each, order alternating:"
    )
    step_rates = interleave(args.rounds, lambda: plain.run(args.steps), project_steps, args.steps * args.batch)
    if not all(math.isfinite(loss) for loss in losses) or not math.isfinite(plain.last_loss):
        raise RuntimeError("a loss became NaN or infinite: the timings would not be comparable; lower the lr")
    step_interval = report("(a)", *step_rates[:3])

    # (b) the whole train_architecture path
    warm_data = random_dataset(2 * args.batch, 2, args.resolution, args.classes, args.seed + 1)
    whole_run(genotype, warm_data, TrainRecipe(epochs=1, batch_size=args.batch), args.seed)  # untimed warm-up
    whole_plain = PlainLoop(genotype, data, recipe, args.seed)
    whole_plain.run(WARMUP_STEPS)
    steps = args.epochs * steps_per_epoch
    print(
        f"(b) whole path: train_architecture ({args.epochs} epoch(s) = {steps} steps, BatchNorm recalibration on "
        f"{min(recipe.batchnorm_images, args.train_images)} images and validation on {args.val_images} per epoch, "
        f"checkpoints, weights) vs the plain loop for {steps} steps, {args.rounds} rounds, order alternating:"
    )
    whole = interleave(
        args.rounds,
        lambda: whole_plain.run(steps),
        lambda: whole_run(genotype, data, recipe, args.seed),
        steps * args.batch,
    )
    whole_interval = report("(b)", *whole[:3])
    walls = [seconds for seconds, _ in whole[3]]
    shares = {part: sum(parts[part] for _, parts in whole[3]) / sum(walls) for part in ("training", "evaluation")}
    shares["rest"] = 1 - shares["training"] - shares["evaluation"]
    print(
        f"  train_architecture's wall time ({statistics.median(walls):.2f} s median): training steps "
        f"{shares['training']:.1%}, evaluation (BatchNorm recalibration + validation) {shares['evaluation']:.1%}, "
        f"the rest (set-up, data hash, checkpoint and weights files, callbacks) {shares['rest']:.1%}"
    )
    # The same rounds with the evaluation's seconds taken out: what the path costs besides the recipe's evaluation.
    images = steps * args.batch
    without = [
        (images / plain_rate) / (images / project_rate - parts["evaluation"])
        for plain_rate, project_rate, (_, parts) in zip(whole[0], whole[1], whole[3], strict=True)
    ]
    median, low, high = bootstrap_median(without)
    print(f"  (b) without the evaluation's time, project / plain: median {median:.3f}, 95% CI [{low:.3f}, {high:.3f}]")

    print(verdict("(a) step loop, Trainer.train_step / plain", *step_interval))
    print(verdict("(b) whole path, train_architecture / plain (includes per-epoch evaluation)", *whole_interval))
    return {
        "threads": args.threads,
        "step": {
            "plain_images_per_s": step_rates[0],
            "project_images_per_s": step_rates[1],
            "ratios": step_rates[2],
            "interval": step_interval,
        },
        "whole": {
            "plain_images_per_s": whole[0],
            "project_images_per_s": whole[1],
            "ratios": whole[2],
            "interval": whole_interval,
            "shares": shares,
            "ratios_without_evaluation": without,
        },
    }


if __name__ == "__main__":
    main()
