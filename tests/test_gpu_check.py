"""The prepared GPU check's CPU-side logic: its steps name real scripts and commands, and its summary reads them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from shufflenet_nas.cli.app import app
from tests.benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parent.parent
gpu_check = load_benchmark("gpu_check")


def test_every_step_runs_a_script_that_exists_or_a_command_the_cli_has(tmp_path: Path) -> None:
    gpu = gpu_check.steps("gpu", tmp_path, quick=False)
    assert [s.name for s in gpu] == [
        "environment",
        "precision (cudagraph)",
        "precision (eager)",
        "search",
        "compare",
        "guidelines",
        "data",
        "train",
        "lut",
        "ratios",
    ]
    assert sum(s.timeout_s for s in gpu) <= 2700 and all("--target" not in s.command or "gpu" in s.command for s in gpu)
    for step in [*gpu, *gpu_check.steps("cpu", tmp_path, quick=True)]:
        scripts = [part for part in step.command if part.startswith("benchmarks/")]
        assert all((ROOT / script).is_file() for script in scripts), step.command
        if "shufflenet_nas" in step.command:
            command = step.command[step.command.index("shufflenet_nas") + 1]
            assert runner.invoke(app, [command, "--help"]).exit_code == 0, command


runner = CliRunner()


def test_the_summary_reads_each_steps_output() -> None:
    search = {
        "comparisons": {
            "V2-style": {
                "latency_change_pct": -26.0,
                "baseline": "shufflenet_v2_x1_0",
                "re_measured": {"ratio": 0.74, "low": 0.716, "high": 0.745},
            }
        }
    }
    assert gpu_check.figures("search", "log line\n" + json.dumps(search)) == (
        "V2-style: -26.0% vs shufflenet_v2_x1_0 (ratio 0.740 [0.716, 0.745])"
    )
    rows = [{"label": name, "ms": ms, "ratio": ms / 2} for name, ms in (("a", 2.0), ("b", 1.0))]
    assert gpu_check.figures("compare", json.dumps({"rows": rows})) == "b 1.000 ms x0.500, a 2.000 ms x1.000 (2 rows)"
    history = [{"images_per_s": 900.0}, {"images_per_s": 1200.0}]
    trained = {"accuracy_top1": 0.95, "history": history, "device": "cuda"}
    assert gpu_check.figures("train", json.dumps(trained)) == "top-1 95.0% after 2 epochs, 1,200 img/s, cuda"
    table = {"ratio": 0.5, "low": 0.45, "high": 0.55, "width": 1}
    guidelines = {"guidelines": [{"key": "G1", "verdict": "holds", "tables": [table, {**table, "width": 2}]}]}
    assert gpu_check.figures("guidelines", json.dumps(guidelines)) == "G1 holds (0.500 [0.450, 0.550] at x1)"
    assert gpu_check.figures("lut", "a\nb\nwithin ±10% 100%\n") == "b | within ±10% 100%"
