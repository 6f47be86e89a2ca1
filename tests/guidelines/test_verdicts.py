"""The verdict rule on synthetic timings: holds, does not hold, inconclusive; per width and over widths."""

from __future__ import annotations

import math

import pytest

from shufflenet_nas.guidelines import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, overall_verdict, verdict
from shufflenet_nas.nas.latency import Interleaved


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.5, 0.9, HOLDS),
        (1.1, 1.3, DOES_NOT_HOLD),
        (0.9, 1.1, INCONCLUSIVE),
        (0.9, 1.0, INCONCLUSIVE),  # an interval that reaches 1 does not exclude it
        (1.0, 1.2, INCONCLUSIVE),
        (math.nan, math.nan, INCONCLUSIVE),
    ],
)
def test_one_interval(low: float, high: float, expected: str) -> None:
    assert verdict(low, high) == expected


def _ratio(favoured: list[float], warned: list[float]) -> tuple[float, float, float]:
    """t(favoured) / t(warned) from round medians, as a guidelines run computes it."""
    return Interleaved((tuple(favoured), tuple(warned)), 5, {}).ratio(0, 1)


def test_synthetic_timings() -> None:
    faster = _ratio([1.0, 1.1, 0.9, 1.0, 1.05, 1.0], [2.0, 2.1, 1.9, 2.0, 2.2, 2.05])
    assert faster[0] == pytest.approx(0.5, abs=0.02) and verdict(*faster[1:]) == HOLDS
    slower = _ratio([2.0, 2.1, 1.9, 2.0, 2.2, 2.05], [1.0, 1.1, 0.9, 1.0, 1.05, 1.0])
    assert verdict(*slower[1:]) == DOES_NOT_HOLD
    noisy = _ratio([1.0, 1.3, 0.8, 1.0, 1.2, 0.9], [1.0, 1.0, 1.0, 1.1, 1.0, 1.0])
    assert noisy[1] < 1 < noisy[2] and verdict(*noisy[1:]) == INCONCLUSIVE


@pytest.mark.parametrize(
    ("per_width", "expected"),
    [
        ([HOLDS, HOLDS, HOLDS], HOLDS),
        ([HOLDS], HOLDS),
        ([DOES_NOT_HOLD, DOES_NOT_HOLD], DOES_NOT_HOLD),
        ([HOLDS, HOLDS, INCONCLUSIVE], INCONCLUSIVE),
        ([HOLDS, DOES_NOT_HOLD], INCONCLUSIVE),
        ([], INCONCLUSIVE),
    ],
)
def test_over_widths_only_a_unanimous_verdict_stands(per_width: list[str], expected: str) -> None:
    assert overall_verdict(per_width) == expected
