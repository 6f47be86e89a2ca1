"""Bounded inputs through the real CLI: limits are checked before anything is built."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflenet_nas.cli.app import app
from shufflenet_nas.nas import cost as cost_module
from shufflenet_nas.nas.latency import _measure
from shufflenet_nas.search_spaces import Genotype

runner = CliRunner()
QUICK = ["--threads", "1", "--max-time", "0.05", "--precision", "0.05"]


def _one_line_error(args: list[str], exit_code: int) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    return line


def test_describe_of_100000_channels_exits_2_at_once() -> None:
    start = time.perf_counter()
    line = _one_line_error(["describe", "stem24s4-v2_n4_c100000_g1_r0.5_k3"], 2)
    assert time.perf_counter() - start < 5
    assert line == "error: ARCH: stage 2: 100000 channels is above the limit of 8192"


@pytest.mark.parametrize("command", [["describe"], ["measure", *QUICK], ["proxy"]])
def test_a_resolution_above_the_limit_exits_2(command: list[str]) -> None:
    line = _one_line_error([command[0], "shufflenet_v2_x1_0", "--resolution", "100000", *command[1:]], 2)
    assert line == "error: --resolution: input resolution 100000 is above the limit of 2048"


def test_proxy_checks_the_resolution_before_reading_images(shapes_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shufflenet_nas.nas.data.load_dataset", lambda *args: pytest.fail("read the images"))
    line = _one_line_error(["proxy", "shufflenet_v2_x1_0", "--data", str(shapes_dir), "--resolution", "100000"], 2)
    assert line == "error: --resolution: input resolution 100000 is above the limit of 2048"


def test_a_describe_of_a_network_of_gigabytes_counts_it_without_building_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shufflenet_nas.nas.trace_cost.build_part", lambda spec: pytest.fail(f"built {spec}"))
    widest = "stem32s1-v2_n10_c8192_r0.25_k7_se-v2_n10_c8192_r0.25_k7_se-v2_n10_c8192_r0.25_k7_se-head8192-in2048"
    result = runner.invoke(app, ["describe", widest, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"] > 2 * 10**9  # counted, never allocated


def test_measure_of_a_network_that_does_not_fit_exits_1_before_building(
    tiny_v2: Genotype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cost_module, "available_memory_bytes", lambda device: 2**20)
    monkeypatch.setattr(_measure, "build", lambda genotype: pytest.fail("built a network that does not fit"))
    line = _one_line_error(["measure", str(tiny_v2), "--batch", "256", *QUICK], 1)
    assert line.startswith(f"error: {tiny_v2.arch_id} needs about ")
    assert line.endswith(
        "at batch 256, fp32) but 1.0 MiB is free in memory; lower the batch, the resolution or the widths"
    )


def test_proxy_of_a_network_that_does_not_fit_exits_1(tiny_v2: Genotype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "available_memory_bytes", lambda device: 2**20)
    line = _one_line_error(["proxy", str(tiny_v2), "--proxy", "naswot", "--batch-size", "512"], 1)
    assert "at batch 512, fp32) but 1.0 MiB is free in memory" in line
    counted = runner.invoke(app, ["proxy", str(tiny_v2), "--proxy", "params,mflops", "--json"])
    assert counted.exit_code == 0, counted.output  # counting builds nothing: no memory needed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["space", "--resolution", "100000"], "error: --resolution 100000 is above the limit of 2048"),
        (["space", "--budget", "1e400"], "error: --budget inf: give a positive number of MFLOPs"),
        (["lut", "build", "--resolution", "4"], "error: --resolution 4 is too small for the space; use at least 8"),
    ],
)
def test_a_search_space_out_of_limits_exits_2(args: list[str], message: str) -> None:
    assert _one_line_error(args, 2) == message


def test_space_at_an_enormous_budget_shows_widths_clipped_to_the_limit() -> None:
    result = runner.invoke(app, ["space", "--budget", "1e30", "--json"])
    assert result.exit_code == 0, result.output
    assert '"choices": "8192..8192"' in result.stdout
