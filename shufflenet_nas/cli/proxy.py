"""Commands that score architectures with accuracy proxies: proxy, validate-proxy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from shufflenet_nas.cli.common import (
    DEFAULT_PROXY,
    DEFAULT_PROXY_BATCH_SIZE,
    Against,
    ArchArgument,
    JsonOption,
    Proxy,
    arch_from_argument,
    choice_option,
    option_group,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.errors import UsageError, parameters_of
from shufflenet_nas.cli.progress import ProgressBar, progress

if TYPE_CHECKING:
    from shufflenet_nas.nas.data import Dataset
    from shufflenet_nas.nas.training import TrainConfig
    from shufflenet_nas.nas.validation import Validation
    from shufflenet_nas.search_spaces import Genotype

ProxyOption = Annotated[
    str | None,
    typer.Option(
        "--proxy",
        help=f"Comma-separated proxies from {', '.join(Proxy)}. Default: every zero-cost proxy, params, mflops.",
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
AgainstOption = choice_option(
    Against, "--against", "Ground truth: the papers' ImageNet top-1, or short training on --data."
)
ResolutionOption = Annotated[
    int | None,
    typer.Option(help="Input size: resizes ImageFolder images (default: their most common size), else ARCH's input."),
]


@dataclass(frozen=True)
class ScoringOptions:
    """How the proxies score (``--seed``, ``--batch-size``) and how ``train`` trains (``--steps`` ...)."""

    seed: int = 0
    batch_size: int = DEFAULT_PROXY_BATCH_SIZE
    steps: int = 200
    epochs: float | None = None
    train_batch_size: int = 64

    def train_config(self) -> TrainConfig:
        from shufflenet_nas.nas.training import TrainConfig

        with parameters_of("train_config"):
            return TrainConfig(steps=self.steps, epochs=self.epochs, batch_size=self.train_batch_size)


scoring_options = option_group(
    "scoring",
    ScoringOptions,
    {
        "seed": Annotated[
            int, typer.Option(help="Seed of the initial weights, the input batch and the training order.")
        ],
        "batch_size": Annotated[int, typer.Option(help="Images in the zero-cost proxies' batch.")],
        "steps": Annotated[int, typer.Option(help="Short-training budget in optimizer steps (proxy train).")],
        "epochs": Annotated[float | None, typer.Option(help="Short-training budget in epochs; overrides --steps.")],
        "train_batch_size": Annotated[int, typer.Option(help="Short-training batch size.")],
    },
)

_UNITS = {"params": "parameters", "mflops": "conv + linear multiply-adds, millions", "train": "validation accuracy"}


def _proxy_names(text: str | None) -> tuple[str, ...]:
    from shufflenet_nas.nas.proxies import parse_proxy_names
    from shufflenet_nas.nas.validation import DEFAULT_VALIDATION_PROXIES

    return parse_proxy_names(text) if text is not None else DEFAULT_VALIDATION_PROXIES


def _dataset(path: Path, resolution: int | None) -> Dataset:
    from shufflenet_nas.nas.data import load_dataset
    from shufflenet_nas.search_spaces.genotype import check_resolution

    if resolution is not None:
        try:
            check_resolution(resolution)  # before images are resized to it
        except ValueError as error:
            raise UsageError(f"--resolution: {error}") from None
    with err.status(f"reading {path}"):
        data = load_dataset(path, resolution)
    err.print(data.describe(), highlight=False)
    return data


@scoring_options
def proxy(
    arch: ArchArgument,
    scoring: ScoringOptions,
    proxy_names: ProxyOption = None,
    data: DataOption = None,
    resolution: ResolutionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Score ARCH with accuracy proxies (higher is better) and time each one.

    With --data, ARCH is first fitted to the data: its resolution and class count,
    with a stem stride that suits the resolution (no early downsampling at 32x32).
    """
    from shufflenet_nas.nas.proxies import check_proxy_names, compute_proxies

    genotype = arch_from_argument(arch, None if data else resolution)
    names = _proxy_names(proxy_names)
    check_proxy_names(names, data)
    dataset = _dataset(data, resolution) if data is not None else None
    if dataset is not None:
        genotype = dataset.fit(genotype)
    _check_memory(genotype, names, scoring)

    def report(step: int, accuracy: float) -> bool:
        err.print(f"train: step {step}, validation accuracy {accuracy:.1%}", highlight=False)
        return False

    scores = compute_proxies(
        genotype,
        names,
        data=dataset,
        seed=scoring.seed,
        batch_size=scoring.batch_size,
        report=report,
        train_config=scoring.train_config(),
    )
    if json_output:
        print_json(
            {
                "arch_id": genotype.arch_id,
                "genotype": genotype.to_string(),
                "data": str(data) if data else None,
                "seed": scoring.seed,
                "batch_size": scoring.batch_size,
                "scores": {name: score.value for name, score in scores.items()},
                "seconds": {name: round(score.seconds, 4) for name, score in scores.items()},
            }
        )
        return
    batch = f"batch {scoring.batch_size}"
    source = dataset.describe() if dataset else f"seeded Gaussian noise, {batch}"
    title = f"{genotype.arch_id} at {genotype.resolution}x{genotype.resolution}, seed {scoring.seed}: {source}"
    table = Table(title=title)
    for column in ("proxy", "score (higher is better)", "seconds", "what"):
        table.add_column(column, justify="right" if column in ("score (higher is better)", "seconds") else "left")
    for name, score in scores.items():
        note = "default for search" if name == DEFAULT_PROXY else _UNITS.get(name, "zero-cost, at initialisation")
        table.add_row(name, f"{score.value:.6g}", f"{score.seconds:.3f}", note)
    out.print(table)


def _check_memory(genotype: Genotype, names: tuple[str, ...], scoring: ScoringOptions) -> None:
    """Refuse, before building it, a network whose forward at the proxies' largest batch cannot fit in memory
    (a lower bound: the proxies that backpropagate hold more)."""
    from shufflenet_nas.nas.cost import check_fits_in_memory
    from shufflenet_nas.nas.proxies import REFERENCE_PROXIES

    batches = [scoring.batch_size] if set(names) - {*REFERENCE_PROXIES, "train"} else []
    if "train" in names:
        batches.append(scoring.train_batch_size)
    largest = max(batches, default=0)
    if largest >= 1:  # a batch below 2 is the proxies' usage error, raised with its own message
        check_fits_in_memory(genotype, largest)


@scoring_options
def validate_proxy(
    against: AgainstOption,
    scoring: ScoringOptions,
    data: DataOption = None,
    samples: Annotated[int, typer.Option(help="Architectures sampled from the search space (--against train).")] = 20,
    proxy_names: ProxyOption = None,
    budget: Annotated[
        str, typer.Option(help="FLOPs budget the sampled widths are sized for (--against train).")
    ] = "146MFLOPs",
    resolution: ResolutionOption = None,
    json_output: JsonOption = False,
) -> None:
    """How well each proxy ranks architectures: Kendall tau and Spearman rho against a ground truth.

    --against paper: every baseline with a published top-1 error, scored at 224x224 (ImageNet).

    --against train: N architectures sampled from the search space at the data's resolution,
    each trained briefly on --data.

    MFLOPs and params are always included as the reference.
    """
    from shufflenet_nas.nas.proxies import REFERENCE_PROXIES, check_proxy_names
    from shufflenet_nas.nas.validation import validate_against_paper, validate_against_training
    from shufflenet_nas.units import parse_flops

    names = _proxy_names(proxy_names)
    if "train" in names:
        raise UsageError("--proxy train: short training is the ground truth of --against train, not a proxy here")
    check_proxy_names(names, None)
    names = tuple(dict.fromkeys((*names, *REFERENCE_PROXIES)))
    if against is Against.paper:
        if data is not None or resolution is not None:
            raise UsageError("--data and --resolution apply to --against train; --against paper scores at 224x224")
        with progress("scoring") as bar:
            validation = validate_against_paper(
                names, seed=scoring.seed, batch_size=scoring.batch_size, progress=_reporter(bar)
            )
    else:
        if data is None:
            raise UsageError("--against train needs --data PATH (an ImageFolder or CIFAR directory to train on)")
        if samples < 3:
            raise UsageError(f"--samples {samples}: rank correlations need at least 3 architectures")
        dataset = _dataset(data, resolution)
        with progress("scoring") as bar:
            validation = validate_against_training(
                dataset,
                samples,
                names,
                budget_mflops=parse_flops(budget) / 1e6,
                seed=scoring.seed,
                batch_size=scoring.batch_size,
                train_config=scoring.train_config(),
                progress=_reporter(bar),
            )
    if json_output:
        print_json(validation.to_dict())
        return
    _render(validation)


def _reporter(bar: ProgressBar) -> Callable[[int, int, str], None]:
    """The validation's ``(done, total, label)`` progress callback, shown on ``bar``."""
    return lambda done, total, label: bar.update(done, total=total, description=label)


def _render(validation: Validation) -> None:
    from shufflenet_nas.nas.proxies import ZERO_COST_PROXIES

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
