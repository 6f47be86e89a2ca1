"""On-device latency you can trust: CPU (PyTorch eager), CUDA GPU (CUDA-graph replay or eager), ONNX Runtime.

How a measurement runs (``measure_latency`` / ``measure_module``):

- the module is put in eval mode under ``torch.inference_mode``, cast to the dtype, moved to the device and,
  where it helps (CPU eager; GPU with fp16/bf16), converted to channels-last;
- CPU intra-op threads are set explicitly (``threads``; default 1, the ShuffleNet V2 paper's ARM protocol and
  the setting least disturbed by other processes) and restored afterwards; ONNX Runtime gets the same count
  as ``intra_op_num_threads``;
- warm-up runs until the median of the last 5 runs stops improving (at most a quarter of the time cap);
- timed runs (CUDA events on the GPU, ``perf_counter_ns`` elsewhere; garbage collection paused) repeat until
  the 95% confidence interval of the median is within ``rel_precision`` of it, or the time cap
  ``max_time_s`` is reached; the interval is distribution-free (order statistics) and widened when blocks
  of consecutive runs disagree (batch medians), so a drifting machine load does not pass for precision;
- the figures are outlier-robust: median, 10th / 90th percentiles, and ``cv``, the robust coefficient of
  variation of single runs (1.4826 * median absolute deviation / median);
- speed normalisation (default on cpu and onnxruntime): a shared machine's speed swings by 1.5-2x for
  seconds at a time (other tenants of the host), which no estimator over one process's runs removes. So a
  fixed reference network (ShuffleNet V2 1.0x at 96x96) runs before each block of runs of about its own
  duration, and each run is scaled by ``anchor / reference``: the latency the network has when the
  machine runs the reference at its anchor speed (the reference's 10th percentile over its first 5 s, the
  machine's least disturbed speed). The anchor is measured once per device and config and
  kept in ``anchors.json`` in the cache directory, so every process scales by the same number. The raw
  median and the reference's median ride along in the provenance.

Every result carries its provenance (device, torch version, threads, batch, dtype, runtime, resolution, ...).
On the GPU the default runtime is CUDA-graph replay: eager batch-1 timing there is set by kernel-launch
overhead and is noisy (see shared/reference/gpu-anchors-h200.md). ``isolate=True`` runs each measurement in a
spawned child process, so a CUDA OOM or a sticky CUDA error cannot poison the next measurement.
"""

from __future__ import annotations

import functools
import gc
import io
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shufflenet_nas.errors import DeviceUnavailableError, ShuffleNetNASError, UsageError
from shufflenet_nas.jsonfile import read_json_object, write_json_atomic
from shufflenet_nas.nas.cost import InsufficientMemoryError, check_fits_in_memory
from shufflenet_nas.search_spaces.builder import build
from shufflenet_nas.search_spaces.genotype import Genotype

TARGETS: tuple[str, ...] = ("cpu", "gpu", "onnxruntime")
DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16")
# Runtimes per target; the first is the default.
RUNTIMES: dict[str, tuple[str, ...]] = {
    "cpu": ("eager",),
    "gpu": ("cudagraph", "eager"),
    "onnxruntime": ("onnxruntime",),
}
# fp16 on CPU eager is slow emulation in most PyTorch CPU kernels; ONNX Runtime's CPU provider runs fp32.
SUPPORTED_DTYPES: dict[str, tuple[str, ...]] = {"cpu": ("fp32", "bf16"), "gpu": DTYPES, "onnxruntime": ("fp32",)}
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

WARMUP_WINDOW = 5  # runs per warm-up window
WARMUP_SHARE = 0.25  # at most this share of the time cap goes to warm-up
MIN_RUNS = 5  # timed runs even when the time cap is reached
MIN_PRECISION_RUNS = 10  # before the median's confidence interval is trusted
MAX_RUNS = 20_000
MAX_BATCH = 4096  # 16x the usual 256 of throughput benchmarks; the memory check bounds what fits below it
REFERENCE_ARCH = "shufflenet_v2_x1_0"  # the speed reference, at REFERENCE_RESOLUTION
REFERENCE_RESOLUTION = 96
REFERENCE = f"{REFERENCE_ARCH}@{REFERENCE_RESOLUTION}px"  # as provenance and anchor keys name it
ANCHOR_TIME_S = 5.0  # how long the reference is timed when its anchor is first measured
BLOCKS = 10  # contiguous blocks of runs for the batch-medians confidence interval
MIN_BLOCK_RUNS = 5
# Student's t 97.5% quantiles by degrees of freedom (blocks - 1), for the batch-medians interval.
_T975 = {2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def default_cache_dir() -> Path:
    """``$SHUFFLENET_NAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/shufflenet-nas/lut`` (``~/.cache/...``).

    Latency tables and the speed anchors live here."""
    if override := os.environ.get("SHUFFLENET_NAS_CACHE_DIR"):
        return Path(override)
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "shufflenet-nas" / "lut"


@dataclass(frozen=True)
class MeasureConfig:
    """How to measure: target, batch, dtype, threads, runtime, time cap, precision, speed normalisation.

    ``threads=None`` means 1; ``runtime=None`` means the target's default: ``eager`` on cpu, ``cudagraph`` on
    gpu, ``onnxruntime`` for onnxruntime. ``max_time_s`` caps one measurement (warm-up and timed runs, not the
    model build); ``rel_precision`` is the relative half-width of the median's 95% confidence interval at
    which timing stops early. ``normalize=None`` means on for cpu and onnxruntime, off for gpu (graph replay
    on a dedicated card is stable without it). ``isolate`` runs ``measure_latency`` in a child process.
    Invalid combinations raise ``UsageError`` at construction (e.g. fp16 on cpu).
    """

    target: str = "cpu"
    batch: int = 1
    dtype: str = "fp32"
    threads: int | None = None
    runtime: str | None = None
    max_time_s: float = 10.0
    rel_precision: float = 0.005
    normalize: bool | None = None
    isolate: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise UsageError(f"--target {self.target!r} unknown; use one of {', '.join(TARGETS)}")
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype!r} unknown; use one of {', '.join(DTYPES)}")
        runtimes = RUNTIMES[self.target]
        if self.runtime is not None and self.runtime not in runtimes:
            raise UsageError(
                f"--runtime {self.runtime} does not run on --target {self.target}; use {' or '.join(runtimes)}"
            )
        supported = SUPPORTED_DTYPES[self.target]
        if self.dtype not in supported:
            raise UsageError(
                f"--dtype {self.dtype} is not supported on --target {self.target}; use {' or '.join(supported)}"
                + (" (or --target gpu)" if self.dtype == "fp16" else "")
            )
        if self.batch < 1:
            raise UsageError(f"batch {self.batch}: need at least 1")
        if self.batch > MAX_BATCH:
            raise UsageError(f"batch {self.batch} is above the limit of {MAX_BATCH}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads {self.threads}: need at least 1 (or leave it out for the physical cores)")
        if self.threads is not None and self.threads > (os.cpu_count() or 1):
            raise UsageError(
                f"--threads {self.threads}: this machine has {os.cpu_count()} logical CPUs; use at most that"
            )
        if not math.isfinite(self.max_time_s) or self.max_time_s <= 0:
            raise UsageError(f"--max-time {self.max_time_s}: need a positive number of seconds")
        if not 0 < self.rel_precision < 1:
            raise UsageError(f"--precision {self.rel_precision}: need a fraction between 0 and 1, e.g. 0.01")

    @property
    def resolved_runtime(self) -> str:
        return self.runtime or RUNTIMES[self.target][0]

    @property
    def resolved_threads(self) -> int:
        return self.threads or 1

    @property
    def normalized(self) -> bool:
        """Whether runs are scaled to the reference's anchor speed (default: on, except on gpu)."""
        return self.target != "gpu" if self.normalize is None else self.normalize

    @property
    def channels_last(self) -> bool:
        """Channels-last where it helps: CPU eager (oneDNN), GPU with fp16/bf16 (tensor cores)."""
        return self.target == "cpu" or (self.target == "gpu" and self.dtype != "fp32")


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
    and a batch-medians one over up to 10 contiguous blocks (right when runs drift together, e.g. while the
    machine's load changes for seconds at a time; it keeps a drifting measurement from stopping early).
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
        half_width = max(half_width, _T975[blocks - 1] * float(np.std(block_medians, ddof=1)) / math.sqrt(blocks))
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

    Returns the timed runs, the number of warm-up runs and why timing stopped (precision, time, max_runs).
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


@dataclass(frozen=True)
class LatencyResult:
    """A measured latency and where it comes from."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    runs: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-able: the figures, then the provenance keys."""
        figures = {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms, "cv": self.cv}
        return {**figures, "runs": self.runs, **self.provenance}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyResult:
        data = dict(data)
        figures = {name: data.pop(name) for name in ("median_ms", "p10_ms", "p90_ms", "cv", "runs")}
        return cls(**figures, provenance=data)


# ---- target checks and provenance ------------------------------------------------------------------
def check_target(config: MeasureConfig) -> None:
    """Fast check that the target can run here; raises a one-line error naming the fix."""
    if config.target == "gpu":
        if not torch.cuda.is_available():
            build_note = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise DeviceUnavailableError(
                f"--target gpu: PyTorch {torch.__version__} ({build_note}) sees no CUDA GPU; "
                "use --target cpu or onnxruntime"
            )
        if config.dtype == "bf16" and not torch.cuda.is_bf16_supported():
            raise UsageError(f"--dtype bf16: {torch.cuda.get_device_name()} has no bf16 support; use fp16 or fp32")
    elif config.target == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            raise DeviceUnavailableError(
                "--target onnxruntime: onnxruntime is not installed; `pip install onnxruntime`"
            ) from None
        if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
            raise DeviceUnavailableError(
                "--target onnxruntime: this onnxruntime build has no CPUExecutionProvider; install `onnxruntime`"
            )


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def software_provenance(config: MeasureConfig) -> dict[str, Any]:
    """Device and software versions a measurement depends on (also the latency table's cache key)."""
    data: dict[str, Any] = {"target": config.target, "runtime": config.resolved_runtime}
    if config.target == "gpu":
        data |= {"device": torch.cuda.get_device_name(), "cuda": torch.version.cuda}
    else:
        data["device"] = cpu_name()
    data["torch"] = torch.__version__
    if config.target == "onnxruntime":
        import onnxruntime

        data["onnxruntime"] = onnxruntime.__version__
    return data | {
        "threads": config.resolved_threads,
        "batch": config.batch,
        "dtype": config.dtype,
        "channels_last": config.channels_last,
        "normalized": config.normalized,
    }


# ---- measuring ---------------------------------------------------------------------------------------
def measure_latency(genotype: Genotype, config: MeasureConfig) -> LatencyResult:
    """Latency of the whole network of ``genotype`` at its resolution, on the configured target.

    Raises ``InsufficientMemoryError`` before building when the network would not fit on the device.
    """
    if config.isolate:
        return _measure_isolated(genotype, config)  # the child checks the memory of its device
    check_fits_in_memory(genotype, config.batch, config.dtype, "cuda" if config.target == "gpu" else "cpu")
    model = seeded(lambda: build(genotype))
    result = measure_module(model, (3, genotype.resolution, genotype.resolution), config)
    return replace(result, provenance={**result.provenance, "arch_id": genotype.arch_id})


def seeded(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build with fixed weights (the same in every process) without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return factory()


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
                step = NormalizedStep(step, _reference_step(config), anchor_ms)
            times, warmup, stopped = sample_times(step, config.max_time_s, config.rel_precision)
    except torch.cuda.OutOfMemoryError:
        raise ShuffleNetNASError(
            f"out of GPU memory at batch {config.batch}; lower --batch, or pass --isolate so one network's "
            "failure does not affect the next"
        ) from None
    provenance = software_provenance(config) | {"resolution": input_shape[-1]}
    if channels_last_input is not None:
        provenance["input_channels_last"] = channels_last_input
    if output is not None and output.dim() == 4:
        provenance["output_channels_last"] = _is_channels_last(output)
    if isinstance(step, NormalizedStep):
        provenance |= step.provenance(len(times))
    stats = summarize(times)
    provenance |= {"warmup_runs": warmup, "ci_rel": stats.ci_rel, "stopped_by": stopped}
    return LatencyResult(stats.median_ms, stats.p10_ms, stats.p90_ms, stats.cv, stats.runs, provenance)


@contextmanager
def timed_forward(
    module: nn.Module,
    input_shape: tuple[int, int, int],
    config: MeasureConfig,
    channels_last_input: bool | None = None,
) -> Iterator[tuple[Callable[[], float], torch.Tensor | None]]:
    """``module`` prepared on the target: yields a step that runs one forward and returns its ms, and the
    output of a first forward (``None`` on onnxruntime). Threads and inference mode hold inside the block."""
    check_target(config)
    channels_last = config.channels_last if channels_last_input is None else channels_last_input
    x = torch.randn(config.batch, *input_shape, generator=torch.Generator().manual_seed(0))
    with _torch_threads(config.resolved_threads), torch.inference_mode():
        yield _make_step(module.eval(), x, config, channels_last)


def _is_channels_last(tensor: torch.Tensor) -> bool:
    """Channels-last strides proper (a tensor with one channel or 1x1 pixels is both formats: NCHW)."""
    return tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _make_step(
    module: nn.Module, x: torch.Tensor, config: MeasureConfig, channels_last: bool
) -> tuple[Callable[[], float], torch.Tensor | None]:
    """A callable that runs one forward and returns its time in ms, and the output of a first forward."""
    if config.target == "onnxruntime":
        return _onnxruntime_step(module, x, config.resolved_threads), None
    dtype = TORCH_DTYPES[config.dtype]
    device = torch.device("cuda" if config.target == "gpu" else "cpu")
    module = module.to(device=device, dtype=dtype)
    x = x.to(device=device, dtype=dtype)
    if config.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if config.target == "cpu":
        return _cpu_step(module, x), module(x)
    if config.resolved_runtime == "cudagraph":
        return _cuda_graph_step(module, x)
    return _cuda_eager_step(module, x), module(x)


def _cpu_step(module: nn.Module, x: torch.Tensor) -> Callable[[], float]:
    def step() -> float:
        begin = time.perf_counter_ns()
        module(x)
        return (time.perf_counter_ns() - begin) / 1e6

    return _without_gc(step)


def _cuda_eager_step(module: nn.Module, x: torch.Tensor) -> Callable[[], float]:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def step() -> float:
        start.record()
        module(x)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return _without_gc(step)


def _cuda_graph_step(module: nn.Module, x: torch.Tensor) -> tuple[Callable[[], float], torch.Tensor]:
    """Capture one forward in a CUDA graph (after warm-up on a side stream) and time its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            module(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = module(x)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def step() -> float:
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return _without_gc(step), output


def _onnxruntime_step(module: nn.Module, x: torch.Tensor, threads: int) -> Callable[[], float]:
    """Export to ONNX in memory and time ``InferenceSession.run`` on the CPU provider."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buffer, dynamo=False, input_names=["x"], opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x.numpy()}

    def step() -> float:
        begin = time.perf_counter_ns()
        session.run(None, feed)
        return (time.perf_counter_ns() - begin) / 1e6

    return _without_gc(step)


def _without_gc(step: Callable[[], float]) -> Callable[[], float]:
    """Garbage collection paused around each run, so a collection never lands inside a timed run."""

    def timed() -> float:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return step()
        finally:
            if enabled:
                gc.enable()

    return timed


# ---- speed normalisation ----------------------------------------------------------------------------
class NormalizedStep:
    """``step`` with a run of the reference before each block of about the reference's duration; returns
    each run's ms scaled by ``anchor_ms / ms of the block's reference run``."""

    def __init__(self, step: Callable[[], float], reference: Callable[[], float], anchor_ms: float) -> None:
        self.step, self.reference, self.anchor_ms = step, reference, anchor_ms
        self.raw_ms: list[float] = []
        self.reference_ms: list[float] = []
        self._block_left_ms = 0.0

    def __call__(self) -> float:
        if self._block_left_ms <= 0:
            self.reference_ms.append(self.reference())
            self._block_left_ms = self.reference_ms[-1]
        ms = self.step()
        self._block_left_ms -= ms
        self.raw_ms.append(ms)
        return ms * self.anchor_ms / self.reference_ms[-1]

    def provenance(self, timed_runs: int) -> dict[str, Any]:
        """The reference, its anchor and observed median, and the raw median of the last ``timed_runs``."""
        return {
            "reference": REFERENCE,
            "reference_anchor_ms": self.anchor_ms,
            "reference_median_ms": float(np.median(self.reference_ms)),
            "raw_median_ms": float(np.median(self.raw_ms[-timed_runs:])),
        }


def reference_genotype() -> Genotype:
    """The speed reference: ShuffleNet V2 1.0x at 96x96 (about the cost of a mid-sized searched network)."""
    from shufflenet_nas.search_spaces.baselines import BASELINES

    return BASELINES[REFERENCE_ARCH].genotype.with_resolution(REFERENCE_RESOLUTION)


def _reference_step(config: MeasureConfig) -> Callable[[], float]:
    side = REFERENCE_RESOLUTION
    x = torch.randn(config.batch, 3, side, side, generator=torch.Generator().manual_seed(1))
    module = _reference_module(config.target, config.dtype, config.channels_last)
    return _make_step(module, x, config, config.channels_last)[0]


@functools.lru_cache(maxsize=8)
def _reference_module(target: str, dtype: str, channels_last: bool) -> nn.Module:
    """The reference network, built once per process and placement (``_make_step`` moves it in place)."""
    return seeded(lambda: build(reference_genotype())).eval()


_anchors: dict[tuple[Path, str], float] = {}


def reference_anchor_ms(config: MeasureConfig) -> float:
    """The reference's raw 10th percentile on this device and config (its speed when the machine is least
    disturbed): measured once (``ANCHOR_TIME_S``), then read from ``anchors.json`` in the cache directory;
    when two processes race, the first stored anchor wins."""
    raw = replace(config, normalize=False, isolate=False, max_time_s=ANCHOR_TIME_S, rel_precision=0.002)
    key = json.dumps(software_provenance(raw) | {"reference": REFERENCE}, sort_keys=True)
    path = default_cache_dir() / "anchors.json"
    if (path, key) not in _anchors:
        stored = read_json_object(path)
        if key not in stored:
            measured = measure_latency(reference_genotype(), raw).p10_ms
            stored = read_json_object(path)
            stored.setdefault(key, measured)
            write_json_atomic(path, stored)
        _anchors[path, key] = float(stored[key])
    return _anchors[path, key]


# ---- isolation in a child process --------------------------------------------------------------------
_worker: ProcessPoolExecutor | None = None


def _measure_in_child(genotype: Genotype, config: MeasureConfig) -> dict[str, Any]:
    return measure_latency(genotype, config).to_dict()


def _measure_isolated(genotype: Genotype, config: MeasureConfig) -> LatencyResult:
    """Measure in a spawned worker process; a worker that failed is replaced before the next measurement."""
    global _worker
    check_target(config)
    if _worker is None:
        _worker = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    future = _worker.submit(_measure_in_child, genotype, replace(config, isolate=False))
    try:
        return LatencyResult.from_dict(future.result())
    except (UsageError, InsufficientMemoryError):
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
