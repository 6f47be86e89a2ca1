"""Where output goes: data on stdout (``out``, ``print_json``); progress, tables for people and diagnostics on
stderr (``err``) when ``--json`` is on."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Data goes to stdout; progress, tables meant for people and diagnostics go to stderr when --json is on.
# Without a terminal (pipes, CI logs) Rich would wrap tables at 80 columns; allow wide tables instead.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
