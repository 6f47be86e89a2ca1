"""The summary's honest headline: best per family, references, ties, floors, every trial's status."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from shufflenet_nas import StudySummary, pareto_front, summarise, write_artifacts
from shufflenet_nas.results.rows import RULE_FLOOR, RULE_PROXY, RULE_REFERENCE, RULE_REWARD
from tests.results.studies import V1, V2, T, make_study

States = optuna.trial.TrialState
V2_REF = T(11.146, 107.6, baseline="shufflenet_v2_x1_0", mflops=144.9)
V1_G8 = T(18.888, 109.5, family=V1, baseline="shufflenet_v1_g8_x1_0", mflops=138.4)
V1_G3 = T(15.315, 106.8, family=V1, baseline="shufflenet_v1_g3_x1_0", mflops=137.5)
V1_G1 = T(9.463, 104.2, family=V1, baseline="shufflenet_v1_g1_x1_0", mflops=143.1)


def numbers(summary: StudySummary) -> dict[str, int]:
    return {family: row.number for family, row in summary.best.items()}


def test_a_paper_model_is_never_best_and_the_summary_says_why() -> None:
    # the review's study: V1 g8 has the highest proxy of all; nothing searched reaches a reference
    weak_v2 = T(9.0, 105.0, variant=1)  # faster than V2 1.0x but below its proxy
    slow_v2 = T(12.0, 108.0, variant=2)  # above its proxy but slower
    weak_v1 = T(16.0, 108.0, family=V1, variant=3)  # below V1 g8's proxy
    summary = summarise(make_study([V2_REF, V1_G8, V1_G3, V1_G1, weak_v2, slow_v2, weak_v1]))
    assert summary.best == {}
    assert summary.rules == {V1: RULE_REFERENCE, V2: RULE_REFERENCE}
    assert "(V1-style vs shufflenet_v1_g8_x1_0, V2-style vs shufflenet_v2_x1_0)" in summary.rule_text()
    assert summary.no_best == {
        V1: "no V1-style architecture was faster than shufflenet_v1_g8_x1_0 at its proxy or better "
        "(shufflenet_v1_g8_x1_0: 18.888 ms, proxy 109.5)",
        V2: "no V2-style architecture was faster than shufflenet_v2_x1_0 at its proxy or better "
        "(shufflenet_v2_x1_0: 11.146 ms, proxy 107.6)",
    }
    assert [headline for headline, _ in summary.verdicts()] == [f"no best {f}: {summary.no_best[f]}" for f in (V1, V2)]
    assert all(row.baseline for row in summary.baselines) and len(summary.baselines) == 4
    assert {summary.mark(row) for row in summary.baselines} == {row.baseline for row in summary.baselines}
    data = summary.to_dict()
    assert data["best"] == {} and data["no_best"] == summary.no_best and data["comparisons"] == {}
    assert data["references"] == {V1: "shufflenet_v1_g8_x1_0", V2: "shufflenet_v2_x1_0"}
    markdown = summary.to_markdown()
    assert f"**no best V2-style: {summary.no_best[V2]}**" in markdown and "| best " not in markdown


def test_each_family_is_judged_against_its_own_paper_model() -> None:
    v2_half = T(6.1, 103.0, baseline="shufflenet_v2_x0_5", mflops=41.0)  # narrower V2: not the reference
    fast_v2 = T(9.655, 108.1, variant=1)  # beats V2 1.0x, though below V1 g8's proxy
    faster_v2 = T(8.0, 107.0, variant=2)  # faster still, but below V2 1.0x's proxy
    v1_good = T(16.0, 109.6, family=V1, variant=3)  # at V1 g8's proxy or better, faster
    v1_fast = T(12.0, 107.0, family=V1, variant=4)  # beats V1 g3 but not g8, the V1 reference
    trials = [V2_REF, V1_G8, V1_G3, v2_half, fast_v2, faster_v2, v1_good, v1_fast]
    summary = summarise(make_study(trials))
    assert numbers(summary) == {V2: 4, V1: 6}
    assert summary.references[V2].baseline == "shufflenet_v2_x1_0"
    assert summary.references[V1].baseline == "shufflenet_v1_g8_x1_0"
    headlines = dict(zip((V1, V2), [h for h, _ in summary.verdicts()], strict=True))
    assert headlines[V2] == (
        "best V2-style trial 4 · 13.4% lower latency than shufflenet_v2_x1_0 (9.655 vs 11.146 ms; proxy 108.1 vs 107.6)"
    )
    assert headlines[V1] == (
        "best V1-style trial 6 · 15.3% lower latency than shufflenet_v1_g8_x1_0 (16.000 vs 18.888 ms; "
        "proxy 109.6 vs 109.5)"
    )
    comparison = summary.to_dict()["comparisons"][V2]
    assert comparison["baseline"] == "shufflenet_v2_x1_0" and comparison["latency_change_pct"] == -13.38
    assert [genotype for _, genotype in summary.verdicts()] == [summary.best[V1].genotype, summary.best[V2].genotype]


def test_proxies_equal_at_the_printed_precision_go_to_the_faster() -> None:
    slower = T(18.6, 108.260, variant=1)  # prints as 108.3, like the next one
    faster = T(14.1, 108.255, variant=2)
    lower = T(9.0, 108.0, variant=3)
    summary = summarise(make_study([slower, faster, lower]))  # no baseline: the highest proxy, ties to the faster
    assert summary.rules[V2] == RULE_PROXY and numbers(summary) == {V2: 1}
    assert [r.number for r in summary.pareto] == [2, 1]  # 108.260 at 18.6 ms is not better than 108.255 at 14.1
    assert summary.comparison(V2) is None and "%" not in summary.verdicts()[-1][0]  # no reference: no claim
    # against a reference, a proxy equal as printed reaches it
    reference = T(20.0, 108.26, baseline="shufflenet_v2_x1_0")
    summary = summarise(make_study([reference, slower, faster]))
    assert numbers(summary) == {V2: 2} and summary.rules[V2] == RULE_REFERENCE
    assert "proxy 108.3 vs 108.3" in summary.verdicts()[-1][0]


def test_latency_equal_to_the_reference_as_printed_is_not_faster() -> None:
    same = T(11.1457, 110.0, variant=1)  # prints 11.146 like the reference
    summary = summarise(make_study([V2_REF, same]))
    assert summary.best == {} and "faster than shufflenet_v2_x1_0" in summary.no_best[V2]


def test_without_a_reference_ties_within_a_thousandth_go_to_the_faster() -> None:
    summary = summarise(make_study([T(20.0, 1000.0, variant=1), T(10.0, 999.2, variant=2), T(5.0, 990.0, variant=3)]))
    assert numbers(summary) == {V2: 1}  # 999.2 prints differently from 1000 but lies within 1e-3 of it


def test_a_proxy_floor_makes_the_fastest_feasible_architecture_the_best() -> None:
    # the review's latency run: --objective latency --proxy-floor shufflenet_v2_x1_0 at 146M
    at_floor = {"proxy_below_floor": 0.0}
    fast_v2 = T(9.0, 107.7, variant=1, constraints={"proxy_below_floor": -0.1})
    slow_v2 = T(12.0, 109.9, variant=2, constraints={"proxy_below_floor": -2.3})  # above V1 g8's proxy, slower
    below = T(7.0, 100.0, variant=3, feasible=False, constraints={"proxy_below_floor": 7.6})
    v1 = T(13.0, 108.0, family=V1, variant=4, constraints={"proxy_below_floor": -0.4})
    trials = [T(11.146, 107.6, baseline="shufflenet_v2_x1_0", constraints=at_floor), V1_G8, fast_v2, slow_v2, below, v1]
    summary = summarise(make_study(trials, objective="latency", proxy_floor="shufflenet_v2_x1_0"))
    assert numbers(summary) == {V2: 2, V1: 5} and summary.rules == {V1: RULE_FLOOR, V2: RULE_FLOOR}
    assert summary.proxy_floor == pytest.approx(107.6)
    # both families are compared with the floor's paper model, not whichever baseline has the top proxy
    assert {r.baseline for r in summary.references.values()} == {"shufflenet_v2_x1_0"}
    v1_line, v2_line = (headline for headline, _ in summary.verdicts())
    assert v2_line == (
        "best V2-style trial 2 · 19.3% lower latency than shufflenet_v2_x1_0 (9.000 vs 11.146 ms; proxy 107.7 vs 107.6)"
    )
    assert v1_line.startswith("best V1-style trial 5 · 16.6% higher latency than shufflenet_v2_x1_0 (13.000 vs")
    assert summary.rule_text().startswith(
        "best of each family = the fastest feasible architecture (objective latency, proxy floor "
        "shufflenet_v2_x1_0 = 107.6)"
    )


def test_a_numeric_floor_compares_each_family_with_its_own_paper_model() -> None:
    v2 = T(10.0, 107.0, variant=1)
    v1 = T(12.0, 106.0, family=V1, variant=2)
    summary = summarise(make_study([V2_REF, V1_G8, v2, v1], proxy_floor="105"))
    assert numbers(summary) == {V2: 2, V1: 3}  # the floor is the bar, though neither reaches its reference
    assert summary.references[V2].baseline == "shufflenet_v2_x1_0"
    assert summary.references[V1].baseline == "shufflenet_v1_g8_x1_0"
    assert summary.proxy_floor == 105.0


def test_reward_objective_picks_the_highest_reward_of_the_searched_architectures() -> None:
    trials = [
        T(11.146, 107.6, baseline="shufflenet_v2_x1_0", reward=120.0),  # the highest, but a paper model
        T(10.0, 107.0, variant=1, reward=110.0),
        T(8.0, 106.0, variant=2, reward=111.0),
    ]
    summary = summarise(make_study(trials, objective="reward", latency_target_ms=10.0))
    assert numbers(summary) == {V2: 2} and summary.rules[V2] == RULE_REWARD
    assert summary.no_best == {V1: "no feasible V1-style architecture other than the paper models"}


def test_a_single_family_study_speaks_only_of_that_family() -> None:
    summary = summarise(make_study([V2_REF, T(9.0, 108.0, variant=1)], family="v2"))
    assert numbers(summary) == {V2: 1} and summary.no_best == {}
    assert [h.split(" trial")[0] for h, _ in summary.verdicts()] == ["best V2-style"]


def test_baselines_are_shown_under_a_floor_above_them() -> None:
    def below(proxy: float) -> dict[str, float]:
        return {"proxy_below_floor": 110.0 - proxy}

    trials = [
        T(11.146, 107.6, baseline="shufflenet_v2_x1_0", feasible=False, constraints=below(107.6)),
        T(18.888, 109.5, family=V1, baseline="shufflenet_v1_g8_x1_0", feasible=False, constraints=below(109.5)),
        T(10.0, 110.5, variant=1, constraints=below(110.5)),
    ]
    summary = summarise(make_study(trials, proxy_floor="110"))
    assert [row.baseline for row in summary.baselines] == ["shufflenet_v2_x1_0", "shufflenet_v1_g8_x1_0"]
    assert summary.baselines[0].why_not == "below the proxy floor (107.6 < 110)"
    assert [summary.mark(row) for row in summary.shown_rows()] == [
        "best V2-style",
        "shufflenet_v2_x1_0 (below floor)",
        "shufflenet_v1_g8_x1_0 (below floor)",
    ]
    assert [row.number for row in summary.pareto] == [2]  # baselines below the floor are no results
    assert "| shufflenet_v2_x1_0 (below floor) | 0 |" in summary.to_markdown()
    assert summary.to_dict()["baselines"][1]["feasible"] is False


def test_every_trial_has_a_state_and_a_reason_unless_it_is_a_result() -> None:
    trials = [
        V2_REF,
        T(9.0, 108.0, variant=1),
        T(9.5, 108.0, variant=1),  # the same architecture again
        T(mflops=150.2, variant=2, feasible=False, constraints={"mflops_over_budget": 4.2}),
        T(12.0, 108.0, variant=3, feasible=False, constraints={"latency_over_budget": 2.0}),
        T(state=States.FAIL, variant=4, attrs={"failure_reason": "CUDA out of memory at batch 64"}),
        T(state=States.FAIL, variant=5),
        T(state=States.PRUNED, proxy=0.31, variant=6),
        T(state=States.WAITING, baseline="shufflenet_v1_g8_x1_0"),
    ]
    study = make_study(trials, latency_budget_ms=10.0)
    study.add_trial(optuna.trial.create_trial(state=States.RUNNING))
    summary = summarise(study, every_trial=True)
    assert summary.every_trial is not None
    statuses = [(s.number, s.state, s.result, s.reason) for s in summary.every_trial]
    assert statuses == [
        (0, "complete", True, None),
        (1, "complete", True, None),
        (2, "complete", False, "duplicate of trial 1"),
        (3, "complete", False, "over the FLOPs budget (150.2 > 146 MFLOPs)"),
        (4, "complete", False, "over the latency budget (12.000 > 10 ms)"),
        (5, "failed", False, "failed: CUDA out of memory at batch 64"),
        (6, "failed", False, "failed"),
        (7, "pruned", False, "pruned (proxy 0.31 when stopped)"),
        (8, "waiting", False, "waiting (a seeded paper model not run yet)"),
        (9, "running", False, "running"),
    ]
    assert summarise(study).every_trial is None  # only when asked


def test_pareto_json_keeps_its_old_fields(tmp_path: Path) -> None:
    summary = summarise(make_study([V2_REF, V1_G8, T(9.0, 108.0, variant=1)]))
    paths = write_artifacts(summary, tmp_path)
    data = json.loads(paths[0].read_text())
    assert {"study", "settings", "counts", "pareto", "best", "baselines", "reference_baseline"} <= data.keys()
    assert data["best"][V2]["genotype"] == summary.best[V2].genotype and data["reference_baseline"] == (
        "shufflenet_v2_x1_0"
    )
    assert data["no_best"] == {V1: "no feasible V1-style architecture other than the paper models"}
    markdown = paths[1].read_text()
    for headline, genotype in summary.verdicts():  # the terminal's lines, word for word
        assert f"**{headline}**" in markdown
        assert genotype is None or f"`{genotype}`" in markdown


def test_pareto_front_counts_printed_ties_once() -> None:
    rows = summarise(make_study([T(18.6, 108.260, variant=1), T(14.1, 108.255, variant=2)])).trials
    assert [r.number for r in pareto_front(rows)] == [1]


def test_ranked_by_trained_top1_the_best_is_the_fastest_that_trains_as_well_as_the_paper_model() -> None:
    low_proxy_accurate = T(9.0, 100.0, variant=1)  # below V2 1.0x's proxy, but trains better
    high_proxy_poor = T(8.0, 120.0, variant=2)  # the proxy's pick: fastest and highest proxy, trains worse
    untrained = T(7.0, 130.0, variant=3)
    other_recipe = T(6.0, 90.0, variant=4)  # trained, but longer than the refinement: its top-1 does not compare
    study = make_study([V2_REF, low_proxy_accurate, high_proxy_poor, untrained, other_recipe])
    assert numbers(summarise(study)) == {V2: 3}  # by the proxy: the untrained, fastest one
    accuracy = {0: 0.70, 1: 0.72, 2: 0.65, 4: 0.99}
    for trial in study.get_trials():
        if trial.number in accuracy:
            recipe = {"epochs": 30 if trial.number == 4 else 5}
            record = {"accuracy_top1": accuracy[trial.number], "genotype": "g", "seed": 0, "recipe": recipe}
            record["data"] = {"fingerprint": "f"}
            study.set_user_attr(f"trained/{trial.user_attrs['arch_id']}", record)
    study.set_user_attr("rank_by", "accuracy_top1")
    study.set_user_attr("refine", {"k": 2, "epochs": 5, "recipe": {"epochs": 5}, "seed": 0, "data": "f"})
    summary = summarise(study)
    assert numbers(summary) == {V2: 1} and [row.number for row in summary.pareto] == [2, 1]
    assert {row.number for row in summary.trials} == {0, 1, 2, 3, 4}  # every result stays one (train --trial 3)
    assert summary.comparison(V2).text() == (
        "19.3% lower latency than shufflenet_v2_x1_0 (9.000 vs 11.146 ms; top-1 72.0% vs 70.0%)"
    )
    assert summary.rule_text().startswith("ranked by trained top-1, not the proxy (--proxy-refine 2")
    assert "4 architectures trained with different recipes" in summary.training_text()


def test_a_re_measurement_decides_the_headline() -> None:
    best = T(9.0, 108.0, variant=1)
    study = make_study([V2_REF, best])
    summary = summarise(study)
    pair = [summary.best[V2].arch_id, summary.references[V2].arch_id]
    faster = {"pair": pair, "ratio": 0.8, "low": 0.78, "high": 0.83, "best_ms": 8.0, "reference_ms": 10.0, "rounds": 5}
    study.set_user_attr("re_measured", {V2: faster})
    assert summarise(study).comparison(V2).text() == (  # type: ignore[union-attr]
        "20.0% lower latency than shufflenet_v2_x1_0 (re-measured together, 5 rounds: 8.000 vs 10.000 ms, "
        "ratio 0.800 [0.780, 0.830]; proxy 108 vs 107.6)"
    )
    study.set_user_attr("re_measured", {V2: {**faster, "ratio": 0.97, "high": 1.01}})
    assert summarise(study).comparison(V2).text().startswith("not measurably faster than shufflenet_v2_x1_0")  # type: ignore[union-attr]
    study.set_user_attr("re_measured", {V2: {**faster, "pair": ["other", pair[1]]}})  # made for another best
    assert "re-measured" not in summarise(study).comparison(V2).text()  # type: ignore[union-attr]


def test_confirm_bests_measures_each_best_beside_its_paper_model(tmp_path: Path) -> None:
    from shufflenet_nas.nas.latency import MeasureConfig
    from shufflenet_nas.results.summary import confirm_bests

    study = make_study([V2_REF, T(9.0, 108.0, variant=1)], resolution=32)
    assert confirm_bests(study, MeasureConfig(target="cpu"), rounds=5, runs=1) == 1
    found = study.user_attrs["re_measured"][V2]
    assert found["low"] <= found["ratio"] <= found["high"] and found["best_ms"] > 0 and found["rounds"] == 5
    assert "re-measured together, 5 rounds" in summarise(study).comparison(V2).text()  # type: ignore[union-attr]


def test_each_best_is_held_against_v2_1x_guideline_by_guideline(tmp_path: Path) -> None:
    summary = summarise(make_study([V2_REF, V1_G3, T(9.0, 108.0, variant=1), T(14.0, 107.0, family=V1, variant=1)]))
    verdicts = summary.guideline_verdicts()
    assert [v.better for v in verdicts[V2]] == ["equal"] * 4  # V2 1.0x with a wider stem: the same design
    assert [v.better for v in verdicts[V1]] == ["reference", "reference", "this", "reference"]  # V1 g3: 1:4, g3
    assert (verdicts[V1][2].value, verdicts[V1][2].reference_value) == (3.1875, 3.375)  # fragments per unit
    data = summary.to_dict()
    assert data["guidelines"][V1]["reference"] == "shufflenet_v2_x1_0"
    assert [v["guideline"] for v in data["guidelines"][V1]["verdicts"]] == ["G1", "G2", "G3", "G4"]
    markdown = write_artifacts(summary, tmp_path)[1].read_text()
    for title, lines in summary.guideline_lines():
        assert f"{title}:" in markdown and all(f"- {line}" in markdown for line in lines)
    assert "best V1-style trial 3 vs shufflenet_v2_x1_0" in markdown


def test_the_summary_says_which_latency_its_table_holds() -> None:
    trials = [T(3.0, 1.3e6, baseline="shufflenet_v2_x0_5"), T(2.5, 1.4e6, variant=1)]
    normalised = summarise(make_study(trials, normalize=True, speed_anchor_ms=4.25)).latency_note()
    assert "normalised to the speed anchor (4.250 ms: ms at this machine's least-disturbed speed" in normalised
    assert summarise(make_study(trials, normalize=False)).latency_note().endswith("short measurements, raw")
    old = summarise(make_study(trials, normalize=True)).latency_note()  # made before the anchor was recorded
    assert "normalised to the speed anchor (in each trial's latency.reference_anchor_ms" in old
    lut = summarise(make_study(trials, normalize=True, latency_mode="lut", speed_anchor_ms=4.25)).latency_note()
    assert "the lookup table's predictions (the front re-measured), normalised" in lut
