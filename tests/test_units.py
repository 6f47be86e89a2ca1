from __future__ import annotations

import pytest

from shufflenet_nas import InvalidArgumentError
from shufflenet_nas.units import parse_flops, parse_latency_ms, parse_params


@pytest.mark.parametrize("text", ["146MFLOPs", "146M", "0.146G", "146e6", "146000000", "146 mflops", "146Mmacs"])
def test_flops_budget_forms(text: str) -> None:
    assert parse_flops(text) == pytest.approx(146e6)


@pytest.mark.parametrize("text", ["146MB", "fast", "-5M", "0", "", "146 MFLOPS extra", "1.2.3M"])
def test_bad_flops_budget_is_a_usage_error(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="146MFLOPs"):
        parse_flops(text)


def test_params_and_latency_forms() -> None:
    assert parse_params("2.5M") == 2.5e6
    assert parse_params("2500K") == 2.5e6
    assert parse_latency_ms("2ms") == 2.0
    assert parse_latency_ms("500us") == pytest.approx(0.5)
    assert parse_latency_ms("0.002s") == pytest.approx(2.0)
    with pytest.raises(InvalidArgumentError, match="2ms"):
        parse_latency_ms("2 hours")
