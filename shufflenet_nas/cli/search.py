"""Commands that run and read searches: search, show."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import optuna
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shufflenet_nas.cli.common import JsonOption, err, out, print_json
from shufflenet_nas.cli.measure import (
    BatchOption,
    DtypeOption,
    IsolateOption,
    MaxTimeOption,
    NormalizeOption,
    PrecisionOption,
    ResolutionOption,
    RuntimeOption,
    TargetOption,
    ThreadsOption,
    measure_config,
)
from shufflenet_nas.errors import UsageError
from shufflenet_nas.nas.proxies import DEFAULT_PROXY, check_proxy_names
from shufflenet_nas.nas.search import SearchConfig, run_search
from shufflenet_nas.results.summary import StudySummary, load_study, remeasure_front, summarise, write_artifacts
from shufflenet_nas.units import parse_flops, parse_latency_ms, parse_params


def search(
    target: TargetOption = "cpu",
    budget: Annotated[str, typer.Option(help="FLOPs budget: 146MFLOPs, 146M, 0.146G, 146e6.")] = "146MFLOPs",
    n_trials: Annotated[int | None, typer.Option(help="Trials to run (added to a resumed study).")] = 100,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: <target>-<budget>-<family>).")] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (default: sqlite:///<results-dir>/<study>/study.db).")
    ] = None,
    results_dir: Annotated[Path, typer.Option(help="Where studies and their artifacts go.")] = Path("results"),
    family: Annotated[str, typer.Option(help="v1, v2 or mixed (both, emitting the best of each).")] = "mixed",
    sampler: Annotated[str, typer.Option(help="tpe, nsga2 or random.")] = "tpe",
    seed: Annotated[int | None, typer.Option(help="Sampler and proxy seed.")] = None,
    proxy: Annotated[str, typer.Option(help=f"Accuracy proxy to maximise (default {DEFAULT_PROXY}).")] = DEFAULT_PROXY,
    latency: Annotated[
        str, typer.Option(help="measured (time every architecture) or lut (predict; the front is re-measured).")
    ] = "measured",
    objective: Annotated[
        str,
        typer.Option(
            help="pareto (latency vs proxy), latency (the fastest above --proxy-floor) or reward (MnasNet-style)."
        ),
    ] = "pareto",
    latency_target: Annotated[str | None, typer.Option(help="Target T of the reward objective, e.g. 2ms.")] = None,
    params_budget: Annotated[str | None, typer.Option(help="Parameter budget, e.g. 2.5M.")] = None,
    latency_budget: Annotated[str | None, typer.Option(help="Latency budget, e.g. 2ms or 500us.")] = None,
    proxy_floor: Annotated[
        str | None,
        typer.Option(
            help="Only architectures scoring at least this proxy are results: a number, or a baseline name "
            "(its score in this search), e.g. shufflenet_v2_x1_0. A constraint, like the budgets."
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset for --proxy train (ImageFolder or CIFAR folder).")] = None,
    seed_baselines: Annotated[bool, typer.Option(help="Evaluate the papers' models that fit first.")] = True,
    batch: BatchOption = 1,
    dtype: DtypeOption = "fp32",
    threads: ThreadsOption = None,
    runtime: RuntimeOption = None,
    resolution: ResolutionOption = None,
    isolate: IsolateOption = False,
    max_time: MaxTimeOption = 0.5,
    precision: PrecisionOption = 0.01,
    normalize: NormalizeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Search the ShuffleNet space for fast, accurate architectures under a FLOPs budget.

    Example: shufflenet-nas search --target gpu --budget 146MFLOPs
    """
    from shufflenet_nas.nas.data import load_dataset

    measure = measure_config(target, batch, dtype, threads, runtime, isolate, max_time, precision, normalize)
    dataset = load_dataset(data) if data is not None else None
    check_proxy_names([proxy], dataset)
    budget_flops = parse_flops(budget)
    resolution = dataset.resolution if dataset is not None else resolution or 224
    config = SearchConfig(
        study_name=study or f"{measure.target}-{budget_flops / 1e6:g}M-{family}",
        budget_flops=budget_flops,
        measure=measure,
        params_budget=parse_params(params_budget) if params_budget else None,
        latency_budget_ms=parse_latency_ms(latency_budget) if latency_budget else None,
        proxy_floor=proxy_floor,
        family=family,
        sampler=sampler,
        seed=seed,
        proxy=proxy,
        objective=objective,
        latency_target_ms=parse_latency_ms(latency_target) if latency_target else None,
        latency_mode=latency,
        resolution=resolution,
        num_classes=dataset.num_classes if dataset is not None else 1000,
        results_dir=results_dir,
        storage=storage,
        seed_baselines=seed_baselines,
    )
    if n_trials is not None and n_trials < 1:
        raise UsageError(f"--n-trials {n_trials}: give at least 1")
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress bar and messages say what happens
    err.print(
        f"study [bold]{config.study_name}[/bold] at {config.storage_url} · target {measure.target} · "
        f"{config.budget_mflops:g} MFLOPs · {resolution} px · proxy {proxy} · latency {latency}",
        highlight=False,
    )
    interrupted = False
    with _progress(n_trials) as (progress, callback):
        try:
            finished = run_search(config, n_trials, timeout, callbacks=[callback], data=dataset)
        except KeyboardInterrupt:
            interrupted = True
            progress.stop()
            err.print("[yellow]interrupted[/yellow]: the running trial is marked failed; finished trials are kept")
            finished = optuna.load_study(study_name=config.study_name, storage=config.storage_url)
    if latency == "lut" and not interrupted:
        err.print("re-measuring the Pareto front on the device ...")
        remeasure_front(finished, measure)
    summary = summarise(finished)
    paths = write_artifacts(summary, config.study_dir)
    _render(summary, json_output)
    err.print(f"wrote {', '.join(str(p) for p in paths)}", highlight=False)
    if interrupted:
        raise typer.Exit(130)


class _ProgressCallback:
    """Optuna callback that advances the progress bar and shows best-so-far and time per trial."""

    def __init__(self, progress: Progress, task: int) -> None:
        self.progress, self.task = progress, task
        self.started = time.perf_counter()
        self.done = 0
        self.best_proxy = float("-inf")
        self.fastest = float("inf")

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.done += 1
        attrs = trial.user_attrs
        if attrs.get("feasible") and "proxy" in attrs:
            self.best_proxy = max(self.best_proxy, attrs["proxy"])
            self.fastest = min(self.fastest, attrs["latency_ms"])
        per_trial = (time.perf_counter() - self.started) / self.done
        status = (
            f"best proxy {self.best_proxy:.4g} · fastest {self.fastest:.3f} ms · {per_trial:.2f} s/trial"
            if self.fastest < float("inf")
            else f"{per_trial:.2f} s/trial"
        )
        self.progress.update(self.task, advance=1, status=status)


class _progress:
    """Context manager: a Rich progress bar on stderr and the Optuna callback that drives it."""

    def __init__(self, total: int | None) -> None:
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=err,
            transient=False,
        )
        self.total = total

    def __enter__(self) -> tuple[Progress, _ProgressCallback]:
        self.bar.start()
        task = self.bar.add_task("search", total=self.total, status="")
        return self.bar, _ProgressCallback(self.bar, task)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def show(
    study_dir: Annotated[Path | None, typer.Argument(help="A results/<study> directory.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL instead of a directory.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name within --storage.")] = None,
    all_trials: Annotated[bool, typer.Option("--all", help="List every evaluated architecture.")] = False,
    json_output: JsonOption = False,
) -> None:
    """The Pareto front and the best V1-style and V2-style configurations of a study."""
    if study_dir is not None and storage is not None:
        raise UsageError("give either a results directory or --storage, not both")
    summary = summarise(load_study(study_dir if storage is None else study, storage))
    _render(summary, json_output, all_trials)


def _render(summary: StudySummary, json_output: bool, all_trials: bool = False) -> None:
    if json_output:
        data = summary.to_dict()
        if all_trials:
            data["trials"] = [row.__dict__ for row in summary.trials]
        print_json(data)
        return
    counts = ", ".join(f"{v} {k}" for k, v in summary.counts.items())
    out.print(f"[bold]{summary.study_name}[/bold]: {counts}", highlight=False)
    rows = summary.trials if all_trials else summary.pareto + [b for b in summary.baselines if b not in summary.pareto]
    best = {row.number: family for family, row in summary.best.items()}
    title = "every evaluated architecture" if all_trials else "Pareto front (latency vs proxy) and paper baselines"
    table = Table(title=title)
    for column in ("", "trial", "family", "MFLOPs", "params", "latency ms", "proxy", "arch_id"):
        table.add_column(
            column, justify="right" if column in ("trial", "MFLOPs", "params", "latency ms", "proxy") else "left"
        )
    for row in sorted(rows, key=lambda r: r.latency_ms):
        mark = f"[green]best {best[row.number]}[/green]" if row.number in best else (row.baseline or "")
        source = "*" if row.latency_source == "lut" else ""
        table.add_row(
            mark,
            str(row.number),
            row.family,
            f"{row.mflops:.1f}",
            f"{row.params:,}",
            f"{row.latency_ms:.3f}{source}",
            f"{row.proxy:.4g}",
            row.arch_id,
        )
    out.print(table)
    reference = summary.reference
    for family, row in summary.best.items():
        versus = ""
        if reference is not None and reference.number != row.number:
            change = (row.latency_ms / reference.latency_ms - 1) * 100
            versus = (
                f" · {abs(change):.1f}% {'lower' if change < 0 else 'higher'} latency than {reference.baseline} "
                f"({row.latency_ms:.3f} vs {reference.latency_ms:.3f} ms; "
                f"proxy {row.proxy:.4g} vs {reference.proxy:.4g})"
            )
        out.print(f"[bold]best {family}[/bold] trial {row.number}{versus}", highlight=False)
        out.print(f"  {row.genotype}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(show)
