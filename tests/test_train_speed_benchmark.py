"""benchmarks/train_speed.py runs end to end on a tiny network and prints its figures (no timing thresholds)."""

from __future__ import annotations

import math
import re
from types import ModuleType

import pytest

from shufflenet_nas.search_spaces import Genotype
from tests.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def train_speed() -> ModuleType:
    return load_benchmark("train_speed")


def _positive_finite(text: str) -> float:
    value = float(text)
    assert math.isfinite(value) and value > 0, text
    return value


def test_tiny_run_prints_positive_finite_figures(
    train_speed: ModuleType, tiny_v2: Genotype, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--arch", tiny_v2.to_string(), "--rounds", "2", "--steps", "3"]
    report = train_speed.main([*argv, "--train-images", "32", "--val-images", "8", "--batch", "8"])
    printed = capsys.readouterr().out
    assert "torch.set_num_threads(1)" in printed
    rounds = re.findall(r"round \d+: plain (\S+) img/s, project (\S+) img/s, ratio (\S+)", printed)
    assert len(rounds) == 4  # 2 rounds for (a), 2 for (b)
    for figures in rounds:
        for figure in figures:
            _positive_finite(figure)
    for part in ("(a)", "(b)"):
        median, low, high = re.search(
            rf"{re.escape(part)} project / plain: median (\S+), 95% bootstrap CI \[(\S+), (\S+)\]", printed
        ).groups()
        assert _positive_finite(low) <= _positive_finite(median) <= _positive_finite(high)
    verdicts = re.findall(r"^(PASS|FAIL) \((a|b)\)", printed, flags=re.MULTILINE)
    assert [part for _, part in verdicts] == ["a", "b"]
    for key in ("step", "whole"):
        figures = [*report[key]["plain_images_per_s"], *report[key]["project_images_per_s"], *report[key]["ratios"]]
        assert len(figures) == 6
        assert all(math.isfinite(v) and v > 0 for v in figures)
    shares = report["whole"]["shares"]
    assert shares["training"] > 0 and shares["evaluation"] > 0
    assert math.isclose(sum(shares.values()), 1.0)
