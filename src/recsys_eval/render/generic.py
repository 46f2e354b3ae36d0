"""Fields a renderer does not know: shown as key/value or column tables, so nothing in the
report is silently dropped when a mode adds a field."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from recsys_eval.render.document import Block, Table
from recsys_eval.render.numbers import scalar

# The whole population: the label of the unsegmented rows in segment tables and charts, the same
# name as the reference's segment key without slice keys (README, Concepts).
GLOBAL = "__all__"


def cell(value: Any) -> str:
    """A JSON value as one table cell: scalars formatted, small lists/objects as compact JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False)
    return scalar(value)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested objects as dotted keys; lists of scalars inline, lists of objects as JSON."""
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for key, inner in value.items():
            out += flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, cell(value))]


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def records_table(records: list[dict[str, Any]], title: str = "") -> Table:
    """A list of objects as a column table (columns: the keys in first-seen order)."""
    headers: list[str] = []
    for rec in records:
        headers += [k for k in rec if k not in headers]
    rows = [[cell(rec.get(h)) if h in rec else "" for h in headers] for rec in records]
    numeric = tuple(
        i
        for i, h in enumerate(headers)
        if all(
            isinstance(r.get(h), int | float) and not isinstance(r.get(h), bool)
            for r in records
            if h in r
        )
    )
    return Table(headers=headers, rows=rows, title=title, numeric=numeric)


def leftover_blocks(
    section: dict[str, Any], known: Iterable[str], title: str = "Other fields"
) -> list[Block]:
    """Tables for the keys of `section` not in `known`: one key/value table for scalars and
    objects, one column table per list of objects."""
    known = set(known)
    extra = {k: v for k, v in section.items() if k not in known}
    if not extra:
        return []
    pairs: list[tuple[str, str]] = []
    tables: list[Block] = []
    for key, value in extra.items():
        if _is_records(value):
            tables.append(records_table(value, title=f"{title}: {key}"))
        else:
            pairs += flatten(value, key)
    blocks: list[Block] = []
    if pairs:
        blocks.append(Table(["Field", "Value"], [[k, v] for k, v in pairs], title=title))
    return blocks + tables


def forest_row(label: str, value: Any, ci: dict[str, Any], significant: bool = False) -> dict:
    """One row of a forest plot: a label, the estimate and its interval."""
    return {
        "label": str(label),
        "value": float(value),
        "lower": float(ci["lower"]),
        "upper": float(ci["upper"]),
        "significant": bool(significant),
    }
