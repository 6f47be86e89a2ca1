"""A study's finds beside the papers' models, re-measured in one run on one device (``compare``).

What is compared: each family's best, the Pareto front, and every paper model the study evaluated, plus
ShuffleNet V2 1.0x at the study's resolution (the reference every ratio is to) where the study did not evaluate it.
All of them are timed interleaved in rounds (``nas.latency.measure_interleaved``): raw milliseconds, and the raw
ratio to V2 1.0x within each round, each with a 95% bootstrap interval over rounds. Beside them: counted and paper
MFLOPs, parameters, memory access, operators, the study's proxy and latency, trained top-1 (``train``) and the
papers' top-1 for their models. ``stage_times`` times the winner's and the reference's parts one by one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from shufflenet_nas.nas.cost import count_cost
from shufflenet_nas.nas.latency import MeasureConfig, measure_interleaved
from shufflenet_nas.nas.latency._interleaved import time_interleaved
from shufflenet_nas.nas.latency._runtimes import seeded
from shufflenet_nas.nas.search_config import baseline_at
from shufflenet_nas.results.rows import TrialRow
from shufflenet_nas.results.summary import StudySummary
from shufflenet_nas.search_spaces import BASELINES, Genotype
from shufflenet_nas.search_spaces.builder import build

REFERENCE = "shufflenet_v2_x1_0"


@dataclass(frozen=True)
class ComparedRow:
    """One architecture as ``compare`` shows it; ``ms`` and ``ratio`` come from the interleaved re-measurement."""

    label: str  # "best V2-style", "pareto", the baseline's name, or "reference"
    arch_id: str
    genotype: str
    family: str
    trial: int | None
    baseline: str | None
    mflops: float
    params: int
    memory_access: int
    operators: int
    proxy: float | None
    study_latency_ms: float | None  # what the search measured, for the record
    accuracy_top1: float | None  # trained (`train`), where recorded
    paper_mflops: float | None
    paper_top1: float | None  # the paper's ImageNet top-1 %, for its models
    ms: float
    ms_low: float
    ms_high: float
    ratio: float  # / V2 1.0x, raw, per round
    ratio_low: float
    ratio_high: float


@dataclass
class StudyComparison:
    """Every compared row, the reference's label, the study's settings and where it was measured."""

    study: str
    settings: dict[str, Any]
    rows: list[ComparedRow]
    reference: str
    provenance: dict[str, Any]
    stages: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # label -> [(part, ms)]

    def row(self, label: str) -> ComparedRow | None:
        return next((row for row in self.rows if row.label == label), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "settings": self.settings,
            "reference": self.reference,
            "rows": [asdict(row) for row in self.rows],
            "stages": {label: [{"part": p, "ms": ms} for p, ms in parts] for label, parts in self.stages.items()},
            "provenance": self.provenance,
        }


def compared_rows(summary: StudySummary) -> list[tuple[str, TrialRow]]:
    """(label, row) for each family's best, the rest of the front, then the paper models; each architecture once."""
    chosen: dict[str, tuple[str, TrialRow]] = {}
    for family, row in summary.best.items():
        chosen.setdefault(row.arch_id, (f"best {family}", row))
    for row in summary.pareto:
        chosen.setdefault(row.arch_id, ("pareto", row))
    for row in summary.baselines:
        chosen.setdefault(row.arch_id, (row.baseline or "baseline", row))
    return list(chosen.values())


def compare_study(
    study: optuna.Study,
    summary: StudySummary,
    config: MeasureConfig,
    *,
    rounds: int = 10,
    runs: int = 5,
    study_dir: Path | None = None,
) -> StudyComparison:
    """Re-measure what ``compared_rows`` picks and V2 1.0x together (see the module docstring)."""
    from shufflenet_nas.results.rows import trained_records

    settings = summary.settings
    picked = compared_rows(summary)
    genotypes = [Genotype.from_string(row.genotype) for _, row in picked]
    reference = next((i for i, (_, row) in enumerate(picked) if row.baseline == REFERENCE), None)
    if reference is None:
        genotypes.append(baseline_at(REFERENCE, settings.get("resolution", 224), settings.get("num_classes", 1000)))
        reference = len(genotypes) - 1
    timed = measure_interleaved(genotypes, config, rounds=rounds, runs=runs)
    trained = trained_records(study)
    rows = []
    for index, genotype in enumerate(genotypes):
        label, row = picked[index] if index < len(picked) else ("reference", None)
        name = row.baseline if row is not None else REFERENCE
        paper = BASELINES.get(name) if name else None
        cost = count_cost(genotype)
        ratio = timed.ratio(index, reference)
        low, high = timed.ms_interval(index)
        record = trained.get(genotype.arch_id, {})
        rows.append(
            ComparedRow(
                label=label,
                arch_id=genotype.arch_id,
                genotype=genotype.to_string(),
                family=genotype.family,
                trial=row.number if row else None,
                baseline=name,
                mflops=cost.mflops,
                params=cost.params,
                memory_access=cost.memory_access,
                operators=cost.operators,
                proxy=row.proxy if row else None,
                study_latency_ms=row.latency_ms if row else None,
                accuracy_top1=record.get("accuracy_top1"),
                paper_mflops=paper.paper_mflops if paper else None,
                paper_top1=100 - paper.paper_top1_error if paper and paper.paper_top1_error is not None else None,
                ms=timed.median_ms(index),
                ms_low=low,
                ms_high=high,
                ratio=ratio[0],
                ratio_low=ratio[1],
                ratio_high=ratio[2],
            )
        )
    reference_label = rows[reference].label
    comparison = StudyComparison(study.study_name, settings, rows, reference_label, dict(timed.provenance))
    winner = comparison.row("best V2-style") or comparison.row("best V1-style")
    if winner is not None:
        for row in (winner, rows[reference]):
            comparison.stages[row.label] = stage_times(Genotype.from_string(row.genotype), config, rounds)
    return comparison


def stage_times(genotype: Genotype, config: MeasureConfig, rounds: int = 10, runs: int = 5) -> list[tuple[str, float]]:
    """The median ms of each part of the network (stem, stage2.., head), each timed alone at its input shape,
    the parts interleaved in rounds (raw, like ``measure_interleaved``)."""
    import torch

    model = seeded(lambda: build(genotype)).eval()
    parts: list[tuple[str, torch.nn.Module]] = [("stem", model.stem)]
    parts += list(zip(model.stage_names, model.stages(), strict=True))
    parts.append(("head", model.head))
    shaped = []
    x = torch.zeros(1, 3, genotype.resolution, genotype.resolution)
    with torch.no_grad():
        for _, part in parts:
            shaped.append((part, (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))))
            x = part(x)
    timed = time_interleaved(shaped, config, rounds=rounds, runs=runs)
    return [(name, timed.median_ms(index)) for index, (name, _) in enumerate(parts)]
