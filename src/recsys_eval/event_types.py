"""Event types as teams name them: what `run` says about outcome lines whose event_type the
dataset's `outcomes.event_types` mapping lacks (the loader quarantines them with rule
`unmapped_event_type` and counts them per name in raw.load_ledger.unmapped_event_types)."""

from __future__ import annotations

from typing import Any

import orjson

from recsys_eval.loader import RULE_UNMAPPED_EVENT_TYPE
from recsys_eval.privacy import pii_kind

MAX_NAMED = 20  # names listed one per warning; the rest are summed in one line
MAX_NAME_CHARS = 64


def unmapped_counts(con: Any, table: str) -> dict[str, int]:
    """Lines per unmapped event_type name over every load held in raw.<table> (a skipped file
    and the appended parts of a growing file included)."""
    counts: dict[str, int] = {}
    rows = con.execute(
        "select unmapped_event_types from raw.load_ledger "
        "where target_table = ? and unmapped_event_types is not null",
        [table],
    ).fetchall()
    for (text,) in rows:
        for name, n in orjson.loads(text).items():
            counts[name] = counts.get(name, 0) + int(n)
    return counts


def _shown(name: str, pii_guard: str) -> str:
    """The name as a warning shows it: quoted, shortened, never a value the PII guard flags."""
    if pii_guard != "off" and pii_kind(name):
        return f"<a value that looks like a {pii_kind(name)}, {len(name)} characters>"
    if len(name) > MAX_NAME_CHARS:
        return repr(name[:MAX_NAME_CHARS]) + f"... ({len(name)} characters)"
    return repr(name)


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def query_for(table: str, name: str | None) -> str:
    """The query that lists the quarantined lines of one unmapped name (None: of every name)."""
    sql = (
        f"select line_no, raw_text from raw.quarantine where target_table = {_sql_literal(table)} "
        f"and errors like '%{RULE_UNMAPPED_EVENT_TYPE}%'"
    )
    if name is not None:
        sql += (
            " and case when json_valid(raw_text) then raw_text->>'event_type' end = "
            + _sql_literal(name)
        )
    return sql


def unmapped_warnings(
    source: str, key: str, table: str, counts: dict[str, int], pii_guard: str = "off"
) -> list[str]:
    """One warning per unmapped name (most lines first, then by name), e.g. `outcomes: 1,234
    line(s) with event_type 'view' not in outcomes.event_types; they were quarantined (select
    ... from raw.quarantine where ...)`; past MAX_NAMED names, one line sums the rest."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = []
    for name, n in ordered[:MAX_NAMED]:
        hidden = pii_guard != "off" and pii_kind(name) is not None
        out.append(
            f"{source}: {n:,} line(s) with event_type {_shown(name, pii_guard)} not in {key}; "
            f"they were quarantined ({query_for(table, None if hidden else name)})"
        )
    rest = ordered[MAX_NAMED:]
    if rest:
        lines = sum(n for _, n in rest)
        out.append(
            f"{source}: {lines:,} more line(s) with {len(rest):,} other event_type name(s) not "
            f"in {key}; they were quarantined ({query_for(table, None)})"
        )
    return out
