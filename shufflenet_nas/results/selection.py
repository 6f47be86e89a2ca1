"""Picking architectures from a study: its Pareto front, the best of a family, given trials, its paper models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shufflenet_nas.errors import InvalidArgumentError

if TYPE_CHECKING:  # importing Selection stays light (the CLI's options are made of it)
    from shufflenet_nas.results.rows import TrialRow
    from shufflenet_nas.results.summary import StudySummary


@dataclass(frozen=True)
class Selection:
    """Which of a study's architectures to take (to train, to export): ``pareto`` is the search's front (latency
    vs proxy, whatever the summary ranks by); the paper models it evaluated too, unless ``baselines`` is off."""

    pareto: bool = False
    best_v1: bool = False
    best_v2: bool = False
    trials: tuple[int, ...] = ()
    baselines: bool = True

    def picked(self) -> list[str]:
        """The parameters that pick something (``pareto``, ``best_v1``, ``best_v2``, ``trials``), in that order."""
        names = ("pareto", "best_v1", "best_v2", "trials")
        return [name for name in names if getattr(self, name)]


def select_rows(summary: StudySummary, selection: Selection) -> list[TrialRow]:
    """The rows ``selection`` names, each architecture once: the front, the bests, the trials, then the baselines."""
    from shufflenet_nas.results.best import pareto_front

    if not selection.picked():
        raise InvalidArgumentError("say which architectures: `pareto`, `best_v1`, `best_v2` or `trials`")
    chosen: list[TrialRow] = pareto_front(summary.trials) if selection.pareto else []
    for wanted, family in ((selection.best_v1, "V1-style"), (selection.best_v2, "V2-style")):
        if not wanted:
            continue
        if family not in summary.best:
            reason = summary.no_best.get(family, f"the study did not search {family} architectures")
            flag = "best_v1" if family == "V1-style" else "best_v2"
            raise InvalidArgumentError(f"`{flag}`: study {summary.study_name!r} has no best {family} ({reason})")
        chosen.append(summary.best[family])
    by_number = {row.number: row for row in [*summary.trials, *summary.baselines]}
    for number in selection.trials:
        if number not in by_number:
            raise InvalidArgumentError(
                f"trial {number} of study {summary.study_name!r} is no result (`shufflenet-nas show --all` says "
                "why); give a trial the study's results list"
            )
        chosen.append(by_number[number])
    if selection.baselines:
        chosen += summary.baselines
    unique: dict[str, TrialRow] = {}
    for row in chosen:
        unique.setdefault(row.arch_id, row)
    if not unique:
        raise InvalidArgumentError(
            f"nothing selected: study {summary.study_name!r} has no Pareto front and no evaluated paper model "
            "(`shufflenet-nas show --all` says why)"
        )
    return list(unique.values())
