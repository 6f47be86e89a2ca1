from __future__ import annotations

import re
from pathlib import Path

import pytest

from shufflenet_nas import ShuffleNetNASError
from shufflenet_nas.jsonfile import read_json_object, write_json_atomic


def test_a_written_object_reads_back_and_a_missing_file_reads_empty(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "table.json"
    assert read_json_object(path) == {}
    write_json_atomic(path, {"b": 1, "a": [2.5, None]})
    assert read_json_object(path) == {"a": [2.5, None], "b": 1}
    assert [p.name for p in path.parent.iterdir()] == ["table.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{half", r"it is not valid JSON \(.+\)"),
        (b"\xff\xfe\x00garbage", r"it is not valid JSON \(.+\)"),
        (b'["a list"]', "its JSON is not an object"),
    ],
)
def test_a_corrupt_file_is_set_aside_with_a_warning(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "table.json"
    path.write_bytes(content)
    message = rf"^{re.escape(str(path))} is corrupt: {problem}; moved it to table\.json\.corrupt-\d{{8}}T"
    with pytest.warns(RuntimeWarning, match=message):
        assert read_json_object(path) == {}
    (moved,) = tmp_path.glob("table.json.corrupt-*")
    assert moved.read_bytes() == content and not path.exists()
    write_json_atomic(path, {"fresh": True})  # starting afresh
    assert read_json_object(path) == {"fresh": True}


def test_a_file_that_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "table.json").mkdir()
    with pytest.raises(ShuffleNetNASError, match=r"cannot read .*table\.json: Is a directory"):
        read_json_object(tmp_path / "table.json")
