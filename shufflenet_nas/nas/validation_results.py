"""The user's own trained results as a ground truth: a CSV or JSON file, or a study's trained trials.

- CSV: a header row with the columns ``architecture`` and ``accuracy`` (others are ignored).
- JSON: a list of objects with the keys ``architecture`` and ``accuracy``, or one object mapping each
  architecture to its accuracy.
- A study directory (``results/<study>``, holding ``study.db``): every architecture whose ``accuracy_top1``
  ``train`` recorded in it (``results.rows.trained_records``).

An architecture is a baseline name, a genotype string, a baseline's arch id, or any form ``resolve_arch``
takes (a relative JSON path is looked up beside the results file first). An architecture given more than once
(several seeds, several trials) counts once, with the mean of its accuracies. Accuracy in % or as a fraction
ranks the same.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path

from shufflenet_nas.errors import InvalidArgumentError, ShuffleNetNASError
from shufflenet_nas.search_spaces import BASELINES, Genotype, resolve_arch

STUDY_ACCURACY = "accuracy_top1"  # trained top-1 accuracy, as `train` records it in a study
COLUMNS = ("architecture", "accuracy")
Item = tuple[str, Genotype, float]  # (label, genotype, ground truth)


class ResultsFileError(ShuffleNetNASError):
    """A results file or study that cannot be read as (architecture, accuracy) rows."""


def read_results(results: str | Path) -> tuple[str, str, list[Item]]:
    """``(kind, target, items)`` of a results file or study directory: ``kind`` ``"file"`` or ``"study"``,
    ``target`` the ground truth in words, one item per distinct architecture (mean accuracy)."""
    path = Path(results)
    if path.is_dir():
        return "study", f"{STUDY_ACCURACY} of the trained trials of study {path}", _study_items(path)
    if not path.is_file():
        raise InvalidArgumentError(
            f"results={str(path)!r}: no such file or directory; give a CSV or JSON file or a study directory"
        )
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InvalidArgumentError(f"results={str(path)!r}: not a .csv or .json file; give architecture, accuracy")
    rows = _csv_rows(path) if suffix == ".csv" else _json_rows(path)
    items = _merge(_item(path, where, arch, accuracy) for where, arch, accuracy in rows)
    return "file", f"accuracy from {path}", _enough(path, items)


def _fail(path: Path, where: str, problem: str) -> ResultsFileError:
    return ResultsFileError(f"{path}, {where}: {problem}")


def _csv_rows(path: Path) -> list[tuple[str, object, object]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            header = [name.strip().lower() for name in reader.fieldnames or []]
            missing = [column for column in COLUMNS if column not in header]
            if missing:
                found = ", ".join(reader.fieldnames or []) or "nothing"
                raise _fail(path, "header", f"no column {missing[0]!r} (found {found}); need architecture, accuracy")
            reader.fieldnames = header
            return [
                (f"row {number} (line {reader.line_num})", row.get("architecture"), row.get("accuracy"))
                for number, row in enumerate(reader, 1)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ResultsFileError(f"{path}: cannot read it as CSV ({error})") from None


def _json_rows(path: Path) -> list[tuple[str, object, object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ResultsFileError(f"{path}: cannot read it ({error})") from None
    except ValueError as error:
        raise ResultsFileError(f"{path}: not valid JSON ({error})") from None
    if isinstance(data, dict):
        return [(f"key {arch!r}", arch, accuracy) for arch, accuracy in data.items()]
    if not isinstance(data, list):
        raise ResultsFileError(f"{path}: holds a {type(data).__name__}; need a list of {{architecture, accuracy}}")
    rows = []
    for number, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise _fail(path, f"row {number}", f"a {type(row).__name__}, not an object with architecture, accuracy")
        missing = [key for key in COLUMNS if key not in row]
        if missing:
            raise _fail(path, f"row {number}", f"no key {missing[0]!r}; need architecture, accuracy")
        rows.append((f"row {number}", row["architecture"], row["accuracy"]))
    return rows


def _item(path: Path, where: str, architecture: object, accuracy: object) -> Item:
    """One row as (label, genotype, accuracy); a bad value is an error naming the file and the row."""
    if not isinstance(architecture, str) or not architecture.strip():
        raise _fail(path, where, f"architecture {architecture!r} is empty or not text")
    label = architecture.strip()
    if isinstance(accuracy, bool) or accuracy is None or (isinstance(accuracy, str) and not accuracy.strip()):
        raise _fail(path, where, f"{label}: accuracy is missing")
    try:
        value = float(accuracy)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _fail(path, where, f"{label}: accuracy {accuracy!r} is not a number") from None
    if not math.isfinite(value):
        raise _fail(path, where, f"{label}: accuracy {accuracy!r} is not a finite number")
    return label, _genotype(path, where, label), value


def _genotype(path: Path, where: str, text: str) -> Genotype:
    by_id = {baseline.genotype.arch_id: baseline.genotype for baseline in BASELINES.values()}
    if text in by_id:
        return by_id[text]
    beside = path.parent / text
    if ".json" in text and not Path(text).is_absolute() and (path.parent / text.split("#")[0]).is_file():
        text = str(beside)  # a JSON file named relative to the results file
    try:
        return resolve_arch(text)
    except ValueError as error:
        raise _fail(path, where, f"architecture {error}") from None


def _merge(items: Iterable[Item]) -> list[Item]:
    """One item per architecture (arch id), the mean of its accuracies, in order of first appearance."""
    merged: dict[str, tuple[str, Genotype, list[float]]] = {}
    for label, genotype, accuracy in items:
        merged.setdefault(genotype.arch_id, (label, genotype, []))[2].append(accuracy)
    return [(label, genotype, sum(values) / len(values)) for label, genotype, values in merged.values()]


def _enough(path: Path, items: list[Item]) -> list[Item]:
    if len(items) < 3:
        raise ResultsFileError(f"{path}: {len(items)} distinct architecture(s); rank correlations need at least 3")
    if len({accuracy for _, _, accuracy in items}) < 2:
        raise ResultsFileError(f"{path}: every architecture has the same accuracy; nothing to rank against")
    return items


def _study_items(directory: Path) -> list[Item]:
    """The architectures `train` recorded in a study (also an ``accuracy_top1`` trial attribute, where a trial was
    created with one); a warning where they were trained with different recipes, seeds or data."""
    from shufflenet_nas.results.loading import load_study
    from shufflenet_nas.results.rows import trained_records

    if not (directory / "study.db").is_file():
        raise InvalidArgumentError(
            f"results={str(directory)!r} is a directory with no study.db; give a results/<study> directory"
        )
    study = load_study(directory)
    records = dict(trained_records(study))
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if STUDY_ACCURACY in attrs and attrs.get("arch_id", f"trial {trial.number}") not in records:
            records[attrs.get("arch_id", f"trial {trial.number}")] = attrs
    rows = []
    for arch_id, record in records.items():
        where = f"architecture {arch_id}"
        if not isinstance(record.get("genotype"), str):
            raise _fail(directory, where, "has no genotype")
        label = record.get("baseline") or record["genotype"]
        _, genotype, accuracy = _item(directory, where, record["genotype"], record.get(STUDY_ACCURACY))
        rows.append((label, genotype, accuracy))
    if not rows:
        raise ResultsFileError(
            f"{directory}: holds no trained accuracy; `shufflenet-nas train {directory} --pareto --data DIR` "
            "trains its architectures"
        )
    runs = {
        json.dumps([r.get("recipe"), r.get("seed"), (r.get("data") or {}).get("fingerprint")]) for r in records.values()
    }
    if len(runs) > 1:
        warnings.warn(
            f"{directory}: its {len(records)} accuracies come from {len(runs)} different recipes, seeds or data sets; "
            "they rank the architectures only as far as those agree",
            UserWarning,
            stacklevel=2,
        )
    return _enough(directory, _merge(rows))
