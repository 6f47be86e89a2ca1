"""The comparison as PNG charts (matplotlib, no display needed): latency vs proxy with the front, MFLOPs vs
latency (the V2 paper's point that FLOPs are not speed), and the winner's per-stage latency beside V2 1.0x."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shufflenet_nas.results.compare import ComparedRow, StudyComparison

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_MARKERS = "sDv^<>phH8PXd"


def write_plots(comparison: StudyComparison, folder: Path) -> list[Path]:
    """Write the charts into ``folder``; returns their paths (the per-stage chart only where there is a winner)."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [_latency_vs_proxy(comparison, folder / "latency_vs_proxy.png")]
    paths.append(_mflops_vs_latency(comparison, folder / "mflops_vs_latency.png"))
    if len(comparison.stages) == 2:
        paths.append(_stages(comparison, folder / "stage_latency.png"))
    return paths


def _device(comparison: StudyComparison) -> str:
    p = comparison.provenance
    return f"{p.get('target')} ({p.get('device', '?')}), {p.get('threads', '?')} thread(s), batch {p.get('batch')}"


def _scatter_rows(
    axes: Axes, rows: list[ComparedRow], x: Callable[[ComparedRow], float], y: Callable[[ComparedRow], float]
) -> None:
    """Searched rows as dots (the bests as stars), each paper model with its own marker and legend entry."""
    searched = [r for r in rows if not r.baseline and not r.label.startswith("best ")]
    if searched:
        xs, ys = [x(r) for r in searched], [y(r) for r in searched]
        axes.scatter(xs, ys, color="tab:blue", s=28, label="searched (front)")
    for row in (r for r in rows if r.label.startswith("best ")):
        label = f"{row.label} (trial {row.trial})"
        axes.scatter([x(row)], [y(row)], marker="*", s=220, color="tab:red", zorder=5, label=label)
    for index, row in enumerate(r for r in rows if r.baseline):
        marker = _MARKERS[index % len(_MARKERS)]
        axes.scatter([x(row)], [y(row)], marker=marker, s=46, color="0.35", facecolors="none", label=row.baseline)


def _finish(figure: Figure, axes: Axes, path: Path, title: str) -> Path:
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


def _latency_vs_proxy(comparison: StudyComparison, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    rows = [r for r in comparison.rows if r.proxy is not None]
    figure, axes = plt.subplots(figsize=(9, 5))
    front = sorted((r for r in rows if not r.baseline), key=lambda r: r.ms)
    if len(front) > 1:
        label = "the search's front, re-measured"
        axes.plot([r.ms for r in front], [r.proxy for r in front], color="tab:blue", alpha=0.4, lw=1, label=label)
    _scatter_rows(axes, rows, lambda r: r.ms, lambda r: r.proxy)
    reference = comparison.reference
    if reference.proxy is not None:
        axes.axhline(reference.proxy, color="tab:green", ls="--", lw=1, label=f"proxy of {reference.baseline}")
    axes.set_xlabel("latency, ms (re-measured, interleaved)")
    axes.set_ylabel(f"proxy ({comparison.settings.get('proxy')}, higher is better)")
    axes.yaxis.set_major_formatter(EngFormatter())  # 2.5M, not an offset that collides with the title
    return _finish(figure, axes, path, f"{comparison.study}: latency vs proxy · {_device(comparison)}")


def _mflops_vs_latency(comparison: StudyComparison, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    _scatter_rows(axes, comparison.rows, lambda r: r.mflops, lambda r: r.ms)
    budget = comparison.settings.get("budget_mflops")
    if budget:
        axes.axvline(budget, color="tab:orange", ls="--", lw=1, label=f"budget {budget:g} MFLOPs")
    axes.set_xlabel("MFLOPs (conv + linear multiply-adds, counted)")
    axes.set_ylabel("latency, ms (re-measured, interleaved)")
    return _finish(figure, axes, path, f"{comparison.study}: FLOPs are not speed · {_device(comparison)}")


def _stages(comparison: StudyComparison, path: Path) -> Path:
    import matplotlib.pyplot as plt

    (first, first_parts), (second, second_parts) = comparison.stages.items()
    names = list(dict.fromkeys([name for name, _ in first_parts] + [name for name, _ in second_parts]))
    first_ms = dict(first_parts)
    figure, axes = plt.subplots(figsize=(9, 5))
    width = 0.4
    positions = range(len(names))
    axes.bar(
        [p - width / 2 for p in positions], [first_ms.get(n, 0.0) for n in names], width, label=first, color="tab:red"
    )
    other = dict(second_parts)
    axes.bar([p + width / 2 for p in positions], [other.get(n, 0.0) for n in names], width, label=second, color="0.55")
    axes.set_xticks(list(positions), names)
    axes.set_xlabel("part of the network")
    axes.set_ylabel("latency, ms (each part timed alone)")
    title = f"{comparison.study}: where the time goes · {_device(comparison)}"
    title += "\n(parts timed alone do not add up to the network)"
    return _finish(figure, axes, path, title)
