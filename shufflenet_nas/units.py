"""Human units for budgets: 146MFLOPs, 146M, 0.146G, 146e6; 2.5M params; 2ms, 500us."""

from __future__ import annotations

import re

from shufflenet_nas.errors import InvalidArgumentError

_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_SECONDS = {"s": 1e3, "ms": 1.0, "us": 1e-3, "µs": 1e-3}


def _parse_count(text: str, suffixes: tuple[str, ...], parameter: str, example: str) -> float:
    cleaned = text.strip().replace("_", "")
    pattern = rf"{_NUMBER}\s*([kKmMgG]?)\s*(?:{'|'.join(suffixes)})?"
    match = re.fullmatch(pattern, cleaned, flags=re.IGNORECASE)
    if match is None or float(match[1]) <= 0:
        raise InvalidArgumentError(
            f"{parameter}={text!r} cannot be read: write a positive number with an optional K/M/G unit, e.g. {example}"
        )
    return float(match[1]) * _SCALE[match[2].lower()]


def parse_flops(text: str, parameter: str = "budget_flops") -> float:
    """FLOPs (multiply-adds) from 146MFLOPs, 146M, 0.146G, 146e6 or 146000000; errors name ``parameter``."""
    return _parse_count(text, ("flops", "flop", "macs", "mac"), parameter, "146MFLOPs, 146M, 0.146G or 146e6")


def parse_params(text: str, parameter: str = "params_budget") -> float:
    """A parameter count from 2.5M, 2500K, 2500000 or 2.5Mparams; errors name ``parameter``."""
    return _parse_count(text, ("params", "param", "p"), parameter, "2.5M or 2500000")


def parse_latency_ms(text: str, parameter: str = "latency_budget_ms") -> float:
    """Milliseconds from 2ms, 500us, 0.002s (a bare number means ms); errors name ``parameter``."""
    match = re.fullmatch(rf"{_NUMBER}\s*(s|ms|us|µs)?", text.strip())
    if match is None or float(match[1]) <= 0:
        raise InvalidArgumentError(
            f"{parameter}={text!r} cannot be read: write a positive number with a unit, e.g. 2ms, 500us or 0.002s"
        )
    return float(match[1]) * _SECONDS[match[2] or "ms"]


def percent(fraction: float | None) -> str:
    """A 0..1 accuracy as a percentage with one decimal (``94.4``); '' for none."""
    return "" if fraction is None else f"{100 * fraction:.1f}"
