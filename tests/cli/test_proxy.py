from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shufflenet_nas import compute_proxies
from shufflenet_nas.cli.app import app
from shufflenet_nas.nas.proxies import DEFAULT_PROXY
from shufflenet_nas.search_spaces import Genotype

runner = CliRunner()


def test_proxy_json_has_one_key_per_proxy_and_matches_the_library(tiny_v2: Genotype) -> None:
    result = runner.invoke(app, ["proxy", str(tiny_v2), "--proxy", "naswot,synflow,params", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data["scores"]) == ["naswot", "synflow", "params"] and set(data["seconds"]) == set(data["scores"])
    expected = compute_proxies(tiny_v2, ["naswot", "synflow"], seed=3)
    assert data["scores"]["naswot"] == expected["naswot"].value
    assert data["scores"]["synflow"] == expected["synflow"].value
    assert data["arch_id"] == tiny_v2.arch_id and data["data"] is None


def test_proxy_table_lists_every_default_proxy(tiny_v1: Genotype) -> None:
    result = runner.invoke(app, ["proxy", str(tiny_v1)])
    assert result.exit_code == 0, result.output
    for name in ("synflow", "naswot", "grad_norm", "snip", "jacob_cov", "params", "mflops"):
        assert f"│ {name}" in result.output
    assert "default for search" in result.output and "seeded Gaussian noise" in result.output


def test_proxy_usage_errors_are_one_line(tiny_v2: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # short paths: the console wraps lines at 160 columns
    cases = [
        (["--proxy", "naswot,zen"], ["error: --proxy naswot,zen: unknown proxy 'zen'; choose from synflow"]),
        (["--proxy", "train"], ["error: ", "train", "needs --data"]),
        (["--data", "none"], ["error: --data none: no such directory; expected an ImageFolder"]),
    ]
    for args, says in cases:
        result = runner.invoke(app, ["proxy", str(tiny_v2), *args])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
        assert result.output.startswith(says[0]) and all(part in result.output for part in says), result.output


def test_malformed_dataset_is_a_one_line_error(
    tiny_v2: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "images" / "only_class").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["proxy", str(tiny_v2), "--data", "images"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "error: --data images: found 1 class subfolder, need 2 or more; expected an ImageFolder" in result.output


def test_proxy_trains_on_the_generated_images(shapes_dir: Path) -> None:
    args = ["proxy", "shufflenet_v2_x0_5", "--data", str(shapes_dir), "--proxy", f"train,{DEFAULT_PROXY}"]
    result = runner.invoke(app, [*args, "--steps", "5", "--train-batch-size", "16", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert 0 <= data["scores"]["train"] <= 1 and data["data"] == str(shapes_dir)
    assert data["genotype"].startswith("stem24s1-") and data["genotype"].endswith("-in32-cls4")
    assert "train: step 5, validation accuracy" in result.stderr
    assert "imagefolder" in result.stderr and "4 classes, 204 train / 52 val images" in result.stderr
    resized = runner.invoke(app, ["proxy", "shufflenet_v2_x0_5", "--data", str(shapes_dir), "--resolution", "16"])
    assert resized.exit_code == 0 and "16x16" in resized.stderr, resized.output


def test_resolution_without_data_rescales_the_architecture(tiny_v2: Genotype) -> None:
    result = runner.invoke(app, ["proxy", str(tiny_v2), "--resolution", "64", "--proxy", "mflops", "--json"])
    data = json.loads(result.stdout)
    assert data["genotype"].endswith("-in64-cls10")
    assert data["scores"]["mflops"] == compute_proxies(tiny_v2.with_resolution(64), ["mflops"])["mflops"].value


def test_validate_proxy_against_paper_json() -> None:
    result = runner.invoke(app, ["validate-proxy", "--against", "paper", "--proxy", "params", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["against"] == "paper" and data["n"] == 27
    assert list(data["correlations"]) == ["params", "mflops"]  # mflops is always shown as the reference
    assert round(data["correlations"]["params"]["kendall_tau"], 3) == 0.960
    assert round(data["correlations"]["mflops"]["spearman_rho"], 3) == 0.971
    assert {"arch", "truth", "params", "mflops"} == set(data["architectures"][0])


def test_validate_proxy_table_and_usage_errors(shapes_dir: Path) -> None:
    table = runner.invoke(app, ["validate-proxy", "--against", "paper", "--proxy", "mflops"])
    assert table.exit_code == 0 and "Kendall tau" in table.stdout and "27 architectures" in table.stdout
    cases = [
        (["--against", "train"], "needs --data PATH"),
        (["--against", "paper", "--data", str(shapes_dir)], "--data and --resolution apply to --against train"),
        (["--against", "train", "--data", str(shapes_dir), "--samples", "2"], "at least 3 architectures"),
        (["--against", "paper", "--proxy", "train"], "short training is the ground truth"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["validate-proxy", *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_validate_proxy_against_training(shapes_dir: Path) -> None:
    args = ["validate-proxy", "--against", "train", "--data", str(shapes_dir), "--samples", "3", "--budget", "1M"]
    result = runner.invoke(app, [*args, "--steps", "3", "--train-batch-size", "16", "--proxy", "naswot", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["against"] == "train" and data["n"] == 3
    assert set(data["correlations"]) == {"naswot", "params", "mflops"}
    assert "[3/3] done" in result.stderr
