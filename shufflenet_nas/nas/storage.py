"""Optuna storage: SQLite tuned for many small writes, and a write-behind copy for fast (lookup-table) searches.

Optuna's RDB storage writes every parameter and attribute of a trial with its own queries (about 1-2 ms each
through SQLAlchemy, 35-40 per trial here, even for a whole trial passed to ``create_new_trial``): nothing next to
a measured trial, most of the time of one whose latency comes from a lookup table. ``WriteBehind`` runs such
trials on an in-memory copy of the study and inserts each finished trial's rows (trial, values, params,
attributes, intermediate values) with Optuna's own table models in one transaction. The in-memory copy has
already checked each parameter's distribution against the study's (it holds every stored trial), which is
what Optuna's per-row queries are for. The storage stays the record: a run that is killed loses only its
running trial, a resumed one starts from what is stored, and every ``REFRESH_EVERY`` trials the copy takes in
what other workers have stored meanwhile.
"""

from __future__ import annotations

import json
import time
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages._rdb import models  # the RDB schema's table models (no public equivalent)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import event, func
from sqlalchemy.exc import IntegrityError, OperationalError

REFRESH_EVERY = 50  # trials between looks at what other workers stored
SCHEMA_RACE_RETRIES = 5  # tries to open a database that other workers are creating at the same moment


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna RDB storage; SQLite in WAL mode with normal sync (about 4x faster commits per trial attribute,
    still safe against a crash of the process; readers such as optuna-dashboard keep working).

    Workers that start together on a new database race to create its tables ("table ... already exists",
    a duplicate schema version): the loser retries once the winner's tables are there."""
    for attempt in range(SCHEMA_RACE_RETRIES):
        try:
            storage = optuna.storages.RDBStorage(url)
            break
        except (OperationalError, IntegrityError):
            if attempt == SCHEMA_RACE_RETRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    if url.startswith("sqlite"):

        @event.listens_for(storage.engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        storage.engine.dispose()  # connections opened before the listener existed
    return storage


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
            if self.written not in self.taken_in:
                self.stored.add(self._store(trials[self.written]))
            self.written += 1
        if self.written >= self.refreshed_at + REFRESH_EVERY:
            self.refreshed_at = self.written
            self._take_in_stored()

    def _store(self, trial: FrozenTrial) -> int:
        """Write one finished trial; its stored number."""
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
        session = self.storage.scoped_session()
        try:
            models.StudyModel.find_or_raise_by_id(self.study_id, session, for_update=True)  # numbers in order
            number = (
                session.query(func.count(models.TrialModel.trial_id))
                .filter(models.TrialModel.study_id == self.study_id)
                .scalar()
            )
            session.add(_trial_row(trial, self.study_id, number))
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


def _trial_row(trial: FrozenTrial, study_id: int, number: int) -> models.TrialModel:
    """A finished trial as Optuna's RDB rows (what ``RDBStorage`` would write field by field)."""
    row = models.TrialModel(study_id=study_id, number=number, state=trial.state)
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
