"""Commands that run and read searches: search, show."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shufflenet_nas.cli.common import (
    DEFAULT_PROXY,
    Family,
    JsonOption,
    LatencyMode,
    MeasureOptions,
    Objective,
    Proxy,
    Sampler,
    choice_option,
    measure_options,
    open_study,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.errors import UsageError, interrupt_exit_code, parameters_of
from shufflenet_nas.cli.progress import ProgressBar, progress
from shufflenet_nas.errors import ShuffleNetNASError, mask_password
from shufflenet_nas.units import percent

if TYPE_CHECKING:
    import optuna

    from shufflenet_nas.nas.data import Dataset
    from shufflenet_nas.nas.latency import MeasureConfig
    from shufflenet_nas.nas.search import SearchConfig
    from shufflenet_nas.nas.training import TrainRecipe
    from shufflenet_nas.results.summary import StudySummary

FamilyOption = choice_option(Family, "--family", "v1, v2 or mixed (both, emitting the best of each).")
SamplerOption = choice_option(Sampler, "--sampler", "tpe, nsga2 or random.")
ProxyOption = choice_option(Proxy, "--proxy", f"Accuracy proxy to maximise (default {DEFAULT_PROXY}).")
LatencyOption = choice_option(
    LatencyMode, "--latency", "measured (time every architecture) or lut (predict; the front is re-measured)."
)
SpaceShuffleOption = Annotated[
    bool,
    typer.Option(
        "--space-shuffle",
        help="Search the channel shuffle too: on or off per stage (off: the V1 paper's Table 3 ablation).",
    ),
]
ObjectiveOption = choice_option(
    Objective,
    "--objective",
    "pareto (latency vs proxy), latency (the fastest above --proxy-floor) or reward (MnasNet-style).",
)


@measure_options(max_time=0.5, precision=0.01)
def search(
    measure: MeasureOptions,
    budget: Annotated[str, typer.Option(help="FLOPs budget: 146MFLOPs, 146M, 0.146G, 146e6.")] = "146MFLOPs",
    n_trials: Annotated[int | None, typer.Option(help="Trials to run (added to a resumed study).")] = 100,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    study: Annotated[
        str | None,
        typer.Option(help="Study name (default: <target>-<budget>-<family>, +shuffle with --space-shuffle)."),
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (default: sqlite:///<results-dir>/<study>/study.db).")
    ] = None,
    results_dir: Annotated[Path, typer.Option(help="Where studies and their artifacts go.")] = Path("results"),
    family: FamilyOption = Family.mixed,
    sampler: SamplerOption = Sampler.tpe,
    seed: Annotated[int | None, typer.Option(help="Sampler and proxy seed.")] = None,
    proxy: ProxyOption = DEFAULT_PROXY,
    latency: LatencyOption = LatencyMode.measured,
    objective: ObjectiveOption = Objective.pareto,
    latency_target: Annotated[str | None, typer.Option(help="Target T of the reward objective, e.g. 2ms.")] = None,
    params_budget: Annotated[str | None, typer.Option(help="Parameter budget, e.g. 2.5M.")] = None,
    latency_budget: Annotated[
        str | None,
        typer.Option(
            help="Latency budget, e.g. 2ms or 500us, in the figure the search compares: normalised ms on cpu and "
            "onnxruntime (`measure`'s 'normalised:' line), raw on gpu."
        ),
    ] = None,
    proxy_floor: Annotated[
        str | None,
        typer.Option(
            help="Only architectures scoring at least this proxy are results: a number, or a baseline name "
            "(its score in this search), e.g. shufflenet_v2_x1_0. A constraint, like the budgets."
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset for --proxy train (ImageFolder or CIFAR folder).")] = None,
    seed_baselines: Annotated[bool, typer.Option(help="Evaluate the papers' models that fit first.")] = True,
    workers: Annotated[
        int, typer.Option(help="Local worker processes on the study (one times on the device at a time).")
    ] = 1,
    resolution: Annotated[int | None, typer.Option("--resolution", help="Override the input resolution.")] = None,
    space_shuffle: SpaceShuffleOption = False,
    proxy_refine: Annotated[
        int,
        typer.Option(
            help="After the search, train the front's K highest-proxy architectures and the paper models they "
            "are compared with on --data (the `train` recipe), and rank by trained top-1. 0: off."
        ),
    ] = 0,
    refine_epochs: Annotated[int, typer.Option(help="Epochs of --proxy-refine's training.")] = 5,
    confirm_rounds: Annotated[
        int,
        typer.Option(
            help="Re-measure each family's best and its paper model together in this many interleaved rounds; "
            "the '% lower' headline comes from it. 0: off."
        ),
    ] = 10,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Say which of ShuffleNet V2's guidelines G1-G4 each best follows better than V2 1.0x, and which "
            "of them hold on this device (from the last `guidelines` run here).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Search the ShuffleNet space for fast, accurate architectures under a FLOPs budget.

    Example: shufflenet-nas search --target gpu --budget 146MFLOPs
    """
    import optuna

    from shufflenet_nas.nas.data import load_dataset
    from shufflenet_nas.nas.latency._interleaved import MIN_ROUNDS
    from shufflenet_nas.nas.proxies import check_proxy_names
    from shufflenet_nas.nas.search import Interrupted, SearchConfig, run_search, run_workers
    from shufflenet_nas.nas.study import with_study_anchor
    from shufflenet_nas.results.rows import RANK_PROXY
    from shufflenet_nas.results.summary import confirm_bests, remeasure_front, summarise, write_artifacts
    from shufflenet_nas.search_spaces import SpaceRanges
    from shufflenet_nas.units import parse_flops, parse_latency_ms, parse_params

    measured = measure.config()
    dataset = load_dataset(data, resolution) if data is not None else None
    check_proxy_names([proxy.value], dataset)
    budget_flops = parse_flops(budget)
    resolution_option = resolution
    resolution = resolution or (dataset.resolution if dataset is not None else 224)
    default_name = f"{measured.target}-{budget_flops / 1e6:g}M-{family}" + ("+shuffle" if space_shuffle else "")
    config = SearchConfig(
        study_name=study or default_name,
        budget_flops=budget_flops,
        measure=measured,
        params_budget=parse_params(params_budget) if params_budget else None,
        latency_budget_ms=parse_latency_ms(latency_budget) if latency_budget else None,
        proxy_floor=proxy_floor,
        family=family.value,
        sampler=sampler.value,
        seed=seed,
        proxy=proxy.value,
        objective=objective.value,
        latency_target_ms=parse_latency_ms(latency_target, "latency_target_ms") if latency_target else None,
        latency_mode=latency.value,
        resolution=resolution,
        num_classes=dataset.num_classes if dataset is not None else 1000,
        data=data,
        results_dir=results_dir,
        storage=storage,
        seed_baselines=seed_baselines,
        ranges=SpaceRanges(shuffle=(False, True)) if space_shuffle else SpaceRanges(),
    )
    if confirm_rounds != 0 and confirm_rounds < MIN_ROUNDS:
        raise UsageError(f"--confirm-rounds {confirm_rounds}: give 0 (off) or {MIN_ROUNDS} or more rounds")
    if n_trials is not None and n_trials < 1:
        raise UsageError(f"--n-trials {n_trials}: give at least 1")
    if not 1 <= workers <= (os.cpu_count() or 1):
        raise UsageError(f"--workers {workers}: give 1 to {os.cpu_count()} (this machine's logical CPUs)")
    if timeout is not None and not 0 < timeout < float("inf"):
        raise UsageError(f"--timeout {timeout}: give a positive number of seconds")
    if proxy_refine < 0 or (proxy_refine and dataset is None):
        raise UsageError(f"--proxy-refine {proxy_refine}: give 0 (off), or 1 or more with --data DIR to train on")
    refine_recipe = None
    if proxy_refine:
        from shufflenet_nas.nas.training import TrainRecipe

        with parameters_of("refine"):
            refine_recipe = TrainRecipe(epochs=refine_epochs)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress bar and messages say what happens
    from_data = " (from --data)" if dataset is not None and resolution_option is None else ""
    err.print(
        f"study [bold]{escape(config.study_name)}[/bold] at {escape(mask_password(config.storage_url))} · "
        f"target {measured.target} · {config.budget_mflops:g} MFLOPs · {resolution} px{from_data} · "
        f"proxy {proxy} · latency {latency}" + (f" · {workers} workers" if workers > 1 else ""),
        highlight=False,
    )
    interrupted: Interrupted | None = None
    try:
        with progress("trials", n_trials) as bar:
            callback = _ProgressCallback(bar)
            if workers > 1:
                finished = run_workers(config, n_trials, timeout, workers, on_progress=callback.show_done)
            else:
                finished = run_search(config, n_trials, timeout, callbacks=[callback], data=dataset)
    except Interrupted as signal_received:
        interrupted = signal_received
        err.print(
            "[yellow]interrupted[/yellow]: the running trial is marked failed (a resume retries it); "
            "finished trials are kept"
        )
        finished = optuna.load_study(study_name=config.study_name, storage=config.storage_url)
    if latency is LatencyMode.lut and not interrupted:
        err.print("re-measuring the Pareto front on the device ...")
        remeasure_front(finished, with_study_anchor(finished, config).measure)  # in the study's units
    if refine_recipe is not None and dataset is not None and not interrupted:
        _refine(finished, proxy_refine, dataset, refine_recipe, config, json_output)
    elif finished.user_attrs.get("rank_by") not in (None, RANK_PROXY):
        finished.set_user_attr("rank_by", RANK_PROXY)  # this run did not refine: rank by the proxy again
    if confirm_rounds and not interrupted:
        with err.status(f"re-measuring each family's best beside its paper model ({confirm_rounds} rounds) ..."):
            confirm_bests(finished, measured, rounds=confirm_rounds)
    summary = summarise(finished)
    paths = write_artifacts(summary, config.study_dir)
    explanation = _explanation(summary, measured) if explain else None
    _render(summary, json_output, extra={"explain": explanation} if explanation else {})
    if explanation and not json_output:
        from shufflenet_nas.results.explanation import explanation_lines

        _print_guidelines(summary)
        for line in explanation_lines(explanation, measured.target):
            out.print(escape(line), highlight=False, soft_wrap=True)
    err.print(f"wrote {', '.join(str(p) for p in paths)}", highlight=False)
    if interrupted:
        raise typer.Exit(interrupt_exit_code(interrupted))
    if not summary.trials:
        raise ShuffleNetNASError(_nothing_found(summary, config))


def _explanation(summary: StudySummary, config: MeasureConfig) -> dict[str, Any]:
    from shufflenet_nas.guidelines import stored_result
    from shufflenet_nas.results.explanation import explain_bests

    return explain_bests(summary, stored_result(config))


def _refine(
    study: optuna.Study, k: int, dataset: Dataset, recipe: TrainRecipe, config: SearchConfig, json_output: bool
) -> None:
    """--proxy-refine: train the front's best by proxy and the paper models, then rank by trained top-1."""
    from shufflenet_nas.cli.train import announce, training_display
    from shufflenet_nas.results.training import refine_by_training

    err.print(
        f"--proxy-refine {k}: training on {escape(dataset.describe())}; {recipe.describe()}",
        highlight=False,
        soft_wrap=True,
    )
    with training_display(json_output) as show_progress:
        refine_by_training(
            study,
            k,
            dataset,
            recipe,
            study_dir=config.study_dir,
            seed=config.seed or 0,
            device="cuda" if config.measure.target == "gpu" else "cpu",
            on_start=announce,
            on_progress=show_progress,
        )


def _nothing_found(summary: StudySummary, config: SearchConfig) -> str:
    """Why a search has no result, and what to change."""
    counts = summary.counts
    if counts["complete"] == 0:
        return f"no trial finished ({counts['failed']} failed; `shufflenet-nas show --all` gives their reasons)"
    over = []
    if config.proxy_floor is not None:
        over.append(f"lower --proxy-floor {config.proxy_floor}")
    if config.latency_budget_ms is not None:
        over.append(f"raise --latency-budget {config.latency_budget_ms:g}ms")
    over.append(
        f"raise --budget {config.budget_mflops:g}MFLOPs" + (" or --params-budget" if config.params_budget else "")
    )
    return (
        f"none of the {counts['complete']} architectures tried met the search's limits; "
        + ", or ".join(over)
        + " (`shufflenet-nas show --all` says what each missed)"
    )


class _ProgressCallback:
    """Optuna callback that advances the progress bar and shows best-so-far and time per trial."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar
        self.started = time.perf_counter()
        self.done = 0
        self.best_proxy = float("-inf")
        self.fastest = float("inf")

    def show_done(self, done: int) -> None:
        """Progress of local worker processes: trials finished so far."""
        self.bar.update(done, status=f"{done} trials finished")

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
        self.bar.update(advance=1, status=status)


def show(
    study_dir: Annotated[Path | None, typer.Argument(help="A results/<study> directory.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL instead of a directory.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name within --storage.")] = None,
    all_trials: Annotated[
        bool, typer.Option("--all", help="List every trial: its state, and why it is not a result.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """The Pareto front and the best V1-style and V2-style configurations of a study (opened read-only), each best
    beside ShuffleNet V2 1.0x in the V2 paper's guidelines G1-G4 (counted)."""
    from shufflenet_nas.results import summarise

    summary = summarise(open_study(study_dir, storage, study), every_trial=all_trials)
    _render(summary, json_output, all_trials)
    if not json_output:  # the JSON has them in "guidelines"
        _print_guidelines(summary)


def _print_guidelines(summary: StudySummary) -> None:
    """Each best beside V2 1.0x, guideline by guideline (counted)."""
    for title, lines in summary.guideline_lines():
        out.print(escape(title), highlight=False, style="dim")
        for line in lines:
            out.print(f"  {escape(line)}", highlight=False, soft_wrap=True)


def _render(
    summary: StudySummary, json_output: bool, all_trials: bool = False, extra: dict[str, Any] | None = None
) -> None:
    if json_output:
        data = summary.to_dict() | (extra or {})
        if all_trials and summary.every_trial is not None:
            data["trials"] = [asdict(status) for status in summary.every_trial]
        print_json(data)
        return
    counts = ", ".join(f"{v} {k}" for k, v in summary.counts.items())
    out.print(f"[bold]{summary.study_name}[/bold]: {counts}", highlight=False)
    if all_trials and summary.every_trial is not None:
        out.print(_every_trial_table(summary))
    else:
        out.print(_results_table(summary))
    if any(row.latency_source == "lut" for row in summary.shown_rows()):
        out.print("* latency predicted by the lookup table", highlight=False)
    rule = summary.rule_text()
    if rule:
        out.print(escape(rule), highlight=False, style="dim")
    for note in (summary.training_text(), summary.latency_note()):
        if note:
            out.print(escape(note), highlight=False, style="dim")
    for headline, genotype in summary.verdicts():
        style = "bold" if genotype else "yellow"
        out.print(f"[{style}]{escape(headline)}[/{style}]", highlight=False)
        if genotype:
            out.print(f"  {genotype}", highlight=False)


_NUMERIC = ("trial", "MFLOPs", "params", "latency ms", "proxy")
_TRAINED = ("top-1 %", "top-5 %")  # trained accuracy, shown once `train` has recorded some


def _results_table(summary: StudySummary) -> Table:
    """The Pareto front, every paper baseline (marked where it is no result) and each family's best."""
    from shufflenet_nas.results.rows import LATENCY_FORMAT, PROXY_FORMAT

    ranked = "top-1" if summary.ranked_by_accuracy else "proxy"
    front = (
        "the 10 highest rewards"
        if summary.settings.get("objective") == "reward"
        else f"Pareto front (latency vs {ranked})"
    )
    table = Table(title=f"{front} and paper baselines")
    trained = any(row.accuracy_top1 is not None for row in summary.shown_rows())
    columns = ("", "trial", "family", "MFLOPs", "params", "latency ms", "proxy", *_TRAINED * trained, "arch_id")
    for column in columns:
        table.add_column(column, justify="right" if column in (*_NUMERIC, *_TRAINED) else "left")
    for row in summary.shown_rows():
        mark = escape(summary.mark(row))
        if mark.startswith("best "):
            mark = f"[green]{mark}[/green]"
        elif row.why_not:
            mark = f"[yellow]{mark}[/yellow]"
        source = "*" if row.latency_source == "lut" else ""
        table.add_row(
            mark,
            str(row.number),
            row.family,
            f"{row.mflops:.1f}",
            f"{row.params:,}",
            f"{row.latency_ms:{LATENCY_FORMAT}}{source}",
            f"{row.proxy:{PROXY_FORMAT}}",
            *(percent(row.accuracy_top1), percent(row.accuracy_top5)) * trained,
            row.arch_id,
        )
    return table


def _every_trial_table(summary: StudySummary) -> Table:
    """Every trial of the study in order: its state and, for those that are no result, why."""
    from shufflenet_nas.results.rows import LATENCY_FORMAT, PROXY_FORMAT

    table = Table(title="every trial: the results, and why the others are not")
    for column in ("trial", "state", "", "family", "MFLOPs", "latency ms", "proxy", "arch_id", "why not a result"):
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    best = {row.number: family for family, row in summary.best.items()}
    for status in summary.every_trial or []:
        mark = f"[green]best {best[status.number]}[/green]" if status.number in best else escape(status.baseline or "")
        table.add_row(
            str(status.number),
            status.state,
            mark,
            status.family or "",
            "" if status.mflops is None else f"{status.mflops:.1f}",
            "" if status.latency_ms is None else f"{status.latency_ms:{LATENCY_FORMAT}}",
            "" if status.proxy is None else f"{status.proxy:{PROXY_FORMAT}}",
            status.arch_id or "",
            escape(status.reason or ""),
        )
    return table


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.command()(show)
