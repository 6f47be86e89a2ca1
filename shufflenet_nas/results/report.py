"""The comparison as ``report.md``: where and how it was measured, one table, the guidelines table with each best
against the reference guideline by guideline, the charts, the genotypes."""

from __future__ import annotations

from pathlib import Path

from shufflenet_nas.nas.explain import GUIDELINE_LEGEND, MEASURED_LEGEND
from shufflenet_nas.results.compare import ComparedRow, StudyComparison
from shufflenet_nas.units import percent


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def report_markdown(comparison: StudyComparison, charts: list[Path]) -> str:
    """The report's text; ``charts`` are linked by file name (they sit beside it)."""
    p, s = comparison.provenance, comparison.settings
    lines = [
        f"# `{comparison.study}`: found architectures beside the papers' models",
        "",
        f"Re-measured in one run on {p.get('target')} ({p.get('device', '?')}), torch {p.get('torch')}, "
        f"{p.get('threads')} thread(s), batch {p.get('batch')}, {p.get('dtype')}"
        + (", channels-last" if p.get("channels_last") else "")
        + f", {s.get('resolution')} px: {p.get('rounds')} interleaved rounds of {p.get('runs_per_round')} forwards "
        "per network (order rotating), raw times, no speed anchor. **ms** is the median over rounds of each round's "
        "median; **x V2 1.0x** the median over rounds of the ratio within each round; [95% bootstrap intervals]. "
        f"The study: budget {s.get('budget_mflops')} MFLOPs, proxy {s.get('proxy')}, family {s.get('family')}.",
        "",
        "| | trial | family | MFLOPs (paper, 224 px) | params | memory access | operators | proxy | study ms | "
        "ms [95%] | x V2 1.0x [95%] | trained top-1 % | paper top-1 % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(row) for row in sorted(comparison.rows, key=lambda r: r.ms)]
    reference = comparison.reference
    if reference.added:
        lines += ["", f"{reference.label} was not in the study: added as the reference (no trial, no proxy)."]
    lines += ["", *_guidelines(comparison)]
    lines += ["", *(f"![{chart.stem}]({chart.name})" for chart in charts), "", "## Genotypes", ""]
    lines += [f"- {row.label}{_trial(row)}: `{row.genotype}`" for row in comparison.rows]
    lines += [
        "",
        "Study ms are the search's own short measurements (taken minutes apart, possibly normalised); the re-measured "
        "ms and ratios above are the figures to compare. Paper top-1 is the papers' ImageNet figure at 224 px; trained "
        "top-1 comes from `shufflenet-nas train` on the user's data.",
    ]
    return "\n".join(lines) + "\n"


def _guidelines(comparison: StudyComparison) -> list[str]:
    """The guidelines section: every row's whole-network figures, then each best against the reference."""
    columns = comparison.guideline_columns
    measured = (
        f" Measured on {comparison.provenance.get('device', '?')}; {MEASURED_LEGEND}." if comparison.measured else ""
    )
    lines = [
        "## ShuffleNet V2's guidelines",
        "",
        f"Counted from each network's kernels (MAC = elements read + written). {GUIDELINE_LEGEND}.{measured}",
        "",
        "| | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for row in sorted(comparison.rows, key=lambda r: r.ms):
        lines.append(f"| {row.label} | " + " | ".join(comparison.guideline_cells(row.label)) + " |")
    for row in comparison.bests:
        lines += ["", f"{row.label} vs {comparison.reference.label}:", ""]
        lines += [f"- {verdict.text()}" for verdict in comparison.guideline_verdicts(row.label)]
    return lines


def _trial(row: ComparedRow) -> str:
    return f" (trial {row.trial})" if row.trial is not None else ""


def _row(row: ComparedRow) -> str:
    paper = f" ({row.paper_mflops:g})" if row.paper_mflops is not None else ""
    return (
        f"| {row.label}{' (reference)' if row.is_reference else ''} | {_number(row.trial, 'd')} | {row.family} | "
        f"{row.mflops:.1f}{paper} | {row.params:,} | "
        f"{row.memory_access / 1e6:.2f}M | {row.operators} | {_number(row.proxy, '.4g')} | "
        f"{_number(row.study_latency_ms, '.3f')} | {row.ms:.3f} [{row.ms_low:.3f}, {row.ms_high:.3f}] | "
        f"{row.ratio:.3f} [{row.ratio_low:.3f}, {row.ratio_high:.3f}] | {percent(row.accuracy_top1)} | "
        f"{_number(row.paper_top1, '.1f')} |"
    )
