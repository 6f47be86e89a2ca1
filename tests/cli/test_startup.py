"""Start-up stays light: help, the version and the commands that need no network import none of the heavy
libraries (each run in a fresh interpreter; not timed here, see benchmarks/cli_startup.py). ``baselines`` counts
with the symbolic replay once the cache holds this code version's checks against fvcore (its first run makes them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "optuna", "fvcore", "scipy", "onnx", "onnxruntime", "sqlalchemy")
PROGRAM = f"""
import json, sys
from shufflenet_nas.cli.app import app
try:
    app(sys.argv[1:], prog_name="shufflenet-nas")
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "heavy": [name for name in {HEAVY!r} if name in sys.modules]}}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],
        ["--version"],
        ["measure", "--help"],
        ["search", "--help"],
        ["lut", "build", "--help"],
        ["validate-proxy", "--help"],
        ["space"],
        ["baselines"],
    ],
    ids=" ".join,
)
def test_start_up_imports_no_heavy_library(arguments: list[str]) -> None:
    if arguments == ["baselines"]:
        _run(arguments)  # the first run in this cache checks each kind of part against fvcore
    report = _run(arguments)
    assert report["heavy"] == [], f"{' '.join(arguments)} imported {report['heavy']}"


def _run(arguments: list[str]) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, *arguments], capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(run.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), run.stderr
    return report
