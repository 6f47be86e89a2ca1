"""Whether a guideline holds on this device, from time ratios and their 95% intervals (pure functions).

A guideline says one row of its table runs faster than another (G1: 1:1 than 1:12; G2: g=1 than g=8; G3:
1-fragment than 4-fragment-parallel; G4: ReLU and shortcut removed than both kept). The deciding figure at
one width is ratio = t(faster) / t(slower), the median over interleaved rounds of the per-round ratio, with its
95% bootstrap interval [low, high]:

- ``holds``: high < 1 (the guideline's row is faster, the whole interval says so);
- ``does not hold``: low > 1 (it is slower, the whole interval says so);
- ``inconclusive``: the interval contains 1 (or is missing).

Over widths (the paper's x1, x2, x4), the guideline's overall verdict is ``holds`` when it holds at every width
measured, ``does not hold`` when it fails at every width, else ``inconclusive`` (the per-width verdicts say
where it goes which way). Each width's interval is a 95% one on its own; with four guidelines at three widths
about one of twelve intervals may miss by chance, which the all-widths rule guards against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
VERDICTS: tuple[str, ...] = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE)


def verdict(low: float, high: float) -> str:
    """The verdict of a ratio t(faster) / t(slower) whose 95% interval is [``low``, ``high``]."""
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    if high < 1:
        return HOLDS
    if low > 1:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def overall_verdict(verdicts: Sequence[str]) -> str:
    """One verdict over widths: unanimous ``holds`` / ``does not hold``, anything else ``inconclusive``."""
    distinct = set(verdicts)
    return distinct.pop() if len(distinct) == 1 else INCONCLUSIVE
