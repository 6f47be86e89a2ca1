"""The Pareto front and the best architecture of each family.

A seeded paper model (a trial with the ``baseline`` attribute) is never a family's best. Each family is judged
against its reference (``family_references``): the paper model named by the proxy floor; else, V2-style: the
widest seeded V2 model, V1-style: the seeded V1 model with the highest proxy. ``pick_best`` takes, per family:

* ``objective='reward'``: the highest reward (``RULE_REWARD``);
* a proxy floor or ``objective='latency'``: the fastest feasible architecture (``RULE_FLOOR``);
* else, with a reference: the fastest architecture whose proxy reaches the reference's and whose latency is
  lower (``RULE_REFERENCE``); none such: no best, and the reason why;
* else: the highest proxy (``RULE_PROXY``).

Proxies that print the same (``PROXY_FORMAT``) count as equal; between equal proxies the faster architecture wins.
Every rule ranks by a row's ``score``: its proxy, or its trained top-1 after ``search --proxy-refine``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from shufflenet_nas.results.rows import (
    FAMILIES,
    LATENCY_FORMAT,
    PROXY_FORMAT,
    RULE_FLOOR,
    RULE_PROXY,
    RULE_REFERENCE,
    RULE_REWARD,
    TIE_REL,
    TrialRow,
)


def pareto_front(rows: list[TrialRow]) -> list[TrialRow]:
    """Rows no other row beats on both latency (lower) and proxy (higher), fastest first. Proxies that print
    the same are equal: of two such rows only the faster is on the front."""

    def dominates(o: TrialRow, r: TrialRow) -> bool:
        higher = o.score > r.score and not same_proxy(o.score, r.score)
        return o.latency_ms <= r.latency_ms and reaches(o.score, r.score) and (o.latency_ms < r.latency_ms or higher)

    front = [r for r in rows if not any(dominates(o, r) for o in rows)]
    return sorted(front, key=lambda r: r.latency_ms)


def same_proxy(a: float, b: float) -> bool:
    """Proxies that print the same (``PROXY_FORMAT``) are equal."""
    return f"{a:{PROXY_FORMAT}}" == f"{b:{PROXY_FORMAT}}" or a == b


def reaches(proxy: float, reference: float) -> bool:
    """``proxy`` is at least ``reference`` as printed."""
    return proxy >= reference or same_proxy(proxy, reference)


def faster(latency_ms: float, reference_ms: float) -> bool:
    """Lower latency, and visibly so at the printed precision."""
    return latency_ms < reference_ms and f"{latency_ms:{LATENCY_FORMAT}}" != f"{reference_ms:{LATENCY_FORMAT}}"


def fastest(rows: Iterable[TrialRow]) -> TrialRow:
    """The lowest latency; ties to the higher proxy, then the earlier trial."""
    return min(rows, key=lambda r: (r.latency_ms, -r.score, r.number))


def highest_proxy(rows: list[TrialRow]) -> TrialRow:
    """The highest proxy; proxies that print the same or lie within ``TIE_REL`` of it go to the faster."""
    top = max(r.score for r in rows)
    tied = [r for r in rows if same_proxy(r.score, top) or abs(top - r.score) <= TIE_REL * abs(top)]
    return fastest(tied)


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
            references[family] = max(own, key=lambda r: (r.mflops, r.score, -r.number))
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
                best[family] = fastest(candidates)
            else:
                bar = f"the proxy floor {floor} and the budgets" if floor is not None else "the budgets"
                no_best[family] = f"no {family} architecture other than the paper models met {bar}"
        elif reference is not None:
            rules[family] = RULE_REFERENCE
            good = [
                r
                for r in candidates
                if reaches(r.score, reference.score) and faster(r.latency_ms, reference.latency_ms)
            ]
            if good:
                best[family] = fastest(good)
            elif candidates:
                no_best[family] = (
                    f"no {family} architecture was faster than {reference.baseline} at its {reference.score_name} or "
                    f"better ({reference.baseline}: {reference.latency_ms:{LATENCY_FORMAT}} ms, "
                    f"{reference.score_name} {reference.score_text})"
                )
        else:
            rules[family] = RULE_PROXY
            if candidates:
                best[family] = highest_proxy(candidates)
        if family not in best and family not in no_best:
            no_best[family] = f"no feasible {family} architecture other than the paper models"
    return best, no_best, rules
