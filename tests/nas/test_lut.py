from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from shufflenet_nas import InvalidArgumentError, LatencyResult, LatencyTable, MeasureConfig
from shufflenet_nas.jsonfile import default_cache_dir
from shufflenet_nas.nas import lut
from shufflenet_nas.nas.cost import part_cost
from shufflenet_nas.nas.latency import _normalisation
from shufflenet_nas.nas.lut import Calibration, Comparison, Evaluation, compare
from shufflenet_nas.nas.lut_estimate import PartEntry
from shufflenet_nas.nas.trace_cost import _trace_memory, fvcore_macs
from shufflenet_nas.search_spaces import Genotype, SearchSpace
from shufflenet_nas.search_spaces.plan import network_plan

CONFIG = MeasureConfig(threads=1, max_time_s=0.02, rel_precision=0.05)


@pytest.fixture
def count_measurements(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every part measured by the table."""
    calls: list[object] = []
    measure = lut.measure_module

    def counting(module, input_shape, config, channels_last_input=None):  # type: ignore[no-untyped-def]
        calls.append(input_shape)
        return measure(module, input_shape, config, channels_last_input)

    monkeypatch.setattr(lut, "measure_module", counting)
    return calls


def _forbid_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured although the table had every part")

    monkeypatch.setattr(lut, "measure_module", fail)
    monkeypatch.setattr(lut, "measure_latency", fail)


def test_missing_parts_are_measured_once_and_persisted(
    tiny_v2: Genotype, tmp_path: Path, count_measurements: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    assert len(table) == 0 and not table.path.exists()
    total = table.parts_ms(tiny_v2)
    assert len(count_measurements) == len(set(network_plan(tiny_v2))) == 8 == len(table)
    assert table.parts_ms(tiny_v2) == total and len(count_measurements) == 8
    assert table.path.parent == tmp_path and table.path.name.startswith("cpu-eager-")
    _forbid_measuring(monkeypatch)
    reopened = LatencyTable.open(CONFIG, tmp_path)
    assert len(reopened) == 8 and reopened.parts_ms(tiny_v2) == total


def test_parts_are_measured_in_the_memory_format_they_receive(
    tiny_v1: Genotype, tiny_v2: Genotype, tmp_path: Path
) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    table.parts_ms(tiny_v2)
    formats = [key.rsplit("|", 1)[1] for key in table.entries]
    # stem and first V2 unit get channels-last input; the V2 channel shuffle hands NCHW to every later part
    assert formats == ["nhwc", "nhwc"] + ["nchw"] * 6
    table.clear()
    table.parts_ms(tiny_v1)
    assert {key.rsplit("|", 1)[1] for key in table.entries} == {"nhwc"}  # V1 units keep channels-last


def test_prediction_applies_the_resolution_calibration(
    tiny_v2: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    parts = table.parts_ms(tiny_v2)
    table.calibrations[32] = Calibration(slope=2.0, intercept=1.0, networks=())
    _forbid_measuring(monkeypatch)
    assert table.predict_ms(tiny_v2) == pytest.approx(1.0 + 2.0 * parts)


def test_calibration_fit_recovers_a_linear_relation() -> None:
    networks = [(f"n{s}", 0.5 + 1.1 * s, s) for s in (2.0, 5.0, 9.0, 14.0)]
    fit = Calibration.fit(networks)
    assert fit.slope == pytest.approx(1.1) and fit.intercept == pytest.approx(0.5)
    assert fit.apply(10.0) == pytest.approx(11.5)


def test_calibration_falls_back_to_a_ratio_when_a_line_is_not_supported() -> None:
    single = Calibration.fit([("n", 6.0, 5.0)])
    assert (single.slope, single.intercept) == (pytest.approx(1.2), 0.0)
    two = Calibration.fit([("a", 4.0, 4.0), ("b", 9.0, 10.0)])  # geometric mean of 1.0 and 0.9
    assert (two.slope, two.intercept) == (pytest.approx(0.9**0.5), 0.0)
    # sums of parts almost equal, measured far apart (noise): a line through them would have a huge slope
    noisy = Calibration.fit([("a", 8.0, 10.0), ("b", 12.0, 10.1), ("c", 10.0, 10.05)])
    assert noisy.intercept == 0.0 and noisy.slope == pytest.approx(1.0, rel=0.05)


def test_missing_calibration_is_measured_lazily_and_persisted(
    tiny_v2: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lut, "CALIBRATION_NETWORKS", 2)
    monkeypatch.setattr(lut, "SearchSpace", lambda resolution: SearchSpace(budget_mflops=5, resolution=resolution))
    table = LatencyTable.open(CONFIG, tmp_path)
    predicted = table.predict_ms(tiny_v2)
    calibration = table.calibrations[32]
    assert len(calibration.networks) == 2 and calibration.slope > 0
    assert all(Genotype.from_string(network).resolution == 32 for network, _, _ in calibration.networks)
    _forbid_measuring(monkeypatch)
    assert LatencyTable.open(CONFIG, tmp_path).predict_ms(tiny_v2) == pytest.approx(predicted)


def test_networks_measured_whole_join_the_calibration(tiny_v2: Genotype, tmp_path: Path) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    before = table.calibration(tiny_v2.resolution)
    parts = table.parts_ms(tiny_v2)
    table.observe(tiny_v2, 1.0, parts)
    table.observe(tiny_v2, 2.0, parts)  # the same network again: its newer measurement replaces the older
    after = table.calibrations[tiny_v2.resolution]
    assert len(after.networks) == len(before.networks) + 1 and after.networks[-1][:2] == (str(tiny_v2), 2.0)
    assert LatencyTable.open(CONFIG, tmp_path).calibrations[tiny_v2.resolution] == after  # persisted


def test_calibration_networks_must_share_a_resolution(tiny_v2: Genotype, tmp_path: Path) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    with pytest.raises(InvalidArgumentError, match=r"genotypes must share one resolution, got \[32, 64\]"):
        table.calibrate([tiny_v2, tiny_v2.with_resolution(64)])


def _widened(genotype: Genotype, factor: int) -> Genotype:
    """The same structure with every stage (and the stem) ``factor`` times as wide."""
    data = genotype.to_dict()
    data["stem_channels"] *= factor
    for stage in data["stages"]:
        stage["out_channels"] *= factor
    return Genotype.from_dict(data)


def test_missing_parts_are_estimated_from_parts_of_the_same_structure(
    tiny_v2: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    narrow, wide, middle = _widened(tiny_v2, 1), _widened(tiny_v2, 4), _widened(tiny_v2, 2)
    # a part's "latency": 0.01 ms + 1 ms per million MACs, so the line through two neighbours is exact

    def fake_measure(module, input_shape, config, channels_last_input=None):  # type: ignore[no-untyped-def]
        ms = 0.01 + fvcore_macs(module, torch.zeros(1, *input_shape)) / 1e6
        return LatencyResult(ms, ms, ms, 0.0, 1, {"ci_rel": 0.0, "output_channels_last": False})

    monkeypatch.setattr(lut, "measure_module", fake_measure)
    for genotype in (narrow, wide):
        table.parts_ms(genotype)
    measured = len(table)
    exact = sum(0.01 + part_cost(spec).macs / 1e6 for spec in network_plan(middle))
    _forbid_measuring(monkeypatch)
    assert table.parts_ms(middle, estimate=True) == pytest.approx(exact)
    assert len(table) == measured and table.estimated == len(set(network_plan(middle)))  # estimates not stored
    once = table.estimated
    assert table.parts_ms(middle, estimate=True) == pytest.approx(exact)  # kept estimates, counted again
    assert table.estimated == 2 * once
    with pytest.raises(AssertionError, match="measured although"):
        table.parts_ms(tiny_v2.with_resolution(64), estimate=True)  # no parts of that structure: must measure


def _variant(genotype: Genotype, factor: int, **stage: object) -> Genotype:
    data = _widened(genotype, factor).to_dict()
    for gene in data["stages"]:
        gene.update(stage)
    return Genotype.from_dict(data)


def test_parts_of_an_unseen_structure_are_estimated_from_their_group(
    tiny_v2: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_measure(module, input_shape, config, channels_last_input=None):  # type: ignore[no-untyped-def]
        x = torch.zeros(1, *input_shape)
        memory_access, operators, _ = _trace_memory(module.eval(), x)
        ms = 0.01 + fvcore_macs(module, x) / 1e6 + 0.5 * memory_access / 1e6 + 0.002 * operators
        return LatencyResult(ms, ms, ms, 0.0, 1, {"ci_rel": 0.0, "output_channels_last": False})

    monkeypatch.setattr(lut, "measure_module", fake_measure)
    table = LatencyTable.open(CONFIG, tmp_path)
    for factor in (1, 2, 3):
        for kernel, se in ((3, False), (5, True)):
            table.parts_ms(_variant(tiny_v2, factor, kernel=kernel, se=se))
    unseen = _variant(tiny_v2, 2, kernel=7, se=False)  # kernel 7: no measured part has this structure
    exact = 0.0
    for spec in network_plan(unseen):
        part = part_cost(spec)
        exact += 0.01 + part.macs / 1e6 + 0.5 * part.memory_access / 1e6 + 0.002 * part.operators
    _forbid_measuring(monkeypatch)
    assert table.parts_ms(unseen, estimate=True) == pytest.approx(exact, rel=1e-6)
    assert table.estimated == len(network_plan(unseen)) - 2  # all but the stem and head, which were measured


# ---- keying and invalidation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "other",
    [
        MeasureConfig(threads=2, max_time_s=0.02),
        MeasureConfig(threads=1, batch=4, max_time_s=0.02),
        MeasureConfig(threads=1, dtype="bf16", max_time_s=0.02),
        MeasureConfig("onnxruntime", threads=1, max_time_s=0.02),
    ],
)
def test_each_measurement_key_has_its_own_table(other: MeasureConfig, tmp_path: Path) -> None:
    assert LatencyTable.open(other, tmp_path).path != LatencyTable.open(CONFIG, tmp_path).path


def test_time_cap_and_precision_do_not_change_the_key(tmp_path: Path) -> None:
    slower = MeasureConfig(threads=1, max_time_s=5.0, rel_precision=0.001)
    assert LatencyTable.open(slower, tmp_path).path == LatencyTable.open(CONFIG, tmp_path).path


@pytest.mark.parametrize("change", ["torch", "code", "anchor", "raw"])
def test_new_software_code_or_speed_anchor_opens_an_empty_table(
    change: str, tiny_v1: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    table.parts_ms(tiny_v1)
    config = CONFIG
    if change == "torch":
        monkeypatch.setattr(torch, "__version__", "9.9.9")
    elif change == "code":
        monkeypatch.setattr(lut, "code_fingerprint", lambda: "edited-blocks")
    elif change == "anchor":  # re-anchored speed: entries in the old anchor's units do not mix with new ones
        monkeypatch.setattr(lut, "reference_anchor_ms", lambda config: 123.0)
    else:
        config = MeasureConfig(threads=1, max_time_s=0.02, rel_precision=0.05, normalize=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh = LatencyTable.open(config, tmp_path)
    assert fresh.path != table.path and len(fresh) == 0
    # only a new anchor leaves the old table of this device and config unused, and says so
    assert [str(w.message).startswith(f"{table.path} holds") for w in caught] == [True] * (change == "anchor")
    monkeypatch.undo()
    assert len(LatencyTable.open(CONFIG, tmp_path)) == len(table)  # the old table is still there for the old key


def _invalid(problem: str) -> str:
    return rf"it holds an invalid entry \(ValueError: {re.escape(problem)}.*\)"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", r"it is not valid JSON \(.+\)"),
        ("[1, 2]", "its JSON is not an object"),
        ('{"key": {"target": "tpu"}}', "it holds the table of another measurement key"),
        # the right key, valid JSON, but an entry of another layout, type or range
        ({"part": {"extra": 1}}, _invalid("part 'x': PartEntry.__init__() got an unexpected keyword argument 'extra'")),
        ({"part": {"ms": -1.0}}, _invalid("part 'x': ms is -1.0, not a finite positive number")),
        ({"part": {"ms": "abc"}}, _invalid("part 'x': ms is 'abc', not a finite positive number")),
        ({"part": {"ms": float("nan")}}, _invalid("part 'x': ms is nan, not a finite positive number")),
        ({"part": {"ms": 0}}, _invalid("part 'x': ms is 0, not a finite positive number")),
        ({"part": {"runs": 2.5}}, _invalid("part 'x': runs is 2.5, not a finite positive integer")),
        ({"part": {"ci_rel": -0.1}}, _invalid("part 'x': ci_rel is -0.1, not a finite non-negative number")),
        ({"part": {"output_channels_last": 1}}, _invalid("part 'x': output_channels_last is 1, not a boolean")),
        ({"part": {"macs": None}}, _invalid("part 'x': macs is None, not a finite positive integer")),
        ({"part": {"group": 3}}, _invalid("part 'x': group is 3, not a string")),
        ({"calibration": {"slope": -2.0}}, _invalid("calibration '32': slope is -2.0, not a finite positive number")),
        ({"calibration": {"intercept": None}}, _invalid("calibration '32': intercept is None, not a finite number")),
        ({"calibration": {"intercept": 6.0}}, _invalid("calibration '32': intercept 6.0 is half the fastest")),
        ({"calibration": {"networks": [["g", -10.0, 8.0]]}}, _invalid("calibration '32': g's measured ms is -10.0")),
        ({"resolution": "0"}, _invalid("a calibration's resolution is 0, not a finite positive integer")),
    ],
)
def test_a_corrupt_table_is_set_aside_with_a_warning_and_replaced(
    content: str | dict[str, Any], problem: str, tiny_v1: Genotype, tmp_path: Path
) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    path = table.path
    if isinstance(content, dict):  # a valid table, changed
        part = asdict(PartEntry.of(network_plan(tiny_v1)[0], True, 1.0, True, 50, 0.01)) | content.get("part", {})
        calibration = asdict(Calibration.fit([("g", 10.0, 8.0)])) | content.get("calibration", {})
        resolution = content.get("resolution", "32")
        content = json.dumps({"key": table.key, "parts": {"x": part}, "calibration": {resolution: calibration}})
    path.write_text(content)
    message = rf"^{re.escape(str(path))} is corrupt: {problem}; moved it to {path.name}\.corrupt-"
    with pytest.warns(RuntimeWarning, match=message):
        reopened = LatencyTable.open(CONFIG, tmp_path)
    (moved,) = tmp_path.glob(f"{path.name}.corrupt-*")
    assert moved.read_text() == content and not path.exists() and len(reopened) == 0
    assert 0 < reopened.parts_ms(tiny_v1) < 1e3  # measured afresh
    assert len(LatencyTable.open(CONFIG, tmp_path)) == len(reopened) > 0  # the new table works


def test_a_valid_table_file_reads_back(tiny_v1: Genotype, tmp_path: Path) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    table.entries["x"] = PartEntry.of(network_plan(tiny_v1)[0], True, 1.0, True, 50, 0.01)
    table.calibrations[32] = Calibration.fit([("g", 10.0, 8.0), ("h", 20.0, 17.0), ("i", 30.0, 23.0)])
    table.save()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        reopened = LatencyTable.open(CONFIG, tmp_path)
    assert reopened.entries == table.entries and reopened.calibrations == table.calibrations


def test_a_table_of_a_former_speed_anchor_is_named_in_a_warning(
    tiny_v1: Genotype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path))
    old = LatencyTable.open(CONFIG, tmp_path)
    old.entries["x"] = PartEntry.of(network_plan(tiny_v1)[0], True, 1.0, True, 50, 0.01)
    old.save()
    anchors = tmp_path / "anchors.json"
    anchors.write_text(json.dumps(dict.fromkeys(json.loads(anchors.read_text()), "abc")))
    monkeypatch.setattr(_normalisation, "_anchors", {})  # as in a new process: anchors.json is set aside, re-measured
    with pytest.warns(RuntimeWarning) as caught:
        fresh = LatencyTable.open(CONFIG, tmp_path)
    assert [str(w.message).split(" ", 1)[0] for w in caught] == [str(anchors), str(old.path)]
    before, now = old.key["reference_anchor_ms"], fresh.key["reference_anchor_ms"]
    assert str(caught[1].message) == (
        f"{old.path} holds the latency table of this device and config for the speed anchor {before} ms, but the "
        f"anchor is now {now} ms (measured again, as after anchors.json was set aside or removed); its parts are "
        f"not used, and are measured afresh into {fresh.path.name}"
    )
    assert fresh.path != old.path and len(fresh) == 0 and old.path.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # warned once
        assert len(LatencyTable.open(CONFIG, tmp_path)) == 0


def test_saving_merges_entries_stored_by_another_process(tiny_v1: Genotype, tiny_v2: Genotype, tmp_path: Path) -> None:
    first, second = LatencyTable.open(CONFIG, tmp_path), LatencyTable.open(CONFIG, tmp_path)
    first.parts_ms(tiny_v1)
    second.parts_ms(tiny_v2)
    merged = LatencyTable.open(CONFIG, tmp_path)
    assert set(merged.entries) == set(first.entries) | set(second.entries)


def test_clear_forgets_entries_on_disk_too(tiny_v1: Genotype, tmp_path: Path) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    table.parts_ms(tiny_v1)
    table.clear()
    assert len(table) == 0 and not table.path.exists()


def test_default_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path / "lut"))
    assert default_cache_dir() == tmp_path / "lut"
    monkeypatch.delenv("SHUFFLENET_NAS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "shufflenet-nas" / "lut"


# ---- sampling and evaluation ------------------------------------------------------------------------------------
def test_sampled_architectures_are_distinct_and_reproducible() -> None:
    space = SearchSpace(resolution=64)
    first = space.sample_architectures(8, seed=3)
    assert len({g.arch_id for g in first}) == 8 and {g.resolution for g in first} == {64}
    assert space.sample_architectures(8, seed=3) == first
    assert space.sample_architectures(8, seed=4) != first


def test_evaluation_summarises_errors_and_timings(tiny_v1: Genotype) -> None:
    comparisons = [
        Comparison(tiny_v1, predicted, 10.0, predict_s=0.0002, measure_s=1.0) for predicted in (10.4, 9.3, 11.5, 10.0)
    ]
    summary = Evaluation.of(comparisons)
    assert summary.within_10 == 0.75 and summary.within_5 == 0.5
    assert summary.mape == pytest.approx((4 + 7 + 15 + 0) / 4)
    assert summary.predict_ms == pytest.approx(0.2) and summary.measure_s == 1.0 and summary.networks == 4


def test_compare_predicts_from_the_table_and_measures_the_network(tiny_v2: Genotype, tmp_path: Path) -> None:
    table = LatencyTable.open(CONFIG, tmp_path)
    table.calibrations[32] = Calibration(slope=1.0, intercept=0.0, networks=())
    result = compare(table, tiny_v2)
    assert result.predicted_ms == pytest.approx(table.parts_ms(tiny_v2))
    assert result.measured_ms > 0 and result.error == pytest.approx(result.predicted_ms / result.measured_ms - 1)
