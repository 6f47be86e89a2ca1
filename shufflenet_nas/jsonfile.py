"""The cache folder and the JSON files that several processes share there (latency tables, speed anchors, cost
checks): checked reads, atomic writes."""

from __future__ import annotations

import json
import os
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shufflenet_nas.errors import ShuffleNetNASError


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object stored at ``path``; ``{}`` when there is no file. A file that holds no JSON object is
    set aside (``set_aside``) and read as ``{}``."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ShuffleNetNASError(f"cannot read {path}: {error.strerror}") from error
    try:
        data = json.loads(text)
    except ValueError as error:
        set_aside(path, f"it is not valid JSON ({error})")
        return {}
    if not isinstance(data, dict):
        set_aside(path, "its JSON is not an object")
        return {}
    return data


def set_aside(path: Path, problem: str) -> None:
    """Move a corrupt ``path`` to ``<name>.corrupt-<UTC time>`` beside it, with a warning that names the file,
    ``problem`` and where it went; the caller starts afresh."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, moved)
    except FileNotFoundError:
        return  # another process set it aside first, and warned
    message = f"{path} is corrupt: {problem}; moved it to {moved.name} and starting afresh"
    warnings.warn(message, RuntimeWarning, stacklevel=2)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, sort_keys=True))
    os.replace(temporary, path)


def default_cache_dir() -> Path:
    """``$SHUFFLENET_NAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/shufflenet-nas/lut`` (``~/.cache/...``).

    Latency tables and the speed anchors live here."""
    if override := os.environ.get("SHUFFLENET_NAS_CACHE_DIR"):
        return Path(override)
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "shufflenet-nas" / "lut"


def checked(name: str, value: Any, kind: str) -> Any:
    """``value`` if it is a ``kind``: "string", "boolean", or "[positive |non-negative ]number|integer"
    (finite); else ``ValueError`` naming ``name``."""
    if kind in ("string", "boolean"):
        valid = isinstance(value, str if kind == "string" else bool)
    else:
        number = isinstance(value, int if kind.endswith("integer") else int | float) and not isinstance(value, bool)
        low = 0 if kind.startswith(("positive", "non-negative")) else -sys.float_info.max
        valid = number and low <= value <= sys.float_info.max  # and so not NaN or infinite
        valid = valid and not (kind.startswith("positive") and value == 0)
    if not valid:
        raise ValueError(f"{name} is {value!r}, not a {kind if kind in ('string', 'boolean') else 'finite ' + kind}")
    return value
