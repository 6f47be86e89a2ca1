"""A finished (or interrupted) study turned into a summary: counts, Pareto front, the best of each family
(``results.best``) beside its paper model and, guideline by guideline, beside ShuffleNet V2 1.0x
(``nas.explain``, counted), and the files ``pareto.json`` and ``summary.md``. Latencies re-measured after a
lookup-table search (``remeasure_front``) replace the predicted ones."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna

from shufflenet_nas.errors import ShuffleNetNASError
from shufflenet_nas.nas.explain import REFERENCE, GuidelineVerdict, compare_to_reference, explain, reference_like
from shufflenet_nas.nas.latency import MeasureConfig, measure_interleaved, measure_latency
from shufflenet_nas.results import rows as rows_module
from shufflenet_nas.results.best import family_references, pareto_front, pick_best
from shufflenet_nas.results.rows import (
    LATENCY_FORMAT,
    PROXY_FORMAT,
    TrialRow,
    TrialStatus,
    baseline_rows,
    evaluated_rows,
    is_baseline_name,
    proxy_floor_value,
    searched_families,
    trained_records,
    trial_statuses,
)
from shufflenet_nas.search_spaces import Genotype


@dataclass(frozen=True)
class Comparison:
    """A best architecture beside the paper model it is compared with: two latencies, two proxies, and where the
    two were re-measured together (``confirm_bests``), that ratio with its interval: it decides the headline."""

    family: str
    row: TrialRow
    reference: TrialRow
    confirmed: dict[str, Any] | None = None  # ratio, low, high, best_ms, reference_ms, rounds

    @property
    def change_pct(self) -> float:
        if self.confirmed:
            return (self.confirmed["ratio"] - 1) * 100
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
            "re_measured": self.confirmed,
            "ranked_by": self.row.rank_by,
            "accuracy_top1": self.row.accuracy_top1,
            "baseline_accuracy_top1": self.reference.accuracy_top1,
        }

    def text(self) -> str:
        """``12.3% lower latency than shufflenet_v2_x1_0 (9.655 vs 11.146 ms; proxy 108.1 vs 107.6)``; after a
        re-measurement, its ratio and interval decide: ``not measurably faster than ...`` where it reaches 1."""
        change = self.change_pct
        scores = f"{self.row.score_name} {self.row.score_text} vs {self.reference.score_text}"
        c = self.confirmed
        if c:
            measured = (
                f"re-measured together, {c['rounds']} rounds: {c['best_ms']:{LATENCY_FORMAT}} vs "
                f"{c['reference_ms']:{LATENCY_FORMAT}} ms, ratio {c['ratio']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"
            )
            if c["low"] > 1:
                return f"{change:.1f}% higher latency than {self.reference.baseline} ({measured}; {scores})"
            if not c["high"] < 1:  # the interval reaches 1 (or is undefined)
                return f"not measurably faster than {self.reference.baseline} ({measured}; {scores})"
            return f"{abs(change):.1f}% lower latency than {self.reference.baseline} ({measured}; {scores})"
        return (
            f"{abs(change):.1f}% {'lower' if change < 0 else 'higher'} latency than {self.reference.baseline} "
            f"({self.row.latency_ms:{LATENCY_FORMAT}} vs {self.reference.latency_ms:{LATENCY_FORMAT}} ms; "
            f"{self.row.score_name} {self.row.score_text} vs {self.reference.score_text})"
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
    trained: dict[str, dict[str, Any]] = field(default_factory=dict)  # what `train` recorded, per arch id

    @property
    def reference(self) -> TrialRow | None:
        """The paper model named first: the floor's, else V2-style's, else V1-style's reference."""
        return self.references.get("V2-style") or self.references.get("V1-style")

    @property
    def families(self) -> tuple[str, ...]:
        """The families the study searched, in display order."""
        return searched_families(self.settings)

    def comparison(self, family: str) -> Comparison | None:
        """The family's best beside its reference (None without either)."""
        row, reference = self.best.get(family), self.references.get(family)
        if row is None or reference is None or row.number == reference.number:
            return None
        confirmed = (self.settings.get("re_measured") or {}).get(family)
        if not (confirmed and confirmed.get("pair") == [row.arch_id, reference.arch_id]):
            confirmed = None  # made for another best (the study grew since)
        return Comparison(family, row, reference, confirmed)

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
        if rows_module.RULE_REWARD in rules:
            parts.append("the highest reward")
        if rows_module.RULE_FLOOR in rules:
            value = (
                f" = {self.proxy_floor:{PROXY_FORMAT}}"
                if self.proxy_floor is not None and is_baseline_name(floor)
                else ""
            )
            bar = f"proxy floor {floor}{value}" if floor is not None else "the budgets"
            parts.append(f"the fastest feasible architecture (objective {objective}, {bar})")
        if rows_module.RULE_REFERENCE in rules:
            versus = ", ".join(
                f"{f} vs {r.baseline}"
                for f, r in self.references.items()
                if self.rules.get(f) == rows_module.RULE_REFERENCE
            )
            parts.append(f"the fastest architecture with the proxy of the family's paper model or better ({versus})")
        if rows_module.RULE_PROXY in rules:
            parts.append("the highest proxy (no paper model to compare with)")
        if not parts:
            return ""
        text = (
            "best of each family = "
            + "; ".join(parts)
            + "; proxies equal as printed count as equal (the faster wins); paper models are never best"
        )
        refine = self.settings.get("refine")
        if self.ranked_by_accuracy and isinstance(refine, dict):
            text = (
                f"ranked by trained top-1, not the proxy (--proxy-refine {refine.get('k')}: the front's "
                f"{refine.get('k')} highest-proxy architectures and the paper models trained "
                f"{refine.get('epochs')} epochs; architectures without a top-1 of that training are left out); "
                + text.replace("proxy of the family", "top-1 of the family")
                .replace("the highest proxy", "the highest top-1")
                .replace("proxies equal", "scores equal")
            )
        return text

    @property
    def ranked_by_accuracy(self) -> bool:
        return self.settings.get("rank_by") == rows_module.RANK_ACCURACY

    def training_text(self) -> str:
        """One line on the trained accuracy the rows show: how many, with which recipe and data; a warning where
        they were trained differently (their accuracies do not compare). '' when nothing was trained."""
        records = self.trained
        if not records:
            return ""
        recipes = {json.dumps(r.get("recipe"), sort_keys=True) for r in records.values()}
        data = {(r.get("data") or {}).get("fingerprint") for r in records.values()}
        seeds = {r.get("seed") for r in records.values()}
        count = f"top-1 / top-5: {len(records)} architecture{'s' * (len(records) != 1)} trained"
        if len(recipes) > 1 or len(data) > 1 or len(seeds) > 1:
            return (
                f"{count} with different recipes, data or seeds: their accuracies do not compare; "
                "train them again with one recipe"
            )
        first = next(iter(records.values()))
        described = (first.get("data") or {}).get("description", "?")
        return f"{count} with one recipe and seed {first.get('seed')} ({first.get('recipe_text')}) on {described}"

    def latency_note(self) -> str:
        """Which latency the table holds, and, where a headline comes from a re-measurement, that it does."""
        lut = self.settings.get("latency_mode") == "lut"
        source = (
            "the lookup table's predictions (the front re-measured)" if lut else "the search's own short measurements"
        )
        if self.settings.get("normalize"):
            anchor = self.settings.get("speed_anchor_ms")
            value = f"{anchor:.3f} ms" if anchor else "in each trial's latency.reference_anchor_ms"
            units = f"normalised to the speed anchor ({value}: ms at this machine's least-disturbed speed"
            units += ")" if lut else "; each trial keeps its raw median)"
        else:
            units = "raw"
        table = f"latency ms in the table: {source}, {units}"
        if any(c.confirmed for f in self.best if (c := self.comparison(f)) is not None):
            return f"{table}; the headlines: each best and its paper model re-measured together, raw"
        return table

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

    def guideline_verdicts(self) -> dict[str, tuple[GuidelineVerdict, ...]]:
        """Per family with a best: the best against ShuffleNet V2 1.0x at the study's input, guideline by guideline
        (``nas.explain.compare_to_reference``, counted)."""
        verdicts = {}
        for family, row in self.best.items():
            genotype = Genotype.from_string(row.genotype)
            reference = reference_like(genotype)
            if reference is not None:  # the space's inputs always fit it
                verdicts[family] = compare_to_reference(explain(genotype), explain(reference))
        return verdicts

    def guideline_lines(self) -> list[tuple[str, list[str]]]:
        """Per family with a best: a title and one line per guideline (``GuidelineVerdict.text``)."""
        return [
            (
                f"best {family} trial {self.best[family].number} vs {REFERENCE}, ShuffleNet V2's guidelines (counted; "
                "lower follows each better)",
                [verdict.text() for verdict in verdicts],
            )
            for family, verdicts in self.guideline_verdicts().items()
        ]

    def to_dict(self) -> dict[str, Any]:
        comparisons = {f: c.to_dict() for f in self.best if (c := self.comparison(f)) is not None}
        guidelines = {
            family: {"reference": REFERENCE, "verdicts": [verdict.to_dict() for verdict in verdicts]}
            for family, verdicts in self.guideline_verdicts().items()
        }
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
            "guidelines": guidelines,
            "proxy_floor": self.proxy_floor,
            "baselines": [asdict(row) for row in self.baselines],
            "reference_baseline": self.reference.baseline if self.reference else None,
            "trained": self.trained,
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
            "| | trial | family | MFLOPs | params | latency ms | proxy | top-1 % | genotype |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.shown_rows():
            mark = self.mark(row) or "pareto"
            source = "*" if row.latency_source == "lut" else ""
            top1 = "" if row.accuracy_top1 is None else f"{100 * row.accuracy_top1:.1f}"
            lines.append(
                f"| {mark} | {row.number} | {row.family} | {row.mflops:.1f} | {row.params:,} | "
                f"{row.latency_ms:{LATENCY_FORMAT}}{source} | {row.proxy:{PROXY_FORMAT}} | {top1} | `{row.genotype}` |"
            )
        if any(row.latency_source == "lut" for row in self.shown_rows()):
            lines += ["", "\\* latency predicted by the lookup table"]
        rule = self.rule_text()
        lines += ["", rule] if rule else []
        lines += ["", self.training_text()] if self.trained else []
        note = self.latency_note()
        lines += ["", note] if note else []
        for headline, genotype in self.verdicts():
            lines += ["", f"**{headline}**"] + ([f"`{genotype}`"] if genotype else [])
        for title, guideline_lines in self.guideline_lines():
            lines += ["", f"{title}:", "", *(f"- {line}" for line in guideline_lines)]
        return "\n".join(lines) + "\n"


def _short(why_not: str | None) -> str:
    """``below the proxy floor (105.2 < 107.6)`` -> ``below floor`` for a table's first column."""
    if not why_not:
        return ""
    return "; ".join(
        "below floor" if part.startswith("below the proxy floor") else part.split(" (")[0].replace("the ", "")
        for part in why_not.split("; ")
    )


def summarise(study: optuna.Study, every_trial: bool = False) -> StudySummary:
    """Summary of a study made by `shufflenet-nas search`; ``every_trial`` adds every trial's status."""
    if "target" not in study.user_attrs:
        raise ShuffleNetNASError(f"study {study.study_name!r} was not made by shufflenet-nas search")
    settings = {k: v for k, v in study.user_attrs.items() if not k.startswith(rows_module.TRAINED_PREFIX)}
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
    trained = trained_records(study)
    ranked, ranked_baselines = rows, baselines
    if settings.get("rank_by") == rows_module.RANK_ACCURACY:  # after --proxy-refine: by top-1, of its training
        refined = _refined(trained, settings.get("refine"))
        baselines = [replace(r, rank_by=rows_module.RANK_ACCURACY) for r in baselines]
        ranked = [replace(r, rank_by=rows_module.RANK_ACCURACY) for r in rows if r.arch_id in refined]
        ranked_baselines = [r for r in baselines if r.arch_id in refined]
    references = family_references(ranked_baselines, settings.get("proxy_floor"))
    best, no_best, rules = pick_best(ranked, references, settings, searched_families(settings))
    ranked_ids = {r.arch_id for r in ranked}
    for family in no_best:
        untrained = [r for r in rows if r.family == family and not r.baseline and r.arch_id not in ranked_ids]
        if ranked is not rows and untrained and not any(r.family == family and not r.baseline for r in ranked):
            no_best[family] = (
                f"none of the {len(untrained)} {family} architectures other than the paper models was trained by "
                "the refinement (a larger --proxy-refine trains more of the front)"
            )
    front = sorted(ranked, key=lambda r: -(r.reward or 0))[:10] if reward else pareto_front(ranked)
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
        trained=trained,
    )


def _refined(trained: dict[str, dict[str, Any]], refine: object) -> set[str]:
    """The arch ids trained with the refinement's recipe, seed and data (``refine``): the only accuracies a
    refined study ranks by (other training runs do not compare)."""
    if not isinstance(refine, dict):
        return set()
    return {
        arch_id
        for arch_id, record in trained.items()
        if record.get("accuracy_top1") is not None
        and record.get("recipe") == refine.get("recipe")
        and record.get("seed") == refine.get("seed")
        and (record.get("data") or {}).get("fingerprint") == refine.get("data")
    }


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


def confirm_bests(study: optuna.Study, measure: MeasureConfig, rounds: int = 10, runs: int = 5) -> int:
    """Re-measure each family's best and its paper model together, interleaved (``measure_interleaved``): the
    raw ratio and its 95% interval go to the study's ``re_measured`` setting, where the headline takes them from
    (``Comparison.text``). Returns how many families were re-measured."""
    summary = summarise(study)
    pairs = {f: c for f in summary.best if (c := summary.comparison(f)) is not None}
    if not pairs:
        return 0
    genotypes = list({g: None for c in pairs.values() for g in (c.row.genotype, c.reference.genotype)})
    timed = measure_interleaved([Genotype.from_string(g) for g in genotypes], measure, rounds=rounds, runs=runs)
    found: dict[str, Any] = {}
    for family, comparison in pairs.items():
        best, reference = genotypes.index(comparison.row.genotype), genotypes.index(comparison.reference.genotype)
        ratio, low, high = timed.ratio(best, reference)
        found[family] = {
            "pair": [comparison.row.arch_id, comparison.reference.arch_id],
            "ratio": ratio,
            "low": low,
            "high": high,
            "best_ms": timed.median_ms(best),
            "reference_ms": timed.median_ms(reference),
            "rounds": rounds,
            "runs_per_round": runs,
            "normalized": False,
        }
    study.set_user_attr("re_measured", found)
    return len(found)
