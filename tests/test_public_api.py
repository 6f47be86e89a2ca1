"""The public API: every name in ``__all__`` resolves, lazily; the package itself imports light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shufflenet_nas
from shufflenet_nas import nas, results


@pytest.mark.parametrize("package", [shufflenet_nas, nas, results], ids=lambda p: p.__name__)
def test_every_public_name_resolves_and_is_listed(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names)) and set(names) <= set(dir(package))
    for name in names:
        assert getattr(package, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        package.not_a_name  # type: ignore[attr-defined]  # noqa: B018


def test_the_top_level_names_are_the_ones_their_modules_define() -> None:
    from shufflenet_nas.nas.cost import count_cost
    from shufflenet_nas.nas.search import run_search
    from shufflenet_nas.results.loading import load_study

    assert shufflenet_nas.count_cost is count_cost and shufflenet_nas.run_search is run_search
    assert shufflenet_nas.load_study is load_study and nas.count_cost is count_cost


def test_importing_the_package_and_parsing_architectures_needs_no_torch() -> None:
    program = (
        "import sys, shufflenet_nas as s; "
        "g = s.resolve_arch('shufflenet_v2_x1_0'); s.SearchSpace(); s.Genotype.from_string(str(g)); "
        "print(sorted(m for m in ('torch', 'optuna', 'fvcore', 'sqlalchemy') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"
