"""The export command: found architectures (or any ARCH) as JSON, ONNX, torch.export, standalone PyTorch or weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from shufflenet_nas.cli.common import (
    Choice,
    JsonOption,
    arch_from_argument,
    choice_option,
    only_from_a_study,
    open_study,
    selection_options,
)
from shufflenet_nas.cli.console import err, out, print_json
from shufflenet_nas.cli.errors import UsageError, parameters_of
from shufflenet_nas.results.selection import Selection  # light: the command's options are made of it

if TYPE_CHECKING:
    from shufflenet_nas.results.export import ExportItem

ExportFormat = Choice("ExportFormat", "json onnx pt2 py state-dict")
FormatOption = choice_option(
    ExportFormat,
    "--format",
    "json (genotype, costs, measurements, provenance), onnx, pt2 (torch.export), py (standalone PyTorch) "
    "or state-dict (weights with the genotype).",
)


@selection_options(baselines=False)
def export(
    selection: Selection,
    source: Annotated[
        str | None,
        typer.Argument(
            help="A results/<study> directory, or ARCH (a baseline name, genotype string, JSON file or trained .pt)."
        ),
    ] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL of the study, instead of SOURCE.")] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Study name within --storage.")] = None,
    format: FormatOption = ExportFormat.json,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", help="A file (one architecture), or a folder (default results/export): <arch_id>.<format>."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Write architectures as files to take away, each checked right after it is written.

    ONNX runs in onnxruntime against PyTorch (more than 1e-4 apart: refused); pt2 loads back with
    torch.export.load and runs; py imports (torch only) and gives PyTorch's outputs exactly. A study's trained
    weights (from `train`) go with its architectures; otherwise the weights are freshly initialised (seed 0).

    Examples: shufflenet-nas export results/cpu-146M-mixed --best-v2 --format onnx;
    shufflenet-nas export shufflenet_v2_x1_0 --format py --out shufflenet_v2.py;
    shufflenet-nas export --storage postgresql://host/db --study cpu-146M-mixed --pareto --format onnx
    """
    from shufflenet_nas.results.export import SUFFIXES
    from shufflenet_nas.results.export import export as export_item

    items = _items(source, storage, study_name, selection)
    suffix = SUFFIXES[format.value]
    as_file = out_path is not None and out_path.suffix != "" and not out_path.is_dir()
    if as_file and len(items) > 1:
        raise UsageError(f"--out {out_path}: {len(items)} architectures need a folder, not a file name")
    folder = out_path if out_path is not None and not as_file else Path("results") / "export"
    done = []
    for item in items:
        path = out_path if as_file and out_path is not None else folder / f"{item.stem}{suffix}"
        with err.status(f"exporting {item.label} as {format} ..."), parameters_of("export"):
            exported = export_item(item, format.value, path)
        done.append(exported)
        if not json_output:
            out.print(
                f"wrote [bold]{escape(str(exported.path))}[/bold]  {escape(item.label)} · {exported.weights} weights · "
                f"{escape(exported.check)}",
                highlight=False,
                soft_wrap=True,
            )
    if json_output:
        print_json([exported.to_dict() for exported in done])


def _items(source: str | None, storage: str | None, study_name: str | None, selection: Selection) -> list[ExportItem]:
    """What SOURCE (or ``--storage``) and the selection name: a study's rows, or one ARCH (a trained .pt carries
    its weights)."""
    from shufflenet_nas.results.export import ExportItem, study_items

    directory = Path(source) if source is not None else None
    if storage is not None or directory is None or directory.is_dir():
        if directory is not None and storage is None and not (directory / "study.db").is_file():
            raise UsageError(f"SOURCE {source}: a directory with no study.db; give a results/<study> directory or ARCH")
        from shufflenet_nas.results import summarise
        from shufflenet_nas.results.loading import storage_file
        from shufflenet_nas.results.selection import select_rows

        study = open_study(directory, storage, study_name)
        if storage is not None:  # a SQLite file's folder holds what `train` wrote beside it
            database = storage_file(storage)
            directory = database.parent if database is not None else None
        return study_items(study, directory, select_rows(summarise(study), selection))
    assert source is not None
    only_from_a_study(selection, source)
    if not directory.exists() and ("/" in source or directory.suffix in (".json", ".pt", ".pth")):
        raise UsageError(f"SOURCE {source}: no such study directory or file")
    genotype = arch_from_argument(source)
    weights = directory if directory.suffix in (".pt", ".pth") and directory.is_file() else None
    return [ExportItem(genotype, genotype.arch_id, weights, provenance={"source": source})]


def register(app: typer.Typer) -> None:
    app.command(name="export")(export)
