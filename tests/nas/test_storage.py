from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from shufflenet_nas.nas import storage as storage_module
from shufflenet_nas.nas.storage import WriteBehind, make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_int("x", 0, 100)
    trial.suggest_categorical("kind", ("a", "b"))
    trial.set_user_attr("genotype", f"net{x}")
    trial.set_user_attr("latency", {"median_ms": x / 10, "source": "lut"})
    trial.set_constraint("over_budget", x - 80.0)
    if x % 3 == 0:
        raise optuna.TrialPruned()
    if x > 80:  # over the budget: the search's infeasible values
        return math.inf, -math.inf
    return x / 10, -x


def stored_study(
    tmp_path: Path, directions: tuple[str, ...] = ("minimize", "maximize")
) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(
        storage=storage,
        study_name="s",
        directions=list(directions),
        sampler=optuna.samplers.RandomSampler(seed=0),
        load_if_exists=True,
    )
    return study, storage


def run(tmp_path: Path, n_trials: int) -> tuple[optuna.Study, WriteBehind]:
    study, storage = stored_study(tmp_path)
    copy = WriteBehind(study, storage)
    copy.live.optimize(objective, n_trials=n_trials, callbacks=[copy.write])
    return study, copy


def test_finished_trials_are_stored_whole(tmp_path: Path) -> None:
    _, copy = run(tmp_path, 20)
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    live = copy.live.trials
    assert len(stored) == len(live) == 20
    for a, b in zip(stored, live, strict=True):
        assert (a.number, a.state, a.values, a.params, a.user_attrs) == (
            b.number,
            b.state,
            b.values,
            b.params,
            b.user_attrs,
        )
        assert a.distributions == b.distributions and a.system_attrs == b.system_attrs  # constraints included
        assert a.intermediate_values == b.intermediate_values
        assert (a.datetime_start, a.datetime_complete) == (b.datetime_start, b.datetime_complete)
    assert {t.state for t in stored} == {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(t.values == [math.inf, -math.inf] for t in stored)


def test_intermediate_values_of_a_single_objective_study_are_stored(tmp_path: Path) -> None:
    study, storage = stored_study(tmp_path, ("maximize",))
    copy = WriteBehind(study, storage)

    def trained(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for step in range(3):
            trial.report(x * step, step)
        return x

    copy.live.optimize(trained, n_trials=3, callbacks=[copy.write])
    assert [t.intermediate_values for t in study.trials] == [t.intermediate_values for t in copy.live.trials]
    assert study.best_value == copy.live.best_value


def test_enqueued_trials_are_completed_in_place_not_duplicated(tmp_path: Path) -> None:
    study, _ = stored_study(tmp_path)
    for x in (5, 6):
        study.enqueue_trial({"x": x}, user_attrs={"baseline": f"b{x}"})
    study, _ = run(tmp_path, 4)
    trials = study.trials
    assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
    assert [(t.params["x"], t.user_attrs["baseline"]) for t in trials[:2]] == [(5, "b5"), (6, "b6")]


def test_a_resumed_copy_starts_from_what_is_stored(tmp_path: Path) -> None:
    run(tmp_path, 5)
    study, copy = run(tmp_path, 3)
    assert len(copy.live.trials) == len(study.trials) == 8
    assert [t.params for t in copy.live.trials[:5]] == [t.params for t in study.trials[:5]]


def test_a_failed_trial_is_stored_by_the_final_write(tmp_path: Path) -> None:
    study, storage = stored_study(tmp_path)
    copy = WriteBehind(study, storage)

    def interrupted(trial: optuna.Trial) -> float:
        trial.suggest_int("x", 0, 100)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy.live.optimize(interrupted, n_trials=3, callbacks=[copy.write])
    copy.write()
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_workers_take_in_each_others_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "REFRESH_EVERY", 2)
    first_study, first_storage = stored_study(tmp_path)
    first = WriteBehind(first_study, first_storage)
    second_study, second_storage = stored_study(tmp_path)
    second = WriteBehind(second_study, second_storage)
    first.live.optimize(objective, n_trials=3, callbacks=[first.write])
    second.live.optimize(objective, n_trials=2, callbacks=[second.write])  # its refresh after 2 trials
    assert len(second.live.trials) == 5 and len(second_study.trials) == 5
    first.live.optimize(objective, n_trials=1, callbacks=[first.write])  # refresh after its 4th
    assert len(first.live.trials) == 6 and len(first_study.trials) == 6


def test_a_waiting_trial_another_worker_took_is_not_stored_twice(tmp_path: Path) -> None:
    study, storage = stored_study(tmp_path)
    study.enqueue_trial({"x": 5})
    copy = WriteBehind(study, storage)
    waiting = study.trials[0]
    storage.set_trial_state_values(waiting._trial_id, TrialState.RUNNING)  # another worker claimed it
    copy.live.optimize(objective, n_trials=2, callbacks=[copy.write])
    assert study.trials[0].state == TrialState.RUNNING  # the other worker's to finish
    assert len(study.trials) == 2 and study.trials[1].params["x"] != 5  # only the sampled trial was added
