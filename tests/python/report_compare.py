"""Comparing a report section with a golden one: one helper for every CLI test module."""

from __future__ import annotations

import math
from typing import Any

TOL = 1e-12  # the golden numbers are reproduced to this absolute tolerance


def assert_report_close(actual: Any, expected: Any, path: str = "$", tol: float = TOL) -> None:
    """Every key of `expected` is in `actual` with the same value: numbers to `tol` when either
    side is a float, everything else (ints, strings, booleans, None) exactly."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            assert_report_close(actual[key], value, f"{path}.{key}", tol)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_report_close(a, e, f"{path}[{i}]", tol)
    elif isinstance(expected, float) or isinstance(actual, float):
        assert not isinstance(expected, bool) and not isinstance(actual, bool), path
        assert math.isclose(actual, expected, rel_tol=0, abs_tol=tol), (
            f"{path}: {actual} != {expected}"
        )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
