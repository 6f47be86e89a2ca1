"""A finished (or interrupted) study turned into a summary: trials, Pareto front, best V1/V2-style picks.

"Best V1-style" and "best V2-style" are architectures the search found: a seeded paper model (a trial with the
``baseline`` attribute) is never one. Each family is judged against its own reference, the paper model it is
compared with:

* V2-style: the seeded V2 model (the widest that fits the budget, e.g. ``shufflenet_v2_x1_0`` at 146M);
  V1-style: the seeded V1 model with the highest proxy. A ``--proxy-floor`` that names a baseline replaces both
  as the model the "% lower latency" line names.
* ``--objective pareto`` without a proxy floor: the fastest architecture of the family whose proxy is at least
  its reference's and whose latency is lower. When none is, the family has no best, and ``no_best`` says why
  ("no V2-style architecture was faster than shufflenet_v2_x1_0 at its proxy or better").
* A proxy floor or ``--objective latency``: feasibility (budgets and floor) is the bar; the fastest feasible
  architecture of the family wins. ``--objective reward``: the highest reward.
* No reference in the study (none seeded, none fits) and no floor: the highest proxy. No "% lower" claim.

Proxies that print the same (``PROXY_FORMAT``, 4 significant digits) count as equal, so a trial never wins on a
difference nobody can see; between equal proxies the faster architecture wins. Latencies re-measured after a
lookup-table search replace the predicted ones here.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from shufflenet_nas.errors import ShuffleNetNASError, UsageError
from shufflenet_nas.nas.latency import MeasureConfig, measure_latency
from shufflenet_nas.search_spaces import Genotype

FAMILIES = ("V1-style", "V2-style")
PROXY_FORMAT = ".4g"  # how proxies are printed: values that print the same are equal
LATENCY_FORMAT = ".3f"  # milliseconds
TIE_REL = 1e-3  # without a reference: proxies this close (relative) are a tie, won by the faster architecture
_SEARCHED = {"v1": ("V1-style",), "v2": ("V2-style",)}

# How a family's best was chosen (``StudySummary.rules``).
RULE_REFERENCE = "reference"  # fastest with proxy >= the family's paper model and lower latency
RULE_FLOOR = "proxy_floor"  # fastest feasible (the floor and the budgets are the bar)
RULE_REWARD = "reward"  # highest reward
RULE_PROXY = "highest_proxy"  # no reference: highest proxy, ties to the faster


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
    feasible: bool = True
    why_not: str | None = None  # why a (baseline) row is not a result: "below the proxy floor (...)"


@dataclass(frozen=True)
class TrialStatus:
    """One trial of the study, whatever its state: a result, or why not (``show --all``)."""

    number: int
    state: str  # complete, pruned, failed, running, waiting
    result: bool
    reason: str | None  # why it is not a result: over a budget, below the floor, failed, duplicate of trial N
    baseline: str | None = None
    arch_id: str | None = None
    genotype: str | None = None
    family: str | None = None
    mflops: float | None = None
    params: int | None = None
    latency_ms: float | None = None
    proxy: float | None = None


@dataclass(frozen=True)
class Comparison:
    """A best architecture beside the paper model it is compared with: two latencies, two proxies."""

    family: str
    row: TrialRow
    reference: TrialRow

    @property
    def change_pct(self) -> float:
        return (self.row.latency_ms / self.reference.latency_ms - 1) * 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.reference.baseline,
            "baseline_trial": self.reference.number,
            "latency_ms": self.row.latency_ms,
            "baseline_latency_ms": self.reference.latency_ms,
            "latency_change_pct": round(self.change_pct, 2),
            "proxy": self.row.proxy,
            "baseline_proxy": self.reference.proxy,
        }

    def text(self) -> str:
        """``12.3% lower latency than shufflenet_v2_x1_0 (9.655 vs 11.146 ms; proxy 108.1 vs 107.6)``."""
        change = self.change_pct
        return (
            f"{abs(change):.1f}% {'lower' if change < 0 else 'higher'} latency than {self.reference.baseline} "
            f"({self.row.latency_ms:{LATENCY_FORMAT}} vs {self.reference.latency_ms:{LATENCY_FORMAT}} ms; "
            f"proxy {self.row.proxy:{PROXY_FORMAT}} vs {self.reference.proxy:{PROXY_FORMAT}})"
        )


@dataclass
class StudySummary:
    """What `search` prints at the end and `show` prints later.

    ``best`` holds a row for each family that has a best; ``no_best`` the reason for each searched family that
    has none. ``references`` are the paper models each family is compared with, ``rules`` how each family's
    best was chosen (``RULE_*``). ``every_trial`` (``summarise(..., every_trial=True)``) lists every trial."""

    study_name: str
    settings: dict[str, Any]
    counts: dict[str, int]
    pareto: list[TrialRow]
    best: dict[str, TrialRow]
    baselines: list[TrialRow]
    references: dict[str, TrialRow] = field(default_factory=dict)
    no_best: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    proxy_floor: float | None = None
    trials: list[TrialRow] = field(default_factory=list)  # the results: feasible, one row per architecture
    every_trial: list[TrialStatus] | None = None

    @property
    def reference(self) -> TrialRow | None:
        """The paper model named first: the floor's, else V2-style's, else V1-style's reference."""
        return self.references.get("V2-style") or self.references.get("V1-style")

    @property
    def families(self) -> tuple[str, ...]:
        """The families the study searched, in display order."""
        return _SEARCHED.get(str(self.settings.get("family")), FAMILIES)

    def comparison(self, family: str) -> Comparison | None:
        """The family's best beside its reference (None without either)."""
        row, reference = self.best.get(family), self.references.get(family)
        if row is None or reference is None or row.number == reference.number:
            return None
        return Comparison(family, row, reference)

    def shown_rows(self) -> list[TrialRow]:
        """The table's rows: the Pareto front, every paper baseline and each family's best, fastest first."""
        rows = {row.number: row for row in [*self.pareto, *self.baselines, *self.best.values()]}
        return sorted(rows.values(), key=lambda r: (r.latency_ms, r.number))

    def mark(self, row: TrialRow) -> str:
        """The first column of a row: ``best V2-style``, the baseline's name (and why it is no result), or ''."""
        for family, best in self.best.items():
            if best.number == row.number:
                return f"best {family}"
        if row.baseline:
            return f"{row.baseline} ({_short(row.why_not)})" if row.why_not else row.baseline
        return ""

    def rule_text(self) -> str:
        """One line: how the best architectures were chosen."""
        floor = self.settings.get("proxy_floor")
        objective = self.settings.get("objective") or "pareto"
        parts = []
        rules = set(self.rules.values())
        if RULE_REWARD in rules:
            parts.append("the highest reward")
        if RULE_FLOOR in rules:
            value = f" = {self.proxy_floor:{PROXY_FORMAT}}" if self.proxy_floor is not None and _is_name(floor) else ""
            bar = f"proxy floor {floor}{value}" if floor is not None else "the budgets"
            parts.append(f"the fastest feasible architecture (objective {objective}, {bar})")
        if RULE_REFERENCE in rules:
            versus = ", ".join(
                f"{f} vs {r.baseline}" for f, r in self.references.items() if self.rules.get(f) == RULE_REFERENCE
            )
            parts.append(f"the fastest architecture with the proxy of the family's paper model or better ({versus})")
        if RULE_PROXY in rules:
            parts.append("the highest proxy (no paper model to compare with)")
        if not parts:
            return ""
        return (
            "best of each family = "
            + "; ".join(parts)
            + "; proxies equal as printed count as equal (the faster wins); paper models are never best"
        )

    def verdicts(self) -> list[tuple[str, str | None]]:
        """Per searched family: the headline (``best V2-style trial 42 · 12.3% lower latency than ...`` or
        ``no best V1-style: <reason>``) and the best's genotype (None without a best)."""
        lines: list[tuple[str, str | None]] = []
        for family in self.families:
            row = self.best.get(family)
            if row is None:
                if family in self.no_best:
                    lines.append((f"no best {family}: {self.no_best[family]}", None))
                continue
            comparison = self.comparison(family)
            lines.append(
                (f"best {family} trial {row.number}" + (f" · {comparison.text()}" if comparison else ""), row.genotype)
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        comparisons = {f: c.to_dict() for f in self.best if (c := self.comparison(f)) is not None}
        return {
            "study": self.study_name,
            "settings": self.settings,
            "counts": self.counts,
            "pareto": [asdict(row) for row in self.pareto],
            "best": {family: asdict(row) for family, row in self.best.items()},
            "no_best": dict(self.no_best),
            "rules": dict(self.rules),
            "references": {family: row.baseline for family, row in self.references.items()},
            "comparisons": comparisons,
            "proxy_floor": self.proxy_floor,
            "baselines": [asdict(row) for row in self.baselines],
            "reference_baseline": self.reference.baseline if self.reference else None,
        }

    def to_markdown(self) -> str:
        s = self.settings
        budget = s.get("budget_mflops")
        lines = [
            f"# Study `{self.study_name}`",
            "",
            f"Target {s.get('target')} ({s.get('runtime') or 'default runtime'}, batch {s.get('batch')}, "
            f"{s.get('dtype')}), budget {budget:g} MFLOPs, {s.get('resolution')} px, "
            f"family {s.get('family')}, proxy {s.get('proxy')}, latency {s.get('latency_mode')}, "
            f"objective {s.get('objective')}"
            + (f", proxy floor {s.get('proxy_floor')}" if s.get("proxy_floor") is not None else "")
            + ".",
            "",
            "Trials: " + ", ".join(f"{v} {k}" for k, v in self.counts.items()) + ".",
            "",
            "| | trial | family | MFLOPs | params | latency ms | proxy | genotype |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in self.shown_rows():
            mark = self.mark(row) or "pareto"
            source = "*" if row.latency_source == "lut" else ""
            lines.append(
                f"| {mark} | {row.number} | {row.family} | {row.mflops:.1f} | {row.params:,} | "
                f"{row.latency_ms:{LATENCY_FORMAT}}{source} | {row.proxy:{PROXY_FORMAT}} | `{row.genotype}` |"
            )
        if any(row.latency_source == "lut" for row in self.shown_rows()):
            lines += ["", "\\* latency predicted by the lookup table"]
        rule = self.rule_text()
        lines += ["", rule] if rule else []
        for headline, genotype in self.verdicts():
            lines += ["", f"**{headline}**"] + ([f"`{genotype}`"] if genotype else [])
        return "\n".join(lines) + "\n"


def _short(why_not: str | None) -> str:
    """``below the proxy floor (105.2 < 107.6)`` -> ``below floor`` for a table's first column."""
    if not why_not:
        return ""
    return "; ".join(
        "below floor" if part.startswith("below the proxy floor") else part.split(" (")[0].replace("the ", "")
        for part in why_not.split("; ")
    )


def _is_name(floor: object) -> bool:
    try:
        float(str(floor))
    except ValueError:
        return True
    return False


# --- reading a study -------------------------------------------------------------------------------------------


def read_only_sqlite_url(database: Path) -> str:
    """A SQLAlchemy URL that opens a SQLite file for reading only, even in a read-only folder.

    ``mode=ro`` makes the connection read-only (a write fails: "attempt to write a readonly database").
    A WAL-mode database (``make_storage``) needs its ``-shm`` index to be read: where a writer is attached (or
    crashed) the ``-wal``/``-shm`` files exist and are read as they are. Where no ``-wal`` file exists, no
    writer is attached and the main file holds everything: it is read with ``immutable=1``, which creates no
    ``-wal``/``-shm`` files (a ``mode=ro`` reader would create them, or fail in a read-only folder); a writer
    that attaches meanwhile appends to a new ``-wal`` and leaves the main file alone until a checkpoint."""
    path = database.resolve()
    query = {"mode": "ro", "uri": "true"}
    if not Path(f"{path}-wal").exists() and _is_wal_mode(path):
        query["immutable"] = "1"
    uri_path = "file:" + urllib.parse.quote(str(path), safe="/")  # SQLite decodes the URI's %XX
    return URL.create("sqlite", database=uri_path, query=query).render_as_string(hide_password=False)


def _is_wal_mode(path: Path) -> bool:
    """Whether a SQLite file's header marks it WAL mode (file format versions 2 at offsets 18 and 19)."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header.startswith(b"SQLite format 3\x00") and header[18:20] == b"\x02\x02"


def _read_only(storage: str) -> tuple[str, Path | None]:
    """``--storage`` as a read-only URL where it is a SQLite file (other databases as given), and the file."""
    try:
        url = make_url(storage)
    except SQLAlchemyError:  # optuna gives the message for a malformed URL
        return storage, None
    database = url.database
    if not url.drivername.startswith("sqlite") or url.query or not database or database.startswith("file:"):
        return storage, None
    if database == ":memory:":
        return storage, None
    return read_only_sqlite_url(Path(database)), Path(database)


def load_study(study: str | Path | None = None, storage: str | None = None) -> optuna.Study:
    """A study from a results directory (``results/<study>``) or from ``storage`` + study name, for reading.

    SQLite files are opened read-only (``read_only_sqlite_url``): reading a study never writes to it, its
    ``-wal``/``-shm`` files or its folder, and works where none of them is writable."""
    if storage is None:
        if study is None:
            raise UsageError("give a results directory (results/<study>) or --storage URL with --study NAME")
        directory = Path(study)
        database: Path | None = directory / "study.db"
        if not database.is_file():
            raise UsageError(f"{directory} holds no study.db; pass a results/<study> directory or --storage URL")
        url, study, label = read_only_sqlite_url(database), directory.name, str(database)
    else:
        url, database = _read_only(storage)
        label = storage
        if database is not None and not database.is_file():
            raise UsageError(f"--storage {storage}: {database} does not exist")
    try:
        opened = optuna.storages.RDBStorage(url, skip_table_creation=True)
        names = optuna.get_all_study_names(opened)
    except (SQLAlchemyError, RuntimeError, optuna.exceptions.StorageInternalError) as error:
        cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) else error
        reason = str(getattr(cause, "orig", None) or cause or error).strip().splitlines()
        raise ShuffleNetNASError(f"cannot read {label} as an Optuna study: {reason[0] if reason else error}") from None
    if study is None and len(names) == 1:
        study = names[0]
    if study is None or str(study) not in names:
        raise UsageError(f"study {study!r} not found in {label}; it holds: {', '.join(names) or 'no studies'}")
    return optuna.load_study(study_name=str(study), storage=opened)


# --- rows ------------------------------------------------------------------------------------------------------


def _row(
    trial: optuna.trial.FrozenTrial, remeasured: dict[str, Any], reward: bool, why_not: str | None = None
) -> TrialRow:
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
        reward=trial.values[0] if reward and trial.values else None,
        latency_source="re-measured" if measured else a["latency"]["source"],
        feasible=bool(a.get("feasible")),
        why_not=why_not,
    )


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def evaluated_rows(study: optuna.Study) -> list[TrialRow]:
    """The results: feasible, completed trials, one row per architecture (the baseline's trial where a paper
    model was evaluated, else the first trial that evaluated it)."""
    remeasured = study.user_attrs.get("remeasured", {})
    reward = study.user_attrs.get("objective") == "reward"
    rows: dict[str, TrialRow] = {}
    for trial in _complete(study):
        if trial.user_attrs.get("feasible") and "latency_ms" in trial.user_attrs:
            row = _row(trial, remeasured, reward)
            if row.arch_id not in rows or (row.baseline and not rows[row.arch_id].baseline):
                rows[row.arch_id] = row
    return sorted(rows.values(), key=lambda r: r.number)


def baseline_rows(study: optuna.Study) -> list[TrialRow]:
    """Every evaluated paper baseline, feasible or not (a proxy floor above it, a latency budget below it):
    baselines are always shown; ``why_not`` says why one is not a result."""
    remeasured = study.user_attrs.get("remeasured", {})
    reward = study.user_attrs.get("objective") == "reward"
    rows: dict[str, TrialRow] = {}
    for trial in _complete(study):
        a = trial.user_attrs
        if a.get("baseline") and "latency_ms" in a and a["baseline"] not in rows:
            why_not = None if a.get("feasible") else "; ".join(_constraint_reasons(trial, study.user_attrs))
            rows[a["baseline"]] = _row(trial, remeasured, reward, why_not or None)
    return sorted(rows.values(), key=lambda r: r.number)


def pareto_front(rows: list[TrialRow]) -> list[TrialRow]:
    """Rows no other row beats on both latency (lower) and proxy (higher), fastest first. Proxies that print
    the same are equal: of two such rows only the faster is on the front."""

    def dominates(o: TrialRow, r: TrialRow) -> bool:
        higher = o.proxy > r.proxy and not same_proxy(o.proxy, r.proxy)
        return o.latency_ms <= r.latency_ms and reaches(o.proxy, r.proxy) and (o.latency_ms < r.latency_ms or higher)

    front = [r for r in rows if not any(dominates(o, r) for o in rows)]
    return sorted(front, key=lambda r: r.latency_ms)


# --- the best of each family -----------------------------------------------------------------------------------


def same_proxy(a: float, b: float) -> bool:
    """Proxies that print the same (``PROXY_FORMAT``) are equal."""
    return f"{a:{PROXY_FORMAT}}" == f"{b:{PROXY_FORMAT}}" or a == b


def reaches(proxy: float, reference: float) -> bool:
    """``proxy`` is at least ``reference`` as printed."""
    return proxy >= reference or same_proxy(proxy, reference)


def faster(latency_ms: float, reference_ms: float) -> bool:
    """Lower latency, and visibly so at the printed precision."""
    return latency_ms < reference_ms and f"{latency_ms:{LATENCY_FORMAT}}" != f"{reference_ms:{LATENCY_FORMAT}}"


def _fastest(rows: Iterable[TrialRow]) -> TrialRow:
    return min(rows, key=lambda r: (r.latency_ms, -r.proxy, r.number))


def highest_proxy(rows: list[TrialRow]) -> TrialRow:
    """The highest proxy; proxies that print the same or lie within ``TIE_REL`` of it go to the faster."""
    top = max(r.proxy for r in rows)
    tied = [r for r in rows if same_proxy(r.proxy, top) or abs(top - r.proxy) <= TIE_REL * abs(top)]
    return _fastest(tied)


def family_references(baselines: list[TrialRow], floor: object = None) -> dict[str, TrialRow]:
    """The paper model each family is compared with: the floor's baseline where the floor names one in the
    study; else V2-style: the widest V2 baseline; V1-style: the V1 baseline with the highest proxy."""
    named = next((b for b in baselines if floor is not None and b.baseline == str(floor)), None)
    references: dict[str, TrialRow] = {}
    for family in FAMILIES:
        own = [b for b in baselines if b.family == family]
        if named is not None:
            references[family] = named
        elif own and family == "V2-style":
            references[family] = max(own, key=lambda r: (r.mflops, r.proxy, -r.number))
        elif own:
            references[family] = highest_proxy(own)
    return references


def pick_best(
    rows: list[TrialRow],
    references: dict[str, TrialRow],
    settings: dict[str, Any],
    families: tuple[str, ...] = FAMILIES,
) -> tuple[dict[str, TrialRow], dict[str, str], dict[str, str]]:
    """The best architecture of each family, the reason for each family without one, and the rule used
    (see the module docstring). ``rows`` are the results (feasible, one per architecture)."""
    objective = settings.get("objective") or "pareto"
    floor = settings.get("proxy_floor")
    best: dict[str, TrialRow] = {}
    no_best: dict[str, str] = {}
    rules: dict[str, str] = {}
    for family in families:
        candidates = [r for r in rows if r.family == family and not r.baseline]
        reference = references.get(family)
        if objective == "reward":
            rules[family] = RULE_REWARD
            if candidates:
                best[family] = max(
                    candidates, key=lambda r: (-math.inf if r.reward is None else r.reward, -r.latency_ms, -r.number)
                )
        elif floor is not None or objective == "latency":
            rules[family] = RULE_FLOOR
            if candidates:
                best[family] = _fastest(candidates)
            else:
                bar = f"the proxy floor {floor} and the budgets" if floor is not None else "the budgets"
                no_best[family] = f"no {family} architecture other than the paper models met {bar}"
        elif reference is not None:
            rules[family] = RULE_REFERENCE
            good = [
                r
                for r in candidates
                if reaches(r.proxy, reference.proxy) and faster(r.latency_ms, reference.latency_ms)
            ]
            if good:
                best[family] = _fastest(good)
            elif candidates:
                no_best[family] = (
                    f"no {family} architecture was faster than {reference.baseline} at its proxy or better "
                    f"({reference.baseline}: {reference.latency_ms:{LATENCY_FORMAT}} ms, "
                    f"proxy {reference.proxy:{PROXY_FORMAT}})"
                )
        else:
            rules[family] = RULE_PROXY
            if candidates:
                best[family] = highest_proxy(candidates)
        if family not in best and family not in no_best:
            no_best[family] = f"no feasible {family} architecture other than the paper models"
    return best, no_best, rules


# --- every trial -----------------------------------------------------------------------------------------------


def _constraint_reasons(trial: optuna.trial.FrozenTrial, settings: dict[str, Any]) -> list[str]:
    """Why a completed trial is infeasible, from its constraints (else its attributes and the settings)."""
    a = trial.user_attrs
    c: dict[str, float] = getattr(trial, "constraints", {}) or {}
    reasons = []
    budget = settings.get("budget_mflops")
    if c.get("mflops_over_budget", 0) > 0 or (not c and budget is not None and a.get("mflops", 0) > budget):
        reasons.append(f"over the FLOPs budget ({a.get('mflops', math.nan):.1f} > {budget:g} MFLOPs)")
    params_budget = settings.get("params_budget")
    if c.get("params_over_budget", 0) > 0 or (not c and params_budget and a.get("params", 0) > params_budget):
        reasons.append(f"over the params budget ({a.get('params', 0):,} > {params_budget:,.0f})")
    latency_budget = settings.get("latency_budget_ms")
    if c.get("latency_over_budget", 0) > 0 or (not c and latency_budget and a.get("latency_ms", 0) > latency_budget):
        reasons.append(f"over the latency budget ({a['latency_ms']:{LATENCY_FORMAT}} > {latency_budget:g} ms)")
    if c.get("proxy_below_floor", 0) > 0 and "proxy" in a:
        floor = a["proxy"] + c["proxy_below_floor"]
        reasons.append(f"below the proxy floor ({a['proxy']:{PROXY_FORMAT}} < {floor:{PROXY_FORMAT}})")
    elif not c and settings.get("proxy_floor") is not None and not _is_name(settings["proxy_floor"]):
        floor = float(settings["proxy_floor"])
        if a.get("proxy", math.inf) < floor:
            reasons.append(f"below the proxy floor ({a['proxy']:{PROXY_FORMAT}} < {floor:{PROXY_FORMAT}})")
    if not reasons and not a.get("feasible", True):
        reasons.append("infeasible")
    return reasons


def proxy_floor_value(study: optuna.Study, trials: Iterable[optuna.trial.FrozenTrial] | None = None) -> float | None:
    """The proxy floor as a score: the number, or (a baseline name) as the search resolved it."""
    floor = study.user_attrs.get("proxy_floor")
    if floor is None:
        return None
    if not _is_name(floor):
        return float(floor)
    for trial in trials if trials is not None else _complete(study):
        c = getattr(trial, "constraints", {}) or {}
        if "proxy_below_floor" in c and "proxy" in trial.user_attrs:
            return float(trial.user_attrs["proxy"] + c["proxy_below_floor"])
    return None


def trial_statuses(study: optuna.Study, results: list[TrialRow]) -> list[TrialStatus]:
    """Every trial, in order, with its state and, unless it is one of ``results``, why it is not."""
    result_numbers = {r.number for r in results}
    by_arch = {r.arch_id: r.number for r in results}
    states = optuna.trial.TrialState
    statuses = []
    for trial in study.get_trials(deepcopy=False):
        a = trial.user_attrs
        reason: str | None = None
        if trial.state == states.COMPLETE:
            state = "complete"
            if trial.number not in result_numbers:
                if a.get("feasible") and a.get("arch_id") in by_arch:
                    reason = f"duplicate of trial {by_arch[a['arch_id']]}"
                else:
                    reason = "; ".join(_constraint_reasons(trial, study.user_attrs)) or "not evaluated"
        elif trial.state == states.PRUNED:
            state = "pruned"
            reason = "pruned" + (f" (proxy {a['proxy']:{PROXY_FORMAT}} when stopped)" if "proxy" in a else "")
        elif trial.state == states.FAIL:
            state = "failed"
            reason = f"failed: {a['failure_reason']}" if a.get("failure_reason") else "failed"
        elif trial.state == states.RUNNING:
            state, reason = "running", "running"
        else:
            state = "waiting"
            reason = "waiting" + (" (a seeded paper model not run yet)" if a.get("baseline") else "")
        statuses.append(
            TrialStatus(
                number=trial.number,
                state=state,
                result=reason is None,
                reason=reason,
                baseline=a.get("baseline"),
                arch_id=a.get("arch_id"),
                genotype=a.get("genotype"),
                family=a.get("family"),
                mflops=a.get("mflops"),
                params=a.get("params"),
                latency_ms=a.get("latency_ms"),
                proxy=a.get("proxy"),
            )
        )
    return statuses


def summarise(study: optuna.Study, every_trial: bool = False) -> StudySummary:
    """Summary of a study made by `shufflenet-nas search`; ``every_trial`` adds every trial's status."""
    if "target" not in study.user_attrs:
        raise ShuffleNetNASError(f"study {study.study_name!r} was not made by shufflenet-nas search")
    settings = dict(study.user_attrs)
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
    reward = settings.get("objective") == "reward"
    baselines = baseline_rows(study)
    references = family_references(baselines, settings.get("proxy_floor"))
    families = _SEARCHED.get(str(settings.get("family")), FAMILIES)
    best, no_best, rules = pick_best(rows, references, settings, families)
    front = sorted(rows, key=lambda r: -(r.reward or 0))[:10] if reward else pareto_front(rows)
    return StudySummary(
        study_name=study.study_name,
        settings=settings,
        counts=counts,
        pareto=front,
        best=best,
        baselines=baselines,
        references=references,
        no_best=no_best,
        rules=rules,
        proxy_floor=proxy_floor_value(study, complete),
        trials=rows,
        every_trial=trial_statuses(study, rows) if every_trial else None,
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
    """After a lookup-table search: measure what the summary shows (the Pareto front, the baselines and each
    family's best) for real, until it holds only measured latencies. Results go to the study's ``remeasured``
    attribute. Returns how many architectures were measured."""
    remeasured: dict[str, Any] = dict(study.user_attrs.get("remeasured", {}))
    measured = 0
    for _ in range(rounds):
        todo = {r.arch_id: r for r in summarise(study).shown_rows() if r.arch_id not in remeasured}
        if not todo:
            break
        for row in todo.values():
            remeasured[row.arch_id] = measure_latency(Genotype.from_string(row.genotype), measure).to_dict()
            measured += 1
        study.set_user_attr("remeasured", remeasured)
    return measured
