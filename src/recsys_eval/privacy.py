"""The PII guard: identifiers and context values that look like email addresses or phone numbers.

Evaluation logs should carry pseudonymous ids only (docs/privacy.md). The guard looks at the
identifiers (`request_id`, `user_id`, `item_id`, the item ids inside `items`) and at every context
value of a record, in one of three modes:

- `off` (default): no check;
- `flag`: the record is kept; the findings are counted per field and kind and reported as a
  warning that names the fields, never the values;
- `reject`: the record is refused (the loader quarantines it with rule `pii`, `validate` reports
  it as invalid).

Detectors (deliberately conservative, so numeric ids and dates are not flagged):

- email: `local@domain.tld` anywhere in the value;
- phone: the whole value is an international number (`+` or `00`, then 8 to 15 digits, with
  optional spaces, dots, dashes or parentheses) or a North-American `415-555-0123` /
  `(415) 555 0123` / `415.555.0123`. A bare run of digits is NOT a phone number: numeric ids are
  common.

Lines are pre-screened on their bytes (an `@`, a `"+`/`"00` or a `ddd-ddd` shape); only the rare
lines that pass are parsed again and inspected.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from recsys_eval import value_free
from recsys_eval.errors import ConfigError
from recsys_eval.validation import LineError

PII_MODES = ("off", "flag", "reject")
RULE_PII = "pii"
IDENTIFIER_FIELDS = ("request_id", "user_id", "item_id")

EMAIL_RE = re.compile(
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_INTL_PHONE_RE = re.compile(r"^(?:\+|00)\s?[1-9][0-9\s().\-]{6,24}$")
_NANP_PHONE_RE = re.compile(
    r"^(?:\+?1[\s.\-]?)?\(?[2-9][0-9]{2}\)?[\s.\-]?[0-9]{3}[\s.\-][0-9]{4}$"
)
# Byte pre-screen: a line that matches none of these cannot hold a finding.
_HINT_RE = re.compile(rb'@|"\s*(?:\+|00)\s?[1-9]|[0-9]{3}\)?[\s.\-][0-9]{3}[\s.\-][0-9]{4}')
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")

KIND_WORDS = {"email": "email address(es)", "phone": "phone number(s)"}


def check_mode(value: str | None, where: str = "--pii-guard") -> str:
    """Normalise a mode (None -> off); raise ConfigError naming `where` for anything else."""
    if value is None:
        return "off"
    mode = value.strip().lower()
    if mode not in PII_MODES:
        raise ConfigError(f"{where}: must be one of {', '.join(PII_MODES)}, got {value!r}")
    return mode


def pii_kind(value: str) -> str | None:
    """'email', 'phone' or None for one string value."""
    if "@" in value and EMAIL_RE.search(value):
        return "email"
    text = value.strip()
    if 8 <= len(text) <= 32 and (_INTL_PHONE_RE.match(text) or _NANP_PHONE_RE.match(text)):
        digits = sum(c.isdigit() for c in text)
        if 8 <= digits <= 15 or _NANP_PHONE_RE.match(text):
            return "phone"
    return None


def _context_field(key: Any) -> str:
    """`context.<key>` for a plain key; `context.*` when the key itself could be personal."""
    if isinstance(key, str) and _SAFE_NAME.match(key) and pii_kind(key) is None:
        return f"context.{key}"
    return "context.*"


def _values(doc: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    for name in IDENTIFIER_FIELDS:
        if name in doc:
            yield name, doc[name]
    items = doc.get("items")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                yield "items[].item_id", item.get("item_id")
            else:
                yield "items[]", item
    context = doc.get("context")
    if isinstance(context, dict):
        for key, value in context.items():
            yield _context_field(key), value


def scan_record(doc: Any) -> list[tuple[str, str]]:
    """Every (field, kind) finding of one parsed record, in field order; values are not kept."""
    if not isinstance(doc, dict):
        return []
    found = []
    for name, value in _values(doc):
        if isinstance(value, str):
            kind = pii_kind(value)
            if kind is not None:
                found.append((name, kind))
    return found


def scan_line(line: bytes) -> list[tuple[str, str]]:
    """Findings of one JSONL line (pre-screened on bytes; unparsable lines have none)."""
    if _HINT_RE.search(line) is None:
        return []
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return []
    return scan_record(doc)


def line_errors(findings: list[tuple[str, str]]) -> list[LineError]:
    """The quarantine errors (rule `pii`) of a rejected line: field and kind, never the value."""
    return [
        LineError(
            f"$.{name}",
            RULE_PII,
            f"looks like {'an email address' if kind == 'email' else 'a phone number'} "
            "(PII guard in reject mode; the value is not shown)",
        )
        for name, kind in findings
    ]


def without_values(error: LineError) -> LineError:
    """An error as `validate` prints it under a guard (flag or reject): quoted object keys in
    the path masked, and a message that quotes no data value (`<string, 7 chars> is not of type
    'integer'`), only the rule and what the schema expects."""
    message = error.value_free
    if message is None:
        message = value_free.rule_text(error.rule, error.message)
    return LineError(value_free.mask_path(error.path), error.rule, message, message)


def counter_key(name: str, kind: str) -> str:
    return f"{name}|{kind}"


def count(findings: list[tuple[str, str]], into: Counter[str] | dict[str, int]) -> None:
    for name, kind in findings:
        key = counter_key(name, kind)
        into[key] = into.get(key, 0) + 1


def merge_counts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for key, n in part.items():
            out[key] = out.get(key, 0) + n
    return out


def summary(counts: dict[str, int], action: str = "flagged") -> str:
    """`PII guard flagged 3 value(s): email address(es) in user_id (2), ...` (no values)."""
    parts = []
    for key in sorted(counts):
        name, kind = key.rsplit("|", 1)
        parts.append(f"{KIND_WORDS[kind]} in {name} ({counts[key]:,})")
    total = sum(counts.values())
    return f"PII guard {action} {total:,} value(s): " + ", ".join(parts)
