"""The compare command: a study's finds and the papers' models re-measured together on this device."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shufflenet_nas.cli.common import (
    _MEASURE_OPTIONS,
    Dtype,
    JsonOption,
    MeasureOptions,
    Runtime,
    Target,
    open_study,
    option_group,
    output_path,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.errors import ShuffleNetNASError
from shufflenet_nas.units import percent

if TYPE_CHECKING:
    from shufflenet_nas.results.compare import StudyComparison


_STUDY_SETTINGS = ("target", "runtime", "dtype", "batch", "threads")  # taken from the study unless given


@option_group("measure", MeasureOptions, {name: _MEASURE_OPTIONS[name] for name in _STUDY_SETTINGS})
def compare(
    context: typer.Context,
    measure: MeasureOptions,
    study_dir: Annotated[Path | None, typer.Argument(help="A results/<study> directory.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL instead of a directory.")] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Study name within --storage.")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write PNG charts, report.md and comparison.json into this folder.")
    ] = None,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds, 5 or more (each network once per round).")] = 10,
    runs: Annotated[int, typer.Option(help="Timed forwards per network per round (their median counts).")] = 5,
    json_output: JsonOption = False,
) -> None:
    """Re-measure a study's best, its Pareto front and the papers' models in one run, interleaved in rounds.

    Raw milliseconds and the raw ratio to ShuffleNet V2 1.0x within each round, with 95% bootstrap intervals; with
    counted and paper MFLOPs, params, memory access, operators, proxy, trained and paper top-1. Measured as the
    study was (its target, runtime, dtype, batch, threads) unless an option says otherwise. Then each network in
    ShuffleNet V2's guidelines G1-G4 (counted; on the cpu target G4 also profiled) and each best against V2 1.0x.
    Example: shufflenet-nas compare results/cpu-146M-mixed --out results/cpu-146M-mixed/compare
    """
    from shufflenet_nas.results import summarise
    from shufflenet_nas.results.compare import compare_study

    study = open_study(study_dir, storage, study_name)
    summary = summarise(study)
    config = _as_the_study(measure, summary.settings, context).config()
    if out_dir is not None:
        output_path(out_dir / "report.md", "the comparison")  # a folder that cannot be made fails before measuring
    profiling = " and profiling them" if config.target == "cpu" else ""
    with err.status(f"re-measuring the study's architectures and the papers' models ({rounds} rounds){profiling} ..."):
        comparison = compare_study(study, summary, config, rounds=rounds, runs=runs)
    data = comparison.to_dict()
    if json_output:
        print_json(data | {"files": [str(p) for p in _write(comparison, out_dir)] if out_dir else []})
        return
    out.print(_table(comparison))
    _print_guidelines(comparison)
    for path in _write(comparison, out_dir) if out_dir else []:
        err.print(f"wrote {escape(str(path))}", highlight=False)


def _as_the_study(measure: MeasureOptions, settings: dict[str, Any], context: typer.Context) -> MeasureOptions:
    """``measure`` with each option the command line left at its default taken from the study's settings."""
    given = {name for name in _STUDY_SETTINGS if getattr(context.get_parameter_source(name), "name", "") != "DEFAULT"}
    taken = {name: settings[name] for name in _STUDY_SETTINGS if name not in given and settings.get(name) is not None}
    choices = {"target": Target, "runtime": Runtime, "dtype": Dtype}
    return replace(measure, **{k: choices[k](v) if k in choices else v for k, v in taken.items()})


def _write(comparison: StudyComparison, out_dir: Path) -> list[Path]:
    """The charts, report.md and comparison.json in ``out_dir``."""
    from shufflenet_nas.results.plots import write_plots
    from shufflenet_nas.results.report import report_markdown

    try:
        charts = write_plots(comparison, out_dir)
        report, data = out_dir / "report.md", out_dir / "comparison.json"
        report.write_text(report_markdown(comparison, charts))
        data.write_text(json.dumps(comparison.to_dict(), indent=2, default=str) + "\n")
    except OSError as error:
        raise ShuffleNetNASError(
            f"--out {out_dir}: cannot write there ({error.strerror}); pick another folder"
        ) from None
    return [*charts, report, data]


def _table(comparison: StudyComparison) -> Table:
    p = comparison.provenance
    table = Table(
        title=f"{comparison.study}: re-measured together on {p.get('target')}, {p.get('rounds')} interleaved rounds "
        f"(raw ms; x = ratio to {comparison.reference.label} within each round; [95%])"
    )
    for column in ("", "trial", "MFLOPs", "params", "proxy", "ms", "x V2 1.0x", "top-1 %", "paper top-1 %"):
        table.add_column(column, justify="left" if column == "" else "right")
    for row in sorted(comparison.rows, key=lambda r: r.ms):
        table.add_row(
            escape(row.label) + (" (reference)" if row.is_reference else ""),
            "" if row.trial is None else str(row.trial),
            f"{row.mflops:.1f}",
            f"{row.params:,}",
            "" if row.proxy is None else f"{row.proxy:.4g}",
            f"{row.ms:.3f} [{row.ms_low:.3f}, {row.ms_high:.3f}]",
            f"{row.ratio:.3f} [{row.ratio_low:.3f}, {row.ratio_high:.3f}]",
            percent(row.accuracy_top1),
            "" if row.paper_top1 is None else f"{row.paper_top1:.1f}",
        )
    return table


def _print_guidelines(comparison: StudyComparison) -> None:
    """The guidelines table of the compared networks, and each best against the reference guideline by guideline."""
    from shufflenet_nas.nas.explain import GUIDELINE_LEGEND, MEASURED_LEGEND

    measured = "; G4 time measured" if comparison.measured else ""
    table = Table(title=f"ShuffleNet V2 guidelines, whole networks (counted{measured})")
    for column in ("", *comparison.guideline_columns):
        table.add_column(column, justify="left" if column == "" else "right")
    for row in sorted(comparison.rows, key=lambda r: r.ms):
        table.add_row(escape(row.label), *comparison.guideline_cells(row.label))
    out.print(table)
    out.print(GUIDELINE_LEGEND + ("; " + MEASURED_LEGEND if comparison.measured else ""), style="dim", highlight=False)
    for row in comparison.bests:
        out.print(f"{escape(row.label)} vs {escape(comparison.reference.label)}:", highlight=False)
        for verdict in comparison.guideline_verdicts(row.label):
            out.print(f"  {escape(verdict.text())}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(compare)
