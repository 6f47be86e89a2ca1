"""The compare command: a study's finds and the papers' models re-measured together on this device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shufflenet_nas.cli.common import JsonOption, MeasureOptions, measure_options
from shufflenet_nas.cli.console import err, out, percent, print_json
from shufflenet_nas.cli.errors import UsageError, parameters_of

if TYPE_CHECKING:
    from shufflenet_nas.results.compare import StudyComparison


@measure_options(max_time=10.0, precision=0.005, isolate=False)
def compare(
    study_dir: Annotated[Path, typer.Argument(help="A results/<study> directory.")],
    measure: MeasureOptions,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write PNG charts and report.md into this folder.")
    ] = None,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds (each network once per round).")] = 10,
    runs: Annotated[int, typer.Option(help="Timed forwards per network per round (their median counts).")] = 5,
    json_output: JsonOption = False,
) -> None:
    """Re-measure a study's best, its Pareto front and the papers' models in one run, interleaved in rounds.

    Raw milliseconds and the raw ratio to ShuffleNet V2 1.0x within each round, with 95% bootstrap intervals; with
    counted and paper MFLOPs, params, memory access, operators, proxy, trained and paper top-1.
    Example: shufflenet-nas compare results/cpu-146M-mixed --out results/cpu-146M-mixed/compare
    """
    from shufflenet_nas.results import load_study, summarise
    from shufflenet_nas.results.compare import compare_study

    if rounds < 3 or runs < 1:
        raise UsageError(f"--rounds {rounds} --runs {runs}: give 3 or more rounds and 1 or more runs")
    with parameters_of("study_dir"):
        study = load_study(study_dir)
    summary = summarise(study)
    config = measure.config()
    with err.status(f"re-measuring the study's architectures and the papers' models ({rounds} rounds) ..."):
        comparison = compare_study(study, summary, config, rounds=rounds, runs=runs)
    written: list[Path] = []
    if out_dir is not None:
        written = _write(comparison, out_dir)
    if json_output:
        print_json(comparison.to_dict() | {"files": [str(p) for p in written]})
        return
    out.print(_table(comparison))
    for path in written:
        err.print(f"wrote {escape(str(path))}", highlight=False)


def _write(comparison: StudyComparison, out_dir: Path) -> list[Path]:
    from shufflenet_nas.results.plots import write_plots
    from shufflenet_nas.results.report import report_markdown

    try:
        charts = write_plots(comparison, out_dir)
        report = out_dir / "report.md"
        report.write_text(report_markdown(comparison, charts))
    except OSError as error:
        raise UsageError(f"--out {out_dir}: cannot write there ({error.strerror}); pick another folder") from None
    return [*charts, report]


def _table(comparison: StudyComparison) -> Table:
    p = comparison.provenance
    table = Table(
        title=f"{comparison.study}: re-measured together on {p.get('target')}, {p.get('rounds')} interleaved rounds "
        f"(raw ms; x = ratio to {comparison.reference} within each round; [95%])"
    )
    for column in ("", "trial", "MFLOPs", "params", "proxy", "ms", "x V2 1.0x", "top-1 %", "paper top-1 %"):
        table.add_column(column, justify="left" if column == "" else "right")
    for row in sorted(comparison.rows, key=lambda r: r.ms):
        table.add_row(
            escape(row.label),
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


def register(app: typer.Typer) -> None:
    app.command()(compare)
