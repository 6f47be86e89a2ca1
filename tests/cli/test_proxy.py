from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats
from typer.testing import CliRunner

from shufflenet_nas import compute_proxies
from shufflenet_nas.cli.app import app
from shufflenet_nas.nas.proxies import DEFAULT_PROXY
from shufflenet_nas.search_spaces import BASELINES, Genotype

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


def _paper_rows() -> list[tuple[str, float]]:
    return [(name, 100 - b.paper_top1_error) for name, b in BASELINES.items() if b.paper_top1_error is not None]


@pytest.fixture
def cheap_references(monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """params and mflops as the only references: relu_count runs a forward pass per 224x224 baseline."""
    references = ("params", "mflops")
    monkeypatch.setattr("shufflenet_nas.nas.validation.VALIDATION_REFERENCES", references)
    return references


def _equal_flops_pairs(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs within 10% of the larger MFLOPs, their ground truth differing (computed here, not by the library)."""
    return [
        (a, b)
        for a, b in itertools.combinations(rows, 2)
        if abs(a["counted_mflops"] - b["counted_mflops"]) <= 0.1 * max(a["counted_mflops"], b["counted_mflops"])
        and a["truth"] != b["truth"]
    ]


def test_validate_proxy_against_paper_json(cheap_references: tuple[str, ...]) -> None:
    result = runner.invoke(app, ["validate-proxy", "--proxy", "params", "--resamples", "300", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = data["architectures"]
    assert data["against"] == "paper" and data["n"] == len(_paper_rows()) == len(rows)  # --against paper: default
    assert list(data["correlations"]) == ["params", "mflops"]  # the references are always shown
    assert [(row["arch"], row["truth"]) for row in rows] == _paper_rows()
    truth = [row["truth"] for row in rows]
    for name in ("params", "mflops"):
        figures, scores = data["proxies"][name], [row[name] for row in rows]
        assert figures["kendall_tau"] == pytest.approx(stats.kendalltau(scores, truth).statistic)
        assert figures["kendall_tau"] == pytest.approx(data["correlations"][name]["kendall_tau"])
        assert figures["spearman_rho"] == pytest.approx(stats.spearmanr(scores, truth).statistic)
        low, high = figures["kendall_tau_ci"]
        assert low <= figures["kendall_tau"] <= high
    assert data["proxies"]["mflops"]["tau_minus_mflops"] == 0
    pairs = _equal_flops_pairs(rows)
    assert data["equal_flops"]["pairs"] == len(pairs) and data["resamples"] == 300
    # a tie in the proxy counts one half (a shuffle / no-shuffle pair has the same params)
    right = [
        1.0 if (a["params"] - b["params"]) * (a["truth"] - b["truth"]) > 0 else 0.5 * (a["params"] == b["params"])
        for a, b in pairs
    ]
    assert data["proxies"]["params"]["equal_flops_agreement"] == pytest.approx(sum(right) / len(pairs))
    assert {"chosen_on_v1", "chosen_on_v2", "leave_one_out"} == set(data["out_of_sample"])
    assert data["out_of_sample"]["chosen_on_v1"]["chosen"] in ("params", "mflops")
    assert "equal_flops_agreement" in data["definitions"] and "leave_one_out" in data["definitions"]
    assert {"arch", "truth", "family", "counted_mflops", "params", "mflops"} == set(rows[0])
    default = data["default_proxy"]  # the default's out-of-sample figures: its tau within each family, with intervals
    assert default["name"] == "params" and default["kendall_tau"] == data["proxies"]["params"]["kendall_tau"]
    for family in ("V1-style", "V2-style"):
        members = [row for row in rows if row["family"] == family]
        tau = stats.kendalltau([row["params"] for row in members], [row["truth"] for row in members]).statistic
        low, high = default["tau_by_family_ci"][family]
        assert default["tau_by_family"][family] == pytest.approx(tau) and low <= tau <= high
    assert data["inputs"]["params"] == "none: counted on the architecture"


def test_validate_proxy_table_and_usage_errors(
    shapes_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cheap_references: tuple[str, ...]
) -> None:
    table = runner.invoke(app, ["validate-proxy", "--against", "paper", "--proxy", "mflops", "--resamples", "100"])
    assert table.exit_code == 0, table.output
    for says in ("Kendall tau", f"{len(_paper_rows())} architectures", "equal-FLOPs (", "Chosen on V1-style: "):
        assert says in table.stdout
    assert "Leave-one-out: chosen on the other" in table.stdout
    monkeypatch.chdir(tmp_path)  # short paths: the console wraps lines at 160 columns
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    cases = [
        (["--against", "train"], "needs --data PATH"),
        (["--against", "paper", "--data", str(shapes_dir)], "--data and --resolution apply to --against train"),
        (["--against", "train", "--data", str(shapes_dir), "--samples", "2"], "at least 3 architectures"),
        (["--against", "paper", "--proxy", "train"], "short training is the ground truth"),
        (["--against", "papr"], "--against papr: not paper or train, and no such file or directory"),
        (["--against", "empty"], "--against empty: a directory with no study.db"),
        (["--against", "notes.txt"], "--against notes.txt: not a .csv or .json file"),
        (["--resamples", "0"], "error: --resamples 0: give at least 1 bootstrap resample"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["validate-proxy", *args])
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_validate_proxy_against_a_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cheap_references: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    trained = {"shufflenet_v2_x0_5": 61.0, "shufflenet_v2_x1_0": 70.5, "shufflenet_v1_g3_x1_0": 67.0}
    Path("mine.csv").write_text("architecture,accuracy\n" + "".join(f"{a},{t}\n" for a, t in trained.items()))
    result = runner.invoke(app, ["validate-proxy", "--against", "mine.csv", "--proxy", "mflops", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["against"] == "file" and data["target"] == "accuracy from mine.csv" and data["n"] == 3
    assert [(row["arch"], row["truth"]) for row in data["architectures"]] == list(trained.items())
    Path("bad.csv").write_text("architecture,accuracy\nshufflenet_v2_x0_5,60\nshufflenet_v9,70\n")
    bad = runner.invoke(app, ["validate-proxy", "--against", "bad.csv"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1, bad.output
    assert bad.output.startswith("error: bad.csv, row 2 (line 3): architecture 'shufflenet_v9' is not a baseline")
    assert "listed by `shufflenet-nas baselines`" in bad.output
    Path("bad.json").write_text('[{"architecture": "shufflenet_v2_x0_5", "accuracy": "high"}]')
    bad = runner.invoke(app, ["validate-proxy", "--against", "bad.json"])
    assert (
        bad.exit_code == 1
        and bad.output.strip() == "error: bad.json, row 1: shufflenet_v2_x0_5: accuracy 'high' is not a number"
    )
    resized = runner.invoke(app, ["validate-proxy", "--against", "mine.csv", "--resolution", "64"])
    assert resized.exit_code == 2 and "--resolution applies with --data" in resized.output


def test_validate_proxy_against_a_study_with_trained_accuracy(
    tmp_path: Path, cheap_references: tuple[str, ...]
) -> None:
    import optuna

    directory = tmp_path / "trained"
    directory.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{directory / 'study.db'}", study_name="trained")
    trained = {"shufflenet_v2_x0_5": 0.61, "shufflenet_v2_x1_0": 0.70, "shufflenet_v1_g3_x0_5": 0.55}
    for name, accuracy in trained.items():  # as `train` records it
        genotype = BASELINES[name].genotype
        record = {"genotype": genotype.to_string(), "baseline": name, "accuracy_top1": accuracy}
        study.set_user_attr(f"trained/{genotype.arch_id}", record)
    result = runner.invoke(app, ["validate-proxy", "--against", str(directory), "--proxy", "params", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["against"] == "study" and {row["arch"] for row in data["architectures"]} == set(trained)
    assert data["proxies"]["params"]["kendall_tau"] == pytest.approx(1.0)  # more params, more accuracy here


def test_validate_proxy_against_training(shapes_dir: Path) -> None:
    from shufflenet_nas.nas.validation import VALIDATION_REFERENCES

    args = ["validate-proxy", "--against", "train", "--data", str(shapes_dir), "--samples", "3", "--budget", "1M"]
    result = runner.invoke(app, [*args, "--steps", "3", "--train-batch-size", "16", "--proxy", "naswot", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["against"] == "train" and data["n"] == 3
    assert set(data["correlations"]) == {"naswot", *VALIDATION_REFERENCES} == set(data["proxies"])
    assert data["out_of_sample"]["leave_one_out"]["concordance"] is None  # under 4 architectures
    assert "[3/3] done" in result.stderr
