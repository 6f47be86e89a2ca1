"""Commands that score architectures with accuracy proxies: proxy, validate-proxy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shufflenet_nas.cli.common import ArchArgument, JsonOption, arch_from_argument, err, out, print_json
from shufflenet_nas.errors import UsageError
from shufflenet_nas.nas.cost import check_fits_in_memory
from shufflenet_nas.nas.data import Dataset, load_dataset
from shufflenet_nas.nas.proxies import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PROXY,
    PROXY_NAMES,
    REFERENCE_PROXIES,
    ZERO_COST_PROXIES,
    check_proxy_names,
    compute_proxies,
    parse_proxy_names,
)
from shufflenet_nas.nas.training import TrainConfig
from shufflenet_nas.nas.validation import (
    DEFAULT_VALIDATION_PROXIES,
    ProgressCallback,
    Validation,
    validate_against_paper,
    validate_against_training,
)
from shufflenet_nas.search_spaces import Genotype
from shufflenet_nas.search_spaces.genotype import check_resolution
from shufflenet_nas.units import parse_flops


class Against(str, Enum):
    paper = "paper"
    train = "train"


ProxyOption = Annotated[
    str | None,
    typer.Option(
        "--proxy",
        help=f"Comma-separated proxies from {', '.join(PROXY_NAMES)}. Default: every zero-cost proxy, params, mflops.",
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="An ImageFolder directory (a subfolder of images per class) or a CIFAR-10/100 python directory. "
        "Without it the zero-cost proxies score seeded Gaussian noise.",
    ),
]
SeedOption = Annotated[int, typer.Option(help="Seed of the initial weights, the input batch and the training order.")]
BatchSizeOption = Annotated[int, typer.Option(help="Images in the zero-cost proxies' batch.")]
StepsOption = Annotated[int, typer.Option(help="Short-training budget in optimizer steps (proxy train).")]
EpochsOption = Annotated[float | None, typer.Option(help="Short-training budget in epochs; overrides --steps.")]
TrainBatchOption = Annotated[int, typer.Option(help="Short-training batch size.")]
ResolutionOption = Annotated[
    int | None,
    typer.Option(help="Input size: resizes ImageFolder images (default: their most common size), else ARCH's input."),
]

_UNITS = {"params": "parameters", "mflops": "conv + linear multiply-adds, millions", "train": "validation accuracy"}


def _dataset(path: Path, resolution: int | None) -> Dataset:
    if resolution is not None:
        try:
            check_resolution(resolution)  # before images are resized to it
        except ValueError as error:
            raise UsageError(f"--resolution: {error}") from None
    with err.status(f"reading {path}"):
        data = load_dataset(path, resolution)
    err.print(data.describe(), highlight=False)
    return data


def proxy(
    arch: ArchArgument,
    proxy_names: ProxyOption = None,
    data: DataOption = None,
    seed: SeedOption = 0,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    steps: StepsOption = 200,
    epochs: EpochsOption = None,
    train_batch_size: TrainBatchOption = 64,
    resolution: ResolutionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Score ARCH with accuracy proxies (higher is better) and time each one.

    With --data, ARCH is first fitted to the data: its resolution and class count,
    with a stem stride that suits the resolution (no early downsampling at 32x32).
    """
    genotype = arch_from_argument(arch, None if data else resolution)
    names = parse_proxy_names(proxy_names) if proxy_names is not None else DEFAULT_VALIDATION_PROXIES
    check_proxy_names(names, data)
    dataset = _dataset(data, resolution) if data is not None else None
    if dataset is not None:
        genotype = dataset.fit(genotype)
    _check_memory(genotype, names, batch_size, train_batch_size)

    def report(step: int, accuracy: float) -> bool:
        err.print(f"train: step {step}, validation accuracy {accuracy:.1%}", highlight=False)
        return False

    scores = compute_proxies(
        genotype,
        names,
        data=dataset,
        seed=seed,
        batch_size=batch_size,
        report=report,
        train_config=TrainConfig(steps=steps, epochs=epochs, batch_size=train_batch_size),
    )
    if json_output:
        print_json(
            {
                "arch_id": genotype.arch_id,
                "genotype": genotype.to_string(),
                "data": str(data) if data else None,
                "seed": seed,
                "batch_size": batch_size,
                "scores": {name: score.value for name, score in scores.items()},
                "seconds": {name: round(score.seconds, 4) for name, score in scores.items()},
            }
        )
        return
    source = dataset.describe() if dataset else f"seeded Gaussian noise, batch {batch_size}"
    table = Table(title=f"{genotype.arch_id} at {genotype.resolution}x{genotype.resolution}, seed {seed}: {source}")
    for column in ("proxy", "score (higher is better)", "seconds", "what"):
        table.add_column(column, justify="right" if column in ("score (higher is better)", "seconds") else "left")
    for name, score in scores.items():
        note = "default for search" if name == DEFAULT_PROXY else _UNITS.get(name, "zero-cost, at initialisation")
        table.add_row(name, f"{score.value:.6g}", f"{score.seconds:.3f}", note)
    out.print(table)


def _check_memory(genotype: Genotype, names: tuple[str, ...], batch_size: int, train_batch_size: int) -> None:
    """Refuse, before building it, a network whose forward at the proxies' largest batch cannot fit in memory
    (a lower bound: the proxies that backpropagate hold more)."""
    batches = [batch_size] if set(names) - {*REFERENCE_PROXIES, "train"} else []
    if "train" in names:
        batches.append(train_batch_size)
    largest = max(batches, default=0)
    if largest >= 1:  # a batch below 2 is the proxies' usage error, raised with its own message
        check_fits_in_memory(genotype, largest)


@contextmanager
def _progress() -> Iterator[ProgressCallback]:
    """Progress on stderr as a ``(done, total, label)`` callback: a bar on a terminal, else a line per item."""
    if not err.is_terminal:

        def line(done: int, total: int, label: str) -> None:
            err.print(f"[{done}/{total}] {label}", highlight=False, markup=False)

        yield line
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("scoring", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update


def validate_proxy(
    against: Annotated[
        Against, typer.Option(help="Ground truth: the papers' ImageNet top-1, or short training on --data.")
    ],
    data: DataOption = None,
    samples: Annotated[int, typer.Option(help="Architectures sampled from the search space (--against train).")] = 20,
    proxy_names: ProxyOption = None,
    budget: Annotated[
        str, typer.Option(help="FLOPs budget the sampled widths are sized for (--against train).")
    ] = "146MFLOPs",
    seed: SeedOption = 0,
    batch_size: BatchSizeOption = DEFAULT_BATCH_SIZE,
    steps: StepsOption = 200,
    epochs: EpochsOption = None,
    train_batch_size: TrainBatchOption = 64,
    resolution: ResolutionOption = None,
    json_output: JsonOption = False,
) -> None:
    """How well each proxy ranks architectures: Kendall tau and Spearman rho against a ground truth.

    --against paper: every baseline with a published top-1 error, scored at 224x224 (ImageNet).

    --against train: N architectures sampled from the search space at the data's resolution,
    each trained briefly on --data.

    MFLOPs and params are always included as the reference.
    """
    names = parse_proxy_names(proxy_names) if proxy_names is not None else DEFAULT_VALIDATION_PROXIES
    if "train" in names:
        raise UsageError("--proxy train: short training is the ground truth of --against train, not a proxy here")
    check_proxy_names(names, None)
    names = tuple(dict.fromkeys((*names, *REFERENCE_PROXIES)))
    if against is Against.paper:
        if data is not None or resolution is not None:
            raise UsageError("--data and --resolution apply to --against train; --against paper scores at 224x224")
        with _progress() as progress:
            validation = validate_against_paper(names, seed=seed, batch_size=batch_size, progress=progress)
    else:
        if data is None:
            raise UsageError("--against train needs --data PATH (an ImageFolder or CIFAR directory to train on)")
        if samples < 3:
            raise UsageError(f"--samples {samples}: rank correlations need at least 3 architectures")
        dataset = _dataset(data, resolution)
        with _progress() as progress:
            validation = validate_against_training(
                dataset,
                samples,
                names,
                budget_mflops=parse_flops(budget) / 1e6,
                seed=seed,
                batch_size=batch_size,
                train_config=TrainConfig(steps=steps, epochs=epochs, batch_size=train_batch_size),
                progress=progress,
            )
    if json_output:
        print_json(validation.to_dict())
        return
    _render(validation)


def _render(validation: Validation) -> None:
    table = Table(title=f"Rank correlation with {validation.target}, {len(validation.architectures)} architectures")
    for column in ("proxy", "Kendall tau", "Spearman rho", "p (tau)", "s / arch", ""):
        table.add_column(column, justify="left" if column in ("proxy", "") else "right")
    reference = {c.proxy: c for c in validation.correlations}["mflops"]
    for c in validation.correlations:
        notes = []
        if c.proxy == DEFAULT_PROXY:
            notes.append("default for search")
        if c.proxy in ZERO_COST_PROXIES and c.kendall_tau < reference.kendall_tau:
            notes.append("below mflops")
        table.add_row(
            c.proxy,
            f"{c.kendall_tau:+.3f}",
            f"{c.spearman_rho:+.3f}",
            f"{c.kendall_p:.1e}",
            f"{validation.seconds[c.proxy]:.3f}",
            ", ".join(notes),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(proxy)
    app.command("validate-proxy")(validate_proxy)
