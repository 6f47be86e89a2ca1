"""What to measure: ``MeasureConfig``, the targets, dtypes and runtimes, the target check and provenance."""

from __future__ import annotations

import functools
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shufflenet_nas.errors import DeviceUnavailableError, InvalidArgumentError

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
MAX_BATCH = 4096  # 16x the usual 256 of throughput benchmarks; the memory check bounds what fits below it


def _either(name: str, values: tuple[str, ...]) -> str:
    """``name='a' or name='b'``: the accepted values, as arguments."""
    return " or ".join(f"{name}={value!r}" for value in values)


@dataclass(frozen=True)
class MeasureConfig:
    """How to measure: target, batch, dtype, threads, runtime, time cap, precision, speed normalisation.

    ``threads=None`` means 1; ``runtime=None`` means the target's default: ``eager`` on cpu, ``cudagraph`` on
    gpu, ``onnxruntime`` for onnxruntime. ``max_time_s`` caps one measurement (warm-up and timed runs, not the
    model build); ``rel_precision`` is the relative half-width of the median's 95% confidence interval at
    which timing stops early. ``normalize=None`` means on for cpu and onnxruntime, off for gpu; ``anchor_ms``
    is the speed anchor normalised runs are scaled to (None: this device's stored one). ``isolate`` runs
    ``measure_latency`` in a child process. Invalid values and combinations raise
    ``InvalidArgumentError`` at construction (e.g. ``dtype='fp16'`` with ``target='cpu'``).
    """

    target: str = "cpu"
    batch: int = 1
    dtype: str = "fp32"
    threads: int | None = None
    runtime: str | None = None
    max_time_s: float = 10.0
    rel_precision: float = 0.005
    normalize: bool | None = None
    anchor_ms: float | None = None
    isolate: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise InvalidArgumentError(f"target={self.target!r} unknown; use one of {', '.join(TARGETS)}")
        if self.dtype not in DTYPES:
            raise InvalidArgumentError(f"dtype={self.dtype!r} unknown; use one of {', '.join(DTYPES)}")
        runtimes = RUNTIMES[self.target]
        if self.runtime is not None and self.runtime not in runtimes:
            raise InvalidArgumentError(
                f"runtime={self.runtime!r} does not run with target={self.target!r}; use {_either('runtime', runtimes)}"
            )
        supported = SUPPORTED_DTYPES[self.target]
        if self.dtype not in supported:
            raise InvalidArgumentError(
                f"dtype={self.dtype!r} is not supported with target={self.target!r}; use {_either('dtype', supported)}"
                + (" (fp16 runs with target='gpu')" if self.dtype == "fp16" else "")
            )
        if self.batch < 1:
            raise InvalidArgumentError(f"batch={self.batch}: need at least 1")
        if self.batch > MAX_BATCH:
            raise InvalidArgumentError(f"batch={self.batch} is above the limit of {MAX_BATCH}")
        if self.threads is not None and self.threads < 1:
            raise InvalidArgumentError(f"threads={self.threads}: need at least 1")
        if self.threads is not None and self.threads > (os.cpu_count() or 1):
            raise InvalidArgumentError(
                f"threads={self.threads}: this machine has {os.cpu_count()} logical CPUs; use at most that"
            )
        if not math.isfinite(self.max_time_s) or self.max_time_s <= 0:
            raise InvalidArgumentError(f"max_time_s={self.max_time_s}: need a positive number of seconds")
        if not 0 < self.rel_precision < 1:
            raise InvalidArgumentError(
                f"rel_precision={self.rel_precision}: need a fraction between 0 and 1, e.g. 0.01"
            )
        if self.anchor_ms is not None and not (math.isfinite(self.anchor_ms) and self.anchor_ms > 0):
            raise InvalidArgumentError(f"anchor_ms={self.anchor_ms}: need a positive number of ms")

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


def check_target(config: MeasureConfig) -> None:
    """Fast check that the target can run here; raises a one-line error naming the fix."""
    if config.target == "gpu":
        if not torch.cuda.is_available():
            build_note = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise DeviceUnavailableError(
                f"target='gpu': PyTorch {torch.__version__} ({build_note}) sees no CUDA GPU; "
                "use target='cpu' or target='onnxruntime'"
            )
        if config.dtype == "bf16" and not torch.cuda.is_bf16_supported():
            raise InvalidArgumentError(
                f"dtype='bf16': {torch.cuda.get_device_name()} has no bf16 support; use dtype='fp16' or dtype='fp32'"
            )
    elif config.target == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            raise DeviceUnavailableError(
                "target='onnxruntime': onnxruntime is not installed; `pip install onnxruntime`"
            ) from None
        if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
            raise DeviceUnavailableError(
                "target='onnxruntime': this onnxruntime build has no CPUExecutionProvider; install `onnxruntime`"
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
