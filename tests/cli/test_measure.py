from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from shufflenet_nas import DeviceUnavailableError, InvalidArgumentError
from shufflenet_nas.cli.app import app
from shufflenet_nas.cli.common import Dtype, MeasureOptions, Target
from shufflenet_nas.search_spaces import Genotype

runner = CliRunner()
QUICK = ["--threads", "1", "--max-time", "0.05", "--precision", "0.05"]


def test_measure_json_has_figures_and_provenance(tiny_v2: Genotype) -> None:
    result = runner.invoke(app, ["measure", str(tiny_v2), "--batch", "2", *QUICK, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["median_ms"] > 0 and data["p10_ms"] <= data["median_ms"] <= data["p90_ms"] and data["runs"] >= 5
    assert 0 <= data["cv"] < 10
    assert (data["target"], data["runtime"], data["threads"], data["batch"]) == ("cpu", "eager", 1, 2)
    assert (data["dtype"], data["resolution"], data["torch"]) == ("fp32", 32, torch.__version__)
    assert data["arch_id"] == tiny_v2.arch_id and data["genotype"] == str(tiny_v2)


def test_measure_prints_figures_and_where_they_were_measured(tiny_v1: Genotype) -> None:
    result = runner.invoke(app, ["measure", str(tiny_v1), "--resolution", "48", "--target", "onnxruntime", *QUICK])
    assert result.exit_code == 0, result.output
    assert "median" in result.stdout and "p90" in result.stdout
    assert "onnxruntime / onnxruntime on" in result.stdout and "1 thread, batch 1, fp32, 48x48" in result.stdout
    assert re.search(r"median \d+\.\d{3} ms \[\d+\.\d{3}, \d+\.\d{3}\] at 95%", result.stdout)
    assert re.search(r"normalised: \d+\.\d{3} ms .+ at the speed anchor of shufflenet_v2_x1_0@96px", result.stdout)


def test_raw_reports_unnormalised_times(tiny_v2: Genotype) -> None:
    result = runner.invoke(app, ["measure", str(tiny_v2), *QUICK, "--raw", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["normalized"] is False and "reference_anchor_ms" not in data


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpu_without_a_gpu_is_a_one_line_error_exit_1(tiny_v2: Genotype) -> None:
    result = runner.invoke(app, ["measure", str(tiny_v2), "--target", "gpu"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: --target gpu:") and "sees no CUDA GPU" in line


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--dtype", "fp16"], ["--dtype fp16", "--target cpu", "use --dtype fp32"]),
        (["--runtime", "cudagraph"], ["--runtime cudagraph", "--target cpu", "use --runtime eager"]),
        (["--target", "npu"], ["--target 'npu' unknown; use one of cpu, gpu, onnxruntime"]),
        (["--batch", "0"], ["--batch 0: need at least 1"]),
        (["--batch", "100000"], ["--batch 100000 is above the limit of 4096"]),
    ],
)
def test_bad_measurement_options_are_one_line_usage_errors(
    tiny_v2: Genotype, options: list[str], says: list[str]
) -> None:
    result = runner.invoke(app, ["measure", str(tiny_v2), *options])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: --") and all(part in line for part in says), line
    assert "=" not in line  # flags, not the library's parameter names


def test_measure_options_build_a_checked_config() -> None:
    config = MeasureOptions(Target.cpu, batch=4, dtype=Dtype.bf16, threads=2, max_time=1.0).config()
    assert (config.target, config.batch, config.dtype, config.threads, config.max_time_s) == ("cpu", 4, "bf16", 2, 1.0)
    assert config.resolved_runtime == "eager" and not config.isolate
    with pytest.raises(InvalidArgumentError):
        MeasureOptions(Target.cpu, dtype=Dtype.fp16).config()
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError):
            MeasureOptions(Target.gpu).config()


def test_lut_build_then_eval(tmp_path: Path) -> None:
    space = ["--budget", "4MFLOPs", "--resolution", "32", "--cache-dir", str(tmp_path), *QUICK]
    built = runner.invoke(app, ["lut", "build", *space, "--samples", "3", "--calibration", "2", "--json"])
    assert built.exit_code == 0, built.output
    data = json.loads(built.stdout)
    assert data["networks"] == 3 and data["parts"] == data["new_parts"] > 0
    assert data["calibration"]["networks"] == 2 and data["calibration"]["slope"] > 0
    assert Path(data["table"]).parent == tmp_path and data["key"]["threads"] == 1
    again = json.loads(
        runner.invoke(app, ["lut", "build", *space, "--samples", "3", "--calibration", "2", "--json"]).stdout
    )
    assert again["new_parts"] == 0 and again["parts"] == data["parts"]  # cached

    evaluated = runner.invoke(app, ["lut", "eval", *space, "--samples", "2", "--seed", "7", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["summary"]["networks"] == 2 and len(report["networks"]) == 2
    row = report["networks"][0]
    assert row["error_pct"] == pytest.approx((row["predicted_ms"] / row["measured_ms"] - 1) * 100)
    assert 0 <= report["summary"]["within_5"] <= report["summary"]["within_10"] <= 1
    table = runner.invoke(app, ["lut", "eval", *space, "--samples", "1", "--seed", "7"])
    assert table.exit_code == 0 and "within ±10%" in table.stdout and "MAPE" in table.stdout
    estimated = runner.invoke(app, ["lut", "eval", *space, "--samples", "3", "--seed", "11", "--estimate", "--json"])
    assert estimated.exit_code == 0, estimated.output
    report = json.loads(estimated.stdout)
    assert report["estimated_parts"] > 0 and report["summary"]["networks"] == 3  # from the parts built above


def test_lut_build_rejects_more_calibration_networks_than_samples(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lut", "build", "--samples", "2", "--calibration", "3", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--calibration 3: need between 1 and --samples (2)" in result.output
