"""Number formatting for the Markdown and HTML reports: fixed decimals, never locale- or
repr-dependent, so two renders of the same report are byte-identical."""

from __future__ import annotations

import math
from typing import Any


def fixed(value: Any, decimals: int = 4) -> str:
    """`value` with `decimals` decimals ('' when absent, never '-0'). JSON integers are formatted
    the same way: the report writes 0.0 as 0, so a metric cannot be told from a count by type
    (counts are formatted with str() by the callers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        value = float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:.{decimals}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    return str(value)


def count(value: Any) -> str:
    """A count as an integer with thousands separators ('12,345'); a number that is not a whole
    number keeps fixed()'s 4 decimals, and text is shown as it is."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fixed(value)
    if isinstance(value, float) and not value.is_integer():
        return fixed(value)
    return f"{int(value):,}"


def signed(value: Any, decimals: int = 4) -> str:
    """Like fixed() with an explicit '+' on positive numbers (lifts and deltas)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return fixed(value, decimals)
    text = fixed(float(value), decimals)
    return text if text.startswith("-") or float(text) == 0 else "+" + text


def p_value(value: Any) -> str:
    """p-values: 4 decimals, scientific below 0.0001 so tiny values are not shown as 0."""
    if value is None:
        return ""
    value = float(value)
    if 0 < value < 1e-4:
        return f"{value:.2e}"
    return fixed(value, 4)


def percent(value: Any, decimals: int = 1) -> str:
    if value is None:
        return ""
    return f"{fixed(100 * float(value), decimals)}%"


def interval(block: Any, decimals: int = 4, signs: bool = False) -> str:
    """A `{lower, upper, level}` block as `[lower, upper] (level)` (the reference's CI cell:
    4/4/2 decimals)."""
    if not isinstance(block, dict) or "lower" not in block or "upper" not in block:
        return ""
    f = signed if signs else fixed
    text = f"[{f(float(block['lower']), decimals)}, {f(float(block['upper']), decimals)}]"
    if "level" in block:
        text += f" ({fixed(float(block['level']), 2)})"
    how = [str(block["method"])] if block.get("method") else []
    if block.get("replicates"):
        how.append(f"{block['replicates']} replicates")
    return text + (f" {', '.join(how)}" if how else "")


def scalar(value: Any) -> str:
    """Any JSON scalar for the generic key/value tables (6 decimals for floats)."""
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-4 else fixed(value, 6)
    if value is None:
        return "null"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return fixed(value)
