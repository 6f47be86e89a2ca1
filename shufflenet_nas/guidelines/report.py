"""A guidelines run as files: one PNG chart per guideline (matplotlib, no display needed) and ``guidelines.md``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from shufflenet_nas.guidelines.result import GuidelineResult, GuidelinesResult, RowResult, TableResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_PAPER_COLOUR, _HERE_COLOUR = "0.65", "tab:blue"


def device_line(result: GuidelinesResult) -> str:
    """Where it was measured, in one line."""
    p = result.provenance
    versions = ", ".join(f"{name} {p[name]}" for name in ("torch", "cuda", "onnxruntime") if p.get(name))
    threads = p.get("threads", "?")
    return (
        f"{p.get('target')} / {p.get('runtime')} on {p.get('device', '?')}, {versions}, {threads} thread"
        f"{'s' if threads != 1 else ''}, batch {result.batch}, {p.get('dtype')}"
        + (", channels-last" if p.get("channels_last") else "")
    )


def paper_line(result: GuidelinesResult) -> str:
    """The paper's protocol the run is compared with."""
    return (
        f"the paper's {result.paper_device} ({result.paper_unit} at batch {result.paper_batch}, "
        f"{result.width_set.upper()} width set)"
    )


def decided_by(guideline: GuidelineResult) -> str:
    """``t(1:1) / t(1:12)``: the ratio that decides the guideline."""
    return f"t({guideline.faster}) / t({guideline.slower})"


def ratio_text(table: TableResult) -> str:
    """``0.512 [0.498, 0.530]``: the deciding ratio at one width and its 95% interval."""
    return f"{table.ratio:.3f} [{table.low:.3f}, {table.high:.3f}]"


def write_charts(result: GuidelinesResult, folder: Path) -> list[Path]:
    """One PNG per guideline in ``folder`` (``g1.png`` ...): the paper's throughput beside this device's, each
    relative to the table's first row (the absolute units differ between the paper's devices and this one)."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    return [_chart(result, guideline, folder / f"{guideline.key.lower()}.png") for guideline in result.guidelines]


def _chart(result: GuidelinesResult, guideline: GuidelineResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    count = len(guideline.tables)
    width = max(7.5, 1.2 + 4.6 * count)
    figure, axes = plt.subplots(1, count, figsize=(width, 5.6), sharey=True, squeeze=False)
    bars = [value for t in guideline.tables for row in t.rows for value in (row.relative, t.paper_relative(row))]
    top = max(1.25, *bars) * 1.3  # shared by the widths; a longer interval is cut there, its end written
    for column, table in enumerate(guideline.tables):
        _bars(axes[0][column], guideline, table, top, ylabel=column == 0)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    size = f"{result.blocks} blocks on {result.resolution}x{result.resolution} features"
    about = f"this device: {device_line(result)}; {size}; beside {paper_line(result)}"
    wrapped = textwrap.fill(about, int(width * 15), break_on_hyphens=False)  # about 15 characters of 9 pt text per inch
    figure.suptitle(f"{guideline.key}: {guideline.claim} ({guideline.verdict} here)\n{wrapped}", fontsize=9)
    figure.tight_layout(rect=(0, 0.05, 1, 1))  # the bottom strip: the legend
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _bars(axes: Axes, guideline: GuidelineResult, table: TableResult, top: float, ylabel: bool) -> None:
    """Paper and measured relative throughput per row of one width's table, the measured with its interval."""
    labels = [row.label.replace("-fragment-", "-frag.\n") for row in table.rows]
    paper = [table.paper_relative(row) for row in table.rows]
    here = [row.relative for row in table.rows]
    errors = [[row.relative - row.relative_interval[0] for row in table.rows]]
    errors.append([row.relative_interval[1] - row.relative for row in table.rows])
    positions = range(len(labels))
    axes.bar([p - 0.2 for p in positions], paper, 0.4, color=_PAPER_COLOUR, label="paper")
    axes.bar([p + 0.2 for p in positions], here, 0.4, color=_HERE_COLOUR, label="this device (95% interval)")
    axes.errorbar([p + 0.2 for p in positions], here, yerr=errors, fmt="none", ecolor="black", capsize=3, lw=1)
    axes.axhline(1.0, color="black", lw=0.8, ls=":")
    axes.set_xticks(list(positions), labels, fontsize=8)
    axes.set_xlabel(f"{guideline.key} block", fontsize=8)
    if ylabel:
        axes.set_ylabel(f"throughput relative to {table.rows[0].label} (x, higher is faster)", fontsize=8)
    axes.set_title(f"width x{table.width}: {table.verdict}\n{decided_by(guideline)} = {ratio_text(table)}", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    axes.set_ylim(0, top)
    for position, row in zip(positions, table.rows, strict=True):
        if row.relative_interval[1] > top:
            axes.annotate(
                f"to {row.relative_interval[1]:.2f}",
                (position + 0.2, top),
                xytext=(0, -10),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )


def guidelines_markdown(result: GuidelinesResult, charts: list[Path]) -> str:
    """``guidelines.md``'s text; ``charts`` are linked by file name (they sit beside it)."""
    lines = [
        "# ShuffleNet V2's guidelines G1-G4 on this device",
        "",
        f"Measured on {device_line(result)}; compared with {paper_line(result)}. The V2 paper's validation "
        f"benchmarks (Tables 1-4): stacks of {result.blocks} blocks on {result.resolution}x{result.resolution} "
        f"features, widths {', '.join(f'x{w}' for w in result.widths)}. Each table at each width was timed in one "
        f"run, its rows interleaved: {result.rounds} rounds of {result.runs} forwards per row (order rotating), "
        f"raw times; {result.seconds:.0f} s in all. **ms**: the median over rounds of each row's round median; "
        "**x first**: its time over the table's first row's, per round (median); [95% bootstrap intervals]. "
        "**images/s** = batch / (ms / 1000), here; the paper's column keeps its unit (GPU: batches/s of 8 images; "
        "ARM: images/s at batch 1). "
        "**rel.**: throughput relative to the table's first row, here and in the paper (units cancel). "
        "MFLOPs (multiply-adds) and MAC (memory access cost: elements read + written, weights included; the paper's "
        "hw(c1 + c2) + c1c2/g for a 1x1 conv, plus the element-wise kernels) are per image over the stack.",
        "",
        "A guideline **holds** when the 95% interval of t(the row it favours) / t(the row it warns against) lies "
        "below 1, **does not hold** when it lies above 1, and is **inconclusive** when it contains 1; over widths it "
        "holds (or does not) only when every width agrees.",
        "",
        "| guideline | claim | decided by | "
        + " | ".join(f"x{w}: ratio [95%]" for w in result.widths)
        + " | verdict |",
        "|---|---|---|" + "---|" * len(result.widths) + "---|",
    ]
    for g in result.guidelines:
        ratios = " | ".join(f"{ratio_text(t)} {t.verdict}" for t in g.tables)
        lines.append(f"| {g.key} | {g.claim} | {decided_by(g)} | {ratios} | **{g.verdict}** |")
    charts_by_key = {path.stem.upper(): path for path in charts}
    for g in result.guidelines:
        lines += [
            "",
            f"## {g.key}: {g.claim}",
            "",
            f"Source: {g.source}. Block: {g.block}. Verdict here: **{g.verdict}**.",
        ]
        lines.append("")
        columns = table_columns(result)
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row_cells(result, t, row)) + " |" for t in g.tables for row in t.rows]
        if g.key in charts_by_key:
            lines += ["", f"![{g.key}]({charts_by_key[g.key].name})"]
    provenance = json.dumps(result.provenance, sort_keys=True, default=str)
    lines += ["", "## Provenance", "", f"`{provenance}`"]
    return "\n".join(lines) + "\n"


def table_columns(result: GuidelinesResult) -> list[str]:
    """The columns of a guideline's table (``row_cells`` fills them)."""
    columns = ["width", "row", "channels", "MFLOPs", "MAC (M)", "ms [95%]", "x first [95%]", "images/s", "rel."]
    return [*columns, result.paper_column, "paper rel."]


def row_cells(result: GuidelinesResult, table: TableResult, row: RowResult) -> list[str]:
    """One row of a guideline's table at one width, as text."""
    return [
        f"x{table.width}",
        row.label,
        row.block,
        f"{row.flops / 1e6:.1f}",
        f"{row.mac / 1e6:.2f}",
        f"{row.ms:.3f} [{row.ms_low:.3f}, {row.ms_high:.3f}]",
        f"{row.ratio:.3f} [{row.ratio_low:.3f}, {row.ratio_high:.3f}]",
        f"{result.images_per_s(row):.1f}",
        f"{row.relative:.2f}",
        f"{row.paper:g}",
        f"{table.paper_relative(row):.2f}",
    ]


def write_report(result: GuidelinesResult, folder: Path) -> list[Path]:
    """The charts, ``guidelines.md`` and ``guidelines.json`` (``result.to_dict()``) in ``folder``."""
    charts = write_charts(result, folder)
    markdown, data = folder / "guidelines.md", folder / "guidelines.json"
    markdown.write_text(guidelines_markdown(result, charts))
    data.write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return [*charts, markdown, data]
