"""The search's Optuna study: its storage and sampler, created with its settings recorded and the paper models
enqueued, or resumed when the recorded settings match."""

from __future__ import annotations

import time
import warnings
from dataclasses import fields, replace
from typing import Any

import optuna
from optuna.trial import TrialState

from shufflenet_nas.errors import InvalidArgumentError
from shufflenet_nas.nas.latency import RUNTIMES, reference_anchor_ms
from shufflenet_nas.nas.search_config import SearchConfig, fitting_baselines
from shufflenet_nas.nas.storage import make_storage, recover_stale_trials
from shufflenet_nas.search_spaces.spaces import SpaceRanges

ANCHOR_ATTR = "speed_anchor_ms"  # the study's speed anchor: its normalised ms are scaled to it
# Study user attributes that must match when a study is resumed: everything that changes results.
_RESUME_KEYS = (
    "target",
    "budget_mflops",
    "params_budget",
    "latency_budget_ms",
    "latency_target_ms",
    "proxy_floor",
    "family",
    "proxy",
    "objective",
    "latency_mode",
    "resolution",
    "num_classes",
    "batch",
    "dtype",
    "runtime",
    "threads",
    "max_time_s",
    "rel_precision",
    "normalize",
    "sampler",
    "seed",
    *(f.name for f in fields(SpaceRanges)),
    "space",
    "data",
)


def create_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, grouped by family: V1 and V2 parameters are modelled jointly where they apply),
    NSGA-II, or random sampling."""
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # ``group`` is experimental
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    return optuna.samplers.RandomSampler(seed=seed)


def open_storage(config: SearchConfig) -> optuna.storages.RDBStorage:
    """The search's storage: ``config.storage``, else ``<results_dir>/<study_name>/study.db`` (its folder made).
    Measured searches run their trials in it, with heartbeats (a killed worker's trial is failed and retried)."""
    if config.storage is None:
        config.study_dir.mkdir(parents=True, exist_ok=True)
    return make_storage(config.storage_url, heartbeat=config.latency_mode == "measured")


def open_or_create_study(config: SearchConfig, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The study named in ``config``: created (its settings recorded, the baselines enqueued), or resumed
    when its recorded settings match. Of workers starting together, only the one that creates it seeds it."""
    sampler = create_sampler(config.sampler, config.seed)
    try:
        study = optuna.create_study(
            storage=storage, study_name=config.study_name, sampler=sampler, directions=config.directions
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=config.study_name, storage=storage, sampler=sampler)
        _check_recorded_settings(study, config)
        recover_stale_trials(study, storage)
        _enqueue_missing_baselines(study, config)
        return study
    _record_settings(study, config)
    return study


def with_study_anchor(study: optuna.Study, config: SearchConfig) -> SearchConfig:
    """``config`` measuring with the speed anchor the study began with (its user attribute ``speed_anchor_ms``,
    recorded on its first run: the anchor its first measured trial was scaled to, else this device's), so a resumed
    study's normalised figures stay in one unit even after this device's stored anchor was lowered."""
    if not config.measure.normalized:
        return config
    anchor = study.user_attrs.get(ANCHOR_ATTR)
    if anchor is None:
        anchor = _first_trial_anchor(study) or reference_anchor_ms(config.measure)
        study.set_user_attr(ANCHOR_ATTR, anchor)
    return replace(config, measure=replace(config.measure, anchor_ms=float(anchor)))


def _first_trial_anchor(study: optuna.Study) -> float | None:
    """The speed anchor of the study's first measured trial (studies made before ``speed_anchor_ms`` was recorded)."""
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        anchor = (trial.user_attrs.get("latency") or {}).get("reference_anchor_ms")
        if anchor is not None:
            return float(anchor)
    return None


def _enqueue_missing_baselines(study: optuna.Study, config: SearchConfig) -> None:
    """Enqueue each fitting paper model that has no trial that completed it, waits for it or runs it (seeding
    that its creator did not finish, or a baseline interrupted more than once, is made up on a resume)."""
    if not config.seed_baselines:
        return
    pending = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    present = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False, states=pending)}
    for name in fitting_baselines(config):
        if name not in present:
            study.enqueue_trial({}, user_attrs={"baseline": name})


def _record_settings(study: optuna.Study, config: SearchConfig) -> None:
    """The settings, then the baselines, then ``metric_names``: its presence marks a complete, seeded study."""
    for key, value in config.study_attrs().items():
        study.set_user_attr(key, value)
    _enqueue_missing_baselines(study, config)
    study.set_user_attr("metric_names", config.metric_names)


def _check_recorded_settings(study: optuna.Study, config: SearchConfig) -> None:
    """Refuse to resume with other settings; wait briefly for a worker that is still recording them."""
    deadline = time.monotonic() + 5.0
    while "metric_names" not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.1)
    recorded = dict(study.user_attrs)
    if "metric_names" not in recorded:  # its creator stopped before recording them
        _record_settings(study, config)
        return
    if recorded.get("runtime", "") is None:  # studies made before defaults were recorded resolved
        recorded["runtime"] = RUNTIMES[recorded["target"]][0]
    if recorded.get("threads", 1) is None:
        recorded["threads"] = 1
    wanted = config.study_attrs()
    different = [k for k in _RESUME_KEYS if k in recorded and recorded[k] != wanted[k]]
    if len(different) > 1 and "space" in different:  # the listing of the space follows the settings that differ
        different.remove("space")
    if "data" in different and "num_classes" in different:  # so does the class count of other data
        different.remove("num_classes")
    if different:
        details = ", ".join(_difference(k, recorded[k], wanted[k], wanted["data"]) for k in different)
        raise InvalidArgumentError(
            f"study {config.study_name!r} was made with {details}; "
            "resume it with the same settings or pick another `study_name`"
        )
    for key in _RESUME_KEYS:  # a study made before a setting was recorded: record it now, check it later
        if key not in recorded:
            study.set_user_attr(key, wanted[key])


def _difference(key: str, recorded: Any, wanted: Any, data: Any = None) -> str:
    """``key=recorded (now key=wanted)``: both sides as assignments (the CLI shows each as its flag). The class
    count of a data set is ``data.num_classes`` (the CLI's ``--data``)."""
    if key == "space":  # a list of ranges: name the ones that differ
        changed = sorted(set(wanted) - set(recorded))
        return f"other space ranges ({'; '.join(changed) or 'fewer dimensions'})"
    if key == "num_classes" and data is not None:
        key = "data.num_classes"
    return f"{key}={recorded!r} (now {key}={wanted!r})"
