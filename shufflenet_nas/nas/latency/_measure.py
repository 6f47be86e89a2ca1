"""Measuring a network or a module: ``measure_latency``, ``measure_module``, and isolation in a child process."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.nas.cost import InsufficientMemoryError, check_fits_in_memory
from shufflenet_nas.nas.latency._config import MeasureConfig, check_target, software_provenance
from shufflenet_nas.nas.latency._normalisation import (
    NormalizedStep,
    reference_genotype,
    reference_step,
    stored_anchor_ms,
)
from shufflenet_nas.nas.latency._runtimes import is_channels_last, seeded, timed_forward
from shufflenet_nas.nas.latency._statistics import sample_times, summarize
from shufflenet_nas.search_spaces.builder import build
from shufflenet_nas.search_spaces.genotype import Genotype
from shufflenet_nas.search_spaces.weights import load_weights


@dataclass(frozen=True)
class LatencyResult:
    """A measured latency and where it comes from. ``median_ms``, ``p10_ms``, ``p90_ms`` and ``cv`` are raw
    milliseconds of the timed runs; ``normalized_ms``, where the runs were normalised, is their median scaled to
    the speed anchor: the figure to compare with other runs (``comparable_ms``)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    runs: int
    provenance: dict[str, Any] = field(default_factory=dict)
    normalized_ms: float | None = None

    @property
    def comparable_ms(self) -> float:
        """The normalised median where there is one, else the raw median."""
        return self.median_ms if self.normalized_ms is None else self.normalized_ms

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-able: the figures, then the provenance keys."""
        figures = {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms, "cv": self.cv}
        normalized = {} if self.normalized_ms is None else {"normalized_ms": self.normalized_ms}
        return {**figures, **normalized, "runs": self.runs, **self.provenance}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyResult:
        data = dict(data)
        figures = {name: data.pop(name) for name in ("median_ms", "p10_ms", "p90_ms", "cv", "runs")}
        return cls(**figures, normalized_ms=data.pop("normalized_ms", None), provenance=data)


def comparable_ms(data: dict[str, Any]) -> float:
    """``LatencyResult.comparable_ms`` of a stored ``to_dict()`` (older ones held the normalised median as
    ``median_ms``)."""
    return float(data.get("normalized_ms", data["median_ms"]))


def measure_latency(genotype: Genotype, config: MeasureConfig, weights: str | Path | None = None) -> LatencyResult:
    """Latency of the whole network of ``genotype`` at its resolution, on the configured target: freshly
    initialised (seeded), or with ``weights`` (a state dict file) loaded by key.

    Raises ``InsufficientMemoryError`` before building when the network would not fit on the device.
    """
    if config.isolate:
        return _measure_isolated(genotype, config, weights)  # the child checks the memory of its device
    check_fits_in_memory(genotype, config.batch, config.dtype, "cuda" if config.target == "gpu" else "cpu")
    model = seeded(lambda: build(genotype))
    if weights is not None:
        load_weights(model, weights, genotype.to_string())
    result = measure_module(model, (3, genotype.resolution, genotype.resolution), config)
    return replace(result, provenance={**result.provenance, "arch_id": genotype.arch_id})


def reference_anchor_ms(config: MeasureConfig) -> float:
    """The reference network's raw 10th percentile on this device and config (its speed when the machine is
    least disturbed): measured once, then read from the cache directory."""
    return stored_anchor_ms(config, lambda raw: measure_latency(reference_genotype(), raw).p10_ms)


def measure_module(
    module: nn.Module,
    input_shape: tuple[int, int, int],
    config: MeasureConfig,
    channels_last_input: bool | None = None,
) -> LatencyResult:
    """Latency of ``module`` on a random batch of ``(config.batch, *input_shape)``.

    ``channels_last_input`` overrides the input's memory format (the latency table measures each part with
    the format it receives inside the network); by default the input is channels-last where the model is.
    The provenance then records ``input_channels_last``, and ``output_channels_last`` for 4-D outputs.
    """
    anchor_ms = reference_anchor_ms(config) if config.normalized else None
    try:
        with timed_forward(module, input_shape, config, channels_last_input) as (step, output):
            if anchor_ms is not None:
                step = NormalizedStep(step, reference_step(config), anchor_ms)
            times, warmup, stopped = sample_times(step, config.max_time_s, config.rel_precision)
    except torch.cuda.OutOfMemoryError:
        raise ShuffleNetNASError(
            f"out of GPU memory at batch={config.batch}; lower `batch`, or measure with isolate=True so one "
            "network's failure does not affect the next"
        ) from None
    provenance = software_provenance(config) | {"resolution": input_shape[-1]}
    if channels_last_input is not None:
        provenance["input_channels_last"] = channels_last_input
    if output is not None and output.dim() == 4:
        provenance["output_channels_last"] = is_channels_last(output)
    normalized = None
    if isinstance(step, NormalizedStep):
        normalized = summarize(times)
        provenance |= step.provenance() | {"normalized_ci_rel": normalized.ci_rel}
        times = step.raw_ms[-len(times) :]
    stats = summarize(times)
    provenance |= {"warmup_runs": warmup, "ci_rel": stats.ci_rel, "stopped_by": stopped}
    return LatencyResult(
        stats.median_ms,
        stats.p10_ms,
        stats.p90_ms,
        stats.cv,
        stats.runs,
        provenance,
        normalized_ms=None if normalized is None else normalized.median_ms,
    )


# ---- isolation in a child process --------------------------------------------------------------------
_worker: ProcessPoolExecutor | None = None


def _measure_in_child(genotype: Genotype, config: MeasureConfig, weights: str | Path | None) -> dict[str, Any]:
    return measure_latency(genotype, config, weights).to_dict()


def _measure_isolated(genotype: Genotype, config: MeasureConfig, weights: str | Path | None) -> LatencyResult:
    """Measure in a spawned worker process; a worker that failed is replaced before the next measurement."""
    global _worker
    check_target(config)
    if _worker is None:
        _worker = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    future = _worker.submit(_measure_in_child, genotype, replace(config, isolate=False), weights)
    try:
        return LatencyResult.from_dict(future.result())
    except (InvalidArgumentError, InsufficientMemoryError):
        raise
    except ShuffleNetNASError:
        _discard_worker()  # a domain error (weights that do not fit, out of GPU memory): its own one line
        raise
    except BrokenProcessPool:
        _discard_worker()
        raise ShuffleNetNASError(
            f"the child process measuring {genotype.arch_id} died (crash or out of memory); the next "
            "measurement starts a fresh one"
        ) from None
    except Exception as error:
        _discard_worker()  # its CUDA context may hold a sticky error
        raise ShuffleNetNASError(
            f"measuring {genotype.arch_id} failed in its child process: {type(error).__name__}: {error}"
        ) from None


def _discard_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.shutdown(wait=False, cancel_futures=True)
        _worker = None
