"""Why a search's bests are fast, in ShuffleNet V2's guidelines (``search --explain``): which guidelines each best
follows better than V2 1.0x (counted, ``nas.explain``) and whether each holds on this device (the latest
``guidelines`` run here, ``guidelines.store``)."""

from __future__ import annotations

from typing import Any

from shufflenet_nas.guidelines.report import decided_by
from shufflenet_nas.guidelines.result import GuidelinesResult
from shufflenet_nas.guidelines.store import device_key
from shufflenet_nas.guidelines.verdicts import DOES_NOT_HOLD, HOLDS
from shufflenet_nas.nas.explain import REFERENCE
from shufflenet_nas.results.summary import StudySummary


def device_verdicts(stored: tuple[GuidelinesResult, str] | None) -> dict[str, Any] | None:
    """The stored run's verdict per guideline, with the ratio that decides it at each width and the run's setup."""
    if stored is None:
        return None
    result, stored_at = stored
    return {
        "device": device_key(result.provenance),
        "setup": f"batch {result.batch}, widths " + ", ".join(f"x{width}" for width in result.widths),
        "stored_at": stored_at,
        "verdicts": {
            g.key: {
                "verdict": g.verdict,
                "decided_by": decided_by(g),
                "ratios": {f"x{t.width}": [t.ratio, t.low, t.high] for t in g.tables},
            }
            for g in result.guidelines
        },
    }


def explain_bests(summary: StudySummary, stored: tuple[GuidelinesResult, str] | None) -> dict[str, Any]:
    """Per family with a best: the guidelines it follows better than V2 1.0x, worse, or as well (counted); with a
    stored run, those of them that hold on this device (``rewarded``: they help explain why it is faster here)
    and those it follows worse that hold here (``costly``)."""
    device = device_verdicts(stored)
    holds = {key for key, v in (device or {}).get("verdicts", {}).items() if v["verdict"] == HOLDS}
    fails = {key for key, v in (device or {}).get("verdicts", {}).items() if v["verdict"] == DOES_NOT_HOLD}
    bests = {}
    for family, verdicts in summary.guideline_verdicts().items():
        sides = {side: [v.guideline for v in verdicts if v.better == side] for side in ("this", "reference", "equal")}
        entry: dict[str, Any] = {"better": sides["this"], "worse": sides["reference"], "equal": sides["equal"]}
        if device is not None:
            entry["rewarded"] = [g for g in sides["this"] if g in holds]
            entry["costly"] = [g for g in sides["reference"] if g in holds]
            entry["not_holding"] = sorted(fails)
        bests[family] = entry
    return {"reference": REFERENCE, "device": device, "best": bests}


def explanation_lines(explanation: dict[str, Any], target: str) -> list[str]:
    """The explanation as lines of text (the CLI prints them under each best's guideline lines)."""
    device = explanation["device"]
    lines = []
    if device is None:
        lines.append(
            "whether each guideline holds on this device: no readable `guidelines` run kept for it; run "
            f"`shufflenet-nas guidelines --target {target} --quick` (under a minute on a CPU), then search again"
        )
    else:
        verdicts = "; ".join(
            f"{key} {v['verdict']} ({v['decided_by']} {_range(v['ratios'])})" for key, v in device["verdicts"].items()
        )
        lines.append(f"on this device ({device['device']}, {device['setup']}, {device['stored_at']}): {verdicts}")
    for family, entry in explanation["best"].items():
        better = entry["better"]
        parts = [
            f"best {family}: follows {_names(better)} better than V2 1.0x"
            if better
            else f"best {family}: follows no guideline better than V2 1.0x"
        ]
        if entry["worse"]:
            parts.append(f"{_names(entry['worse'])} worse")
        if device is not None:
            rewarded = entry["rewarded"]
            if rewarded:
                parts.append(f"of these, {_names(rewarded)} {_verb(rewarded)} here, which explains part of its speed")
            elif better:
                parts.append(f"{'it does not' if len(better) == 1 else 'none of them'} hold here")
            if entry["costly"]:
                parts.append(f"{_names(entry['costly'])} {_verb(entry['costly'])} here, which costs it speed")
        lines.append("; ".join(parts))
    return lines


def _verb(keys: list[str]) -> str:
    return "holds" if len(keys) == 1 else "hold"


def _names(keys: list[str]) -> str:
    return ", ".join(keys)


def _range(ratios: dict[str, list[float]]) -> str:
    """``x1 0.485 .. x4 0.865``: the deciding ratio at the smallest and largest width."""
    items = list(ratios.items())
    (first, (first_ratio, *_)), (last, (last_ratio, *_)) = items[0], items[-1]
    return f"{first} {first_ratio:.2f}" if first == last else f"{first} {first_ratio:.2f} .. {last} {last_ratio:.2f}"
