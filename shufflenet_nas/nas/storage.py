"""Optuna storage: SQLite tuned for many small writes, and a write-behind copy for fast (lookup-table) searches.

``WriteBehind`` runs trials on an in-memory copy of the study and stores each finished trial's rows (trial,
values, params, attributes, intermediate values) with Optuna's own table models in one transaction, instead of
Optuna's query per row. The copy holds every stored trial, so it has already checked each parameter's
distribution against the study's. The storage stays the record: a killed run loses only its running trial, a
resumed one starts from what is stored, and every ``REFRESH_EVERY`` trials the copy takes in what other workers
have stored meanwhile.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages._rdb import models  # the RDB schema's table models (no public equivalent)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Engine, event
from sqlalchemy.exc import IntegrityError, OperationalError

from shufflenet_nas.errors import ShuffleNetNASError, mask_password

REFRESH_EVERY = 50  # trials between looks at what other workers stored
SCHEMA_RACE_RETRIES = 10  # tries to open a database that other workers are creating at the same moment
SQLITE_BUSY_TIMEOUT_S = 60.0  # how long a SQLite writer waits for another's transaction
HEARTBEAT_INTERVAL_S = 5  # a running trial's heartbeat in the storage (RDB storages, measured searches)
GRACE_PERIOD_S = 30  # a running trial silent this long belongs to a killed worker: failed, then retried once
_DRIVER_HINTS = {
    "psycopg": "pip install 'psycopg[binary]' (or 'shufflenet-nas[postgres]')",
    "psycopg2": "pip install psycopg2-binary, or write postgresql+psycopg://... with psycopg 3",
    "MySQLdb": "pip install mysqlclient, or write mysql+pymysql://... with pymysql",
}


def make_storage(url: str, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """Optuna RDB storage for ``url``; with ``heartbeat``, running trials beat every ``HEARTBEAT_INTERVAL_S``
    and one silent for ``GRACE_PERIOD_S`` (its worker killed) is failed and retried once by another worker.

    SQLite runs in WAL mode with normal sync (faster commits, still safe against a crash of the process;
    readers such as optuna-dashboard keep working), and every transaction takes the write lock
    when it begins (``BEGIN IMMEDIATE``): Python's sqlite3 runs a transaction's reads before its first write
    outside any transaction, so two workers could both claim one waiting trial or count the same trial number.
    Workers that start together on a new database race to create its tables ("table ... already exists",
    a duplicate schema version): the loser retries once the winner's tables are there.
    """
    options: dict[str, Any] = {}
    if heartbeat:
        options = {
            "heartbeat_interval": HEARTBEAT_INTERVAL_S,
            "grace_period": GRACE_PERIOD_S,
            "heartbeat_stale_trial_callback": retry_failed_trial,
        }
    sqlite = url.startswith("sqlite")
    if sqlite:
        options["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    for attempt in range(SCHEMA_RACE_RETRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
                storage = optuna.storages.RDBStorage(url, **options)
            break
        except (OperationalError, IntegrityError) as error:
            if attempt == SCHEMA_RACE_RETRIES - 1:
                reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
                raise ShuffleNetNASError(f"storage={mask_password(url)!r} cannot be opened: {reason}") from None
            time.sleep(0.1 * (attempt + 1))
        except ImportError as error:  # Optuna wraps the driver's ModuleNotFoundError
            missing = getattr(error.__cause__, "name", None) or getattr(error, "name", None) or "a database driver"
            hint = _DRIVER_HINTS.get(missing, f"pip install {missing}")
            raise ShuffleNetNASError(
                f"storage {mask_password(url)} needs the database driver {missing!r}: {hint}"
            ) from None
    if sqlite:
        _serialise_sqlite_transactions(storage.engine)
    return storage


def _serialise_sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(connection: Any, _record: Any) -> None:
        connection.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN, not the driver
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed


def retry_failed_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a failed trial's architecture once more (a baseline by name, a sampled one by its params),
    unless it is itself a retry: a killed worker or an interrupt does not lose an architecture."""
    if "retry_of" in trial.user_attrs:
        return
    user_attrs = {"retry_of": trial.number}
    if "baseline" in trial.user_attrs:
        user_attrs["baseline"] = trial.user_attrs["baseline"]
    study.enqueue_trial({} if "baseline" in trial.user_attrs else trial.params, user_attrs=user_attrs)


def recover_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """On a resume: fail the running trials whose worker process on this host is gone, and retry once every
    failed trial that was interrupted or killed (not one that failed with a ``failure_reason`` of its own)
    and has no retry yet. Returns the numbers of the trials retried."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    host = socket.gethostname()
    todo = []
    for trial in trials:
        worker = trial.user_attrs.get("worker", {})
        if trial.state == TrialState.RUNNING and worker.get("host") == host and not _alive(worker.get("pid", 0)):
            try:
                study_id = storage.get_study_id_from_name(study.study_name)
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker failed it first
            todo.append(trial)
        elif trial.state == TrialState.FAIL and "failure_reason" not in trial.user_attrs:
            todo.append(trial)
    todo = [t for t in todo if t.number not in retried and "retry_of" not in t.user_attrs]
    for trial in todo:
        retry_failed_trial(study, trial)
    return [t.number for t in todo]


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: the host and process, so that a resume can tell a killed worker's trial."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WriteBehind:
    """An in-memory copy of a stored study to run trials on (``live``); ``write()`` stores the finished ones."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage) -> None:
        self.study, self.storage = study, storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.live = optuna.create_study(sampler=study.sampler, directions=study.directions)
        for key, value in study.user_attrs.items():
            self.live.set_user_attr(key, value)
        self.stored: set[int] = set()  # numbers of the stored trials the copy holds or wrote
        self.taken_in: set[int] = set()  # numbers of live trials copied from the storage (not to write back)
        self.enqueued: dict[int, int] = {}  # live number of a waiting trial -> its stored number
        self.written = 0  # live trials handled by write(), in number order
        self.refreshed_at = 0  # self.written at the last look at the storage
        self._take_in_stored()

    def write(self, *_callback_args: object) -> None:
        """Store every finished trial of the copy not stored yet (usable as an Optuna callback); refresh."""
        trials = self.live.get_trials(deepcopy=False)
        while self.written < len(trials) and trials[self.written].state.is_finished():
            if self.written not in self.taken_in and (number := self._store(trials[self.written])) is not None:
                self.stored.add(number)
            self.written += 1
        if self.written >= self.refreshed_at + REFRESH_EVERY:
            self.refreshed_at = self.written
            self._take_in_stored()

    def _store(self, trial: FrozenTrial) -> int | None:
        """Write one finished trial; its stored number (None: an enqueued trial that another worker ran)."""
        number = self.enqueued.pop(trial.number, None)
        if number is not None:  # an enqueued baseline: complete the stored waiting trial, unless another took it
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
            if self._claim(trial_id):
                for name, value in trial.params.items():
                    distribution = trial.distributions[name]
                    self.storage.set_trial_param(trial_id, name, distribution.to_internal_repr(value), distribution)
                for key, value in trial.user_attrs.items():
                    self.storage.set_trial_user_attr(trial_id, key, value)
                for key, value in trial.system_attrs.items():
                    self.storage.set_trial_system_attr(trial_id, key, value)
                for step, value in trial.intermediate_values.items():
                    self.storage.set_trial_intermediate_value(trial_id, step, value)
                self.storage.set_trial_state_values(trial_id, trial.state, trial.values)
                return number
            return None  # another worker claimed and ran it: its result is the record
        session = self.storage.scoped_session()
        try:  # numbered as Optuna numbers a trial, inside the insert's transaction
            models.StudyModel.find_or_raise_by_id(self.study_id, session, for_update=True)  # one writer (PostgreSQL)
            row = _trial_row(trial, self.study_id)
            session.add(row)
            session.flush()
            row.number = row.count_past_trials(session)
            number = row.number
            session.commit()
        except Exception:
            session.rollback()
            raise
        return number

    def _claim(self, trial_id: int) -> bool:
        """Mark a stored waiting trial running; False if another worker took it first."""
        try:
            return self.storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def _take_in_stored(self) -> None:
        """Copy in the stored trials the copy lacks: finished ones as they are, waiting ones enqueued."""
        number = len(self.live.get_trials(deepcopy=False))  # the next live trial's
        for trial in self.study.get_trials(deepcopy=False):
            if trial.number in self.stored or trial.state == TrialState.RUNNING:
                continue  # held already, or running in another worker (taken in once finished)
            if trial.state == TrialState.WAITING:
                self.enqueued[number] = trial.number
                self.live.enqueue_trial(trial.system_attrs.get("fixed_params", {}), user_attrs=trial.user_attrs)
            else:
                self.taken_in.add(number)
                self.live.add_trial(trial)
            self.stored.add(trial.number)
            number += 1


def _trial_row(trial: FrozenTrial, study_id: int) -> models.TrialModel:
    """A finished trial as Optuna's RDB rows (what ``RDBStorage`` would write field by field), unnumbered."""
    row = models.TrialModel(study_id=study_id, number=None, state=trial.state)
    row.datetime_start, row.datetime_complete = trial.datetime_start, trial.datetime_complete
    row.params = [
        models.TrialParamModel(
            param_name=name,
            param_value=distribution.to_internal_repr(trial.params[name]),
            distribution_json=distribution_to_json(distribution),
        )
        for name, distribution in trial.distributions.items()
    ]
    row.values = [
        models.TrialValueModel(objective=objective, value=stored, value_type=kind)
        for objective, (stored, kind) in enumerate(map(models.TrialValueModel.value_to_stored_repr, trial.values or []))
    ]
    row.user_attributes = [
        models.TrialUserAttributeModel(key=key, value_json=json.dumps(value)) for key, value in trial.user_attrs.items()
    ]
    row.system_attributes = [
        models.TrialSystemAttributeModel(key=key, value_json=json.dumps(value))
        for key, value in trial.system_attrs.items()
    ]
    row.intermediate_values = [
        models.TrialIntermediateValueModel(step=step, intermediate_value=stored, intermediate_value_type=kind)
        for step, (stored, kind) in (
            (step, models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value))
            for step, value in trial.intermediate_values.items()
        )
    ]
    return row
