"""Running a search: ``run_search`` in this process, ``run_workers`` in several processes on one study.

The parts live in their own modules: ``search_config`` (``SearchConfig``), ``study`` (creating or resuming the
study), ``objective`` (one trial) and ``interrupts`` (SIGINT / SIGTERM); ``SearchConfig`` and ``Interrupted`` are
re-exported here.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError, mask_password
from shufflenet_nas.nas.interrupts import Interrupted, InterruptGuard
from shufflenet_nas.nas.objective import Objective, TrialFailed
from shufflenet_nas.nas.search_config import SearchConfig
from shufflenet_nas.nas.storage import WriteBehind
from shufflenet_nas.nas.study import create_sampler, open_or_create_study, open_storage, with_study_anchor

__all__ = ["Interrupted", "SearchConfig", "run_search", "run_workers"]


def run_search(
    config: SearchConfig,
    n_trials: int | None,
    timeout: float | None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    data: Any = None,
    worker: int = 0,
) -> optuna.Study:
    """Create or resume the study and run trials (a lookup-table search on a write-behind copy: ``WriteBehind``).

    Ctrl-C (SIGINT) or SIGTERM, when called from the main thread, interrupts only the objective: Optuna marks
    the running trial FAIL (a resume retries it once) and ``Interrupted`` propagates. One that lands in Optuna's
    bookkeeping between trials lets that trial finish, stops the study, then raises ``Interrupted``. Finished
    trials are always stored. A trial that fails on its own (``TrialFailed``) does not stop the search.
    """
    storage = open_storage(config)
    study = open_or_create_study(config, storage)
    config = with_study_anchor(study, config)
    if config.seed is not None:  # a stream of its own per resume and per worker, reproducible from the history
        study.sampler = create_sampler(
            config.sampler, config.seed + 7919 * worker + len(study.get_trials(deepcopy=False))
        )
    copy = WriteBehind(study, storage) if config.latency_mode == "lut" else None
    running = copy.live if copy else study
    objective = Objective(config, running, data)
    store = [copy.write] if copy else []  # after each trial
    with objective.guard.installed():
        try:
            running.optimize(
                objective,
                n_trials=n_trials,
                timeout=timeout,
                catch=(TrialFailed,),
                callbacks=[*callbacks, *store, objective.guard.stop],
            )
        finally:
            if copy:
                copy.write()  # the trial that an interrupt or an error ended, marked failed
    if objective.guard.signum is not None:
        raise Interrupted(objective.guard.signum)
    return study


def run_workers(
    config: SearchConfig,
    n_trials: int,
    timeout: float | None,
    workers: int,
    on_progress: Callable[[int], None] = lambda _done: None,
) -> optuna.Study:
    """``run_search`` in ``workers`` local processes on one study (``n_trials`` shared among them). The study is
    created (settings recorded, baselines enqueued) before they start; only one process times on the device at
    a time (``device_lock``). ``on_progress`` gets the number of trials finished so far, a few times a second.
    SIGINT / SIGTERM stop every worker (each keeps its finished trials) and raise ``Interrupted``."""
    if not 1 <= workers <= (os.cpu_count() or 1):
        raise InvalidArgumentError(f"workers={workers}: need 1 to {os.cpu_count()} (this machine's logical CPUs)")
    with_study_anchor(open_or_create_study(config, open_storage(config)), config)  # recorded before they start
    context = multiprocessing.get_context("spawn")
    done = context.Value("i", 0)
    errors = context.SimpleQueue()
    shares = [n_trials // workers + (index < n_trials % workers) for index in range(workers)]
    processes = [
        context.Process(target=_worker, args=(config, index, share, timeout, done, errors), daemon=True)
        for index, share in enumerate(shares)
        if share
    ]
    guard = InterruptGuard()
    with guard.installed():
        for process in processes:
            process.start()
        forwarded = False
        while any(process.is_alive() for process in processes):
            if guard.signum is not None and not forwarded:  # the terminal signals all; pass a SIGTERM on
                forwarded = True
                for process in processes:
                    if process.is_alive() and process.pid is not None:
                        os.kill(process.pid, guard.signum)
            on_progress(done.value)
            time.sleep(0.2)
    on_progress(done.value)
    if guard.signum is not None:
        raise Interrupted(guard.signum)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    failed = [p for p in processes if p.exitcode != 0]
    if failed:
        reason = failures[0] if failures else f"exit code {failed[0].exitcode}"
        raise ShuffleNetNASError(f"{len(failed)} of {len(processes)} workers failed: {reason}")
    return optuna.load_study(study_name=config.study_name, storage=open_storage(config))


def _worker(config: SearchConfig, index: int, n_trials: int, timeout: float | None, done: Any, errors: Any) -> None:
    """One spawned worker of ``run_workers``: its trials, counted in ``done``; a failure's message in ``errors``."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def count(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        with done.get_lock():
            done.value += 1

    try:
        data = None
        if config.data is not None:
            from shufflenet_nas.nas.data import load_dataset

            data = load_dataset(config.data)
        run_search(config, n_trials, timeout, callbacks=[count], data=data, worker=index)
    except Interrupted as interrupt:
        raise SystemExit(128 + interrupt.signum) from None  # the worker process dies as a shell reports a signal
    except Exception as error:
        errors.put(
            mask_password(
                f"{type(error).__name__}: {error}" if not isinstance(error, ShuffleNetNASError) else str(error)
            )
        )
        raise SystemExit(1) from None
