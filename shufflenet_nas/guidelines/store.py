"""Guideline verdicts kept per device: the latest ``guidelines`` run per target, runtime, device, threads and
dtype, in ``guidelines.json`` in the cache directory (beside the latency tables and speed anchors), for
``search --explain``."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from shufflenet_nas.guidelines.result import GuidelinesResult
from shufflenet_nas.jsonfile import default_cache_dir, read_json_object, write_json_atomic
from shufflenet_nas.nas.latency import MeasureConfig, software_provenance

STORE = "guidelines.json"


def device_key(provenance: dict[str, object]) -> str:
    """``cpu/eager on <CPU name>, 1 thread(s), fp32``: what a verdict is about (the batch is the paper's per
    target unless the run says otherwise; it is in the stored run)."""
    return (
        f"{provenance['target']}/{provenance['runtime']} on {provenance['device']}, "
        f"{provenance['threads']} thread(s), {provenance['dtype']}"
    )


def store_result(result: GuidelinesResult) -> Path:
    """Keep ``result`` as its device's latest run (with the time it was stored); returns the file."""
    path = default_cache_dir() / STORE
    stored = read_json_object(path)
    stored[device_key(result.provenance)] = result.to_dict() | {"stored_at": time.strftime("%Y-%m-%d %H:%M")}
    write_json_atomic(path, stored)
    return path


def stored_result(config: MeasureConfig) -> tuple[GuidelinesResult, str] | None:
    """The latest run kept for ``config``'s target, runtime, device, threads and dtype, and when it was stored;
    None if there is none (an entry that no longer reads is skipped, with a warning)."""
    path = default_cache_dir() / STORE
    entry = read_json_object(path).get(device_key(software_provenance(config)))
    if entry is None:
        return None
    try:
        return GuidelinesResult.from_dict(entry), str(entry.get("stored_at", "?"))
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        warnings.warn(
            f"{path}: the guideline verdicts stored for this device do not read ({type(error).__name__}: {error}); "
            "run `guidelines` again",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
