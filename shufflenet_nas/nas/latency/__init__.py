"""On-device latency: CPU (PyTorch eager), CUDA GPU (CUDA-graph replay or eager), ONNX Runtime.

A measurement (``measure_latency`` / ``measure_module``) puts the module in eval mode under
``torch.inference_mode``, in the configured dtype, on the device and, where it helps, in channels-last; sets
the CPU threads explicitly; warms up; then times runs until the median's 95% confidence interval is within
``MeasureConfig.rel_precision`` or ``MeasureConfig.max_time_s`` is spent. It reports the median,
10th / 90th percentiles and a robust CV of the raw milliseconds, with its provenance (device, versions,
threads, batch, dtype, runtime, resolution, runs). On cpu and onnxruntime the runs are also normalised to a
reference network's anchor speed by default: ``normalized_ms``, the figure a search and the lookup table
compare across runs. ``MeasureConfig.isolate`` measures in a child process.
"""

from shufflenet_nas.nas.latency._config import (
    DTYPES,
    MAX_BATCH,
    RUNTIMES,
    SUPPORTED_DTYPES,
    TARGETS,
    MeasureConfig,
    check_target,
    cpu_name,
    software_provenance,
)
from shufflenet_nas.nas.latency._interleaved import Interleaved, measure_interleaved
from shufflenet_nas.nas.latency._measure import (
    LatencyResult,
    comparable_ms,
    measure_latency,
    measure_module,
    reference_anchor_ms,
)
from shufflenet_nas.nas.latency._normalisation import REFERENCE, NormalizedStep, reference_genotype
from shufflenet_nas.nas.latency._runtimes import seeded, timed_forward
from shufflenet_nas.nas.latency._statistics import (
    MIN_PRECISION_RUNS,
    MIN_RUNS,
    Stats,
    median_ci_rel,
    sample_times,
    summarize,
)

__all__ = [
    "DTYPES",
    "MAX_BATCH",
    "MIN_PRECISION_RUNS",
    "MIN_RUNS",
    "REFERENCE",
    "RUNTIMES",
    "SUPPORTED_DTYPES",
    "TARGETS",
    "Interleaved",
    "LatencyResult",
    "MeasureConfig",
    "NormalizedStep",
    "Stats",
    "check_target",
    "comparable_ms",
    "cpu_name",
    "measure_interleaved",
    "measure_latency",
    "measure_module",
    "median_ci_rel",
    "reference_anchor_ms",
    "reference_genotype",
    "sample_times",
    "seeded",
    "software_provenance",
    "summarize",
    "timed_forward",
]
