from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from shufflenet_nas import Cost, InsufficientMemoryError, InvalidArgumentError, cost_range, count_cost, estimate_memory
from shufflenet_nas.nas import cost as cost_module
from shufflenet_nas.nas.cost import available_memory_bytes, check_fits_in_memory
from shufflenet_nas.nas.trace_cost import _trace_memory, fvcore_macs, traced_cost
from shufflenet_nas.search_spaces import BASELINES, Genotype, SearchSpace, SpaceRanges, build, resolve_arch
from shufflenet_nas.search_spaces.plan import PartSpec, UnitSpec, network_plan

# Papers' figures the counted MFLOPs must reproduce (paper-tables.md): within 2% for the 1x models of
# V1 Table 1 and the named models of V1 Table 5 / V2 Table 8; within 5% of V1 Table 2's 38M / 13M levels.
_SCALED_V1 = [name for name in BASELINES if name.startswith("shufflenet_v1") and ("x0_5" in name or "x0_25" in name)]
_NAMED = [name for name, b in BASELINES.items() if b.paper_mflops and name not in _SCALED_V1]


@pytest.mark.parametrize("name", _NAMED)
def test_counted_mflops_within_2_percent_of_paper(name: str) -> None:
    baseline = BASELINES[name]
    assert count_cost(baseline.genotype).mflops == pytest.approx(baseline.paper_mflops, rel=0.02)


@pytest.mark.parametrize("name", _SCALED_V1)
def test_scaled_v1_within_5_percent_of_table2_level(name: str) -> None:
    baseline = BASELINES[name]
    assert count_cost(baseline.genotype).mflops == pytest.approx(baseline.paper_mflops, rel=0.05)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("shufflenet_v2_x0_5", 1_366_792),
        ("shufflenet_v2_x1_0", 2_278_604),
        ("shufflenet_v2_x1_5", 3_503_624),
        ("shufflenet_v2_x2_0", 7_393_996),
        ("shufflenet_v2_x1_0_official", 2_278_760),
    ],
)
def test_v2_parameter_counts_are_exact(name: str, params: int) -> None:
    genotype = BASELINES[name].genotype
    assert count_cost(genotype).params == params
    assert sum(p.numel() for p in build(genotype).parameters()) == params


@pytest.mark.parametrize(
    ("name", "macs"),
    [
        ("shufflenet_v2_x0_5", 40_476_448),  # torchvision's metadata
        ("shufflenet_v2_x1_0", 144_907_992),
        ("shufflenet_v2_x1_5", 295_759_392),
        ("shufflenet_v2_x2_0", 583_253_464),
    ],
)
def test_v2_macs_match_torchvision_exactly(name: str, macs: int) -> None:
    assert count_cost(BASELINES[name].genotype).macs == macs


def test_official_v1_counts_match_megvii() -> None:
    # megvii-model/ShuffleNet-Series: g3 0.5x/1x/1.5x/2x = 37.59 / 137.46 / 292.44 / 524.05 M; g8 1x 138.37 M
    for name, mflops in [("g3_x0_5", 37.59), ("g3_x1_0", 137.46), ("g3_x1_5", 292.44), ("g3_x2_0", 524.05)]:
        assert round(count_cost(BASELINES[f"shufflenet_v1_{name}"].genotype).mflops, 2) == mflops
    assert round(count_cost(BASELINES["shufflenet_v1_g8_x1_0"].genotype).params / 1e6, 3) == 2.434


@pytest.mark.parametrize("name", ["shufflenet_v1_g3_x1_0", "shufflenet_v2_x1_0_official", "shufflenet_v2_x2_0_se"])
def test_part_sum_equals_whole_network_fvcore(name: str) -> None:
    genotype = BASELINES[name].genotype
    model = build(genotype).eval()
    assert count_cost(genotype).macs == fvcore_macs(model, torch.zeros(1, 3, 224, 224))


def test_batchnorm_is_not_counted() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)).eval()
    assert fvcore_macs(model, torch.zeros(1, 3, 10, 10)) == 10 * 10 * 8 * 3 * 9


def test_memory_access_of_a_1x1_conv_follows_the_v2_formula() -> None:
    # V2 paper, guideline 1: MAC = hw(c1 + c2) + c1 c2 for a 1x1 conv; with g groups + c1 c2 / g
    h = w = 14
    for c1, c2, g in [(32, 64, 1), (64, 64, 4)]:
        conv = nn.Conv2d(c1, c2, 1, groups=g, bias=False)
        memory_access, operators, peak = _trace_memory(conv, torch.zeros(1, c1, h, w))
        assert memory_access == h * w * (c1 + c2) + c1 * c2 // g
        assert operators == 1
        assert peak == 4 * h * w * (c1 + c2)


def test_cost_reflects_the_v2_guidelines(tiny_v2: Genotype) -> None:
    v2 = count_cost(BASELINES["shufflenet_v2_x1_0"].genotype)
    v1 = count_cost(BASELINES["shufflenet_v1_g8_x1_0"].genotype)
    assert v1.macs < v2.macs * 1.0 and v1.memory_access > v2.memory_access  # G2: groups raise MAC
    small = count_cost(tiny_v2)
    assert 0 < small.macs < v2.macs and small.operators > 0 and small.peak_activation_bytes > 0


def test_counting_leaves_the_callers_random_state_alone(tiny_v2: Genotype) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    count_cost(replace(tiny_v2, num_classes=7))  # a part not counted before: the network is built
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", [name for name in BASELINES if name.endswith("_noshuffle")])
def test_a_shuffle_costs_memory_access_and_a_kernel_but_no_flops(name: str) -> None:
    without = count_cost(BASELINES[name].genotype)
    with_shuffle = count_cost(BASELINES[name.removesuffix("_noshuffle")].genotype)
    assert (without.macs, without.params) == (with_shuffle.macs, with_shuffle.params)
    assert without.memory_access < with_shuffle.memory_access and without.operators == with_shuffle.operators - 16
    assert without.peak_activation_bytes <= with_shuffle.peak_activation_bytes
    v2 = BASELINES["shufflenet_v2_x0_5"].genotype
    v2_without = count_cost(Genotype.from_string(_V2_NO_SHUFFLE))
    assert v2_without.macs == count_cost(v2).macs and v2_without.operators == count_cost(v2).operators - 16


def _parts_of(genotypes: list[Genotype]) -> list[PartSpec]:
    return list(dict.fromkeys(spec for genotype in genotypes for spec in network_plan(genotype)))


_SHUFFLE_GENE = SpaceRanges(shuffle=(False, True))
_RANDOM_PARTS = _parts_of(
    [
        genotype
        for resolution, budget in [(32, 12.0), (64, 40.0)]
        for genotype in SearchSpace(budget_mflops=budget, resolution=resolution).sample_architectures(40, seed=1)
    ]
    + [  # units without shuffle: sampled, and grouped V2 units (the space samples none)
        *SearchSpace(budget_mflops=12.0, resolution=32, ranges=_SHUFFLE_GENE).sample_architectures(12, seed=2),
        *SearchSpace(budget_mflops=40.0, resolution=64, ranges=_SHUFFLE_GENE).sample_architectures(12, seed=2),
        Genotype.from_string("stem8s1-v2_n2_c32_g2_noshuffle-v2_n2_c64_g4_se_res_noshuffle-head0-in32"),
        Genotype.from_string("stem16s1-v2_n2_c32_g2_k5_noshuffle-v1_n2_c64_g2_noshuffle-in32-down_official"),
    ]
)


@pytest.mark.parametrize("spec", _RANDOM_PARTS, ids=lambda spec: getattr(spec, "label", lambda: repr(spec))())
def test_symbolic_replay_equals_the_traced_count_on_random_parts(spec: PartSpec) -> None:
    assert cost_module.replayed_cost(spec) == traced_cost(spec)


def test_symbolic_replay_equals_the_traced_count_on_every_paper_model() -> None:
    for spec in _parts_of([b.genotype for b in BASELINES.values()]):
        assert cost_module.replayed_cost(spec) == traced_cost(spec), spec


def test_random_parts_cover_every_kind() -> None:
    kinds = {cost_module._kind(spec) for spec in _RANDOM_PARTS}
    for unit in ("v1", "v2"):
        for stride in (1, 2):
            assert any(k[:2] == (unit, stride) and k[3] for k in kinds)  # with SE
            assert any(k[:3] == ("v1", stride, True) for k in kinds)  # grouped
        assert any(k[:2] == (unit, 1) and k[4] for k in kinds)  # residual
        for stride in (1, 2):
            assert any(k[:2] == (unit, stride) and not k[-1] for k in kinds)  # without shuffle
            assert any(k[:3] == (unit, stride, True) and not k[-1] for k in kinds)  # grouped, without shuffle
    assert {("stem", 1), ("stem", 2)} <= kinds and any(k[:2] == ("head", True) for k in kinds)


@pytest.fixture
def fresh_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Kind checks kept in a file of their own, nothing counted or checked yet in this process."""
    path = tmp_path / "cost_checks.json"
    monkeypatch.setattr(cost_module, "_checks_path", lambda: path)
    cost_module._checked_kinds.cache_clear()
    cost_module.part_cost.cache_clear()
    yield path
    cost_module._checked_kinds.cache_clear()
    cost_module.part_cost.cache_clear()


def test_a_kind_the_replay_gets_wrong_is_traced_with_a_warning(
    fresh_checks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = UnitSpec("v2", 24, 24, 1, 1, 0.5, 3, False, True, "", True, 9)
    wrong = Cost(1, 1, 1, 1, 1)
    monkeypatch.setattr(cost_module, "replayed_cost", lambda _spec: wrong)
    with pytest.warns(RuntimeWarning, match="disagrees with the traced count"):
        first = cost_module.part_cost(spec)
    second = cost_module.part_cost(replace(spec, resolution=10))
    assert first == traced_cost(spec) and second == traced_cost(replace(spec, resolution=10))
    assert cost_module._checked_kinds()[repr(cost_module._kind(spec))] is False


def test_a_kinds_check_is_kept_for_the_next_process_of_the_same_code(
    fresh_checks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    genotype = BASELINES["shufflenet_v2_x0_5"].genotype.with_resolution(32)
    first = count_cost(genotype)
    kinds = {repr(cost_module._kind(spec)) for spec in network_plan(genotype)}
    stored = json.loads(fresh_checks.read_text())
    version = cost_module._checks_fingerprint()
    assert list(stored) == [version] and set(stored[version]) == kinds and all(stored[version].values())
    # A new process (caches cleared) trusts the stored checks: it counts without building a module.
    cost_module._checked_kinds.cache_clear()
    cost_module.part_cost.cache_clear()
    monkeypatch.setattr("shufflenet_nas.nas.trace_cost.traced_cost", lambda spec: pytest.fail(f"traced {spec}"))
    assert count_cost(genotype.with_resolution(40)).macs > 0 and count_cost(genotype) == first


def test_checks_of_other_code_versions_are_not_trusted(fresh_checks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    genotype = BASELINES["shufflenet_v2_x0_5"].genotype.with_resolution(32)
    stem_kind = repr(cost_module._kind(network_plan(genotype)[0]))
    fresh_checks.write_text(json.dumps({"0123456789abcdef": {stem_kind: True}}))
    traced: list[object] = []
    real = traced_cost
    monkeypatch.setattr("shufflenet_nas.nas.trace_cost.traced_cost", lambda spec: traced.append(spec) or real(spec))
    count_cost(genotype)
    kept = json.loads(fresh_checks.read_text())  # the other version's verdicts stay, for its environment
    assert traced and set(kept) == {"0123456789abcdef", cost_module._checks_fingerprint()}


# ---- counting without allocating -----------------------------------------------------------------------------
_HUGE = Genotype.from_string(
    "stem32s1-v2_n10_c8192_r0.25_k7_se_res-v2_n10_c8192_r0.25_k7_se_res-v2_n10_c8192_r0.25_k7_se_res-head8192-in2048"
)


def test_parts_too_big_to_build_are_counted_by_the_replay_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shufflenet_nas.nas.trace_cost.traced_cost", lambda spec: pytest.fail(f"traced {spec}"))
    cost_module.part_cost.cache_clear()
    try:
        cost = count_cost(_HUGE)
    finally:
        cost_module.part_cost.cache_clear()
    assert cost.params > 2 * 10**9 and cost.peak_activation_bytes > 100 * 2**30  # never allocated


# ---- memory estimate ------------------------------------------------------------------------------------------
_V2_NO_SHUFFLE = "stem24-v2_n4_c48_noshuffle-v2_n8_c96_noshuffle-v2_n4_c192_noshuffle"


@pytest.mark.parametrize(
    "name",
    [
        "shufflenet_v2_x1_0",
        "shufflenet_v1_g3_x1_0",
        "shufflenet_v2_x0_5",
        "shufflenet_v1_g3_x1_0_noshuffle",
        _V2_NO_SHUFFLE,
    ],
)
@pytest.mark.parametrize("batch", [1, 3])
def test_memory_estimate_matches_the_built_network(name: str, batch: int) -> None:
    genotype = resolve_arch(name).with_resolution(64)
    model = build(genotype).eval()
    with torch.no_grad():
        _, _, peak = _trace_memory(model, torch.zeros(batch, 3, 64, 64))
    estimate = estimate_memory(genotype, batch)
    assert estimate.weights_bytes == 4 * sum(p.numel() for p in model.parameters())
    assert estimate.activation_bytes == peak  # the live activations of the whole forward, exactly
    half = estimate_memory(genotype, batch, "bf16")
    assert (half.weights_bytes, half.activation_bytes) == (estimate.weights_bytes // 2, estimate.activation_bytes // 2)


def test_tiny_network_weights_are_params_times_four_bytes(tiny_v2: Genotype) -> None:
    estimate = estimate_memory(tiny_v2, batch=8)
    assert estimate.weights_bytes == count_cost(tiny_v2).params * 4 == 14_234 * 4
    assert estimate.total_bytes == estimate.weights_bytes + estimate.activation_bytes


def test_a_network_that_does_not_fit_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "available_memory_bytes", lambda device: 20 * 2**30)
    with pytest.raises(InsufficientMemoryError) as caught:
        check_fits_in_memory(_HUGE, batch=64)
    estimate = estimate_memory(_HUGE, batch=64)
    gib = [f"{n / 2**30:.1f} GiB" for n in (estimate.total_bytes, estimate.weights_bytes, estimate.activation_bytes)]
    assert str(caught.value) == (
        f"{_HUGE.arch_id} needs about {gib[0]} (weights {gib[1]} + activations {gib[2]} at batch 64, fp32) but "
        "20.0 GiB is free in memory; lower the batch, the resolution or the widths"
    )
    small = BASELINES["shufflenet_v2_x1_0"].genotype
    assert check_fits_in_memory(small, batch=8) == estimate_memory(small, batch=8)  # fits: the estimate


def test_memory_estimate_rejects_bad_values(tiny_v2: Genotype) -> None:
    with pytest.raises(InvalidArgumentError, match="dtype='fp8' unknown"):
        estimate_memory(tiny_v2, dtype="fp8")
    with pytest.raises(InvalidArgumentError, match="batch=0: need at least 1"):
        estimate_memory(tiny_v2, batch=0)
    with pytest.raises(InvalidArgumentError, match="device='tpu' unknown"):
        check_fits_in_memory(tiny_v2, device="tpu")


def test_free_memory_is_memavailable_or_the_cgroup_limit(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       65536000 kB\nMemFree:  100 kB\nMemAvailable:   2097152 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    monkeypatch.setattr(cost_module, "_MEMINFO", meminfo)
    monkeypatch.setattr(cost_module, "_CGROUP", cgroup)
    assert available_memory_bytes("cpu") == 2 * 2**30  # no cgroup files: MemAvailable
    (cgroup / "memory.max").write_text("max\n")
    (cgroup / "memory.current").write_text("123\n")
    assert available_memory_bytes("cpu") == 2 * 2**30  # no limit
    (cgroup / "memory.max").write_text(f"{2**30}\n")
    (cgroup / "memory.current").write_text(f"{2**28}\n")
    assert available_memory_bytes("cpu") == 2**30 - 2**28  # the container's limit is tighter


def test_free_gpu_memory_is_cudas_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert available_memory_bytes("cuda") is None  # no GPU: nothing to check (the target check says why)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (3 * 2**30, 80 * 2**30))
    assert available_memory_bytes("cuda") == 3 * 2**30
    with pytest.raises(InsufficientMemoryError, match=r"but 3.0 GiB is free on the GPU; lower the batch"):
        check_fits_in_memory(BASELINES["shufflenet_v2_x1_0"].genotype, batch=4096, device="cuda")


# ---- the cost range of a search space -------------------------------------------------------------------------
def _random_samples(space: SearchSpace, count: int, seed: int) -> list[Genotype]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [space.sample(study.ask()) for _ in range(count)]


@pytest.mark.parametrize(("budget", "resolution"), [(0.1, 32), (12.0, 32), (146.0, 224), (1e30, 64)])
def test_every_sample_costs_between_the_spaces_extremes(budget: float, resolution: int) -> None:
    space = SearchSpace(budget_mflops=budget, resolution=resolution)
    low, high = cost_range(space)
    for genotype in _random_samples(space, 40, seed=resolution):
        cost = count_cost(genotype)
        family, groups = genotype.stages[0].unit, genotype.stages[0].groups
        smallest, largest = count_cost(space.smallest(family, groups)), count_cost(space.largest(family, groups))
        for name in ("macs", "params", "memory_access", "operators", "peak_activation_bytes"):
            value = getattr(cost, name)
            assert (
                getattr(low, name) <= getattr(smallest, name) <= value <= getattr(largest, name) <= getattr(high, name)
            )


def test_samples_with_a_shuffle_gene_cost_between_the_spaces_extremes() -> None:
    space = SearchSpace(budget_mflops=12.0, resolution=32, ranges=_SHUFFLE_GENE)
    low, high = cost_range(space)
    default_low, default_high = cost_range(SearchSpace(budget_mflops=12.0, resolution=32))
    assert low.memory_access < default_low.memory_access and high == default_high  # the cheapest shuffles nothing
    for genotype in _random_samples(space, 40, seed=5):
        cost = count_cost(genotype)
        for name in ("macs", "params", "memory_access", "operators", "peak_activation_bytes"):
            assert getattr(low, name) <= getattr(cost, name) <= getattr(high, name)


def test_a_part_too_big_to_trace_of_a_kind_the_replay_got_wrong_is_not_replayed(
    fresh_checks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = network_plan(_HUGE)[2]
    sentinel = Cost(7, 7, 7, 7, 7)
    cost_module._checked_kinds()[repr(cost_module._kind(spec))] = False
    monkeypatch.setattr("shufflenet_nas.nas.trace_cost.traced_cost", lambda _spec: sentinel)
    assert cost_module.part_cost(spec) == sentinel
