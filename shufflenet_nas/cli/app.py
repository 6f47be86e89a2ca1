"""The root Typer app: every command group registers here."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

from shufflenet_nas import __version__
from shufflenet_nas.cli import catalog, guidelines, proxy
from shufflenet_nas.cli import compare as compare_commands
from shufflenet_nas.cli import export as export_commands
from shufflenet_nas.cli import measure as measure_commands
from shufflenet_nas.cli import search as search_commands
from shufflenet_nas.cli import train as train_commands
from shufflenet_nas.cli.console import out
from shufflenet_nas.cli.errors import ErrorHandlingGroup, show_warning

app = typer.Typer(
    cls=ErrorHandlingGroup,
    name="shufflenet-nas",
    help=(
        "Hardware-aware architecture search over the ShuffleNet V1/V2 design space.\n\n"
        "FLOPs everywhere mean multiply-adds of conv and linear layers (the papers' convention), "
        "counted with fvcore and shown as MFLOPs."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        out.print(f"shufflenet-nas {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Hardware-aware architecture search over the ShuffleNet V1/V2 design space."""
    warnings.showwarning = show_warning


catalog.register(app)
measure_commands.register(app)
proxy.register(app)
search_commands.register(app)
train_commands.register(app)
export_commands.register(app)
compare_commands.register(app)
guidelines.register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="shufflenet-nas")
