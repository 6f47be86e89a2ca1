from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from shufflenet_nas import (
    DeviceUnavailableError,
    InsufficientMemoryError,
    InvalidArgumentError,
    LatencyResult,
    MeasureConfig,
    ShuffleNetNASError,
    measure_latency,
    measure_module,
)
from shufflenet_nas.nas import cost as cost_module
from shufflenet_nas.nas.latency import (
    MAX_BATCH,
    MIN_PRECISION_RUNS,
    MIN_RUNS,
    REFERENCE,
    NormalizedStep,
    _measure,
    _normalisation,
    _runtimes,
    check_target,
    comparable_ms,
    cpu_name,
    median_ci_rel,
    reference_anchor_ms,
    sample_times,
    summarize,
)
from shufflenet_nas.search_spaces.builder import build_part
from shufflenet_nas.search_spaces.plan import network_plan

QUICK = {"threads": 1, "max_time_s": 0.1, "rel_precision": 0.05}


# ---- statistics -------------------------------------------------------------------------------------------
def test_summarize_gives_median_percentiles_and_robust_cv() -> None:
    stats = summarize([float(v) for v in range(1, 11)])
    assert stats.median_ms == 5.5 and stats.runs == 10
    assert stats.p10_ms == pytest.approx(1.9) and stats.p90_ms == pytest.approx(9.1)
    assert stats.cv == pytest.approx(1.4826 * 2.5 / 5.5)  # MAD of 1..10 around 5.5 is 2.5


def test_summary_is_robust_to_outliers() -> None:
    rng = np.random.default_rng(0)
    clean = list(rng.normal(10.0, 0.1, 200))
    spiked = clean[:-10] + [500.0] * 10  # 5% of the runs hit by a scheduler hiccup
    a, b = summarize(clean), summarize(spiked)
    assert b.median_ms == pytest.approx(a.median_ms, rel=0.01)
    assert b.cv < 0.02 < float(np.std(spiked) / np.mean(spiked))


def test_median_confidence_interval_is_zero_for_constant_runs_and_shrinks_with_runs() -> None:
    assert median_ci_rel([2.0] * 20) == 0.0
    rng = np.random.default_rng(1)
    few, many = rng.normal(10, 1, 20), rng.normal(10, 1, 2000)
    assert median_ci_rel(many) < median_ci_rel(few) / 4
    # order statistics: with 12 runs (too few for blocks) the interval spans ranks 2..10 of the sorted runs
    assert median_ci_rel(rng.permutation(np.arange(12.0))) == pytest.approx((10 - 2) / 2 / 5.5)


def test_median_confidence_interval_widens_when_runs_drift_together() -> None:
    drift = [10.0] * 45 + [15.0] * 5  # the machine slowed down for the last 5 runs
    scattered = [15.0 if i % 10 == 0 else 10.0 for i in range(50)]  # the same runs, slow ones spread out
    assert median_ci_rel(scattered) == 0.0  # every block of 5 has median 10
    # 10 blocks of 5: block medians 10 x 9 and 15, sd 1.58, and Student's t(0.975) with 9 degrees of freedom
    t975 = stats.t.ppf(0.975, 9)
    assert median_ci_rel(drift) == pytest.approx(t975 * np.std([10.0] * 9 + [15.0], ddof=1) / 10**0.5 / 10)


def test_summarize_without_runs_is_an_error() -> None:
    with pytest.raises(ValueError, match="no timed runs"):
        summarize([])


def test_sampling_warms_up_until_runs_stop_getting_faster_then_stops_when_precise() -> None:
    slow_start = itertools.chain([10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0], itertools.repeat(1.0))
    times, warmup, stopped = sample_times(lambda: next(slow_start), max_time_s=5.0, rel_precision=0.01)
    assert warmup == 17  # sliding windows of 5 runs: stable once both windows' medians are 1.0 ([3, 2, 1, 1, 1])
    assert stopped == "precision" and times == [1.0] * MIN_PRECISION_RUNS


def test_sampling_stops_at_the_time_cap_when_too_noisy_to_be_precise() -> None:
    rng = np.random.default_rng(2)
    times, _, stopped = sample_times(lambda: float(rng.uniform(1, 3)), max_time_s=0.02, rel_precision=1e-9)
    assert stopped == "time" and len(times) >= MIN_RUNS


# ---- configuration and targets ---------------------------------------------------------------------------
def test_default_runtime_per_target_and_eager_on_request() -> None:
    assert MeasureConfig("cpu").resolved_runtime == "eager"
    assert MeasureConfig("gpu").resolved_runtime == "cudagraph"
    assert MeasureConfig("gpu", runtime="eager").resolved_runtime == "eager"
    assert MeasureConfig("onnxruntime").resolved_runtime == "onnxruntime"


def test_threads_default_to_one_and_are_set_explicitly() -> None:
    assert MeasureConfig().resolved_threads == 1
    cores = os.cpu_count() or 1
    assert MeasureConfig(threads=cores).resolved_threads == cores
    with pytest.raises(
        InvalidArgumentError, match=f"threads={cores + 1}: this machine has {cores} logical CPUs; use at most that"
    ):
        MeasureConfig(threads=cores + 1)  # more threads than CPUs only oversubscribes (5000 hung, 100000 crashed)


def test_normalisation_defaults_on_except_on_gpu() -> None:
    assert MeasureConfig("cpu").normalized and MeasureConfig("onnxruntime").normalized
    assert not MeasureConfig("gpu").normalized and MeasureConfig("gpu", normalize=True).normalized
    assert not MeasureConfig("cpu", normalize=False).normalized


# ---- speed normalisation --------------------------------------------------------------------------------
def test_normalised_runs_cancel_the_machine_speed() -> None:
    speeds = itertools.cycle([1.0] * 7 + [1.7] * 5)  # the host slows down by 1.7x for a while, again and again
    speed = {"now": 1.0}
    calls = {"reference": 0}

    def model() -> float:
        return 2.0 * speed["now"]

    def reference() -> float:
        speed["now"] = next(speeds)  # the speed changes between blocks
        calls["reference"] += 1
        return 4.0 * speed["now"]

    step = NormalizedStep(model, reference, anchor_ms=4.0)
    times = [step() for _ in range(100)]
    assert times == pytest.approx([2.0] * 100)  # what the model takes at the anchor speed, every run
    # per block of about BLOCK_REFERENCES reference durations (2 * BLOCK_REFERENCES model runs), the reference's
    # warm-up and timed runs
    per_block = _normalisation.REFERENCE_WARMUP_RUNS + 1
    blocks = math.ceil(100 / (2 * _normalisation.BLOCK_REFERENCES))
    assert calls["reference"] % per_block == 0 and 2 * per_block <= calls["reference"] <= per_block * blocks
    assert step.provenance()["reference_anchor_ms"] == 4.0 and set(step.raw_ms) <= {2.0, 3.4}


def test_normalisation_times_each_network_warm() -> None:
    streak = {"model": 0, "reference": 0}  # runs in a row of each network

    def run(name: str) -> int:
        other = "reference" if name == "model" else "model"
        streak[name], streak[other] = streak[name] + 1, 0
        return streak[name]

    def model() -> float:  # slower right after the reference ran: its weights were evicted
        return 3.0 if run("model") == 1 else 2.0

    def reference() -> float:  # as measured: 10-15% slower for two runs after another network
        return 4.6 if run("reference") <= 2 else 4.0

    step = NormalizedStep(model, reference, anchor_ms=4.0)
    assert [step() for _ in range(50)] == pytest.approx([2.0] * 50) and set(step.raw_ms) == {2.0}
    assert set(step.reference_ms) == {4.0}


def test_anchor_is_measured_once_and_kept_on_disk_per_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path / "first"))
    one = MeasureConfig(threads=1)
    anchor = reference_anchor_ms(one)
    stored = json.loads((tmp_path / "first" / "anchors.json").read_text())
    (key,) = stored
    assert stored[key] == anchor > 0
    assert json.loads(key) | {"reference": REFERENCE, "threads": 1, "normalized": False} == json.loads(key)  # raw
    # another process with this file re-checks the anchor, and keeps one that is faster than this run
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "anchors.json").write_text(json.dumps({key: 1e-3}))
    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path / "second"))
    assert reference_anchor_ms(one) == 1e-3
    assert reference_anchor_ms(MeasureConfig(threads=2)) != 1e-3  # another thread count is another anchor
    assert len(json.loads((tmp_path / "second" / "anchors.json").read_text())) == 2
    assert reference_anchor_ms(replace(one, anchor_ms=7.5)) == 7.5  # a study's own anchor: nothing read


def test_an_anchor_taken_on_a_busy_machine_is_lowered_on_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path))
    config = MeasureConfig(threads=1)
    anchor = reference_anchor_ms(config)
    (key,) = json.loads((tmp_path / "anchors.json").read_text())
    (tmp_path / "anchors.json").write_text(json.dumps({key: 20 * anchor}))  # as if the first run was very busy
    monkeypatch.setattr(_normalisation, "_anchors", {})  # a new process
    with pytest.warns(RuntimeWarning, match=r"stored speed anchor .+ was taken while the machine was busy"):
        lowered = reference_anchor_ms(config)
    assert lowered < 5 * anchor and json.loads((tmp_path / "anchors.json").read_text()) == {key: lowered}


@pytest.mark.parametrize("value", ["{garbage", "abc", None, 0, -5.0, float("nan"), True])
def test_bad_anchors_are_set_aside(value: Any, tiny_v1: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path))
    path, config = tmp_path / "anchors.json", MeasureConfig(threads=1)
    content, problem = "{garbage", r"it is not valid JSON \(.+\)"
    if value != content:  # valid JSON, but our anchor is no finite positive number of ms
        reference_anchor_ms(config)
        content = json.dumps(dict.fromkeys(json.loads(path.read_text()), value))
        problem = rf"it holds an anchor of {re.escape(repr(value))}, not a finite positive number of ms"
    path.write_text(content)
    monkeypatch.setattr(_normalisation, "_anchors", {})  # as in a new process
    with pytest.warns(RuntimeWarning, match=rf"^{re.escape(str(path))} is corrupt: {problem}; moved it to anchors"):
        anchor = reference_anchor_ms(config)
    assert [moved.read_text() for moved in tmp_path.glob("anchors.json.corrupt-*")] == [content]
    assert list(json.loads(path.read_text()).values()) == [anchor] and 0 < anchor < 1e3  # measured afresh
    assert 0 < measure_latency(tiny_v1, MeasureConfig(**QUICK)).median_ms < 1e3  # which later runs scale by


def test_normalised_measurement_reports_raw_and_reference_figures(tiny_v1) -> None:  # type: ignore[no-untyped-def]
    result = measure_latency(tiny_v1, MeasureConfig(**QUICK))
    data = result.to_dict()
    assert data["normalized"] is True and data["reference"] == "shufflenet_v2_x1_0@96px"
    anchor = reference_anchor_ms(MeasureConfig(**QUICK))
    assert data["reference_anchor_ms"] == anchor and data["reference_median_ms"] > 0
    # the normalised median is the raw one scaled by anchor / reference, up to the blocks' spread
    assert data["normalized_ms"] == pytest.approx(data["median_ms"] * anchor / data["reference_median_ms"], rel=0.5)
    assert result.comparable_ms == data["normalized_ms"] and LatencyResult.from_dict(data) == result
    assert comparable_ms(data) == result.normalized_ms and data["normalized_ci_rel"] > 0
    raw = measure_latency(tiny_v1, MeasureConfig(normalize=False, **QUICK))
    assert raw.normalized_ms is None and raw.comparable_ms == raw.median_ms
    assert raw.to_dict()["normalized"] is False and "reference" not in raw.to_dict()
    assert "normalized_ms" not in raw.to_dict() and comparable_ms(raw.to_dict()) == raw.median_ms


def test_channels_last_where_it_helps() -> None:
    assert MeasureConfig("cpu").channels_last
    assert not MeasureConfig("gpu").channels_last and MeasureConfig("gpu", dtype="fp16").channels_last
    assert not MeasureConfig("onnxruntime").channels_last


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"target": "tpu"}, "target='tpu' unknown; use one of cpu, gpu, onnxruntime"),
        ({"dtype": "fp8"}, "dtype='fp8' unknown"),
        (
            {"dtype": "fp16"},
            "dtype='fp16' is not supported with target='cpu'; use dtype='fp32' or dtype='bf16' "
            "(fp16 runs with target='gpu')",
        ),
        ({"target": "onnxruntime", "dtype": "bf16"}, "dtype='bf16' is not supported with target='onnxruntime'"),
        ({"runtime": "cudagraph"}, "runtime='cudagraph' does not run with target='cpu'; use runtime='eager'"),
        ({"target": "gpu", "runtime": "onnxruntime"}, "use runtime='cudagraph' or runtime='eager'"),
        ({"batch": 0}, "batch=0: need at least 1"),
        ({"batch": 100_000}, "batch=100000 is above the limit of 4096"),
        ({"threads": 0}, "threads=0: need at least 1"),
        ({"max_time_s": 0}, "max_time_s=0: need a positive number"),
        ({"rel_precision": 1.5}, "rel_precision=1.5: need a fraction"),
    ],
)
def test_unsupported_combinations_are_one_line_argument_errors(values: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        MeasureConfig(**values)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_gpu_target_without_gpu_is_a_device_error_not_a_cpu_fallback(tiny_v2) -> None:  # type: ignore[no-untyped-def]
    config = MeasureConfig("gpu", **QUICK)
    message = "target='gpu': .* sees no CUDA GPU; use target='cpu' or target='onnxruntime'"
    with pytest.raises(DeviceUnavailableError, match=message):
        check_target(config)
    with pytest.raises(DeviceUnavailableError):
        measure_latency(tiny_v2, config)


def test_largest_batch_is_accepted() -> None:
    assert MeasureConfig(batch=MAX_BATCH).batch == 4096


# ---- measuring on the CPU --------------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "device", "where"), [("cpu", "cpu", "in memory"), ("gpu", "cuda", "on the GPU")])
def test_a_network_that_does_not_fit_is_refused_before_it_is_built(
    tiny_v2, monkeypatch: pytest.MonkeyPatch, target: str, device: str, where: str
) -> None:  # type: ignore[no-untyped-def]
    asked = []
    monkeypatch.setattr(cost_module, "available_memory_bytes", lambda device: asked.append(device) or 2**20)
    monkeypatch.setattr(_measure, "build", lambda genotype: pytest.fail("built a network that does not fit"))
    with pytest.raises(InsufficientMemoryError, match=rf"at batch 64, fp32\) but 1.0 MiB is free {where}"):
        measure_latency(tiny_v2, MeasureConfig(target, batch=64, **QUICK))
    assert asked == [device]


def test_cpu_measurement_carries_figures_and_provenance(tiny_v2) -> None:  # type: ignore[no-untyped-def]
    result = measure_latency(tiny_v2, MeasureConfig(batch=2, **QUICK))
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms
    assert result.runs >= MIN_RUNS and result.cv >= 0
    data = result.to_dict()
    assert {"median_ms", "p10_ms", "p90_ms", "cv", "runs"} <= data.keys()
    expected = {"target": "cpu", "runtime": "eager", "device": cpu_name(), "torch": torch.__version__}
    expected |= {"threads": 1, "batch": 2, "dtype": "fp32", "resolution": 32, "arch_id": tiny_v2.arch_id}
    assert {key: data[key] for key in expected} == expected
    assert data["stopped_by"] in ("precision", "time") and data["warmup_runs"] >= 2
    assert LatencyResult.from_dict(data) == result


def test_measurement_restores_the_thread_count(tiny_v1) -> None:  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    measure_latency(tiny_v1, MeasureConfig(**{**QUICK, "threads": before + 1}))
    assert torch.get_num_threads() == before


def test_bf16_on_cpu_runs(tiny_v1) -> None:  # type: ignore[no-untyped-def]
    result = measure_latency(tiny_v1, MeasureConfig(dtype="bf16", **QUICK))
    assert result.median_ms > 0 and result.provenance["dtype"] == "bf16"


def test_onnxruntime_exports_and_times_on_its_cpu_provider(tiny_v2) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime

    result = measure_latency(tiny_v2, MeasureConfig("onnxruntime", **QUICK))
    assert result.median_ms > 0
    assert result.provenance["runtime"] == "onnxruntime"
    assert result.provenance["onnxruntime"] == onnxruntime.__version__


def test_part_measurement_records_memory_formats(tiny_v2) -> None:  # type: ignore[no-untyped-def]
    stem, v2_unit = network_plan(tiny_v2)[:2]
    config = MeasureConfig(**QUICK)
    stem_result = measure_module(build_part(stem), stem.input_shape, config, channels_last_input=True)
    assert stem_result.provenance["output_channels_last"] is True  # convs keep channels-last
    unit_result = measure_module(build_part(v2_unit), v2_unit.input_shape, config, channels_last_input=True)
    assert unit_result.provenance["input_channels_last"] is True
    assert unit_result.provenance["output_channels_last"] is False  # the V2 channel shuffle returns NCHW


# ---- the GPU graph runtime, with a stand-in for torch.cuda -------------------------------------------------
class _FakeEvent:
    def __init__(self, enable_timing: bool = False) -> None:
        self.recorded = 0

    def record(self) -> None:
        self.recorded += 1

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _FakeEvent) -> float:
        return 0.25


class _FakeStream:
    def wait_stream(self, other: object) -> None:
        pass


class _FakeGraph:
    replays = 0

    def replay(self) -> None:
        _FakeGraph.replays += 1


class _CountingModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * 2


def test_cuda_graph_runtime_captures_once_then_times_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "Event": _FakeEvent,
        "Stream": _FakeStream,
        "CUDAGraph": _FakeGraph,
        "current_stream": _FakeStream,
        "stream": lambda stream: contextlib.nullcontext(),
        "graph": lambda graph: contextlib.nullcontext(),
    }.items():
        monkeypatch.setattr(torch.cuda, name, value)
    module = _CountingModule()
    step, output = _runtimes.cuda_graph_step(module, torch.ones(1, 2, 4, 4))
    assert module.calls == 4 and output.shape == (1, 2, 4, 4)  # 3 warm-up forwards on a side stream + 1 capture
    times = [step() for _ in range(5)]
    assert times == [0.25] * 5 and _FakeGraph.replays == 5 and module.calls == 4  # replays, no eager forwards


# ---- isolation in a child process ----------------------------------------------------------------------------
def test_isolated_measurement_runs_in_a_child_process(tiny_v1) -> None:  # type: ignore[no-untyped-def]
    result = measure_latency(tiny_v1, MeasureConfig(isolate=True, **QUICK))
    assert result.median_ms > 0 and result.provenance["arch_id"] == tiny_v1.arch_id
    assert _measure._worker is not None  # kept for the next measurement
    _measure._discard_worker()


class _FailingWorker:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.shut_down = False

    def submit(self, *args: object) -> _FailingWorker:
        return self

    def result(self) -> None:
        raise self.error

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        self.shut_down = True


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (RuntimeError("CUDA error: an illegal memory access was encountered"), "failed in its child process"),
        (BrokenProcessPool("killed"), r"died \(crash or out of memory\)"),
    ],
)
def test_a_failing_child_is_an_error_and_is_replaced(
    tiny_v1, monkeypatch: pytest.MonkeyPatch, error: BaseException, message: str
) -> None:  # type: ignore[no-untyped-def]
    worker = _FailingWorker(error)
    monkeypatch.setattr(_measure, "_worker", worker)
    with pytest.raises(ShuffleNetNASError, match=message):
        measure_latency(tiny_v1, MeasureConfig(isolate=True, **QUICK))
    assert worker.shut_down and _measure._worker is None


def test_a_child_that_finds_too_little_memory_reports_it_as_is_and_is_kept(
    tiny_v1, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    error = InsufficientMemoryError("x needs about 2.0 GiB (...) but 1.0 GiB is free on the GPU; lower the batch")
    worker = _FailingWorker(error)
    monkeypatch.setattr(_measure, "_worker", worker)
    with pytest.raises(InsufficientMemoryError) as caught:
        measure_latency(tiny_v1, MeasureConfig(isolate=True, **QUICK))
    assert caught.value is error and not worker.shut_down and _measure._worker is worker
