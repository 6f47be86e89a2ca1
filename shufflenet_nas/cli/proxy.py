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
    ArchArgument,
    JsonOption,
    Proxy,
    arch_from_argument,
    option_group,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.errors import UsageError, parameters_of
from shufflenet_nas.cli.progress import ProgressBar, progress

if TYPE_CHECKING:
    from shufflenet_nas.nas.data import Dataset
    from shufflenet_nas.nas.short_training import TrainConfig
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
AgainstOption = Annotated[
    str,
    typer.Option(
        "--against",
        metavar="[paper|train|FILE|STUDY_DIR]",
        help="Ground truth: paper (the papers' ImageNet top-1), train (short training on --data), a CSV or JSON "
        "file of your trained results (architecture, accuracy), or a study directory whose trials hold "
        "accuracy_top1.",
    ),
]
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
        from shufflenet_nas.nas.short_training import TrainConfig

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

_UNITS = {
    "params": "parameters",
    "mflops": "conv + linear multiply-adds, millions",
    "train": "validation accuracy",
    "relu_count": "ReLU outputs per image (naswot's count term)",
    "naswot_diversity": "ln det(K_H / N_A), naswot's activation-diversity term",
}


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
                "inputs": {name: score.inputs for name, score in scores.items()},
                "on_noise": any(score.on_noise for score in scores.values()),
            }
        )
        return
    table = Table(title=f"{genotype.arch_id} at {genotype.resolution}x{genotype.resolution}, seed {scoring.seed}")
    for column in ("proxy", "score (higher is better)", "seconds", "what", "ran on"):
        table.add_column(column, justify="right" if column in ("score (higher is better)", "seconds") else "left")
    for name, score in scores.items():
        note = _UNITS.get(name, "zero-cost, at initialisation")
        note += "; default for search" if name == DEFAULT_PROXY else ""
        table.add_row(name, f"{score.value:.6g}", f"{score.seconds:.3f}", note, score.inputs)
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
    scoring: ScoringOptions,
    against: AgainstOption = "paper",
    data: DataOption = None,
    samples: Annotated[int, typer.Option(help="Architectures sampled from the search space (--against train).")] = 20,
    proxy_names: ProxyOption = None,
    budget: Annotated[
        str, typer.Option(help="FLOPs budget the sampled widths are sized for (--against train).")
    ] = "146MFLOPs",
    resolution: ResolutionOption = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples of the architectures (seeded by --seed).")] = 2000,
    json_output: JsonOption = False,
) -> None:
    """How well each proxy ranks architectures, in figures that cannot flatter.

    For each proxy and the references (MFLOPs, params, relu_count): Kendall tau and Spearman rho with
    bootstrap 95% intervals, tau minus MFLOPs' tau (paired), agreement on equal-FLOPs pairs (MFLOPs within
    10%), tau within V1-style and V2-style models, and a proxy chosen on V1 scored on V2, the reverse, and
    leave-one-out. --json adds the definitions.

    --against paper: every baseline with a published top-1 error, scored at 224x224 (ImageNet).

    --against train: N architectures sampled from the search space at the data's resolution,
    each trained briefly on --data.

    --against FILE.csv|FILE.json|STUDY_DIR: your trained results; with --data the proxies score its images.
    """
    from shufflenet_nas.nas.proxies import check_proxy_names
    from shufflenet_nas.nas.validation import VALIDATION_REFERENCES

    names = _proxy_names(proxy_names)
    if "train" in names:
        raise UsageError("--proxy train: short training is the ground truth of --against train, not a proxy here")
    check_proxy_names(names, None)
    names = tuple(dict.fromkeys((*names, *VALIDATION_REFERENCES)))
    ground_truth = _ground_truth(against)
    validation = _run_validation(ground_truth, names, scoring, data, samples, budget, resolution, resamples)
    if json_output:
        print_json(validation.to_dict())
        return
    _render(validation)


def _ground_truth(text: str) -> str | Path:
    """``--against``: ``"paper"``, ``"train"``, or the path of a results file or study directory."""
    word = text.strip().lower()
    if word in ("paper", "train"):
        return word
    path = Path(text)
    if path.is_dir():
        if not (path / "study.db").is_file():
            raise UsageError(f"--against {text}: a directory with no study.db; give a results/<study> directory")
        return path
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".json"):
            raise UsageError(f"--against {text}: not a .csv or .json file (columns architecture, accuracy)")
        return path
    raise UsageError(
        f"--against {text}: not paper or train, and no such file or directory; give paper, train, "
        "a CSV or JSON file (architecture, accuracy) or a study directory"
    )


def _run_validation(
    ground_truth: str | Path,
    names: tuple[str, ...],
    scoring: ScoringOptions,
    data: Path | None,
    samples: int,
    budget: str,
    resolution: int | None,
    resamples: int,
) -> Validation:
    from shufflenet_nas.nas.validation import (
        validate_against_paper,
        validate_against_results,
        validate_against_training,
    )
    from shufflenet_nas.nas.validation_results import ResultsFileError
    from shufflenet_nas.nas.validation_stats import check_resamples
    from shufflenet_nas.units import parse_flops

    check_resamples(resamples)
    common = {"seed": scoring.seed, "batch_size": scoring.batch_size, "resamples": resamples}
    if ground_truth == "paper":
        if data is not None or resolution is not None:
            raise UsageError("--data and --resolution apply to --against train; --against paper scores at 224x224")
        with progress("scoring") as bar:
            return validate_against_paper(names, **common, progress=_reporter(bar))
    if ground_truth == "train":
        if data is None:
            raise UsageError("--against train needs --data PATH (an ImageFolder or CIFAR directory to train on)")
        if samples < 3:
            raise UsageError(f"--samples {samples}: rank correlations need at least 3 architectures")
        dataset = _dataset(data, resolution)
        with progress("scoring") as bar:
            return validate_against_training(
                dataset,
                samples,
                names,
                budget_mflops=parse_flops(budget) / 1e6,
                train_config=scoring.train_config(),
                **common,
                progress=_reporter(bar),
            )
    if resolution is not None and data is None:
        raise UsageError("--resolution applies with --data; without it each architecture scores at its own size")
    dataset = _dataset(data, resolution) if data is not None else None
    try:
        with progress("scoring") as bar:
            return validate_against_results(ground_truth, names, data=dataset, **common, progress=_reporter(bar))
    except ResultsFileError as error:
        message = str(error).replace("the keys of BASELINES", "listed by `shufflenet-nas baselines`")
        raise ResultsFileError(message) from None


def _reporter(bar: ProgressBar) -> Callable[[int, int, str], None]:
    """The validation's ``(done, total, label)`` progress callback, shown on ``bar``."""
    return lambda done, total, label: bar.update(done, total=total, description=label)


def _figure(value: float | None, interval: tuple[float, float] | None = None, sign: str = "+") -> str:
    """``+0.87 [+0.77, +0.95]``; a missing figure is ``-``."""
    if value is None:
        return "-"
    text = f"{value:{sign}.2f}"
    if interval is None or any(v != v for v in interval):  # NaN: no interval
        return text
    return f"{text} [{interval[0]:{sign}.2f}, {interval[1]:{sign}.2f}]"


def _render(validation: Validation) -> None:
    from shufflenet_nas.nas.validation import VALIDATION_REFERENCES
    from shufflenet_nas.nas.validation_stats import FAMILIES

    analysis = validation.analysis
    table = Table(
        title=f"Rank correlation with {validation.target}, {len(validation.architectures)} architectures",
        caption="[95% bootstrap interval]; equal-FLOPs: pairs within 10% MFLOPs, 0.50 is chance; "
        "concord.: mean share of each model's pairs ordered right",
    )
    pairs = f"equal-FLOPs ({analysis.equal_flops_pairs} pairs)"
    columns = ("proxy", "Kendall tau", "Spearman rho", "tau - MFLOPs", pairs, "tau V1 / V2", "concord.", "s/arch", "")
    for column in columns:
        table.add_column(column, justify="left" if column in ("proxy", "") else "right")
    mflops_tau = analysis.figures("mflops").kendall_tau if "mflops" in validation.scores else None
    for f in analysis.proxies:
        notes = []
        if f.proxy == DEFAULT_PROXY:
            notes.append("default for search")
        if f.proxy not in VALIDATION_REFERENCES and mflops_tau is not None and f.kendall_tau < mflops_tau:
            notes.append("below mflops")
        table.add_row(
            f.proxy,
            _figure(f.kendall_tau, f.kendall_tau_ci),
            _figure(f.spearman_rho, f.spearman_rho_ci),
            _figure(f.tau_minus_mflops, f.tau_minus_mflops_ci),
            _figure(f.equal_flops_agreement, f.equal_flops_agreement_ci, sign=""),
            " / ".join(_figure(f.tau_by_family[family]) for family in FAMILIES),
            _figure(f.concordance, sign=""),
            f"{validation.seconds[f.proxy]:.3f}",
            ", ".join(notes),
        )
    out.print(table)
    for line in _out_of_sample(validation):
        out.print(line, highlight=False)


def _out_of_sample(validation: Validation) -> list[str]:
    """The selection figures in words: chosen on V1 scored on V2, the reverse, leave-one-out."""
    analysis = validation.analysis
    lines = []
    for s in analysis.selections:
        if s.chosen is None:
            lines.append(f"Chosen on {s.chosen_on}, scored on {s.scored_on}: no figure ({s.reason}).")
            continue
        lines.append(
            f"Chosen on {s.chosen_on}: {s.chosen} (tau {_figure(s.tau_chosen_on)} there) scores "
            f"{_figure(s.tau_scored_on)} on {s.scored_on}; MFLOPs there {_figure(s.mflops_tau_scored_on)}, "
            f"the best there {s.best_scored_on} {_figure(s.best_tau_scored_on)}."
        )
    loo = analysis.leave_one_out
    if loo.concordance is None:
        lines.append("Leave-one-out: no figure (under 4 architectures).")
        return lines
    chosen = ", ".join(f"{name} {count}x" for name, count in sorted(loo.chosen.items(), key=lambda kv: -kv[1]))
    fixed = {f.proxy: f.concordance for f in analysis.proxies if f.concordance is not None}
    best = max(fixed, key=lambda name: fixed[name])
    mflops = f", mflops {fixed['mflops']:.3f}" if "mflops" in fixed and best != "mflops" else ""
    lines.append(
        f"Leave-one-out: chosen on the other {analysis.n - 1} ({chosen}), the held-out model's pairs ordered right: "
        f"{loo.concordance:.3f}; best fixed proxy in hindsight {best} {fixed[best]:.3f}{mflops}."
    )
    lines.append(f"Intervals: {analysis.resamples} bootstrap resamples of the architectures, seed {analysis.seed}.")
    return lines


def register(app: typer.Typer) -> None:
    app.command()(proxy)
    app.command("validate-proxy")(validate_proxy)
