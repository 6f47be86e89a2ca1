"""The README's Python example runs as written and prints what its comments say; its examples are filled in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def _python_example() -> str:
    text = README.read_text()
    section = text[text.index("## Python API") :]
    return section[
        section.index("```python") + len("```python") : section.index("```\n", section.index("```python") + 1)
    ]


def test_the_python_api_example_runs(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _python_example()],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[:2] == ["57e96f55b205 V2-style", "144.9 MFLOPs"]
    assert re.fullmatch(r"\d+\.\d\d ms at 64x64", lines[2]) and lines[3] == "2278604.0"
    front = lines[4:]
    assert front and all(re.fullmatch(r"[0-9a-f]{12} \S+ \d+\.\d MFLOPs \d+\.\d\d ms \d+", line) for line in front)
    assert all(float(line.split()[2]) <= 40 for line in front)  # under the 40 MFLOPs budget


def test_the_readme_has_no_placeholders_and_shows_measure_as_it_prints() -> None:
    text = README.read_text()
    assert not re.findall(r"^[A-Z][A-Z_]{5,}$", text, flags=re.MULTILINE)  # an example left unfilled
    examples = re.findall(r"^\$ shufflenet-nas measure .+\n(.+)\n(.+)\n(.+)$", text, flags=re.MULTILINE)
    assert examples
    for headline, _provenance, normalised in examples:
        if not headline.startswith("warning:"):
            assert re.search(r"median \d+\.\d{3} ms \[\d+\.\d{3}, \d+\.\d{3}\] at 95%", headline), headline
            assert normalised.startswith("normalised: ") or normalised.startswith("$ "), normalised
