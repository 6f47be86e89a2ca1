"""Every bad input a review found, through the real CLI: the exit code, one line that names the problem,
no traceback, no password, and a results directory (holding a study already) left exactly as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflenet_nas.cli.app import app

runner = CliRunner()
SECRET = "secretpw"
TINY = ["--target", "cpu", "--budget", "12M", "--resolution", "32", "--proxy", "params", "--max-time", "0.02"]
NO_SERVER = f"user:{SECRET}@127.0.0.1:1/db"  # nothing listens on port 1

CASES = [
    # (arguments, exit code, what the one line must say)
    (["search", "--storage", f"postgresql+psycopg2://{NO_SERVER}"], 1, "needs the database driver 'psycopg2'"),
    (["search", *TINY, "--storage", f"postgresql://{NO_SERVER}"], 1, "127.0.0.1"),
    (["show", "--storage", f"postgresql://{NO_SERVER}", "--study", "x"], 1, "127.0.0.1"),
    (["search", *TINY, "--study", "../../etc"], 2, "--study ../../etc is not a name"),
    (["search", *TINY, "--study", "/tmp/elsewhere"], 2, "is not a name"),
    (["search", "--budget", "1M"], 1, "below the smallest architecture of the space"),
    (["search", "--budget", "1e30", "--no-seed-baselines"], 1, "above the largest architecture"),
    (["search", "--budget", "146MB"], 2, "146MFLOPs"),
    (["search", "--budget", "abc"], 2, "--budget abc cannot be read"),
    (["lut", "eval", "--samples", "0"], 2, "--samples 0: need at least 1"),
    (["measure", "shufflenet_v2_x1_0", "--resolution", "5"], 2, "--resolution: input resolution 5 is too small"),
    (["search", "--resolution", "100000"], 2, "above the limit of 2048"),
    (["search", *TINY, "--n-trials", "0"], 2, "--n-trials 0"),
    (["search", *TINY, "--confirm-rounds", "2"], 2, "--confirm-rounds 2: give 0 (off) or 5 or more rounds"),
    (["search", *TINY, "--workers", "0"], 2, "--workers 0"),
    (["search", *TINY, "--batch", "0"], 2, "--batch 0"),
    # a resume with other settings
    (["search", *TINY, "--sampler", "random"], 2, "made with --sampler tpe (now --sampler random)"),
    (["search", *TINY, "--seed", "7"], 2, "made with no --seed (now --seed 7)"),
    (["search", *TINY, "--max-time", "0.5"], 2, "made with --max-time 0.02 (now --max-time 0.5)"),
    (["describe", "stem24s4-v2_n4_c100000_g1_r0.5_k3"], 2, "100000 channels is above the limit of 8192"),
    (["describe", "shufflenet_v2_x1_0", "--resolution", "100000"], 2, "above the limit of 2048"),
    (["measure", "shufflenet_v2_x1_0", "--resolution", "100000"], 2, "above the limit of 2048"),
    (["show", "nowhere"], 2, "holds no study.db"),
    (["search", *TINY, "--storage", f"postgresql://user@127.0.0.1:1/db?password={SECRET}"], 1, "127.0.0.1"),
    (["search", *TINY, "--threads", "100000"], 2, "--threads 100000"),
    (["search", *TINY, "--max-time", "nan"], 2, "--max-time nan"),
    (["search", *TINY, "--proxy-floor", "nan"], 2, "--proxy-floor nan is neither"),
    (["search", *TINY, "--timeout", "-1"], 2, "--timeout -1"),
    (["search", *TINY, "--workers", "100000"], 2, "--workers 100000"),
]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file with its size and time; SQLite's -wal/-shm companions (made by merely opening) aside."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))]
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results directory holding one finished study (cpu-12M-mixed)."""
    folder = tmp_path_factory.mktemp("results")
    command = [sys.executable, "-m", "shufflenet_nas", "search", *TINY, "--n-trials", "3", "--results-dir", str(folder)]
    made = subprocess.run(command, capture_output=True, text=True, timeout=300)  # its connections closed at exit
    assert made.returncode == 0, made.stderr
    return folder


@pytest.mark.parametrize(("arguments", "code", "message"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(
    results: Path, arguments: list[str], code: int, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(results)  # `show nowhere` and the default results/ resolve here
    before = _snapshot(results)
    if arguments[0] == "search":
        arguments = [*arguments, "--results-dir", str(results)]
    result = runner.invoke(app, arguments)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == code, result.output
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output and SECRET not in result.output
    assert _snapshot(results) == before
    assert not (results.parent / "etc").exists() and not Path("/tmp/elsewhere").exists()


def test_a_floor_nothing_meets_exits_1_and_says_what_to_change(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["search", *TINY, "--n-trials", "2", "--proxy-floor", "1e9", "--results-dir", str(tmp_path)]
    )
    assert result.exit_code == 1, result.output
    assert "lower --proxy-floor 1e9" in result.stderr.splitlines()[-1]
    assert (tmp_path / "cpu-12M-mixed" / "pareto.json").is_file()  # the trials are kept and summarised


def test_defaults_spelled_out_resume_the_study(results: Path) -> None:
    """`--threads 1` is the default: a study made without it resumes with it."""
    result = runner.invoke(app, ["search", *TINY, "--threads", "1", "--n-trials", "1", "--results-dir", str(results)])
    assert result.exit_code == 0, result.output
