"""Validation figures (nas.validation_stats) on tables whose answers are known, and the user's results as a
ground truth (nas.validation_results): CSV, JSON, a study; bad files are one line naming the file and row."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from scipy import stats

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.cost import count_cost
from shufflenet_nas.nas.proxies import PROXY_NAMES
from shufflenet_nas.nas.validation import (
    DEFAULT_VALIDATION_PROXIES,
    VALIDATION_REFERENCES,
    validate_against_results,
)
from shufflenet_nas.nas.validation_results import STUDY_ACCURACY, ResultsFileError, read_results
from shufflenet_nas.nas.validation_stats import DEFINITIONS, analyse, kendall_tau, pairwise_agreement
from shufflenet_nas.results.rows import TRAINED_PREFIX
from shufflenet_nas.search_spaces import BASELINES, Genotype

# Eight architectures, V1 then V2; MFLOPs in near-equal groups: {10, 10.5, 10.9}, {40, 43}, {100, 105, 108}.
TRUTH = [50.0, 52.0, 55.0, 60.0, 61.0, 70.0, 71.0, 73.0]
MFLOPS = [10.0, 10.5, 10.9, 40.0, 43.0, 100.0, 105.0, 108.0]
FAMILY = ["V1-style"] * 4 + ["V2-style"] * 4


def _brute_pairs(mflops: list[float], truth: list[float]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, j in itertools.combinations(range(len(truth)), 2)
        if abs(mflops[i] - mflops[j]) <= 0.1 * max(mflops[i], mflops[j]) and truth[i] != truth[j]
    ]


def test_a_proxy_equal_to_the_truth_reversed_or_constant_scores_as_it_must() -> None:
    scores = {"same": TRUTH, "reversed": [-t for t in TRUTH], "constant": [1.0] * 8, "mflops": MFLOPS}
    analysis = analyse(scores, TRUTH, MFLOPS, FAMILY, resamples=300, seed=1)
    same, reverse, constant = (analysis.figures(name) for name in ("same", "reversed", "constant"))
    assert (same.kendall_tau, same.spearman_rho, same.equal_flops_agreement, same.concordance) == (1, 1, 1, 1)
    assert same.kendall_tau_ci == (1, 1) and same.equal_flops_agreement_ci == (1, 1)
    assert (reverse.kendall_tau, reverse.spearman_rho, reverse.equal_flops_agreement) == (-1, -1, 0)
    assert reverse.concordance == 0 and reverse.tau_by_family == {"V1-style": -1, "V2-style": -1}
    assert (constant.kendall_tau, constant.spearman_rho, constant.equal_flops_agreement) == (0, 0, 0.5)
    assert constant.kendall_tau_ci == (0, 0) and constant.concordance == 0.5
    assert analysis.equal_flops_pairs == len(_brute_pairs(MFLOPS, TRUTH)) == 3 + 1 + 3
    # the difference to MFLOPs is paired: MFLOPs ranks these perfectly too, so "same" differs by exactly 0
    assert same.tau_minus_mflops == 0 and same.tau_minus_mflops_ci == (0, 0)
    assert analysis.figures("mflops").tau_minus_mflops_ci == (0, 0)
    low, high = reverse.tau_minus_mflops_ci
    assert low == high == -2


def test_batched_statistics_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.integers(0, 6, 12).astype(float)
        values = rng.integers(0, 5, 12).astype(float)
        if len(set(truth)) < 2 or len(set(values)) < 2:
            continue
        figures = analyse({"p": values, "mflops": values}, truth, rng.uniform(1, 2, 12), ["mixed"] * 12, resamples=1)
        assert figures.figures("p").kendall_tau == pytest.approx(stats.kendalltau(values, truth).statistic)
        assert figures.figures("p").spearman_rho == pytest.approx(stats.spearmanr(values, truth).statistic)
        assert kendall_tau(values, truth) == pytest.approx(stats.kendalltau(values, truth).statistic)


def test_bootstrap_is_seeded_and_its_interval_holds_the_estimate() -> None:
    rng = np.random.default_rng(3)
    truth = list(rng.normal(size=30))
    scores = {"noisy": list(np.asarray(truth) + rng.normal(size=30)), "mflops": list(rng.uniform(10, 12, 30))}
    families = ["V1-style", "V2-style"] * 15
    first = analyse(scores, truth, scores["mflops"], families, resamples=500, seed=7)
    again = analyse(scores, truth, scores["mflops"], families, resamples=500, seed=7)
    other = analyse(scores, truth, scores["mflops"], families, resamples=500, seed=8)
    noisy = first.figures("noisy")
    assert noisy == again.figures("noisy") and noisy.kendall_tau_ci != other.figures("noisy").kendall_tau_ci
    assert noisy.kendall_tau_ci[0] < noisy.kendall_tau < noisy.kendall_tau_ci[1]
    assert noisy.spearman_rho_ci[0] < noisy.spearman_rho < noisy.spearman_rho_ci[1]
    assert first.resamples == 500 and first.seed == 7
    with pytest.raises(InvalidArgumentError, match="resamples=0"):
        analyse(scores, truth, scores["mflops"], families, resamples=0)


def test_chosen_on_one_family_scored_on_the_other_and_leave_one_out() -> None:
    # "v1_only" is perfect on V1 and reversed on V2; "fair" is right on most pairs of both.
    v1_only = TRUTH[:4] + [-t for t in TRUTH[4:]]
    fair = [50.0, 55.0, 52.0, 60.0, 61.0, 71.0, 70.0, 73.0]
    analysis = analyse({"v1_only": v1_only, "fair": fair, "mflops": MFLOPS}, TRUTH, MFLOPS, FAMILY, resamples=10)
    on_v1, on_v2 = analysis.selections
    assert (on_v1.chosen_on, on_v1.scored_on, on_v1.chosen) == ("V1-style", "V2-style", "v1_only")
    assert on_v1.tau_chosen_on == 1 and on_v1.tau_scored_on == -1
    assert on_v1.mflops_tau_scored_on == 1 and on_v1.best_scored_on == "mflops"  # mflops is first among equals
    assert on_v2.chosen == "mflops" and on_v2.tau_scored_on == 1
    # leave-one-out: mflops is perfect everywhere, so it is chosen on every subset and every held-out pair is right
    assert analysis.leave_one_out.chosen == {"mflops": 8} and analysis.leave_one_out.concordance == 1
    few = analyse({"p": TRUTH[:5], "mflops": MFLOPS[:5]}, TRUTH[:5], MFLOPS[:5], FAMILY[:5], resamples=10)
    assert few.selections[0].chosen is None and few.selections[0].reason == "under 3 V2-style architectures"


def test_leave_one_out_follows_its_definition() -> None:
    rng = np.random.default_rng(5)
    truth = rng.normal(size=10)
    scores = {f"p{k}": truth + rng.normal(scale=1.5, size=10) for k in range(4)}
    analysis = analyse(scores, truth, np.ones(10), ["mixed"] * 10, resamples=10)
    held_out, chosen = [], {}
    for i in range(10):  # choose by scipy's tau on the other nine; score i against the other nine
        rest = [j for j in range(10) if j != i]
        taus = {name: stats.kendalltau(v[rest], truth[rest]).statistic for name, v in scores.items()}
        name = max(taus, key=lambda k: taus[k])
        chosen[name] = chosen.get(name, 0) + 1
        v = scores[name]
        held_out.append(np.mean([(v[i] - v[j]) * (truth[i] - truth[j]) > 0 for j in rest]))
    assert analysis.leave_one_out.chosen == chosen and len(chosen) > 1  # the choice depends on who is held out
    assert analysis.leave_one_out.concordance == pytest.approx(np.mean(held_out))
    assert analysis.selections[0].reason == "under 3 V1-style architectures"


def test_equal_flops_pairs_of_the_baselines_are_counted_from_their_mflops() -> None:
    rows = [(count_cost(b.genotype).mflops, 100 - b.paper_top1_error) for b in BASELINES.values() if b.paper_top1_error]
    mflops, truth = [m for m, _ in rows], [t for _, t in rows]
    pairs = _brute_pairs(mflops, truth)
    agreement, count = pairwise_agreement(mflops, truth, mflops)
    assert count == len(pairs) > 0
    right = sum(
        1 if (mflops[i] - mflops[j]) * (truth[i] - truth[j]) > 0 else 0.5 * (mflops[i] == mflops[j]) for i, j in pairs
    )
    assert agreement == pytest.approx(right / len(pairs))


def test_to_dict_is_strict_json_with_the_definitions() -> None:
    analysis = analyse({"p": TRUTH[:4], "mflops": MFLOPS[:4]}, TRUTH[:4], MFLOPS[:4], FAMILY[:4], resamples=5)
    data = analysis.to_dict()
    json.dumps(data, allow_nan=False)  # a missing figure is null, never NaN
    assert data["definitions"] == DEFINITIONS and data["out_of_sample"]["leave_one_out"]["concordance"] == 1
    assert set(data["out_of_sample"]) == {"chosen_on_v1", "chosen_on_v2", "leave_one_out"}
    assert data["proxies"]["p"]["tau_by_family"] == {"V1-style": 1.0, "V2-style": None}


def test_the_references_include_relu_count_where_the_library_has_it() -> None:
    assert {"params", "mflops"} <= set(VALIDATION_REFERENCES)
    assert ("relu_count" in VALIDATION_REFERENCES) == ("relu_count" in PROXY_NAMES)
    assert DEFAULT_VALIDATION_PROXIES[-len(VALIDATION_REFERENCES) :] == VALIDATION_REFERENCES
    assert len(set(DEFAULT_VALIDATION_PROXIES)) == len(DEFAULT_VALIDATION_PROXIES)


# ---- the user's results ----------------------------------------------------------------------------------
def test_csv_and_json_results_resolve_names_genotypes_and_ids(tiny_v1: Genotype, tmp_path: Path) -> None:
    v2 = BASELINES["shufflenet_v2_x1_0"].genotype
    csv_file = tmp_path / "results.csv"
    csv_file.write_text(
        "architecture,accuracy,seed\n"
        f"shufflenet_v2_x0_5,60,0\n{tiny_v1.to_string()},40,0\n{v2.arch_id},69,0\nshufflenet_v2_x0_5,61,1\n"
    )
    kind, target, items = read_results(csv_file)
    assert kind == "file" and str(csv_file) in target
    assert [(label, accuracy) for label, _, accuracy in items] == [
        ("shufflenet_v2_x0_5", 60.5),  # given twice: the mean
        (tiny_v1.to_string(), 40.0),
        (v2.arch_id, 69.0),
    ]
    assert items[2][1] == v2 and items[1][1] == tiny_v1
    json_file = tmp_path / "results.json"
    json_file.write_text(json.dumps([{"architecture": label, "accuracy": acc} for label, _, acc in items]))
    assert read_results(json_file)[2] == items
    json_file.write_text(json.dumps({label: acc for label, _, acc in items}))
    assert read_results(json_file)[2] == items


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("a.csv", "arch,acc\nx,1\n", "a.csv, header: no column 'architecture' (found arch, acc)"),
        ("a.csv", "architecture,accuracy\nshufflenet_v2_x0_5,high\n", "a.csv, row 1 (line 2): shufflenet_v2_x0_5"),
        ("a.csv", "architecture,accuracy\nshufflenet_v2_x0_5,60\nnot_a_model,50\n", "a.csv, row 2 (line 3): arch"),
        ("a.csv", "architecture,accuracy\nshufflenet_v2_x0_5,\n", "a.csv, row 1 (line 2): shufflenet_v2_x0_5: acc"),
        ("a.csv", "architecture,accuracy\nshufflenet_v2_x0_5,nan\n", "is not a finite number"),
        ("a.csv", "architecture,accuracy\nshufflenet_v2_x0_5,60\nshufflenet_v2_x1_0,69\n", "2 distinct arch"),
        ("a.json", "[1, 2]", "a.json, row 1: a int, not an object"),
        ("a.json", '[{"architecture": "shufflenet_v2_x0_5"}]', "a.json, row 1: no key 'accuracy'"),
        ("a.json", '"x"', "a.json: holds a str; need a list"),
        ("a.json", "[{", "a.json: not valid JSON"),
    ],
)
def test_a_bad_results_file_names_the_file_and_the_row(tmp_path: Path, name: str, text: str, says: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ResultsFileError) as error:
        read_results(path)
    message = str(error.value)
    assert says in message and len(message.splitlines()) == 1 and message.startswith(str(path))


def test_a_path_that_is_no_results_is_an_argument_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    for path, says in [(tmp_path / "none.csv", "no such file"), (tmp_path / "a.txt", "not a .csv or .json")]:
        with pytest.raises(InvalidArgumentError, match=re.escape(f"results='{path}': {says}")):
            read_results(path)
    with pytest.raises(InvalidArgumentError, match=r"no study\.db"):
        read_results(tmp_path)


def _study_dir(tmp_path: Path, accuracies: dict[str, float]) -> Path:
    directory = tmp_path / "study"
    directory.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{directory / 'study.db'}", study_name="study")
    for name, accuracy in accuracies.items():  # as `train` records it
        genotype = BASELINES[name].genotype
        record = {"genotype": genotype.to_string(), "baseline": name, STUDY_ACCURACY: accuracy}
        study.set_user_attr(f"{TRAINED_PREFIX}{genotype.arch_id}", record)
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"genotype": "untrained"}))
    return directory


def test_a_study_with_trained_accuracy_is_a_ground_truth(tmp_path: Path) -> None:
    accuracies = {"shufflenet_v2_x0_5": 0.60, "shufflenet_v2_x1_0": 0.69, "shufflenet_v1_g3_x1_0": 0.67}
    directory = _study_dir(tmp_path, accuracies)
    kind, target, items = read_results(directory)
    assert kind == "study" and STUDY_ACCURACY in target
    assert {label: accuracy for label, _, accuracy in items} == accuracies
    validation = validate_against_results(directory, ["params", "mflops"], resamples=50)
    names = validation.architectures
    assert validation.against == "study" and set(names) == set(accuracies)
    assert validation.mflops == tuple(count_cost(BASELINES[name].genotype).mflops for name in names)
    tau = stats.kendalltau(validation.scores["params"], [accuracies[name] for name in names]).statistic
    assert validation.analysis.figures("params").kendall_tau == pytest.approx(tau)
    json.dumps(validation.to_dict(), allow_nan=False)


def test_a_study_without_trained_accuracy_says_so(tmp_path: Path) -> None:
    with pytest.raises(
        ResultsFileError, match=r"holds no trained accuracy; `shufflenet-nas train .* --pareto --data DIR`"
    ):
        read_results(_study_dir(tmp_path, {}))


def test_results_scored_on_data_are_fitted_to_it(tiny_v1: Genotype, tiny_v2: Genotype, shapes_dir: Path) -> None:
    from shufflenet_nas.nas.data import load_dataset

    data = load_dataset(shapes_dir)
    path = shapes_dir.parent / "fit.csv"
    wide = tiny_v2.to_string().replace("v2_n2_c16", "v2_n2_c24")
    path.write_text(f"architecture,accuracy\n{tiny_v1.to_string()},1\n{tiny_v2.to_string()},2\n{wide},3\n")
    validation = validate_against_results(path, ["mflops"], data=data, resamples=20)
    assert validation.against == "file" and validation.truth == (1, 2, 3)
    assert math.isclose(validation.mflops[0], count_cost(data.fit(tiny_v1)).mflops)
    assert validation.scores["mflops"] == validation.mflops
