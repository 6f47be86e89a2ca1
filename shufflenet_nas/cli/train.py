"""The train command: one architecture, or what a study found, trained with the recipe on the user's data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shufflenet_nas.cli.common import (
    Choice,
    JsonOption,
    arch_from_argument,
    choice_option,
    only_from_a_study,
    selection_options,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.errors import UsageError, parameters_of, show_warning
from shufflenet_nas.cli.progress import progress
from shufflenet_nas.results.selection import Selection
from shufflenet_nas.units import percent

if TYPE_CHECKING:
    import optuna

    from shufflenet_nas.nas.data import Dataset
    from shufflenet_nas.nas.train_architecture import TrainedModel, TrainProgress
    from shufflenet_nas.nas.training import TrainRecipe
    from shufflenet_nas.results.rows import TrialRow

Device = Choice("Device", "auto cpu gpu")
DeviceOption = choice_option(Device, "--device", "auto (a CUDA GPU where PyTorch sees one, else cpu), cpu or gpu.")


@selection_options(baselines=True)
def train(
    selection: Selection,
    source: Annotated[
        str,
        typer.Argument(
            help="ARCH (a baseline name, genotype string, JSON file or trained .pt) or a results/<study> directory."
        ),
    ],
    data: Annotated[Path, typer.Option(help="The images: an ImageFolder or CIFAR-10/100 python folder.")],
    epochs: Annotated[int, typer.Option(help="Epochs over the training split.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (after the warm-up).")] = 0.05,
    flip: Annotated[
        bool, typer.Option(help="Random horizontal flips (turn off where a mirror image means another class).")
    ] = True,
    resolution: Annotated[
        int | None, typer.Option(help="Resize ImageFolder images to this square size (default: their common size).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, batch order and augmentation.")] = 0,
    device: DeviceOption = Device.auto,
    threads: Annotated[int | None, typer.Option(help="CPU threads for training (default: PyTorch's).")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the checkpoint and weights of ARCH (default results/train/<data>)."),
    ] = None,
    restart: Annotated[bool, typer.Option(help="Discard a checkpoint or weights from other settings.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Train ARCH, or what a study found, on your images with one fixed recipe; top-1 / top-5 every epoch.

    The recipe: SGD with Nesterov momentum, warm-up then cosine, weight decay (none on BatchNorm and biases),
    label smoothing 0.1, random-resized crop and flip, BatchNorm statistics recomputed before each evaluation,
    mixed precision on a GPU. A checkpoint is written after every epoch: the same command resumes a killed run.

    Examples: shufflenet-nas train shufflenet_v2_x0_5 --data digits/ --epochs 10;
    shufflenet-nas train results/cpu-146M-mixed --pareto --data digits/
    """
    import torch

    from shufflenet_nas.nas.data import load_dataset
    from shufflenet_nas.nas.training import TrainRecipe, training_device

    study_dir = Path(source)
    is_study = study_dir.is_dir() and (study_dir / "study.db").is_file()
    if study_dir.is_dir() and not is_study:
        raise UsageError(f"SOURCE {source}: a directory with no study.db; give a results/<study> directory or ARCH")
    if not is_study:
        only_from_a_study(selection, source)
    if is_study and out_dir is not None:
        raise UsageError(f"--out: a study's weights go to {study_dir / 'weights'}; leave --out out")
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads {threads}: give 1 or more")
        torch.set_num_threads(threads)
    recipe = TrainRecipe(epochs=epochs, batch_size=batch_size, lr=lr, flip=flip)
    resolved_device = training_device(device.value)
    if is_study:  # what to train is settled before the data is read
        from shufflenet_nas.results import load_study, summarise
        from shufflenet_nas.results.selection import select_rows

        with parameters_of("source"):
            study = load_study(study_dir, writable=True)
        summary = summarise(study)
        rows = select_rows(summary, selection)
        searched_at = summary.settings.get("resolution")
        resolution = resolution or searched_at  # accuracy at the resolution the latency and FLOPs were taken at
    else:
        genotype = arch_from_argument(source)
    dataset = load_dataset(data, resolution)
    if is_study and dataset.resolution != searched_at:
        show_warning(
            f"the study was searched at {searched_at} px, the data is {dataset.resolution} px: its accuracy "
            "and its latency and MFLOPs are of different sizes",
            UserWarning,
        )
    err.print(f"data: {escape(dataset.describe())}", highlight=False, soft_wrap=True)
    err.print(f"recipe: {recipe.describe()}; seed {seed}; device {resolved_device}", highlight=False, soft_wrap=True)
    if is_study:
        _train_study(study, study_dir, rows, dataset, recipe, seed, resolved_device, restart, json_output)
        return
    from shufflenet_nas.nas.train_architecture import train_architecture

    with training_display(json_output) as show:
        trained = train_architecture(
            genotype,
            dataset,
            recipe,
            out_dir=out_dir or Path("results") / "train" / dataset.path.resolve().name,
            seed=seed,
            device=resolved_device,
            restart=restart,
            on_progress=show,
        )
    if json_output:
        print_json(trained.to_dict())
    else:
        out.print(_final_line(genotype.arch_id, trained), highlight=False, soft_wrap=True)
    if trained.diverged:
        raise typer.Exit(1)


def _train_study(
    study: optuna.Study,
    study_dir: Path,
    rows: list[TrialRow],
    dataset: Dataset,
    recipe: TrainRecipe,
    seed: int,
    device: str,
    restart: bool,
    json_output: bool,
) -> None:
    """Train ``rows`` of ``study`` one after another, then a table of what was trained."""
    from shufflenet_nas.results.training import train_rows

    with training_display(json_output) as show:
        done = train_rows(
            study,
            rows,
            dataset,
            recipe,
            study_dir=study_dir,
            seed=seed,
            device=device,
            restart=restart,
            on_start=announce,
            on_progress=show,
        )
    from shufflenet_nas.results import summarise, write_artifacts

    write_artifacts(summarise(study), study_dir)  # summary.md and pareto.json now show the accuracy
    if json_output:
        print_json([{"trial": row.number, "baseline": row.baseline, **t.to_dict()} for row, t in done])
        return
    table = Table(title=f"trained with one recipe and seed {seed}; recorded in study {study.study_name}")
    for column in ("", "trial", "family", "MFLOPs", "latency ms", "proxy", "top-1 %", "top-5 %", "epochs"):
        table.add_column(column, justify="left" if column in ("", "family") else "right")
    for row, trained in sorted(done, key=lambda item: -item[1].top1):
        table.add_row(
            escape(row.baseline or ""),
            str(row.number),
            row.family,
            f"{row.mflops:.1f}",
            f"{row.latency_ms:.3f}",
            f"{row.proxy:.4g}",
            percent(trained.top1),
            percent(trained.top5),
            str(len(trained.history)) + (" (diverged)" if trained.diverged else ""),
        )
    out.print(table)
    err.print(f"weights in {study_dir / 'weights'}; `shufflenet-nas show {study_dir}` prints the accuracy")


def announce(row: TrialRow, index: int, count: int) -> None:
    """``2/5 shufflenet_v2_x1_0 (57e96f55b205, V2-style)``: which of a study's architectures trains now."""
    what = row.baseline or f"trial {row.number}"
    err.print(f"[bold]{index + 1}/{count}[/bold] {escape(what)} ({row.arch_id}, {row.family})")


def _final_line(arch_id: str, trained: TrainedModel) -> str:
    held_out = trained.data["val_images"]
    if trained.diverged:
        return f"{arch_id} diverged (the loss became NaN or infinite); lower --lr. Weights: {trained.weights}"
    how = "already trained with these settings; " if trained.reused else ""
    top5 = f"  top-5 {100 * trained.top5:.1f}%" if trained.top5 is not None else ""
    return (
        f"{arch_id}  top-1 {100 * trained.top1:.1f}%{top5}  after "
        f"{len(trained.history)} epoch{'s' * (len(trained.history) != 1)} on {held_out} held-out images · "
        f"{how}weights {trained.weights}"
    )


@contextmanager
def training_display(json_output: bool) -> Iterator[Callable[[TrainProgress], None]]:
    """Training progress on stderr: a bar within the epoch on a terminal, and one line per finished epoch."""
    with ExitStack() as stack:
        bar = stack.enter_context(progress("training")) if err.is_terminal and not json_output else None

        def show(update: TrainProgress) -> None:
            if bar is not None:
                bar.update(
                    update.step,
                    total=update.steps_per_epoch,
                    description=f"epoch {update.epoch}/{update.epochs}",
                    status=f"loss {update.loss:.3f} · {update.images_per_s:,.0f} img/s",
                )
            record = update.record
            if record is not None:
                top5 = f"top-5 {100 * record.top5:5.1f}%  " if record.top5 is not None else ""
                err.print(
                    f"epoch {record.epoch:>3}/{update.epochs}  loss {record.loss:.4f}  "
                    f"top-1 {100 * record.top1:5.1f}%  {top5}{record.images_per_s:,.0f} img/s  lr {record.lr:.4f}",
                    highlight=False,
                )

        yield show


def register(app: typer.Typer) -> None:
    app.command()(train)
