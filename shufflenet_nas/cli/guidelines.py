"""The guidelines command: the ShuffleNet V2 paper's guidelines G1-G4 re-measured on this device."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shufflenet_nas.cli.common import _MEASURE_OPTIONS, JsonOption, MeasureOptions, option_group, output_path
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.progress import progress
from shufflenet_nas.errors import ShuffleNetNASError
from shufflenet_nas.guidelines.configs import RESOLUTION, ROUNDS, RUNS, paper_setup

if TYPE_CHECKING:
    from shufflenet_nas.guidelines import GuidelineResult, GuidelinesResult

_OPTIONS = ("target", "runtime", "dtype", "threads")  # the batch is the paper's per target unless --batch says


@option_group("measure", MeasureOptions, {name: _MEASURE_OPTIONS[name] for name in _OPTIONS})
def guidelines(
    measure: MeasureOptions,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch",
            help="Batch size (default: the paper's, 8 on gpu as on its GTX 1080Ti, 1 on cpu and onnxruntime as on "
            "its ARM phone).",
            rich_help_panel="Measurement",
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Width x1 only (the paper measured x1, x2 and x4).")] = False,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds per table, 5 or more.")] = ROUNDS,
    runs: Annotated[int, typer.Option(help="Timed forwards per row per round (their median counts).")] = RUNS,
    resolution: Annotated[int, typer.Option(help="Feature-map size of the benchmark stacks.")] = RESOLUTION,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write one PNG chart per guideline, guidelines.md and guidelines.json here."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Reproduce the ShuffleNet V2 paper's guidelines G1-G4 on this device.

    G1 equal channel widths minimise memory access cost (MAC); G2 group
    convolution increases it; G3 network fragmentation reduces parallelism;
    G4 element-wise operations are not negligible.

    The paper's Tables 1-4 (stacks of 10 blocks, rows at about equal FLOPs)
    at widths x1, x2, x4, on the paper's width set: cpu and onnxruntime as
    its ARM phone (batch 1), gpu as its GTX 1080Ti (batch 8). Each table's
    rows are timed together, interleaved in rounds. Prints the throughput
    beside the paper's, MAC and MFLOPs per row, and per guideline the
    deciding time ratio with its 95% interval: holds (all below 1), does
    not hold (all above 1) or inconclusive.

    Example: shufflenet-nas guidelines --target cpu --out docs/guidelines-cpu
    """
    from shufflenet_nas.guidelines import run_guidelines, store_result

    config = replace(measure, batch=paper_setup(measure.target.value).batch if batch is None else batch).config()
    if out_dir is not None:
        output_path(out_dir / "guidelines.md", "the guidelines report")  # fails before measuring, not after
    with progress("measuring the guideline tables") as bar:

        def show(done: int, total: int, what: str) -> None:
            bar.update(done, total=total, description=f"measured {what}")

        result = run_guidelines(config, quick=quick, rounds=rounds, runs=runs, resolution=resolution, on_progress=show)
    files = _write(result, out_dir) if out_dir is not None else []
    stored = store_result(result)
    err.print(f"kept this device's verdicts in {escape(str(stored))} for `search --explain`", highlight=False)
    if json_output:
        print_json(result.to_dict() | {"files": [str(path) for path in files]})
        return
    from shufflenet_nas.guidelines.report import device_line, paper_line

    source = result.guidelines[0].source.rsplit(", ", 1)[0]
    out.print(f"measured on {device_line(result)}; beside {paper_line(result)}, {source}", highlight=False)
    for guideline in result.guidelines:
        out.print(_table(result, guideline))
        out.print(_verdict_line(guideline), highlight=False)
    for path in files:
        err.print(f"wrote {escape(str(path))}", highlight=False)


def _write(result: GuidelinesResult, out_dir: Path) -> list[Path]:
    from shufflenet_nas.guidelines import write_report

    try:
        return write_report(result, out_dir)
    except OSError as error:
        raise ShuffleNetNASError(
            f"--out {out_dir}: cannot write there ({error.strerror}); pick another folder"
        ) from None


def _table(result: GuidelinesResult, guideline: GuidelineResult) -> Table:
    from shufflenet_nas.guidelines.report import row_cells, table_columns

    table = Table(
        title=f"{guideline.key}: {guideline.claim} ({guideline.source.rsplit(', ', 1)[-1]})",
        caption=f"ms and x first (time over the first row's): medians over {result.rounds} interleaved rounds "
        "[95%]; rel.: throughput relative to the first row",
    )
    for column in table_columns(result):
        table.add_column(column, justify="left" if column in ("row", "channels") else "right")
    for measured in guideline.tables:
        for row in measured.rows:
            table.add_row(*map(escape, row_cells(result, measured, row)))
        table.add_section()
    return table


def _verdict_line(guideline: GuidelineResult) -> str:
    from shufflenet_nas.guidelines.report import decided_by, ratio_text

    widths = "; ".join(f"x{table.width} {ratio_text(table)} {table.verdict}" for table in guideline.tables)
    return f"{guideline.key} {guideline.verdict.upper()}: {decided_by(guideline)} [95%] = {widths}"


def register(app: typer.Typer) -> None:
    app.command()(guidelines)
