"""`measure --weights`: a state dict loads by key into the measured network, or the command says which key does
not fit, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from shufflenet_nas import build_model
from shufflenet_nas.cli.app import app

runner = CliRunner()
QUICK = ["--max-time", "0.05", "--precision", "0.5", "--threads", "1", "--raw"]


def test_measure_loads_weights_that_fit(tmp_path: Path) -> None:
    path = tmp_path / "v2.pt"
    torch.save(build_model("shufflenet_v2_x0_5").state_dict(), path)
    result = runner.invoke(
        app, ["measure", "shufflenet_v2_x0_5", "--resolution", "64", "--weights", str(path), *QUICK, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["weights"] == str(path) and data["median_ms"] > 0


def test_measure_names_the_first_key_that_does_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "v1.pt"
    torch.save(build_model("shufflenet_v1_g3_x1_0").state_dict(), path)
    result = runner.invoke(app, ["measure", "shufflenet_v2_x0_5", "--resolution", "64", "--weights", str(path), *QUICK])
    assert result.exit_code == 1
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and line.startswith(f"error: --weights {path} do not fit architecture")
    assert "missing key" in line or "has shape" in line


def test_measure_with_a_missing_weights_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["measure", "shufflenet_v2_x0_5", "--weights", str(tmp_path / "none.pt"), *QUICK])
    assert result.exit_code == 2 and result.output.strip() == f"error: --weights {tmp_path / 'none.pt'}: no such file"


def test_an_isolated_measurement_loads_the_weights_in_its_child(tmp_path: Path) -> None:
    from shufflenet_nas import MeasureConfig, ShuffleNetNASError, measure_latency, resolve_arch

    path = tmp_path / "v1.pt"
    torch.save(build_model("shufflenet_v1_g3_x1_0").state_dict(), path)
    genotype = resolve_arch("shufflenet_v2_x0_5").with_resolution(64)
    config = MeasureConfig(threads=1, max_time_s=0.05, rel_precision=0.5, normalize=False, isolate=True)
    with pytest.raises(ShuffleNetNASError, match="do not fit architecture"):
        measure_latency(genotype, config, path)
    good = tmp_path / "v2.pt"
    torch.save(build_model(genotype).state_dict(), good)
    assert measure_latency(genotype, config, good).median_ms > 0
