"""A finished (or interrupted) study turned into a summary: trials, Pareto front, best V1/V2-style picks.

"Best" per family: the fastest feasible architecture of that family whose proxy is at least the best
paper baseline's proxy in the study (as good as the paper's model by the proxy, and faster); when none
reaches it, the family's highest-proxy architecture. For ``--objective reward`` studies: the highest reward.
Latencies re-measured after a lookup-table search replace the predicted ones here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from shufflenet_nas.errors import ShuffleNetNASError, UsageError
from shufflenet_nas.nas.latency import MeasureConfig, measure_latency
from shufflenet_nas.search_spaces import Genotype

FAMILIES = ("V1-style", "V2-style")


@dataclass(frozen=True)
class TrialRow:
    """One evaluated architecture as the summary shows it."""

    number: int
    arch_id: str
    genotype: str
    family: str
    mflops: float
    params: int
    latency_ms: float
    proxy: float
    baseline: str | None
    reward: float | None = None
    latency_source: str = "measured"


@dataclass
class StudySummary:
    """What `search` prints at the end and `show` prints later."""

    study_name: str
    settings: dict[str, Any]
    counts: dict[str, int]
    pareto: list[TrialRow]
    best: dict[str, TrialRow]
    baselines: list[TrialRow]
    reference: TrialRow | None
    trials: list[TrialRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study_name,
            "settings": self.settings,
            "counts": self.counts,
            "pareto": [asdict(row) for row in self.pareto],
            "best": {family: asdict(row) for family, row in self.best.items()},
            "baselines": [asdict(row) for row in self.baselines],
            "reference_baseline": self.reference.baseline if self.reference else None,
        }

    def to_markdown(self) -> str:
        s = self.settings
        lines = [
            f"# Study `{self.study_name}`",
            "",
            f"Target {s.get('target')} ({s.get('runtime') or 'default runtime'}, batch {s.get('batch')}, "
            f"{s.get('dtype')}), budget {s.get('budget_mflops'):g} MFLOPs, {s.get('resolution')} px, "
            f"family {s.get('family')}, proxy {s.get('proxy')}, latency {s.get('latency_mode')}, "
            f"objective {s.get('objective')}.",
            "",
            "Trials: " + ", ".join(f"{v} {k}" for k, v in self.counts.items()) + ".",
            "",
            "| | trial | family | MFLOPs | params | latency ms | proxy | genotype |",
            "|---|---|---|---|---|---|---|---|",
        ]
        marks = {row.number: family for family, row in self.best.items()}
        for row in self.pareto + [b for b in self.baselines if b not in self.pareto]:
            mark = f"best {marks[row.number]}" if row.number in marks else (row.baseline or "pareto")
            lines.append(
                f"| {mark} | {row.number} | {row.family} | {row.mflops:.1f} | {row.params:,} | "
                f"{row.latency_ms:.3f} | {row.proxy:.4g} | `{row.genotype}` |"
            )
        return "\n".join(lines) + "\n"


def load_study(study: str | Path | None = None, storage: str | None = None) -> optuna.Study:
    """A study from a results directory (``results/<study>``) or from ``storage`` + study name."""
    if storage is None:
        if study is None:
            raise UsageError("give a results directory (results/<study>) or --storage URL with --study NAME")
        directory = Path(study)
        database = directory / "study.db"
        if not database.is_file():
            raise UsageError(f"{directory} holds no study.db; pass a results/<study> directory or --storage URL")
        storage, study = f"sqlite:///{database}", directory.name
    names = optuna.get_all_study_names(storage)
    if study is None and len(names) == 1:
        study = names[0]
    if study is None or str(study) not in names:
        raise UsageError(f"study {study!r} not found in {storage}; it holds: {', '.join(names) or 'no studies'}")
    return optuna.load_study(study_name=str(study), storage=storage)


def _row(trial: optuna.trial.FrozenTrial, remeasured: dict[str, Any], reward: bool) -> TrialRow:
    a = trial.user_attrs
    measured = remeasured.get(a["arch_id"])
    return TrialRow(
        number=trial.number,
        arch_id=a["arch_id"],
        genotype=a["genotype"],
        family=a["family"],
        mflops=a["mflops"],
        params=a["params"],
        latency_ms=measured["median_ms"] if measured else a["latency_ms"],
        proxy=a["proxy"],
        baseline=a.get("baseline"),
        reward=trial.values[0] if reward else None,
        latency_source="re-measured" if measured else a["latency"]["source"],
    )


def evaluated_rows(study: optuna.Study) -> list[TrialRow]:
    """Feasible, completed trials, one row per architecture (the first trial that evaluated it)."""
    remeasured = study.user_attrs.get("remeasured", {})
    reward = study.user_attrs.get("objective") == "reward"
    rows: dict[str, TrialRow] = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.user_attrs.get("feasible") and "latency_ms" in trial.user_attrs:
            row = _row(trial, remeasured, reward)
            if row.arch_id not in rows or (row.baseline and not rows[row.arch_id].baseline):
                rows[row.arch_id] = row
    return sorted(rows.values(), key=lambda r: r.number)


def pareto_front(rows: list[TrialRow]) -> list[TrialRow]:
    """Rows no other row beats on both latency (lower) and proxy (higher), fastest first."""
    front = [
        r
        for r in rows
        if not any(
            o.latency_ms <= r.latency_ms and o.proxy >= r.proxy and (o.latency_ms < r.latency_ms or o.proxy > r.proxy)
            for o in rows
        )
    ]
    return sorted(front, key=lambda r: r.latency_ms)


def pick_best(rows: list[TrialRow], reference: TrialRow | None, reward: bool) -> dict[str, TrialRow]:
    """The best V1-style and V2-style architecture (see the module docstring)."""
    best: dict[str, TrialRow] = {}
    for family in FAMILIES:
        candidates = [r for r in rows if r.family == family]
        if not candidates:
            continue
        if reward:
            best[family] = max(candidates, key=lambda r: r.reward or float("-inf"))
            continue
        good = [r for r in candidates if reference is not None and r.proxy >= reference.proxy]
        best[family] = min(good, key=lambda r: r.latency_ms) if good else max(candidates, key=lambda r: r.proxy)
    return best


def summarise(study: optuna.Study) -> StudySummary:
    """Summary of a study made by `shufflenet-nas search`."""
    if "target" not in study.user_attrs:
        raise ShuffleNetNASError(f"study {study.study_name!r} was not made by shufflenet-nas search")
    all_trials = study.get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    complete = [t for t in all_trials if t.state == states.COMPLETE]
    counts = {
        "trials": len(all_trials),
        "complete": len(complete),
        "feasible": sum(1 for t in complete if t.user_attrs.get("feasible")),
        "infeasible": sum(1 for t in complete if not t.user_attrs.get("feasible")),
        "failed": sum(1 for t in all_trials if t.state == states.FAIL),
        "pruned": sum(1 for t in all_trials if t.state == states.PRUNED),
    }
    rows = evaluated_rows(study)
    reward = study.user_attrs.get("objective") == "reward"
    baselines = [r for r in rows if r.baseline]
    reference = max(baselines, key=lambda r: r.proxy) if baselines else None
    front = sorted(rows, key=lambda r: -(r.reward or 0))[:10] if reward else pareto_front(rows)
    return StudySummary(
        study.study_name,
        dict(study.user_attrs),
        counts,
        front,
        pick_best(rows, reference, reward),
        baselines,
        reference,
        rows,
    )


def write_artifacts(summary: StudySummary, directory: Path) -> list[Path]:
    """``pareto.json`` and ``summary.md`` in the study's results directory."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "pareto.json", directory / "summary.md"]
        paths[0].write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
        paths[1].write_text(summary.to_markdown())
    except OSError as error:
        raise ShuffleNetNASError(f"cannot write results to {directory}: {error.strerror}") from None
    return paths


def remeasure_front(study: optuna.Study, measure: MeasureConfig, rounds: int = 3) -> int:
    """After a lookup-table search: measure the Pareto front (and the baselines) for real, until the
    front holds only measured latencies. Results go to the study's ``remeasured`` attribute.
    Returns how many architectures were measured."""
    remeasured: dict[str, Any] = dict(study.user_attrs.get("remeasured", {}))
    measured = 0
    for _ in range(rounds):
        rows = evaluated_rows(study)
        todo = [r for r in pareto_front(rows) + [r for r in rows if r.baseline] if r.arch_id not in remeasured]
        if not todo:
            break
        for row in todo:
            remeasured[row.arch_id] = measure_latency(Genotype.from_string(row.genotype), measure).to_dict()
            measured += 1
        study.set_user_attr("remeasured", remeasured)
    return measured
