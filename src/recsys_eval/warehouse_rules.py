"""The warehouse rules: what a record needs, beyond its JSON Schema, to be valid.

`validate` and `load` share one definition of a valid line: the contract in `schemas/` (Draft-07,
`date-time` enforced) plus these rules, applied by `validation.RecordValidator` (and, accept-only,
by `fast_accept`). A line that breaks one is invalid for `validate` and quarantined by `load`:

- `representable`: every integer-typed value fits a signed 64-bit BIGINT (-2^63 to 2^63-1;
  integer-valued floats such as 1e30 included); every number is finite as a 64-bit double (1e400
  overflows to infinity); every string and key is Unicode text (no unpaired UTF-16 surrogate such
  as "\\ud800"); every `date-time` falls, in UTC, within the years 1 to 9999 (DuckDB, Spark and
  Python all hold those: `0001-01-01T00:00:00+01:00` is year 0 in UTC and is refused).
- `duplicate_key`: an object holds each key once (parsers disagree on which value wins).

The schema rules (integers, timestamps) are added to a copy of the schema (`warehouse_schema`), so
jsonschema-rs applies them on the fast path and python-jsonschema reports them with paths on the
slow path; the value rules (finite numbers, surrogates, duplicate keys) are checked by walking the
document parsed exactly (`parse_exact`). orjson and msgspec already refuse non-finite numbers and
unpaired surrogates, so those lines always take the slow path; duplicate keys are detected cheaply
by `keys_cannot_repeat` and then exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from recsys_eval.value_free import describe, safe_key

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# orjson reads an integer below -2^63 as the float -2^63 (rounded): the fast path refuses the
# value -2^63 itself, so the exact slow path decides it.
FAST_INT64_MIN = INT64_MIN + 1

RULE_REPRESENTABLE = "representable"
RULE_DUPLICATE_KEY = "duplicate_key"
# The format name the warehouse copy of a schema gives its date-time range check.
WAREHOUSE_DATE_TIME = "recsys-eval-warehouse-date-time"
_MARK_INT = "recsys-eval: BIGINT range"
_MARK_TS = "recsys-eval: timestamp years 1-9999 in UTC"
# Keywords whose subschemas must not get stricter: a stricter branch can make them pass.
_NOT_MONOTONE = frozenset({"not", "oneOf", "if"})

_FIRST_DAY = "0001-01-01"
_LAST_DAY = "9999-12-31"
_DAY = 86_400


def datetime_in_range(value: str) -> bool:
    """Whether a valid RFC 3339 `date-time` falls within the years 1 to 9999 in UTC.

    Only the first and the last day can leave them (offsets are below 24 h); fractions of a second
    never matter at a whole-minute offset."""
    date = value[:10]
    if date != _FIRST_DAY and date != _LAST_DAY:
        return True
    utc = _seconds_of_day(value) - _offset_seconds(value)
    return utc >= 0 if date == _FIRST_DAY else utc < _DAY


def _seconds_of_day(value: str) -> int:
    return int(value[11:13]) * 3600 + int(value[14:16]) * 60 + int(value[17:19])


def _offset_seconds(value: str) -> int:
    if value[-1] in "Zz":
        return 0
    sign = -1 if value[-6] == "-" else 1
    return sign * (int(value[-5:-3]) * 3600 + int(value[-2:]) * 60)


def out_of_range_message(value: str, shown: str | None = None) -> str:
    """`shown`: how the value is written in the message (default: quoted in full)."""
    shift = "the year 0" if value[:10] == _FIRST_DAY else "the year 10000"
    return (
        f"timestamp {shown or repr(value)} is in {shift} in UTC: the warehouse (DuckDB, Spark, "
        "Python) holds the years 1 to 9999 only; write the timestamp in UTC (Z) within those years"
    )


def warehouse_schema(schema: Any, int_min: int = INT64_MIN) -> Any:
    """A copy of the schema with the representability rules added as `allOf` subschemas: integers
    within [int_min, INT64_MAX], `date-time` values within the years 1 to 9999 in UTC (format
    WAREHOUSE_DATE_TIME). Never inside `not`, `oneOf` or `if`, so the copy only ever narrows."""
    if isinstance(schema, list):
        return [warehouse_schema(v, int_min) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: (v if k in _NOT_MONOTONE else warehouse_schema(v, int_min)) for k, v in schema.items()
    }
    extra: list[dict[str, Any]] = []
    types = schema.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        extra.append({"$comment": _MARK_INT, "minimum": int_min, "maximum": INT64_MAX})
    if schema.get("format") == "date-time":
        extra.append({"$comment": _MARK_TS, "format": WAREHOUSE_DATE_TIME})
    if extra:
        out["allOf"] = [*out.get("allOf", []), *extra]
    return out


def rule_message(schema: Any, keyword: str, instance: Any, message: str) -> tuple[str, str | None]:
    """(message, the message without the data value or None) of an error the warehouse copy of a
    schema found (and the original did not)."""
    mark = schema.get("$comment") if isinstance(schema, dict) else None
    if mark == _MARK_INT:
        text = (
            "{} does not fit the warehouse's 64-bit BIGINT "
            f"({INT64_MIN} to {INT64_MAX}); write an integer within that range"
        )
        return text.format(f"integer {instance!r}"), text.format(describe(instance))
    if mark == _MARK_TS and isinstance(instance, str):
        return out_of_range_message(instance), out_of_range_message(instance, describe(instance))
    return f"not representable in the warehouse: {message} [{keyword}]", None


# ---------------------------------------------------------------------------------------------
# Value rules: checked on the document as parsed exactly (python json, every key kept)


class Duplicates:
    """Objects that repeated a key while parsing, by identity (each object kept alive)."""

    def __init__(self) -> None:
        self.found: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def hook(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            repeated: list[str] = []
            for key, _ in pairs:
                if key in seen and key not in repeated:
                    repeated.append(key)
                seen.add(key)
            self.found[id(obj)] = (obj, repeated)
        return obj

    def of(self, obj: dict[str, Any]) -> list[str]:
        hit = self.found.get(id(obj))
        return hit[1] if hit is not None and hit[0] is obj else []


def parse_exact(text: str, parse_constant: Callable[[str], Any]) -> tuple[Any, Duplicates]:
    """The document as python's json reads it (exact integers; the last of repeated keys wins,
    as in orjson) and the repeated keys. Raises ValueError / RecursionError as json.loads."""
    dups = Duplicates()
    doc = json.loads(text, object_pairs_hook=dups.hook, parse_constant=parse_constant)
    return doc, dups


PathParts = tuple[str | int, ...]
# (path, rule, message, the message without data values)
RuleFinding = tuple[PathParts, str, str, str]


def value_errors(doc: Any, dups: Duplicates) -> list[RuleFinding]:
    """Every repeated key, non-finite number and unpaired surrogate, found by an iterative walk
    (no recursion limit)."""
    found: list[RuleFinding] = []
    stack: list[tuple[Any, PathParts]] = [(doc, ())]
    while stack:
        node, path = stack.pop()
        kind = type(node)
        if kind is dict:
            for key in dups.of(node):
                message = duplicate_message(key)
                found.append((path, RULE_DUPLICATE_KEY, message, duplicate_message(key, True)))
            for key, value in node.items():
                if not is_unicode(key):
                    message = f'key "{printable(key)}": {_SURROGATE_KEY}'
                    found.append((path, RULE_REPRESENTABLE, message, _SURROGATE_KEY))
                stack.append((value, (*path, key)))
        elif kind is list:
            stack.extend((value, (*path, i)) for i, value in enumerate(node))
        elif kind is str:
            if not is_unicode(node):
                found.append((path, RULE_REPRESENTABLE, _SURROGATE, _SURROGATE))
        elif kind is float and not math.isfinite(node):
            found.append((path, RULE_REPRESENTABLE, _NOT_FINITE, _NOT_FINITE))
    return found


def is_unicode(text: str) -> bool:
    """False when the string holds an unpaired UTF-16 surrogate (it has no UTF-8 form)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """The text with unpaired surrogates written as `\\udXXX` escapes (safe to print and store)."""
    return text if is_unicode(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def duplicate_message(key: str, value_free: bool = False) -> str:
    """`value_free`: a key that is not a plain identifier is not shown (it may be data)."""
    shown = json.dumps(printable(key), ensure_ascii=False)
    if value_free and safe_key(key) != key:
        shown = "(not shown)"
    return (
        f"duplicate key {shown}: an object may hold each key once (JSON readers disagree on "
        "which value wins); remove the repeated key"
    )


_SURROGATE = (
    "string holds an unpaired UTF-16 surrogate escape (such as \\ud800): it is not Unicode "
    "text and the warehouse cannot store it; fix the string encoding where the record is written"
)
_SURROGATE_KEY = (
    "the key holds an unpaired UTF-16 surrogate escape: it is not Unicode text and the warehouse "
    "cannot store it; fix the string encoding where the record is written"
)
_NOT_FINITE = (
    "number overflows a 64-bit double (it reads as infinity; the warehouse stores doubles): "
    "write a finite number, at most about 1.8e308 in magnitude"
)


# ---------------------------------------------------------------------------------------------
# Duplicate keys, cheaply: a sound test on the raw line and the re-encoded document


def keys_cannot_repeat(line: bytes, encoded: bytes) -> bool:
    """True only if no object of `line` repeats a key, given `encoded`: the document as parsed
    from `line` (the last of repeated keys wins, keys the reader drops are dropped) and
    re-encoded, with every colon inside a string written literally (orjson, msgspec).

    Each key of the line is followed by one structural colon; the encoder writes one per key
    kept. The line's colons are its keys plus the colons in its strings, the encoded colons the
    keys kept plus the colons in the strings kept, which the line also holds. So equal counts
    mean every key was kept once: no key repeated. An escaped colon (\\u003a) would be counted
    only in `encoded`; such a line (rare) is never cleared here. False: a key may repeat (or was
    dropped): parse exactly to know.

    Cost (1 KB exposure line): nothing when the line is already written as the encoder writes it
    (compact, as Go and JavaScript write JSON); else two byte counts, about 1 us."""
    if line == encoded:
        return True
    if line.count(b":") != encoded.count(b":"):
        return False
    return b"\\" not in line or b"\\u003" not in line
