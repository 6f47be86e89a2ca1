"""Timed forward steps per runtime: CPU eager, CUDA eager, CUDA-graph replay, ONNX Runtime (CPU provider).

A step runs one forward and returns its time in ms, with garbage collection paused around it. CPU intra-op
threads are set explicitly and restored afterwards; ONNX Runtime gets the same count.
"""

from __future__ import annotations

import functools
import gc
import io
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from shufflenet_nas.nas.latency._config import TORCH_DTYPES, MeasureConfig, check_target

Step = Callable[[], float]


def seeded(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build with fixed weights (the same in every process) without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return factory()


@contextmanager
def timed_forward(
    module: nn.Module,
    input_shape: tuple[int, int, int],
    config: MeasureConfig,
    channels_last_input: bool | None = None,
) -> Iterator[tuple[Step, torch.Tensor | None]]:
    """``module`` prepared on the target: yields a step that runs one forward and returns its ms, and the
    output of a first forward (``None`` on onnxruntime). Threads and inference mode hold inside the block."""
    check_target(config)
    channels_last = config.channels_last if channels_last_input is None else channels_last_input
    x = torch.randn(config.batch, *input_shape, generator=torch.Generator().manual_seed(0))
    with _torch_threads(config.resolved_threads), torch.inference_mode():
        yield make_step(module.eval(), x, config, channels_last)


def is_channels_last(tensor: torch.Tensor) -> bool:
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


def make_step(
    module: nn.Module, x: torch.Tensor, config: MeasureConfig, channels_last: bool
) -> tuple[Step, torch.Tensor | None]:
    """``module`` and ``x`` moved to the target (``module`` in place), a step timing one forward, and the output
    of a first forward (``None`` on onnxruntime). ``channels_last`` is the input's memory format."""
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
        return _wall_clock(functools.partial(module, x)), module(x)
    if config.resolved_runtime == "cudagraph":
        return cuda_graph_step(module, x)
    return _cuda_events(functools.partial(module, x)), module(x)


def cuda_graph_step(module: nn.Module, x: torch.Tensor) -> tuple[Step, torch.Tensor]:
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
    return _cuda_events(graph.replay), output


def _onnxruntime_step(module: nn.Module, x: torch.Tensor, threads: int) -> Step:
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
    return _wall_clock(functools.partial(session.run, None, {"x": x.numpy()}))


def _wall_clock(run: Callable[[], object]) -> Step:
    """A step timing ``run`` by ``perf_counter_ns``."""

    def step() -> float:
        begin = time.perf_counter_ns()
        run()
        return (time.perf_counter_ns() - begin) / 1e6

    return _without_gc(step)


def _cuda_events(run: Callable[[], object]) -> Step:
    """A step timing ``run`` by CUDA events on the current stream."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def step() -> float:
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return _without_gc(step)


def _without_gc(step: Step) -> Step:
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
