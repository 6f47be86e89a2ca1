"""`search --explain`'s reasoning: which guidelines each best follows better than V2 1.0x, and which of them hold
on the device, from a stored `guidelines` run whose verdicts are set here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shufflenet_nas.guidelines import GuidelinesResult, run_guidelines
from shufflenet_nas.nas.latency import MeasureConfig
from shufflenet_nas.results import load_study, summarise
from shufflenet_nas.results.explanation import explain_bests, explanation_lines
from tests.results.studies import small_study

# the deciding ratio and its interval per guideline: G1 and G4 hold, G2 does not, G3 is inconclusive
RATIOS = {"G1": (0.5, 0.4, 0.6), "G2": (1.5, 1.4, 1.6), "G3": (1.0, 0.9, 1.1), "G4": (0.7, 0.6, 0.8)}


def stored_run() -> GuidelinesResult:
    result = run_guidelines(MeasureConfig(target="cpu"), quick=True, rounds=5, runs=1, resolution=4)
    guidelines = []
    for guideline in result.guidelines:
        ratio, low, high = RATIOS[guideline.key]
        tables = tuple(replace(table, ratio=ratio, low=low, high=high) for table in guideline.tables)
        guidelines.append(replace(guideline, tables=tables))
    return replace(result, guidelines=tuple(guidelines))


def test_each_best_is_explained_by_the_guidelines_that_hold_here(tmp_path: Path) -> None:
    summary = summarise(load_study(small_study(tmp_path / "study")))
    assert set(summary.best) == {"V1-style", "V2-style"}
    without = explain_bests(summary, None)
    assert without["device"] is None and "rewarded" not in without["best"]["V2-style"]

    explanation = explain_bests(summary, (stored_run(), "2026-11-30 12:00"))
    verdicts = {key: v["verdict"] for key, v in explanation["device"]["verdicts"].items()}
    assert verdicts == {"G1": "holds", "G2": "does not hold", "G3": "inconclusive", "G4": "holds"}
    for family, verdict_list in summary.guideline_verdicts().items():
        entry = explanation["best"][family]
        assert entry["better"] == [v.guideline for v in verdict_list if v.better == "this"]
        assert entry["worse"] == [v.guideline for v in verdict_list if v.better == "reference"]
        assert entry["rewarded"] == [g for g in entry["better"] if g in ("G1", "G4")]
        assert entry["costly"] == [g for g in entry["worse"] if g in ("G1", "G4")]
        assert entry["not_holding"] == ["G2"]
    v1 = explanation["best"]["V1-style"]  # a V1 g3 variant: grouped 1x1 convs, far from 1:1
    assert {"G1", "G2"} <= set(v1["worse"]) and "G1" in v1["costly"] and "G2" not in v1["costly"]

    lines = explanation_lines(explanation, "cpu")
    assert (
        lines[0].startswith("on this device (cpu/eager on ")
        and "G2 does not hold (t(g=1) / t(g=8) x1 1.50)" in lines[0]
    )
    assert any(
        line.startswith("best V1-style: follows G3 better than V2 1.0x; G1, G2, G4 worse; it does not hold here")
        and line.endswith("; G1, G4 hold here, which costs it speed")
        for line in lines
    )
    assert "best V2-style: follows no guideline better than V2 1.0x" in lines  # the same design, within NEAR
