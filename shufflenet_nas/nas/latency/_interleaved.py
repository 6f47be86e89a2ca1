"""Several networks timed in one run, interleaved in rounds: raw milliseconds and raw ratios, no speed anchor.

Every network is prepared once (weights, device, dtype, memory format, threads as ``measure_latency`` does). Each
round times every network in turn (the order rotates from round to round), a short warm-up then ``runs`` forwards,
and keeps the median of those runs: the round's figure. A shared host's slow spell falls on all the networks of a
round alike, so the ratio of two networks within a round cancels it; over rounds, the median ratio and its
bootstrap interval say how sure the comparison is. Milliseconds are raw: the median over rounds of each network's
round medians.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.latency._config import MeasureConfig, software_provenance
from shufflenet_nas.nas.latency._runtimes import seeded, timed_forward
from shufflenet_nas.search_spaces.builder import build
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.weights import load_weights

WARMUP_RUNS = 2
RESAMPLES = 2000
MIN_ROUNDS = 5  # a bootstrap interval of the median over fewer rounds covers far less than 95% (3 rounds: ~75%)


@dataclass(frozen=True)
class Interleaved:
    """Round medians in ms, ``times[i][r]`` for network ``i`` in round ``r``, and where they were measured."""

    times: tuple[tuple[float, ...], ...]
    runs_per_round: int
    provenance: dict[str, object]

    def median_ms(self, index: int) -> float:
        return float(np.median(self.times[index]))

    def ms_interval(self, index: int, seed: int = 0) -> tuple[float, float]:
        """95% bootstrap interval of network ``index``'s median over rounds."""
        return _bootstrap_median(np.asarray(self.times[index]), seed)

    def ratio(self, index: int, reference: int, seed: int = 0) -> tuple[float, float, float]:
        """Network ``index`` / network ``reference``, per round: the median ratio and its 95% bootstrap interval."""
        ratios = np.asarray(self.times[index]) / np.asarray(self.times[reference])
        low, high = _bootstrap_median(ratios, seed)
        return float(np.median(ratios)), low, high


def _bootstrap_median(values: np.ndarray, seed: int) -> tuple[float, float]:
    if len(values) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    medians = np.median(values[rng.integers(0, len(values), size=(RESAMPLES, len(values)))], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def measure_interleaved(
    genotypes: list[Genotype],
    config: MeasureConfig,
    *,
    rounds: int = 10,
    runs: int = 5,
    weights: list[str | Path | None] | None = None,
) -> Interleaved:
    """Time ``genotypes`` interleaved in ``rounds`` rounds of ``runs`` forwards each (see the module docstring);
    ``weights`` (one per genotype, None for fresh ones) are loaded by key."""
    modules: list[tuple[nn.Module, tuple[int, int, int], bool | None]] = []
    for genotype, loaded in zip(genotypes, weights or [None] * len(genotypes), strict=True):
        model = seeded(lambda genotype=genotype: build(genotype))
        if loaded is not None:
            load_weights(model, loaded, genotype.to_string())
        modules.append((model, (3, genotype.resolution, genotype.resolution), None))
    return time_interleaved(modules, config, rounds=rounds, runs=runs)


def time_interleaved(
    modules: list[tuple[nn.Module, tuple[int, int, int], bool | None]],
    config: MeasureConfig,
    *,
    rounds: int,
    runs: int,
) -> Interleaved:
    """Time ``modules``, each ``(module, input shape, channels-last input or None for the config's)`` on a random
    input of ``(config.batch, *shape)``, interleaved in rounds."""
    if rounds < MIN_ROUNDS or runs < 1:
        raise InvalidArgumentError(
            f"rounds={rounds}, runs={runs}: give {MIN_ROUNDS} or more rounds (fewer make no 95% interval) "
            "and 1 or more runs"
        )
    times: list[list[float]] = [[] for _ in modules]
    with ExitStack() as stack:
        steps = [stack.enter_context(timed_forward(m, shape, config, layout))[0] for m, shape, layout in modules]
        for round_index in range(rounds):
            shift = round_index % len(steps)
            for index in [*range(shift, len(steps)), *range(shift)]:
                for _ in range(WARMUP_RUNS):
                    steps[index]()
                times[index].append(float(np.median([steps[index]() for _ in range(runs)])))
    provenance = software_provenance(config) | {"rounds": rounds, "runs_per_round": runs, "normalized": False}
    return Interleaved(tuple(tuple(t) for t in times), runs, provenance)
