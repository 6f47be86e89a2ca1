"""Several real processes on one study, on SQLite and on PostgreSQL: no trial lost, none numbered twice."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from shufflenet_nas.nas import storage as storage_module
from shufflenet_nas.nas.storage import WriteBehind, make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

WORKERS, TRIALS = 4, 40
TINY_SEARCH = [
    *("--target", "cpu", "--budget", "12M", "--resolution", "32", "--proxy", "params"),
    *("--threads", "1", "--max-time", "0.02", "--seed", "0"),
]


def _write_behind_worker(url: str, barrier: multiprocessing.synchronize.Barrier, seed: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(url)
    study = optuna.load_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=seed))
    copy = WriteBehind(study, storage)
    barrier.wait()  # every worker writes at the same moment

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", seed)
        return trial.suggest_float("x", 0, 1)

    copy.live.optimize(objective, n_trials=TRIALS, callbacks=[copy.write])


def _run_write_behind_workers(url: str) -> list[optuna.trial.FrozenTrial]:
    optuna.create_study(storage=make_storage(url), study_name="s")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    processes = [context.Process(target=_write_behind_worker, args=(url, barrier, seed)) for seed in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * WORKERS
    return optuna.load_study(study_name="s", storage=url).trials


def _assert_nothing_lost(trials: list[optuna.trial.FrozenTrial]) -> None:
    assert len(trials) == WORKERS * TRIALS
    assert sorted(t.number for t in trials) == list(range(WORKERS * TRIALS))  # unique, no gaps
    assert {t.user_attrs["worker"] for t in trials} == set(range(WORKERS))
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_write_behind_workers_on_sqlite_lose_no_trial(tmp_path: Path) -> None:
    _assert_nothing_lost(_run_write_behind_workers(f"sqlite:///{tmp_path / 'study.db'}"))


def test_write_behind_workers_on_postgresql_lose_no_trial(postgres_db: str) -> None:
    _assert_nothing_lost(_run_write_behind_workers(postgres_db))


def _search(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "shufflenet_nas", "search", *TINY_SEARCH, *arguments]


def test_search_workers_started_together_on_postgresql(postgres_db: str, tmp_path: Path) -> None:
    """3 worker processes x 8 trials on one new study: 24 complete trials, unique numbers, each baseline once."""
    command = _search("--storage", postgres_db, "--study", "shared", "--n-trials", "8", "--results-dir", str(tmp_path))
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], [stderr[-2000:] for _, stderr in outputs]
    trials = optuna.load_study(study_name="shared", storage=postgres_db).trials
    assert len(trials) == 24 and sorted(t.number for t in trials) == list(range(24))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    baselines = [t.user_attrs["baseline"] for t in trials if "baseline" in t.user_attrs]
    assert baselines and len(baselines) == len(set(baselines))
    assert "nas@127.0.0.1" in outputs[0][1]  # the banner names the storage


def test_search_workers_option_shares_one_study(tmp_path: Path) -> None:
    result = subprocess.run(
        _search("--workers", "2", "--n-trials", "9", "--results-dir", str(tmp_path), "--json"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    trials = optuna.load_study(study_name="cpu-12M-mixed", storage=f"sqlite:///{tmp_path / 'cpu-12M-mixed/study.db'}")
    assert len(trials.trials) == 9 and sorted(t.number for t in trials.trials) == list(range(9))
    assert {t.user_attrs["worker"]["pid"] for t in trials.trials} != {os.getpid()}
    assert len({t.user_attrs["worker"]["pid"] for t in trials.trials}) == 2
    assert "2 workers" in result.stderr


def _wait_for(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_killed_mid_trial_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL in the middle of a measured trial; the resume fails that trial and measures its architecture."""
    url = f"sqlite:///{tmp_path / 'cpu-12M-mixed/study.db'}"
    # a longer measurement, so that the kill lands inside a trial
    slower = ("--max-time", "0.3", "--results-dir", str(tmp_path))
    worker = subprocess.Popen(
        _search("--n-trials", "40", *slower), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )

    def mid_trial() -> bool:
        if worker.poll() is not None:
            raise AssertionError(f"the search ended early: {worker.stderr.read()[-2000:] if worker.stderr else ''}")
        try:
            trials = optuna.load_study(study_name="cpu-12M-mixed", storage=url).trials
        except Exception:  # not created yet
            return False
        return sum(t.state == TrialState.COMPLETE for t in trials) >= 3 and trials[-1].state == TrialState.RUNNING

    _wait_for(mid_trial)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = optuna.load_study(study_name="cpu-12M-mixed", storage=url).trials
    killed = [t for t in before if t.state == TrialState.RUNNING]
    assert len(killed) == 1 and killed[0].user_attrs["worker"]["pid"] == worker.pid
    resumed = subprocess.run(_search("--n-trials", "3", *slower), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = optuna.load_study(study_name="cpu-12M-mixed", storage=url).trials
    for old in before:  # every completed trial intact
        if old.state == TrialState.COMPLETE:
            new = after[old.number]
            assert (new.state, new.values, new.params, new.user_attrs) == (
                old.state,
                old.values,
                old.params,
                old.user_attrs,
            )
    assert after[killed[0].number].state == TrialState.FAIL
    retries = [t for t in after if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and "latency_ms" in retries[0].user_attrs
    assert retries[0].params == killed[0].params
    assert retries[0].user_attrs.get("baseline") == killed[0].user_attrs.get("baseline")


def test_a_stale_trial_is_failed_and_retried_by_the_heartbeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(storage_module, "GRACE_PERIOD_S", 1)
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=True)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.suggest_int("x", 0, 10)
    storage.record_heartbeat(trial._trial_id)  # then its worker dies
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    first, retry = study.trials
    assert first.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.user_attrs == {"retry_of": 0}
    assert retry.system_attrs["fixed_params"] == first.params


def test_lookup_table_workers_run_each_baseline_once(tmp_path: Path) -> None:
    """Two lookup-table workers (write-behind copies) under a latency budget: each baseline stored once."""
    lut = ("--latency", "lut", "--latency-budget", "100ms", "--workers", "2", "--n-trials", "16")
    result = subprocess.run(
        _search(*lut, "--results-dir", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    trials = optuna.load_study(study_name="cpu-12M-mixed", storage=f"sqlite:///{tmp_path / 'cpu-12M-mixed/study.db'}")
    numbers = sorted(t.number for t in trials.trials)
    # both copies run the 6 waiting baselines; the second to finish one drops its result: 6 + 2 x 2 sampled
    assert numbers == list(range(len(numbers))) and len(numbers) >= 10
    baselines = [t.user_attrs["baseline"] for t in trials.trials if "baseline" in t.user_attrs]
    assert baselines and sorted(baselines) == sorted(set(baselines))
    assert all(t.state == TrialState.COMPLETE for t in trials.trials)
