"""Robust summaries of timed runs, the median's confidence interval, and the adaptive sampling loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit

WARMUP_WINDOW = 5  # runs per warm-up window
WARMUP_SHARE = 0.25  # at most this share of the time cap goes to warm-up
MIN_RUNS = 5  # timed runs even when the time cap is reached
MIN_PRECISION_RUNS = 10  # before the median's confidence interval is trusted
MAX_RUNS = 20_000
BLOCKS = 10  # contiguous blocks of runs for the batch-medians confidence interval
MIN_BLOCK_RUNS = 5


@dataclass(frozen=True)
class Stats:
    """Outlier-robust summary of single-run times in ms."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float  # 1.4826 * MAD / median: the robust coefficient of variation of single runs
    ci_rel: float  # half-width of the median's 95% confidence interval, relative to the median
    runs: int


def median_ci_rel(times_ms: Sequence[float]) -> float:
    """Relative half-width of a 95% confidence interval of the median of runs in time order.

    The larger of two intervals: the distribution-free one from order statistics (right for independent runs),
    and a batch-medians one over up to ``BLOCKS`` contiguous blocks (right when runs drift together, as while
    the machine's load changes; it keeps a drifting measurement from stopping early).
    """
    times = np.asarray(times_ms, dtype=float)
    ordered = np.sort(times)
    n = len(ordered)
    median = float(np.median(ordered))
    spread = 1.96 * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - spread))
    high = min(n - 1, math.ceil(n / 2 + spread))
    half_width = (ordered[high] - ordered[low]) / 2
    blocks = min(BLOCKS, n // MIN_BLOCK_RUNS)
    if blocks >= 3:
        size = n // blocks  # the oldest n % blocks runs sit out
        block_medians = np.median(times[n - blocks * size :].reshape(blocks, size), axis=1)
        t975 = float(stdtrit(blocks - 1, 0.975))  # Student's t quantile
        half_width = max(half_width, t975 * float(np.std(block_medians, ddof=1)) / math.sqrt(blocks))
    return float(half_width / median)


def summarize(times_ms: Sequence[float]) -> Stats:
    """Median, 10th / 90th percentiles, robust CV and the median's relative confidence half-width."""
    if not times_ms:
        raise ValueError("no timed runs to summarize")
    times = np.asarray(times_ms, dtype=float)
    p10, median, p90 = (float(value) for value in np.percentile(times, [10, 50, 90]))
    mad = float(np.median(np.abs(times - median)))
    return Stats(median, p10, p90, 1.4826 * mad / median, median_ci_rel(times), len(times))


def sample_times(step: Callable[[], float], max_time_s: float, rel_precision: float) -> tuple[list[float], int, str]:
    """Warm up, then time ``step`` (which returns one run's ms) until precise or out of time.

    Warm-up runs until the median of the last ``WARMUP_WINDOW`` runs stops improving (at most
    ``WARMUP_SHARE`` of the time cap). Returns the timed runs, the number of warm-up runs and why timing
    stopped (precision, time, max_runs).
    """
    start = time.perf_counter()
    warmup_deadline = start + WARMUP_SHARE * max_time_s
    deadline = start + max_time_s
    warmup: list[float] = []
    while True:
        warmup.append(step())
        if len(warmup) >= 2 * WARMUP_WINDOW:
            previous = np.median(warmup[-2 * WARMUP_WINDOW : -WARMUP_WINDOW])
            if np.median(warmup[-WARMUP_WINDOW:]) >= 0.98 * previous:
                break
        if len(warmup) >= 2 and time.perf_counter() >= warmup_deadline:
            break
    times: list[float] = []
    next_check = MIN_PRECISION_RUNS
    while True:
        times.append(step())
        if len(times) >= next_check:
            if median_ci_rel(times) <= rel_precision:
                return times, len(warmup), "precision"
            next_check = len(times) + max(1, len(times) // 10)
        if len(times) >= MIN_RUNS and time.perf_counter() >= deadline:
            return times, len(warmup), "time"
        if len(times) >= MAX_RUNS:
            return times, len(warmup), "max_runs"
