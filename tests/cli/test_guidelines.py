"""`guidelines`: the V2 paper's guidelines G1-G4 re-measured here; JSON, tables, files, bad input."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from shufflenet_nas.cli.app import app
from shufflenet_nas.cli.errors import FLAGS
from tests.cli.test_startup import _run

runner = CliRunner()
TINY = ["guidelines", "--quick", "--resolution", "4", "--rounds", "5", "--runs", "1"]


def test_json_reads_back_and_the_files_are_written(tmp_path: Path) -> None:
    from shufflenet_nas.guidelines import GuidelinesResult

    result = runner.invoke(app, [*TINY, "--json", "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [g["key"] for g in data["guidelines"]] == ["G1", "G2", "G3", "G4"]
    assert (data["target"], data["batch"], data["width_set"], data["widths"]) == ("cpu", 1, "arm", [1])
    assert all(g["verdict"] in ("holds", "does not hold", "inconclusive") for g in data["guidelines"])
    assert GuidelinesResult.from_dict(data).to_dict() == {k: v for k, v in data.items() if k != "files"}
    names = [Path(path).name for path in data["files"]]
    assert names == ["g1.png", "g2.png", "g3.png", "g4.png", "guidelines.md", "guidelines.json"]
    assert all((tmp_path / "g" / name).stat().st_size > 0 for name in names)
    assert "[4/4]" in result.stderr  # progress on stderr, data alone on stdout


def test_tables_and_a_verdict_line_per_guideline() -> None:
    result = runner.invoke(app, [*TINY, "--batch", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "batch 2" in result.stdout and "paper images/s (batch 1)" in result.stdout and "MAC (M)" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line[:3] in ("G1 ", "G2 ", "G3 ", "G4 ")]
    assert [line.split(":")[0].split()[0] for line in lines] == ["G1", "G2", "G3", "G4"]
    assert ": t(1:1) / t(1:12) [95%] = x1 " in lines[0] and ": t(neither) / t(ReLU+shortcut) [95%] = x1 " in lines[3]


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--rounds", "3"], 2, "error: --rounds 3, --runs 1: give 5 or more rounds"),
        (["--batch", "0"], 2, "error: --batch 0: need at least 1"),
        (["--resolution", "0"], 2, "error: --resolution 0: use 1 to 224 pixels"),
        (["--threads", "0"], 2, "error: --threads 0: need at least 1"),
        (["--target", "tpu"], 2, "error: --target 'tpu' unknown; use one of cpu, gpu, onnxruntime"),
        (["--runtime", "cudagraph"], 2, "error: --runtime cudagraph does not run with --target cpu"),
    ],
)
def test_bad_input_is_one_line_and_a_usage_error(arguments: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, [*TINY, *arguments])
    assert result.exit_code == code, result.output
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_without_a_gpu_is_the_one_line_device_error() -> None:
    result = runner.invoke(app, [*TINY, "--target", "gpu"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --target gpu: PyTorch ") and "sees no CUDA GPU" in result.stderr


def test_an_unwritable_out_fails_before_measuring(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = runner.invoke(app, [*TINY, "--out", str(tmp_path / "file" / "g")])
    assert result.exit_code == 2 and "cannot create the folder" in result.stderr and not result.stdout


def test_every_parameter_of_run_guidelines_has_a_flag_or_needs_none() -> None:
    from shufflenet_nas.guidelines import run_guidelines

    # config: the measurement options; on_progress: the progress bar; widths: no option (--quick picks x1);
    # quick: a preset the library never names in a message.
    no_flag = {"config", "on_progress", "widths", "quick"}
    assert {name for name in inspect.signature(run_guidelines).parameters if name not in FLAGS} == no_flag


def test_help_imports_no_heavy_library() -> None:
    assert _run(["guidelines", "--help"])["heavy"] == []
