"""What a guidelines run finds, as data: per guideline, per width, per row; JSON-able both ways (no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from shufflenet_nas.guidelines.verdicts import overall_verdict, verdict


@dataclass(frozen=True)
class RowResult:
    """One row of a guideline table at one width: its block, cost and measured time.

    ``ms`` is the median over rounds of the row's round medians, [``ms_low``, ``ms_high``] its 95% interval;
    ``ratio`` is its time over the table's first row's, per round, median and 95% interval. ``paper`` is the
    paper's throughput in the run's ``paper_unit``; ``flops`` / ``mac`` are per image over the whole stack.
    """

    label: str
    block: str
    flops: int
    mac: int
    operators: int
    ms: float
    ms_low: float
    ms_high: float
    ratio: float
    ratio_low: float
    ratio_high: float
    paper: float

    @property
    def relative(self) -> float:
        """Throughput relative to the table's first row: 1 / ``ratio``."""
        return 1 / self.ratio

    @property
    def relative_interval(self) -> tuple[float, float]:
        """95% interval of ``relative``."""
        return 1 / self.ratio_high, 1 / self.ratio_low


@dataclass(frozen=True)
class TableResult:
    """A guideline's table measured at one width (1, 2 or 4), interleaved, and its deciding ratio
    t(faster) / t(slower) with its 95% interval."""

    width: int
    rows: tuple[RowResult, ...]
    ratio: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)

    def paper_relative(self, row: RowResult) -> float:
        """The paper's throughput of ``row`` relative to the table's first row."""
        return row.paper / self.rows[0].paper


@dataclass(frozen=True)
class GuidelineResult:
    """One guideline: its claim, the rows that decide it, and its table at each width measured."""

    key: str
    claim: str
    source: str
    block: str
    faster: str
    slower: str
    tables: tuple[TableResult, ...]

    @property
    def verdict(self) -> str:
        """Over the widths: see ``verdicts.overall_verdict``."""
        return overall_verdict([table.verdict for table in self.tables])


@dataclass(frozen=True)
class GuidelinesResult:
    """The four guidelines measured on one device, beside the paper's protocol they are compared with.

    ``width_set`` / ``paper_device`` / ``paper_batch`` / ``paper_unit``: the paper's column compared with
    ("arm": Snapdragon 810, images/s at batch 1; "gpu": GTX 1080Ti, batches/s at batch 8). ``batch`` is the batch
    measured here; ``seconds`` the wall time of the run.
    """

    target: str
    width_set: str
    paper_device: str
    paper_batch: int
    paper_unit: str
    batch: int
    resolution: int
    blocks: int
    widths: tuple[int, ...]
    rounds: int
    runs: int
    seconds: float
    guidelines: tuple[GuidelineResult, ...]
    provenance: dict[str, Any]

    def images_per_s(self, row: RowResult) -> float:
        """This device's throughput of ``row``: batch / (ms / 1000)."""
        return self.batch * 1000.0 / row.ms

    @property
    def paper_column(self) -> str:
        """The paper's throughput column: ``paper images/s (batch 1)`` or ``paper batches/s (batch 8)``."""
        return f"paper {self.paper_unit} (batch {self.paper_batch})"

    def guideline(self, key: str) -> GuidelineResult:
        return next(g for g in self.guidelines if g.key == key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; derived figures (verdicts, throughput, relative throughput) included for readers, ignored
        by ``from_dict``."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("guidelines", "widths")}
        data["widths"] = list(self.widths)
        data["guidelines"] = [self._guideline_dict(g) for g in self.guidelines]
        return data

    def _guideline_dict(self, guideline: GuidelineResult) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(guideline, f.name) for f in fields(guideline) if f.name != "tables"}
        data["verdict"] = guideline.verdict
        data["tables"] = []
        for table in guideline.tables:
            rows = [
                {f.name: getattr(row, f.name) for f in fields(row)}
                | {
                    "images_per_s": self.images_per_s(row),
                    "relative_throughput": row.relative,
                    "paper_relative_throughput": table.paper_relative(row),
                }
                for row in table.rows
            ]
            figures = {"width": table.width, "ratio": table.ratio, "low": table.low, "high": table.high}
            data["tables"].append(figures | {"verdict": table.verdict, "rows": rows})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuidelinesResult:
        """The inverse of ``to_dict``; ``ValueError`` where a guideline has no table or a figure is no finite
        number."""
        guidelines = tuple(
            GuidelineResult(**_known(GuidelineResult, g, "tables"), tables=tuple(map(_table, g["tables"])))
            for g in data["guidelines"]
        )
        if not guidelines or any(not g.tables for g in guidelines):
            raise ValueError("a guideline without a measured table")
        top = _known(cls, data, "guidelines")
        return cls(**top | {"widths": tuple(top["widths"]), "guidelines": guidelines})


def _table(data: dict[str, Any]) -> TableResult:
    rows = tuple(RowResult(**_known(RowResult, row)) for row in data["rows"])
    table = TableResult(**_known(TableResult, data, "rows"), rows=rows)
    figures = [table.ratio, table.low, table.high, *(row.ms for row in rows), *(row.ratio for row in rows)]
    if not rows or not all(isinstance(x, int | float) and math.isfinite(x) for x in figures):
        raise ValueError(f"table x{table.width}: a figure that is no finite number, or no rows")
    return table


def _known(kind: type, data: dict[str, Any], *nested: str) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``kind``, less ``nested``."""
    names = {f.name for f in fields(kind)} - set(nested)
    return {name: data[name] for name in names}
