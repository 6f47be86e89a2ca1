from __future__ import annotations

import json
import math
import warnings

import optuna
import pytest

from shufflenet_nas import InvalidArgumentError, SpaceRanges
from shufflenet_nas.search_spaces import Genotype, SearchSpace
from shufflenet_nas.search_spaces.genotype import MAX_CHANNELS

V1_GROUPS = SpaceRanges().v1_groups


def _samples(space: SearchSpace, count: int, seed: int = 0) -> list[Genotype]:
    """Random samples from an in-memory study: sampling builds nothing."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [space.sample(study.ask()) for _ in range(count)]


@pytest.mark.parametrize("families", [("v1",), ("v2",), ("v1", "v2")])
def test_an_enormous_budget_samples_only_valid_genotypes_within_the_channel_limit(families: tuple[str, ...]) -> None:
    space = SearchSpace(families, budget_mflops=1e30)
    for genotype in _samples(space, 50):  # each one validated on construction
        widths = [genotype.stem_channels, genotype.head_channels, *(s.out_channels for s in genotype.stages)]
        assert max(widths) <= MAX_CHANNELS
        if genotype.family == "V1-style":
            assert genotype.stem_channels < genotype.stages[0].out_channels < genotype.stages[1].out_channels
    for family in families:
        for index in range(3):
            low, high = space.width_range(family, index)
            assert low <= high <= MAX_CHANNELS


@pytest.mark.parametrize("groups", V1_GROUPS)
def test_v1_widths_at_the_cap_still_widen_and_divide_by_their_groups(groups: int) -> None:
    genotype = SearchSpace(("v1",), budget_mflops=1e30).largest("v1", groups)
    widths = [genotype.stem_channels, *(s.out_channels for s in genotype.stages)]
    assert widths == sorted(set(widths)) and widths[-1] <= MAX_CHANNELS
    assert all(width % math.lcm(2, groups) == 0 for width in widths)


@pytest.mark.parametrize(("budget", "resolution"), [(0.1, 32), (146.0, 224), (1e30, 64)])
@pytest.mark.parametrize(("family", "groups"), [("v2", 1), *(("v1", g) for g in V1_GROUPS)])
def test_smallest_and_largest_are_samples_a_fixed_trial_replays(
    budget: float, resolution: int, family: str, groups: int
) -> None:
    space = SearchSpace(budget_mflops=budget, resolution=resolution)
    for largest in (False, True):
        trial = space._extreme_trial(family, groups, largest)
        genotype = space.sample(trial)
        assert genotype == (space.largest if largest else space.smallest)(family, groups)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # FixedTrial warns about a value outside a parameter's range
            assert space.sample(optuna.trial.FixedTrial(trial.params)) == genotype
        assert {s.kernel for s in genotype.stages} == ({7} if largest else {3})
        assert {s.se for s in genotype.stages} == {largest}


def test_smallest_and_largest_bound_the_depths_and_widths_of_samples() -> None:
    space = SearchSpace(("v2",), budget_mflops=40, resolution=64)
    smallest, largest = space.smallest("v2"), space.largest("v2")
    for genotype in _samples(space, 30, seed=3):
        for low, stage, high in zip(smallest.stages, genotype.stages, largest.stages, strict=True):
            assert low.repeats <= stage.repeats <= high.repeats
            assert low.out_channels <= stage.out_channels <= high.out_channels
        assert smallest.head_channels <= genotype.head_channels <= largest.head_channels


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"resolution": 100_000}, "resolution=100000 is above the limit of 2048"),
        ({"resolution": 4}, "resolution=4 is too small for the space; use at least 8"),
        ({"budget_mflops": math.inf}, "budget_mflops=inf: give a positive number of MFLOPs"),
        ({"budget_mflops": math.nan}, "budget_mflops=nan: give a positive number"),
        ({"budget_mflops": 0}, "budget_mflops=0: give a positive number"),
        ({"num_classes": 0}, "num_classes=0: give 1 to 100000 classes"),
        ({"num_classes": 200_000}, "num_classes=200000: give 1 to 100000 classes"),
        ({"families": ("v3",)}, "families=('v3',): draw them from ('v1', 'v2')"),
    ],
)
def test_a_space_out_of_limits_is_rejected(values: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        SearchSpace(**values)  # type: ignore[arg-type]
    assert str(error.value).startswith(message)


def test_extremes_of_a_family_or_groups_the_space_lacks_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="family='v1' is not in this space"):
        SearchSpace(("v2",)).smallest("v1")
    with pytest.raises(InvalidArgumentError, match="groups=5 is not in the v1 space"):
        SearchSpace().largest("v1", 5)
    with pytest.raises(InvalidArgumentError, match="groups=2 is not in the v2 space"):
        SearchSpace().largest("v2", 2)


def test_the_ranges_decide_what_is_sampled() -> None:
    ranges = SpaceRanges(
        stem_range=(16, 16),
        depth_ranges=((1, 1), (2, 3), (1, 1)),
        head_range=(1024, 1024),
        kernels=(5,),
        split_ratios=(0.125, 0.875),
        v1_groups=(2, 4),
    )
    for genotype in _samples(SearchSpace(budget_mflops=40, resolution=64, ranges=ranges), 30):
        assert genotype.stem_channels == 16
        assert [s.repeats for s in genotype.stages][::2] == [1, 1] and genotype.stages[1].repeats in (2, 3)
        assert {s.kernel for s in genotype.stages} == {5}
        if genotype.family == "V2-style":
            assert genotype.head_channels == 1024 and {s.split_ratio for s in genotype.stages} <= {0.125, 0.875}
        else:
            assert {s.groups for s in genotype.stages} <= {2, 4}
    narrow = SearchSpace(("v2",), budget_mflops=40, resolution=64, ranges=SpaceRanges(width_factors=(1.0, 1.0)))
    assert all(low == high for low, high in (narrow.width_range("v2", stage) for stage in range(3)))
    dims = {d.name: d.choices for d in SearchSpace(ranges=ranges).dimensions()}
    assert dims["stem.width"] == "16..16" and dims["stage2.kernel"] == "5" and dims["v1.groups"] == "2, 4"
    assert SearchSpace(ranges=ranges).largest("v1", 4).stages[0].kernel == 5


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"stem_range": (32, 8)}, "stem_range=(32, 8): give (low, high) with 1 <= low <= high"),
        ({"stem_range": (0, 8)}, "stem_range=(0, 8): give (low, high) with 1 <= low"),
        ({"stem_range": (8,)}, "stem_range=(8,): give (low, high)"),
        ({"depth_ranges": ((2, 6), (4, 10))}, "depth_ranges=((2, 6), (4, 10)): give 3 (low, high) pairs"),
        ({"depth_ranges": ((2, 6), (0, 10), (2, 6))}, "depth_ranges=((2, 6), (0, 10), (2, 6)): give 3"),
        ({"width_factors": (1.3, 0.45)}, "width_factors=(1.3, 0.45): give (low, high)"),
        ({"head_range": (512, 1000)}, "head_range=(512, 1000): high - low must be a multiple of 128"),
        ({"kernels": ()}, "kernels=(): give one or more distinct kernel sizes of (3, 5, 7)"),
        ({"kernels": (4,)}, "kernels=(4,): give one or more distinct kernel sizes"),
        ({"kernels": (3, 3)}, "kernels=(3, 3): give one or more distinct"),
        ({"split_ratios": (0.5, 1.0)}, "split_ratios=(0.5, 1.0): give one or more distinct multiples of 1/8"),
        ({"split_ratios": (0.3,)}, "split_ratios=(0.3,): give one or more distinct multiples of 1/8"),
        ({"v1_groups": (0, 1)}, "v1_groups=(0, 1): give one or more distinct group counts of 1, 2, 3, 4, 6, 8"),
        ({"v1_groups": (5,)}, "v1_groups=(5,): give one or more distinct group counts"),
        ({"stem_range": (8.5, 32)}, "stem_range=(8.5, 32): give a sequence of ints (not floats or bools)"),
        ({"stem_range": (8.0, 32)}, "stem_range=(8.0, 32): give a sequence of ints"),
        ({"head_range": (True, 1536)}, "head_range=(True, 1536): give a sequence of ints"),
        ({"depth_ranges": ((2, 6), (4, 10.5), (2, 6))}, "depth_ranges=((2, 6), (4, 10.5), (2, 6)): give a sequence"),
        ({"depth_ranges": (2, 6)}, "depth_ranges=(2, 6): give a sequence of (low, high) pairs of ints"),
        ({"kernels": (3, 5.0)}, "kernels=(3, 5.0): give a sequence of ints"),
        ({"kernels": 3}, "kernels=3: give a sequence of ints"),
        ({"v1_groups": (True,)}, "v1_groups=(True,): give a sequence of ints (not floats or bools)"),
        ({"v1_groups": "12"}, "v1_groups='12': give a sequence of ints"),
        ({"width_factors": (True, 1.3)}, "width_factors=(True, 1.3): give a sequence of numbers (not bools)"),
        ({"split_ratios": (0.5, False)}, "split_ratios=(0.5, False): give a sequence of numbers (not bools)"),
        ({"shuffle": (1,)}, "shuffle=(1,): give a sequence of bools (not numbers or strings)"),
        ({"shuffle": True}, "shuffle=True: give a sequence of bools"),
        ({"shuffle": (True, True)}, "shuffle=(True, True): give one or more distinct bools"),
        ({"shuffle": ()}, "shuffle=(): give one or more distinct bools"),
    ],
)
def test_bad_ranges_are_rejected_naming_the_field(values: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        SpaceRanges(**values)  # type: ignore[arg-type]
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "ranges",
    [
        SpaceRanges(),
        SpaceRanges(stem_range=(16, 16), depth_ranges=((1, 1), (2, 3), (1, 1)), width_factors=(1, 2), kernels=(5,)),
        SpaceRanges(head_range=(1024, 1024), split_ratios=(0.125, 0.875), v1_groups=(2, 4)),
        SpaceRanges(shuffle=(False, True)),
    ],
)
def test_ranges_rebuild_exactly_from_the_json_a_study_records(ranges: SpaceRanges) -> None:
    recorded = json.loads(json.dumps(ranges.to_dict()))  # lists, as a study's user attributes hold them
    for rebuilt in (SpaceRanges.from_dict(recorded), SpaceRanges(**recorded)):
        assert rebuilt == ranges and hash(rebuilt) == hash(ranges) and rebuilt.to_dict() == recorded
        assert all(isinstance(getattr(rebuilt, name), tuple) for name in recorded)
    assert SpaceRanges.from_dict({**recorded, "target": "cpu"}) == ranges  # a study's other settings aside
    assert SpaceRanges.from_dict({}) == SpaceRanges()
    assert {ranges, SpaceRanges.from_dict(recorded)} == {ranges}


# ---- the shuffle gene ------------------------------------------------------------------------------------------
def test_seeded_samples_of_the_default_space_are_as_before_the_shuffle_gene() -> None:
    # pinned before the gene existed: with no choice of shuffle, sampling draws nothing more
    assert [g.arch_id for g in SearchSpace().sample_architectures(4, seed=0)] == [
        "e0fc4290ffbb",
        "f044b4ae4b69",
        "7b7fa2471be1",
        "a74d47986176",
    ]
    small = SearchSpace(budget_mflops=12, resolution=32).sample_architectures(4, seed=0)
    assert [g.arch_id for g in small] == ["e1add0057dc8", "8dad7308304e", "48cddc2eb7ed", "c05de96bf4a6"]
    assert "stage2.shuffle" not in {d.name for d in SearchSpace().dimensions()}


def test_a_searchable_shuffle_is_a_gene_per_stage_where_a_unit_has_a_shuffle() -> None:
    space = SearchSpace(budget_mflops=40, resolution=64, ranges=SpaceRanges(shuffle=(False, True)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        genotype = space.sample(trial)
        has_gene = genotype.stages[0].unit == "v2" or genotype.stages[0].groups > 1
        names = {f"stage{n}.shuffle" for n in (2, 3, 4)}
        assert (names <= trial.params.keys()) if has_gene else not (names & trial.params.keys())
        assert [s.shuffle for s in genotype.stages] == [trial.params.get(name, True) for name in sorted(names)]
        assert space.sample(optuna.trial.FixedTrial(trial.params)) == genotype
        seen |= {(s.unit, s.shuffle) for s in genotype.stages}
    assert seen == {("v1", False), ("v1", True), ("v2", False), ("v2", True)}
    dims = {d.name: d.choices for d in space.dimensions()}
    assert dims["stage3.shuffle"] == "false, true"
    assert all(not s.shuffle for s in space.smallest("v2").stages) and all(
        s.shuffle for s in space.largest("v2").stages
    )
    assert all(s.shuffle for s in space.smallest("v1", 1).stages)  # groups=1: nothing to shuffle


def test_shuffle_off_everywhere_is_a_space_of_its_own() -> None:
    space = SearchSpace(("v2",), budget_mflops=40, resolution=64, ranges=SpaceRanges(shuffle=(False,)))
    assert all(not s.shuffle for g in _samples(space, 10) for s in g.stages)
    assert "stage2.shuffle" not in {d.name for d in space.dimensions()}
