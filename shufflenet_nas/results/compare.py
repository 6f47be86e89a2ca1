"""A study's finds beside the papers' models, re-measured in one run on one device (``compare``).

What is compared: each family's best, the Pareto front, and every paper model the study evaluated, plus
ShuffleNet V2 1.0x at the study's resolution (the reference every ratio is to) where the study did not evaluate it,
its proxy then scored as the search scored its trials (where the proxy needs no data).
All of them are timed interleaved in rounds (``nas.latency.measure_interleaved``): raw milliseconds, and the raw
ratio to V2 1.0x within each round, each with a 95% bootstrap interval over rounds. Beside them: counted and paper
MFLOPs, parameters, memory access, operators, the study's proxy and latency, trained top-1 (``train``) and the
papers' top-1 for their models. ``stage_times`` times the winner's and the reference's parts one by one.
Each row is also explained in ShuffleNet V2's guidelines (``nas.explain``): counted figures per guideline and,
on the cpu target, the share of operator time in element-wise operators measured with ``torch.profiler``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna

from shufflenet_nas.nas.cost import count_cost
from shufflenet_nas.nas.explain import (
    GUIDELINE_COLUMNS,
    REFERENCE,
    Explanation,
    GuidelineVerdict,
    MeasuredShare,
    compare_measured,
    compare_to_reference,
    explain,
    measured_elementwise_share,
)
from shufflenet_nas.nas.latency import MeasureConfig, measure_interleaved
from shufflenet_nas.nas.latency._interleaved import time_interleaved
from shufflenet_nas.nas.latency._runtimes import is_channels_last, seeded
from shufflenet_nas.nas.search_config import baseline_at
from shufflenet_nas.results.rows import TrialRow
from shufflenet_nas.results.summary import StudySummary
from shufflenet_nas.search_spaces import BASELINES, Genotype
from shufflenet_nas.search_spaces.builder import build

PROFILE_RUNS = 5  # profiled forwards per network for the measured element-wise share (cpu target)


@dataclass(frozen=True)
class ComparedRow:
    """One architecture as ``compare`` shows it; ``ms`` and ``ratio`` come from the interleaved re-measurement."""

    label: str  # "best V2-style", "pareto", or the paper model's name
    is_reference: bool  # V2 1.0x, the network every ratio is to
    added: bool  # not in the study: V2 1.0x added as the reference
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
    provenance: dict[str, Any]
    stages: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # label -> [(part, ms)]
    guidelines: dict[str, Explanation] = field(default_factory=dict)  # label -> counted guideline figures
    measured: dict[str, MeasuredShare] = field(default_factory=dict)  # label -> G4 profiled (cpu target only)

    @property
    def reference(self) -> ComparedRow:
        return next(row for row in self.rows if row.is_reference)

    def row(self, label: str) -> ComparedRow | None:
        return next((row for row in self.rows if row.label == label), None)

    @property
    def guideline_columns(self) -> tuple[str, ...]:
        """The columns of ``guideline_cells``: the counted figures, then G4 measured where profiled."""
        return (*GUIDELINE_COLUMNS, "G4 time") if self.measured else GUIDELINE_COLUMNS

    def guideline_cells(self, label: str) -> tuple[str, ...]:
        """A row's whole-network guideline figures, and its measured element-wise share of operator time."""
        measured = self.measured.get(label)
        cells = self.guidelines[label].network.cells()
        return (*cells, f"{measured.elementwise:.1%}") if measured else cells

    def guideline_verdicts(self, label: str) -> tuple[GuidelineVerdict, ...]:
        """A row against the reference, guideline by guideline (with G4 as measured where profiled)."""
        reference = self.reference.label
        verdicts = compare_to_reference(self.guidelines[label], self.guidelines[reference])
        if label in self.measured:
            verdicts += (compare_measured(self.measured[label], self.measured[reference]),)
        return verdicts

    @property
    def bests(self) -> list[ComparedRow]:
        """The rows of the study's bests."""
        return [row for row in self.rows if row.label.startswith("best ")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "settings": self.settings,
            "reference": self.reference.label,
            "rows": [asdict(row) for row in self.rows],
            "stages": {label: [{"part": p, "ms": ms} for p, ms in parts] for label, parts in self.stages.items()},
            "guidelines": {
                label: {
                    **explanation.to_dict(),
                    "measured": self.measured[label].to_dict() if label in self.measured else None,
                    "vs_reference": [verdict.to_dict() for verdict in self.guideline_verdicts(label)],
                }
                for label, explanation in self.guidelines.items()
            },
            "provenance": self.provenance,
        }


def compared_rows(summary: StudySummary) -> list[tuple[str, TrialRow]]:
    """(label, row) for each family's best, the rest of the front, then the paper models, each architecture once;
    a paper model is labelled by its name wherever it sits."""
    chosen: dict[str, tuple[str, TrialRow]] = {}
    for family, row in summary.best.items():
        chosen.setdefault(row.arch_id, (f"best {family}", row))
    for row in [*summary.pareto, *summary.baselines]:
        chosen.setdefault(row.arch_id, (row.baseline or "pareto", row))
    return list(chosen.values())


def _study_proxy(genotype: Genotype, settings: dict[str, Any]) -> float | None:
    """The study's proxy of a network it did not evaluate, scored as its search did (seed; none where the proxy
    needed the study's data)."""
    proxy = settings.get("proxy")
    if not proxy or settings.get("data") or proxy == "train":
        return None
    from shufflenet_nas.nas.proxies import compute_proxies

    return compute_proxies(genotype, [proxy], seed=settings.get("seed") or 0)[proxy].value


def compare_study(
    study: optuna.Study,
    summary: StudySummary,
    config: MeasureConfig,
    *,
    rounds: int = 10,
    runs: int = 5,
) -> StudyComparison:
    """Re-measure what ``compared_rows`` picks and V2 1.0x together, and explain each in the guidelines (see the
    module docstring)."""
    settings = summary.settings
    picked = compared_rows(summary)
    genotypes = [Genotype.from_string(row.genotype) for _, row in picked]
    reference = next((i for i, (_, row) in enumerate(picked) if row.baseline == REFERENCE), None)
    if reference is None:
        genotypes.append(baseline_at(REFERENCE, settings.get("resolution", 224), settings.get("num_classes", 1000)))
        reference = len(genotypes) - 1
    added_proxy = _study_proxy(genotypes[reference], settings) if len(genotypes) > len(picked) else None
    timed = measure_interleaved(genotypes, config, rounds=rounds, runs=runs)
    trained = summary.trained
    rows = []
    for index, genotype in enumerate(genotypes):
        label, row = picked[index] if index < len(picked) else (REFERENCE, None)
        name = row.baseline if row is not None else REFERENCE
        paper = BASELINES.get(name) if name else None
        cost = count_cost(genotype)
        ratio = timed.ratio(index, reference)
        low, high = timed.ms_interval(index)
        record = trained.get(genotype.arch_id, {})
        rows.append(
            ComparedRow(
                label=label,
                is_reference=index == reference,
                added=row is None,
                arch_id=genotype.arch_id,
                genotype=genotype.to_string(),
                family=genotype.family,
                trial=row.number if row else None,
                baseline=name,
                mflops=cost.mflops,
                params=cost.params,
                memory_access=cost.memory_access,
                operators=cost.operators,
                proxy=row.proxy if row else added_proxy,
                study_latency_ms=row.latency_ms if row else None,
                accuracy_top1=record.get("accuracy_top1"),
                paper_mflops=paper.paper_mflops if paper and genotype.resolution == 224 else None,
                paper_top1=100 - paper.paper_top1_error if paper and paper.paper_top1_error is not None else None,
                ms=timed.median_ms(index),
                ms_low=low,
                ms_high=high,
                ratio=ratio[0],
                ratio_low=ratio[1],
                ratio_high=ratio[2],
            )
        )
    comparison = StudyComparison(study.study_name, settings, rows, dict(timed.provenance))
    comparison.guidelines = {row.label: explain(genotype) for row, genotype in zip(rows, genotypes, strict=True)}
    if config.target == "cpu":
        comparison.measured = {
            row.label: measured_elementwise_share(genotype, config, PROFILE_RUNS)
            for row, genotype in zip(rows, genotypes, strict=True)
        }
    winner = comparison.row("best V2-style") or comparison.row("best V1-style")
    if winner is not None:
        pair = [winner, rows[reference]]
        timed_parts = stage_times([Genotype.from_string(row.genotype) for row in pair], config, rounds, runs)
        comparison.stages = {row.label: parts for row, parts in zip(pair, timed_parts, strict=True)}
    return comparison


def stage_times(
    genotypes: list[Genotype], config: MeasureConfig, rounds: int = 10, runs: int = 5
) -> list[list[tuple[str, float]]]:
    """Per network, the median ms of each part (stem, stage2.., head), each part timed alone at its input shape and
    memory format inside the network, all parts of all networks interleaved in one run. The parts of a network do
    not add up to the whole: alone, each starts with cold caches and pays its own call overhead."""
    import torch

    names: list[list[str]] = []
    modules: list[tuple[torch.nn.Module, tuple[int, int, int], bool | None]] = []
    for genotype in genotypes:
        model = seeded(lambda genotype=genotype: build(genotype)).eval()
        parts = [("stem", model.stem), *zip(model.stage_names, model.stages(), strict=True), ("head", model.head)]
        x = torch.zeros(1, 3, genotype.resolution, genotype.resolution)
        if config.channels_last:
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            for _, part in parts:
                modules.append((part, (int(x.shape[1]), int(x.shape[2]), int(x.shape[3])), is_channels_last(x)))
                x = part(x)
        names.append([name for name, _ in parts])
    timed = time_interleaved(modules, config, rounds=rounds, runs=runs)
    result, index = [], 0
    for parts in names:
        result.append([(name, timed.median_ms(index + offset)) for offset, name in enumerate(parts)])
        index += len(parts)
    return result
