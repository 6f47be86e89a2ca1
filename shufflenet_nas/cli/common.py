"""What every command shares: consoles, the --json option, argument parsing, error mapping."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError, UsageError, mask_password
from shufflenet_nas.search_spaces import Genotype, resolve_arch

# Data goes to stdout; progress, tables meant for people and diagnostics go to stderr when --json is on.
# Without a terminal (pipes, CI logs) Rich would wrap tables at 80 columns; allow wide tables instead.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ArchArgument = Annotated[
    str,
    typer.Argument(help="A baseline name (see `baselines`), a genotype string (stem24s4-v2_...) or a JSON file."),
]


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def arch_from_argument(arch: str, resolution: int | None = None) -> Genotype:
    """Resolve ARCH; a bad value is a usage error naming the accepted forms."""
    try:
        genotype = resolve_arch(arch)
        return genotype.with_resolution(resolution) if resolution else genotype
    except ValueError as error:
        raise UsageError(f"ARCH: {error}") from None


def output_path(path: Path, what: str) -> Path:
    """Create the parent folder of an output file; a path that cannot be written is a usage error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the folder for {what} {path}: {error.strerror}; pick another path") from None
    return path


class ErrorHandlingGroup(TyperGroup):
    """Turns known errors into one line on stderr and an exit code; tracebacks only when debugging."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort, BrokenPipeError):
            raise
        except KeyboardInterrupt as interrupt:
            err.print("interrupted")
            raise typer.Exit(getattr(interrupt, "exit_code", 130)) from None
        except ShuffleNetNASError as error:
            if os.environ.get("SHUFFLENET_NAS_DEBUG") == "1":
                raise
            err.print(f"[red]error:[/red] {escape(mask_password(str(error)))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2 if isinstance(error, InvalidArgumentError) else 1) from None
        except Exception as error:
            if os.environ.get("SHUFFLENET_NAS_DEBUG") == "1":
                raise
            message = mask_password(f"{type(error).__name__}: {error}".splitlines()[0])
            err.print(
                f"[red]error:[/red] {escape(message)} (set SHUFFLENET_NAS_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
