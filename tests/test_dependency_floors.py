"""The floors file (.ci/floors.txt, installed and smoke-tested by .ci/floors) pins exactly the lower bounds
that pyproject.toml declares, so the two cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
requirements = pytest.importorskip("packaging.requirements")  # installed with Optuna
versions = pytest.importorskip("packaging.version")

ROOT = Path(__file__).resolve().parent.parent
# torch's floor rests on an API (pyproject.toml says why); the floor check runs the only CPU build here.
PINNED_ELSEWHERE = {"torch": "2.13.0"}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _floors() -> dict[str, str]:
    floors = {}
    for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, separator, version = line.partition("==")
            assert separator and version, f".ci/floors.txt: {line!r} is not an exact pin"
            floors[_name(name)] = version
    return floors


def _declared() -> dict[str, object]:
    """Every requirement of pyproject.toml that applies here, dependencies and extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    declared = {}
    for line in lines:
        requirement = requirements.Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            declared[_name(requirement.name)] = requirement
    return declared


def _lower_bound(requirement) -> str:  # type: ignore[no-untyped-def]
    bounds = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    assert len(bounds) == 1, f"{requirement}: one >= floor expected"
    return bounds[0]


def test_every_declared_floor_is_pinned_in_the_floors_file() -> None:
    floors = _floors()
    for name, requirement in _declared().items():
        floor = _lower_bound(requirement)
        pinned = floors.get(name)
        assert pinned is not None, f"{name} has no pin in .ci/floors.txt"
        if name in PINNED_ELSEWHERE:
            assert pinned == PINNED_ELSEWHERE[name] and requirement.specifier.contains(pinned)
        else:
            # a floor like fvcore>=0.1.5 may be pinned at its earliest release, a post-release of 0.1.5
            version = versions.Version(pinned)
            assert versions.Version(version.base_version) == versions.Version(floor), f"{name}: >={floor}, {pinned}"
        if "binary" in requirement.extras:
            assert floors.get(f"{name}-binary") == pinned, f"{name}[binary] needs {name}-binary=={pinned}"


def test_the_floors_file_pins_nothing_undeclared() -> None:
    declared = _declared()
    binaries = {f"{name}-binary" for name, requirement in declared.items() if "binary" in requirement.extras}
    assert set(_floors()) <= set(declared) | binaries


def test_optuna_is_bounded_below_its_next_major_version() -> None:
    optuna = _declared()["optuna"]
    assert not optuna.specifier.contains("6.0.0") and optuna.specifier.contains("5.0.0")
