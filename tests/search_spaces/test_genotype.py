from __future__ import annotations

import json

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shufflenet_nas.search_spaces import BASELINES, Genotype, SearchSpace, StageGene, resolve_arch


def _sampled_genotype(seed: int, families: tuple[str, ...]) -> Genotype:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return SearchSpace(families=families, budget_mflops=100, resolution=64).sample(study.ask())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), families=st.sampled_from([("v1",), ("v2",), ("v1", "v2")]))
def test_string_and_json_round_trip_exactly(seed: int, families: tuple[str, ...]) -> None:
    genotype = _sampled_genotype(seed, families)
    assert Genotype.from_string(genotype.to_string()) == genotype
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert Genotype.from_string(genotype.to_string()).arch_id == genotype.arch_id


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_round_trips(name: str) -> None:
    genotype = BASELINES[name].genotype
    assert Genotype.from_string(str(genotype)) == genotype
    assert Genotype.from_dict(json.loads(genotype.to_json())) == genotype


def test_canonical_string_is_readable() -> None:
    assert str(BASELINES["shufflenet_v2_x1_0"].genotype) == (
        "stem24s4-v2_n4_c116_g1_r0.5_k3-v2_n8_c232_g1_r0.5_k3-v2_n4_c464_g1_r0.5_k3"
        "-head1024-down_tv-fc_bias-in224-cls1000"
    )
    assert str(BASELINES["shufflenet_v1_g3_x1_0"].genotype).startswith("stem24s4-v1_n4_c240_g3_k3_res-")


def test_arch_id_is_a_short_content_hash() -> None:
    a = BASELINES["shufflenet_v2_x1_0"].genotype
    assert len(a.arch_id) == 12
    assert a.arch_id == Genotype.from_string(str(a)).arch_id
    assert a.arch_id != a.with_resolution(160).arch_id


def test_short_strings_take_defaults() -> None:
    genotype = Genotype.from_string("stem24-v2_n4_c116-v2_n8_c232-v2_n4_c464")
    assert genotype == BASELINES["shufflenet_v2_x1_0"].genotype


def _v1(c: int, groups: int = 3) -> StageGene:
    return StageGene("v1", 2, c, groups=groups, residual=True)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Genotype(24, ()), "no stages"),
        (lambda: Genotype(24, (_v1(233, 8),)), "stage 2: 233 channels not divisible by groups=8"),
        (lambda: Genotype(24, (StageGene("v2", 2, 117),)), "stage 2: 117 channels is odd"),
        (lambda: Genotype(240, (_v1(240),)), "stride-2 v1 unit needs more out channels than in channels"),
        (
            lambda: Genotype(25, (_v1(240),)),
            "stride-2 branch of 215 channels (out 240 - in 25) not divisible by groups=3",
        ),
        (lambda: Genotype(24, (_v1(60), _v1(480, 8))), "stage 3: stride-2 branch of 420 channels (out 480 - in 60)"),
        (lambda: Genotype(24, (StageGene("v2", 2, 116, split_ratio=0.3),)), "split ratio 0.3 of 116 channels"),
        (lambda: Genotype(24, (StageGene("v2", 2, 116, split_ratio=1.0),)), "strictly between 0 and 1"),
        (lambda: Genotype(24, (StageGene("v1", 2, 240, groups=3, split_ratio=0.25),)), "applies to v2 units only"),
        (lambda: Genotype(24, (StageGene("v2", 2, 116, kernel=4),)), "stage 2: kernel 4 not supported"),
        (lambda: Genotype(24, (StageGene("v2", 0, 116),)), "stage 2: 0 repeats"),
        (lambda: Genotype(24, (StageGene("v3", 2, 116),)), "unit type 'v3' unknown"),  # type: ignore[arg-type]
        (lambda: Genotype(24, (StageGene("v2", 2, 116),), stem_stride=3), "stem: stride 3 not supported"),
        (lambda: Genotype(24, (StageGene("v2", 2, 116),) * 3, resolution=16), "input resolution 16 is too small"),
        (lambda: Genotype(24, (StageGene("v2", 2, 16),), downsample="official"), "official stride-2 v2 unit"),
        (
            lambda: Genotype(24, (StageGene("v2", 2, 116, groups=4),)),
            "stage 2: branch of 58 channels not divisible by groups=4",
        ),
        (lambda: Genotype(24, (StageGene("v2", 2, 118, groups=4),)), "stage 2: 118 channels not divisible by groups=4"),
        (lambda: Genotype.from_string("stem24s4-v2_n4_c116_z3"), "unknown token 'z3'"),
        (lambda: Genotype.from_string("v2_n4_c116"), "genotype must start with stem"),
        (lambda: Genotype.from_string("stem24-v2_n4"), "missing out_channels"),
        (lambda: Genotype.from_string("stem24-v2_n4_c116-tail"), "unknown genotype section 'tail'"),
        (lambda: Genotype.from_json("{not json"), "not valid JSON"),
        (lambda: Genotype.from_json('{"stem_channels": 24}'), "does not match the schema"),
    ],
)
def test_invalid_genotypes_are_rejected_with_the_values(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as error:
        build()
    assert message in str(error.value)


def test_resolve_arch_accepts_name_string_json_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    genotype = BASELINES["shufflenet_v1_g8_x1_0"].genotype
    path = tmp_path / "arch.json"
    path.write_text(genotype.to_json())
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"genotype": str(genotype), "mflops": 1.0}))
    assert resolve_arch("shufflenet_v1_g8_x1_0") == genotype
    assert resolve_arch(str(genotype)) == genotype
    assert resolve_arch(path) == genotype
    assert resolve_arch(str(wrapped)) == genotype
    with pytest.raises(ValueError, match="does not exist"):
        resolve_arch(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="not a baseline name"):
        resolve_arch("resnet50")


# ---- limits: checked on every path into a genotype, before anything is built ----------------------------------
_V2 = "stem24s4-v2_n4_c116-v2_n8_c232-v2_n4_c464"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stem24s4-v2_n4_c100000_g1_r0.5_k3", "stage 2: 100000 channels is above the limit of 8192"),
        ("stem24s4-v2_n4_c116-v2_n8_c232-v2_n4_c8200", "stage 4: 8200 channels is above the limit of 8192"),
        ("stem9000s4-v2_n4_c116", "stem: 9000 channels is above the limit of 8192"),
        (f"{_V2}-head100000", "head: 100000 channels is above the limit of 8192"),
        ("stem24s4-v2_n4_c116-v2_n257_c232", "stage 3: 257 repeats is above the limit of 256"),
        ("stem8s1" + "-v2_n1_c16" * 9 + "-in4096", "genotype: 9 stages is above the limit of 8"),
        (f"{_V2}-in100000", "input resolution 100000 is above the limit of 2048"),
        (f"{_V2}-in0", "input resolution 0; need at least 1"),
        (f"{_V2}-cls1000000", "classifier: 1000000 classes is above the limit of 100000"),
    ],
)
def test_values_above_the_limits_are_rejected_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        Genotype.from_string(text)
    assert str(error.value) == message


def test_json_and_the_constructor_check_the_limits_too() -> None:
    data = json.loads(Genotype.from_string(_V2).to_json())
    data["stages"][1]["out_channels"] = 100_000
    with pytest.raises(ValueError, match=r"^stage 3: 100000 channels is above the limit of 8192$"):
        Genotype.from_json(json.dumps(data))
    with pytest.raises(ValueError, match=r"^classifier: 200000 classes is above the limit of 100000$"):
        Genotype(24, (StageGene("v2", 4, 116),), num_classes=200_000)
    with pytest.raises(ValueError, match=r"^stage 2: 1e\+30 channels is above the limit of 8192$"):
        Genotype.from_dict({"stem_channels": 24, "stages": [{"unit": "v2", "repeats": 4, "out_channels": 1e30}]})


def test_limits_themselves_are_accepted() -> None:
    genotype = Genotype.from_string("stem8192s4-v2_n256_c8192-head8192-in2048-cls100000")
    assert genotype.stem_channels == genotype.head_channels == genotype.stages[0].out_channels == 8192
    assert (genotype.resolution, genotype.num_classes, genotype.stages[0].repeats) == (2048, 100_000, 256)


def test_with_resolution_validates_and_gets_its_own_arch_id() -> None:
    genotype = BASELINES["shufflenet_v2_x1_0"].genotype
    assert genotype.arch_id  # computed and cached on the original
    moved = genotype.with_resolution(160)
    assert moved.arch_id == Genotype.from_string(str(moved)).arch_id != genotype.arch_id
    with pytest.raises(ValueError, match="input resolution 100000 is above the limit of 2048"):
        genotype.with_resolution(100_000)
    with pytest.raises(ValueError, match="input resolution 16 is too small"):
        genotype.with_resolution(16)


# ---- the shuffle gene ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "arch_id"),
    [  # pinned before the shuffle gene existed: a gene that is on adds nothing to the string or the hash
        ("shufflenet_v1_g3_x1_0", "470552ffca76"),
        ("shufflenet_v1_g8_x0_25", "adf3b17450f3"),
        ("shufflenet_v1_g3_x2_0_se", "6200a8903eef"),
        ("shufflenet_v2_x1_0", "57e96f55b205"),
        ("shufflenet_v2_x2_0_se", "dfab6461812a"),
    ],
)
def test_arch_ids_of_the_paper_models_are_as_before_the_shuffle_gene(name: str, arch_id: str) -> None:
    assert BASELINES[name].genotype.arch_id == arch_id


def test_shuffle_off_is_a_noshuffle_token_that_round_trips() -> None:
    on = Genotype.from_string("stem24-v1_n2_c240_g3_res-v2_n2_c480")
    off = Genotype.from_string("stem24-v1_n2_c240_g3_res_noshuffle-v2_n2_c480_noshuffle")
    assert [s.shuffle for s in on.stages] == [True, True] and [s.shuffle for s in off.stages] == [False, False]
    assert "shuffle" not in str(on) and str(off).count("_noshuffle") == 2
    assert off.stages[0].to_string() == "v1_n2_c240_g3_k3_res_noshuffle"
    assert off.arch_id != on.arch_id and Genotype.from_string(str(off)) == off
    assert Genotype.from_json(off.to_json()) == off and json.loads(off.to_json())["stages"][0]["shuffle"] is False
    old = json.loads(on.to_json())  # JSON written before the gene existed: no "shuffle" key, shuffle on
    for stage in old["stages"]:
        del stage["shuffle"]
    assert Genotype.from_dict(old) == on


def test_a_v1_stage_without_groups_has_no_shuffle_to_turn_off() -> None:
    with pytest.raises(ValueError, match=r"^stage 2: a v1 stage with groups=1 has no channel shuffle to turn off"):
        Genotype.from_string("stem24-v1_n2_c240_g1_noshuffle")
    assert not Genotype.from_string("stem24-v2_n2_c240_g1_noshuffle").stages[0].shuffle  # v2: the concat's


def test_the_no_shuffle_baselines_are_v1_table3_beside_their_twins() -> None:
    ablations = {name: b for name, b in BASELINES.items() if name.endswith("_noshuffle")}
    assert len(BASELINES) == 33 and len(ablations) == 6
    errors = {
        name.removeprefix("shufflenet_v1_").removesuffix("_noshuffle"): b.paper_top1_error
        for name, b in ablations.items()
    }
    assert errors == {
        "g3_x1_0": 34.5,
        "g8_x1_0": 37.6,
        "g3_x0_5": 45.7,
        "g8_x0_5": 48.1,
        "g3_x0_25": 56.3,
        "g8_x0_25": 56.5,
    }
    for name, baseline in ablations.items():
        twin = BASELINES[name.removesuffix("_noshuffle")]
        assert baseline.variant == "ablation" and baseline.paper_mflops == twin.paper_mflops
        assert baseline.paper_top1_error > twin.paper_top1_error  # type: ignore[operator]
        assert all(not stage.shuffle for stage in baseline.genotype.stages)
        assert list(baseline.genotype.to_dict()["stages"]) == [
            {**stage, "shuffle": False} for stage in twin.genotype.to_dict()["stages"]
        ]
