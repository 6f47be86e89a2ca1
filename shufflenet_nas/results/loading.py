"""Opening a study for reading: from a results directory or a storage URL, SQLite files read-only."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import optuna
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.nas.storage import make_storage


def read_only_sqlite_url(database: Path) -> str:
    """A SQLAlchemy URL that opens a SQLite file for reading only, even in a read-only folder.

    ``mode=ro`` makes the connection read-only (a write fails: "attempt to write a readonly database").
    A WAL-mode database (``make_storage``) needs its ``-shm`` index to be read: where a writer is attached (or
    crashed) the ``-wal``/``-shm`` files exist and are read as they are. Where no ``-wal`` file exists, no
    writer is attached and the main file holds everything: it is read with ``immutable=1``, which creates no
    ``-wal``/``-shm`` files (a ``mode=ro`` reader would create them, or fail in a read-only folder); a writer
    that attaches meanwhile appends to a new ``-wal`` and leaves the main file alone until a checkpoint."""
    path = database.resolve()
    query = {"mode": "ro", "uri": "true"}
    if not Path(f"{path}-wal").exists() and _is_wal_mode(path):
        query["immutable"] = "1"
    uri_path = "file:" + urllib.parse.quote(str(path), safe="/")  # SQLite decodes the URI's %XX
    return URL.create("sqlite", database=uri_path, query=query).render_as_string(hide_password=False)


def _is_wal_mode(path: Path) -> bool:
    """Whether a SQLite file's header marks it WAL mode (file format versions 2 at offsets 18 and 19)."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header.startswith(b"SQLite format 3\x00") and header[18:20] == b"\x02\x02"


def _read_only(storage: str) -> tuple[str, Path | None]:
    """``storage`` as a read-only URL where it is a SQLite file (other databases as given), and the file."""
    try:
        url = make_url(storage)
    except SQLAlchemyError:  # optuna gives the message for a malformed URL
        return storage, None
    database = url.database
    if not url.drivername.startswith("sqlite") or url.query or not database or database.startswith("file:"):
        return storage, None
    if database == ":memory:":
        return storage, None
    return read_only_sqlite_url(Path(database)), Path(database)


def storage_file(storage: str) -> Path | None:
    """The SQLite file of a storage URL (None for other databases)."""
    return _read_only(storage)[1]


def load_study(study: str | Path | None = None, storage: str | None = None, writable: bool = False) -> optuna.Study:
    """A study from a results directory (``results/<study>``) or from ``storage`` + study name, for reading.

    SQLite files are opened read-only (``read_only_sqlite_url``): reading a study never writes to it, its
    ``-wal``/``-shm`` files or its folder, and works where none of them is writable. ``writable`` opens it as
    a search does, to add to it (``train`` records trained accuracy in it)."""
    if storage is None:
        if study is None:
            raise InvalidArgumentError(
                "give `study` (a results/<study> directory) or `storage` (a database URL, `study` naming the study)"
            )
        directory = Path(study)
        database: Path | None = directory / "study.db"
        if not database.is_file():
            raise InvalidArgumentError(
                f"study={str(directory)!r} holds no study.db; give a results/<study> directory or `storage`"
            )
        url, study, label = read_only_sqlite_url(database), directory.name, str(database)
        url = f"sqlite:///{database}" if writable else url
    else:
        url, database = _read_only(storage)
        label = storage
        if database is not None and not database.is_file():
            raise InvalidArgumentError(f"storage={storage!r}: {database} does not exist")
        url = storage if writable else url
    try:
        opened = make_storage(url) if writable else optuna.storages.RDBStorage(url, skip_table_creation=True)
        names = optuna.get_all_study_names(opened)
    except (SQLAlchemyError, RuntimeError, optuna.exceptions.StorageInternalError) as error:
        cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) else error
        reason = str(getattr(cause, "orig", None) or cause or error).strip().splitlines()
        raise ShuffleNetNASError(f"cannot read {label} as an Optuna study: {reason[0] if reason else error}") from None
    if study is None and len(names) == 1:
        study = names[0]
    if study is None or str(study) not in names:
        raise InvalidArgumentError(
            f"study={study!r} not found in {label}; it holds: {', '.join(names) or 'no studies'}"
        )
    return optuna.load_study(study_name=str(study), storage=opened)
