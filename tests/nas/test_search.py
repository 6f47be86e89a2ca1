from __future__ import annotations

import functools
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from shufflenet_nas import (
    InvalidArgumentError,
    MeasureConfig,
    SearchConfig,
    SpaceRanges,
    compute_proxies,
    count_cost,
    run_search,
    summarise,
)
from shufflenet_nas.nas import objective as objective_module
from shufflenet_nas.nas.latency import _normalisation, reference_anchor_ms
from shufflenet_nas.nas.objective import device_lock, mnasnet_reward
from shufflenet_nas.nas.search_config import baseline_genotype, fitting_baselines
from shufflenet_nas.nas.study import open_or_create_study, open_storage, with_study_anchor

optuna.logging.set_verbosity(optuna.logging.WARNING)
FAST = MeasureConfig(target="cpu", threads=1, max_time_s=0.02, rel_precision=0.2)


def tiny_config(tmp_path: Path, **overrides: object) -> SearchConfig:
    values: dict[str, object] = {
        "study_name": "tiny",
        "budget_flops": 12e6,
        "measure": FAST,
        "resolution": 32,
        "num_classes": 10,
        "proxy": "params",
        "seed": 0,
        "results_dir": tmp_path,
    }
    values.update(overrides)
    return SearchConfig(**values)  # type: ignore[arg-type]


def test_baselines_that_fit_are_seeded_first(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    names = fitting_baselines(config)
    assert names  # at 32 px some paper models fit 12 MFLOPs
    for name in names:
        assert count_cost(baseline_genotype(name, config)).macs <= config.budget_flops
    lines = [name.rsplit("_x", 1)[0] for name in names]
    assert len(lines) == len(set(lines))  # one model per paper line: the widest that fits
    study = run_search(config, n_trials=len(names) + 2, timeout=None)
    first = study.trials[: len(names)]
    assert [t.user_attrs["baseline"] for t in first] == names
    assert all(t.user_attrs["genotype"] == str(baseline_genotype(t.user_attrs["baseline"], config)) for t in first)


def test_over_budget_trials_are_infeasible_and_cost_no_measurement(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    measured: list[str] = []
    real = objective_module.measure_latency

    def counting(genotype, config):  # type: ignore[no-untyped-def]
        measured.append(genotype.arch_id)
        return real(genotype, config)

    monkeypatch.setattr(objective_module, "measure_latency", counting)
    config = tiny_config(tmp_path, budget_flops=4e6, seed_baselines=False, sampler="random")
    study = run_search(config, n_trials=12, timeout=None)
    over = [t for t in study.trials if not t.user_attrs["feasible"]]
    within = [t for t in study.trials if t.user_attrs["feasible"]]
    assert over and within
    for trial in over:
        assert trial.constraints["mflops_over_budget"] > 0
        assert "latency_ms" not in trial.user_attrs and trial.user_attrs["arch_id"] not in measured
    assert all(t.constraints["mflops_over_budget"] <= 0 for t in within)
    assert len(measured) == len({t.user_attrs["arch_id"] for t in within})
    summary = summarise(study)
    reported = {row.number for row in summary.pareto + summary.trials}
    assert reported.isdisjoint(t.number for t in over)
    assert summary.counts["infeasible"] == len(over)


def test_a_baseline_proxy_floor_keeps_weaker_architectures_out_of_the_results(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, proxy_floor="shufflenet_v2_x0_5", sampler="random")
    study = run_search(config, n_trials=14, timeout=None)
    floor = next(t for t in study.trials if t.user_attrs.get("baseline") == "shufflenet_v2_x0_5").user_attrs["proxy"]
    evaluated = [t for t in study.trials if "proxy" in t.user_attrs]
    below = [t for t in evaluated if t.user_attrs["proxy"] < floor]
    assert below and len(below) < len(evaluated)  # the floor (params of V2 0.5x at 32 px) splits the trials
    for trial in evaluated:
        assert trial.constraints["proxy_below_floor"] == pytest.approx(floor - trial.user_attrs["proxy"])
        assert trial.user_attrs["feasible"] is (trial.user_attrs["proxy"] >= floor)
    summary = summarise(study)
    assert all(row.proxy >= floor for row in summary.pareto) and summary.pareto


def test_proxy_floor_takes_a_number_or_a_baseline_name(tmp_path: Path) -> None:
    assert tiny_config(tmp_path, proxy_floor="1.5e6").proxy_floor == "1.5e6"
    with pytest.raises(InvalidArgumentError, match="proxy_floor='fast' is neither a finite number nor a baseline name"):
        tiny_config(tmp_path, proxy_floor="fast")


def test_identical_architectures_are_evaluated_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    real = objective_module.measure_latency
    monkeypatch.setattr(objective_module, "measure_latency", lambda g, c: calls.append(g.arch_id) or real(g, c))
    config = tiny_config(tmp_path, seed_baselines=False)
    config.study_dir.mkdir()
    study = optuna.create_study(storage=config.storage_url, study_name="tiny", directions=["minimize", "maximize"])
    study.enqueue_trial({}, user_attrs={"baseline": "shufflenet_v2_x0_5"})
    study.enqueue_trial({}, user_attrs={"baseline": "shufflenet_v2_x0_5"})
    finished = run_search(config, n_trials=2, timeout=None)
    a, b = finished.trials[:2]
    assert a.user_attrs["arch_id"] == b.user_attrs["arch_id"]
    assert a.values == b.values and a.user_attrs["latency"] == b.user_attrs["latency"]
    assert calls.count(a.user_attrs["arch_id"]) == 1


def test_resume_adds_trials_and_refuses_other_settings(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, seed_baselines=False)
    run_search(config, n_trials=3, timeout=None)
    study = run_search(config, n_trials=2, timeout=None)
    assert len(study.trials) == 5
    assert (tmp_path / "tiny" / "study.db").is_file()
    with pytest.raises(InvalidArgumentError, match=r"budget_mflops=12.0 \(now budget_mflops=20.0\); resume it with"):
        run_search(tiny_config(tmp_path, budget_flops=20e6), n_trials=1, timeout=None)


def test_a_resumed_study_keeps_the_speed_anchor_it_began_with(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = tiny_config(tmp_path, seed_baselines=False)
    first = run_search(config, n_trials=2, timeout=None)
    anchor = first.user_attrs["speed_anchor_ms"]
    assert {t.user_attrs["latency"]["reference_anchor_ms"] for t in first.trials} == {anchor}
    monkeypatch.setattr(_normalisation, "_anchors", {})  # a new process, whose device anchor is now another
    monkeypatch.setattr(_normalisation, "_read_anchors", lambda _path: {})
    monkeypatch.setattr(_normalisation, "_store_anchor", lambda _path, _key, _anchor: anchor / 2)
    assert reference_anchor_ms(FAST) == anchor / 2
    study = run_search(config, n_trials=2, timeout=None)
    assert {t.user_attrs["latency"]["reference_anchor_ms"] for t in study.trials} == {anchor}
    raw = run_search(tiny_config(tmp_path, study_name="raw", measure=replace(FAST, normalize=False)), 1, None)
    assert "speed_anchor_ms" not in raw.user_attrs


def test_a_study_made_before_anchors_were_recorded_keeps_its_trials_anchor(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    for number, anchor in enumerate((3.826, 3.0)):  # its first trial was scaled to 3.826 ms
        trial = optuna.trial.create_trial(values=[1.0, 1.0], user_attrs={"latency": {"reference_anchor_ms": anchor}})
        study.add_trial(trial)
        assert study.trials[number].user_attrs["latency"]["reference_anchor_ms"] == anchor
    config = with_study_anchor(study, tiny_config(tmp_path))
    assert config.measure.anchor_ms == 3.826 and study.user_attrs["speed_anchor_ms"] == 3.826


WORKER = """
import sys, time
from pathlib import Path
from shufflenet_nas.nas.latency import MeasureConfig
from shufflenet_nas.nas.search import SearchConfig
from shufflenet_nas.nas.study import open_or_create_study, open_storage, with_study_anchor
folder = Path(sys.argv[1])
config = SearchConfig(study_name="tiny", budget_flops=12e6, measure=MeasureConfig(target="cpu"), resolution=32,
                      num_classes=10, proxy="params", results_dir=folder)
(folder / f"ready-{sys.argv[2]}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
open_or_create_study(config, open_storage(config))
"""


def test_workers_starting_together_create_one_study_seeded_once(tmp_path: Path) -> None:
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(i)], stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()  # all at once on a database that does not exist yet
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * len(workers), errors
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny' / 'study.db'}")
    baselines = [t.user_attrs["baseline"] for t in study.trials]
    assert baselines == fitting_baselines(tiny_config(tmp_path))  # enqueued by the creator alone
    assert study.user_attrs["metric_names"] == ["latency_ms", "params"]


def test_user_attributes_are_readable_through_optuna(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, proxy="naswot")
    run_search(config, n_trials=3, timeout=None)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny' / 'study.db'}")
    trial = next(t for t in study.trials if t.user_attrs.get("feasible"))
    attrs = trial.user_attrs
    assert {"genotype", "arch_id", "family", "mflops", "params", "memory_access", "operators"} <= attrs.keys()
    assert attrs["family"] in ("V1-style", "V2-style")
    assert attrs["latency"]["normalized_ms"] == attrs["latency_ms"] > 0 and attrs["latency"]["median_ms"] > 0
    assert {"device", "torch", "threads", "batch", "dtype", "runtime", "resolution"} <= attrs["latency"].keys()
    assert attrs["proxies"]["naswot"] == attrs["proxy"] == trial.values[1]
    assert study.user_attrs["target"] == "cpu" and study.user_attrs["budget_mflops"] == 12.0
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MAXIMIZE]


def test_lut_search_remeasures_its_front(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shufflenet_nas import remeasure_front

    monkeypatch.setenv("SHUFFLENET_NAS_CACHE_DIR", str(tmp_path / "lut"))
    config = tiny_config(tmp_path, latency_mode="lut", sampler="random")
    study = run_search(config, n_trials=6, timeout=None)
    assert {t.user_attrs["latency"]["source"] for t in study.trials if "latency_ms" in t.user_attrs} == {"lut"}
    assert remeasure_front(study, FAST) > 0
    summary = summarise(study)
    assert all(row.latency_source == "re-measured" for row in summary.pareto)


def test_latency_objective_minimises_latency_above_the_proxy_floor(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="objective='latency' minimises latency alone: set `proxy_floor`"):
        tiny_config(tmp_path, objective="latency")
    config = tiny_config(tmp_path, objective="latency", proxy_floor="shufflenet_v2_x0_5")
    study = run_search(config, n_trials=8, timeout=None)
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE]
    floor = next(t for t in study.trials if t.user_attrs.get("baseline") == "shufflenet_v2_x0_5").user_attrs["proxy"]
    for trial in study.trials:
        if "latency_ms" in trial.user_attrs:
            assert trial.value == trial.user_attrs["latency_ms"]
            assert trial.user_attrs["feasible"] == (trial.user_attrs["proxy"] >= floor)
    summary = summarise(study)
    assert summary.pareto and all(row.reward is None and row.proxy >= floor for row in summary.pareto)


@pytest.mark.parametrize("objective", ["pareto", "latency", "reward"])
def test_short_training_proxy_runs_under_every_objective(
    tmp_path: Path, shapes_dir: Path, objective: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shufflenet_nas.nas.data import load_dataset
    from shufflenet_nas.nas.short_training import TrainConfig

    short = TrainConfig(steps=4, batch_size=8, eval_every=2, val_images=32)  # two reports: pruning is asked
    monkeypatch.setattr(objective_module, "compute_proxies", functools.partial(compute_proxies, train_config=short))
    extra = {"proxy_floor": "0", "latency_target_ms": 1.0}
    config = tiny_config(tmp_path, proxy="train", objective=objective, seed_baselines=False, **extra)
    study = run_search(config, n_trials=1, timeout=None, data=load_dataset(shapes_dir))
    trial = study.trials[0]
    assert trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert 0 <= trial.user_attrs["proxy"] <= 1


def test_reward_objective(tmp_path: Path) -> None:
    assert mnasnet_reward(0.7, 2.0, 2.0) == pytest.approx(0.7)
    assert mnasnet_reward(0.7, 4.0, 2.0) == pytest.approx(0.7 * 2**-0.07)
    with pytest.raises(
        InvalidArgumentError, match=r"objective='reward' needs a latency target T: set e\.g\. latency_t"
    ):
        tiny_config(tmp_path, objective="reward")
    config = tiny_config(tmp_path, objective="reward", latency_target_ms=1.0, seed_baselines=False)
    study = run_search(config, n_trials=3, timeout=None)
    assert len(study.directions) == 1
    summary = summarise(study)
    for family, row in summary.best.items():  # the highest reward of the family's searched architectures
        rewards = [t.values[0] for t in study.trials if t.user_attrs.get("family") == family]
        assert row.reward == max(rewards)


@pytest.mark.parametrize(("field", "value"), [("family", "v3"), ("sampler", "cmaes"), ("latency_mode", "guess")])
def test_bad_choices_are_invalid_arguments(tmp_path: Path, field: str, value: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{field}='{value}' unknown"):
        tiny_config(tmp_path, **{field: value})


@pytest.mark.parametrize("signum", [2, 15])  # SIGINT, SIGTERM
def test_interrupt_guard_defers_a_signal_outside_computation(signum: int) -> None:
    import os
    import signal

    from shufflenet_nas.nas.interrupts import Interrupted, InterruptGuard

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}  # SIG_IGN under nohup
    guard = InterruptGuard()
    with guard.installed():
        with pytest.raises(Interrupted) as raised, guard.region():
            os.kill(os.getpid(), signum)
            time.sleep(1)  # interrupted at once
        assert raised.value.signum == signum
        guard.signum = None
        with guard.region(interruptible=False):
            os.kill(os.getpid(), signum)
            time.sleep(0.05)  # a storage write: not interrupted
        assert guard.signum == signum
        with pytest.raises(Interrupted), guard.region():
            pass  # raised at the next computation
    assert {sig: signal.getsignal(sig) for sig in before} == before  # the handlers are restored


def test_device_lock_lets_one_process_time_at_a_time() -> None:
    import threading

    held = threading.Event()

    def holder() -> None:
        with device_lock("test-target"):
            held.set()
            time.sleep(0.3)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    started = time.perf_counter()
    with device_lock("test-target"):  # a second open file of the same lock: waits for the first
        waited = time.perf_counter() - started
    thread.join()
    assert waited >= 0.2


def test_a_resume_enqueues_the_baselines_that_never_ran(tmp_path: Path) -> None:
    """Seeding cut short (here: a study made without it) is made up on the next resume, once."""
    config = tiny_config(tmp_path)
    study = open_or_create_study(tiny_config(tmp_path, seed_baselines=False), open_storage(config))
    assert study.trials == []
    for _ in range(2):
        study = open_or_create_study(config, open_storage(config))
    assert [t.user_attrs["baseline"] for t in study.trials] == fitting_baselines(config)


def test_a_resume_with_other_ranges_or_classes_is_refused(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, seed_baselines=False)
    study = open_or_create_study(config, open_storage(config))
    assert study.user_attrs["stem_range"] == [8, 32] and study.user_attrs["depth_ranges"] == [[2, 6], [4, 10], [2, 6]]
    assert SpaceRanges.from_dict(study.user_attrs) == config.ranges  # rebuilt from what the study recorded
    narrow = tiny_config(tmp_path, seed_baselines=False, ranges=SpaceRanges(stem_range=(16, 16)))
    assert narrow.space.ranges == SpaceRanges(stem_range=(16, 16))
    other = tiny_config(tmp_path, study_name="narrow", seed_baselines=False, ranges=narrow.ranges)
    assert SpaceRanges.from_dict(open_or_create_study(other, open_storage(other)).user_attrs) == narrow.ranges
    with pytest.raises(InvalidArgumentError, match=r"made with stem_range=\[8, 32\] \(now stem_range=\[16, 16\]\);"):
        open_or_create_study(narrow, open_storage(narrow))
    more_classes = tiny_config(tmp_path, seed_baselines=False, num_classes=20)
    with pytest.raises(InvalidArgumentError, match=r"made with num_classes=10 \(now num_classes=20\); resume"):
        open_or_create_study(more_classes, open_storage(more_classes))


def test_a_study_made_before_the_ranges_were_recorded_records_them_on_resume(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, seed_baselines=False)
    config.study_dir.mkdir()
    old = optuna.create_study(storage=config.storage_url, study_name="tiny", directions=config.directions)
    ranges = SpaceRanges().to_dict()
    for key, value in config.study_attrs().items():
        if key not in ranges:
            old.set_user_attr(key, value)
    old.set_user_attr("metric_names", config.metric_names)
    study = open_or_create_study(config, open_storage(config))
    assert {key: study.user_attrs[key] for key in ranges} == ranges
    fewer_kernels = tiny_config(tmp_path, seed_baselines=False, ranges=SpaceRanges(kernels=(3,)))
    with pytest.raises(InvalidArgumentError, match=r"kernels=\[3, 5, 7\] \(now kernels=\[3\]\)"):
        open_or_create_study(fewer_kernels, open_storage(fewer_kernels))


def test_the_cli_names_both_sides_of_a_resume_mismatch_as_flags(tmp_path: Path, shapes_dir: Path) -> None:
    """Recorded and wanted settings both read as flags: no Python literal (``(now 50.0)``, ``'v1'``) is left."""
    import re
    import shutil

    from typer.testing import CliRunner

    from shufflenet_nas.cli.app import app

    data, other = (shutil.copytree(shapes_dir, tmp_path / name).resolve() for name in "ab")  # as recorded
    shutil.rmtree(next(other.iterdir()))  # 3 classes
    tiny = ["search", "--target", "cpu", "--resolution", "32", "--proxy", "params", "--max-time", "0.02"]
    tiny += ["--n-trials", "1", "--no-seed-baselines", "--study", "s", "--results-dir", str(tmp_path / "r")]
    assert CliRunner().invoke(app, [*tiny, "--budget", "12M", "--data", str(data)]).exit_code == 0

    def refused(*arguments: str) -> str:
        result = CliRunner().invoke(app, [*tiny, *arguments])
        assert result.exit_code == 2, result.output
        line = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
        assert "'" not in line.split(" was made with ", 1)[1] and not re.search(r"\(now (?!no )[^-]", line), line
        return line.split(" was made with ", 1)[1].split("; resume it", 1)[0]

    other_settings = ["--budget", "16M", "--raw", "--family", "v1", "--latency-budget", "3ms", "--seed", "7"]
    assert refused(*other_settings, "--sampler", "random", "--data", str(data)) == (
        "--budget 12MFLOPs (now --budget 16MFLOPs), no --latency-budget (now --latency-budget 3ms), "
        "--family mixed (now --family v1), --normalize (now --raw), --sampler tpe (now --sampler random), "
        "no --seed (now --seed 7)"
    )
    assert refused("--budget", "12M", "--data", str(other)) == f"--data {data} (now --data {other})"
    assert refused("--budget", "12M") == f"--data {data} (now no --data)"
    shutil.rmtree(next(data.iterdir()))  # the same folder, one class fewer
    assert refused("--budget", "12M", "--data", str(data)) == "--data 4 classes (now --data 3 classes)"
