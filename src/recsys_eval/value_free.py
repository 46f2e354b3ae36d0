"""Validation messages without data values, for `validate` and `load` under a PII guard.

jsonschema's messages quote the offending value (`'hunter2' is not of type 'integer'`,
`'bob@example.com' does not match '^u_'`). Under `--pii-guard flag` or `reject` nothing read from
the data is echoed: a value becomes a description of its type and size (`<string, 7 chars>`),
object keys that are not plain identifiers become `*` (in messages) and `[*]` (in JSON paths).
What the schema says (the expected type, the enum, the pattern, a bound, the required property
names) is not data and is kept.
"""

from __future__ import annotations

import re
from typing import Any

MAX_MESSAGE = 300

# Rules whose messages never hold a data value: parse and framing problems, the guard's own.
VALUE_FREE_RULES = frozenset(
    {"utf8", "json", "truncated", "depth", "line_length", "line_ending", "pii"}
)
# Rules whose messages quote data, and what is said instead when no schema message is known.
_RULE_TEXT = {
    "representable": "is not representable in the warehouse types (64-bit integers, finite "
    "numbers, valid Unicode, timestamps the warehouse holds)",
    "duplicate_key": "holds a key more than once (the key is not shown)",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUOTED_KEY = re.compile(r'\["(?:[^"\\]|\\.)*"\]')
NOT_SHOWN = "(values are not shown under the PII guard)"


def describe(value: Any) -> str:
    """A value's type and size, never its content: `<string, 7 chars>`, `<integer>`."""
    if value is None:
        return "<null>"
    if isinstance(value, bool):
        return "<boolean>"
    if isinstance(value, int):
        return "<integer>"
    if isinstance(value, float):
        return "<number>"
    if isinstance(value, str):
        return f"<string, {_count(len(value), 'char')}>"
    if isinstance(value, list | tuple):
        return f"<array, {_count(len(value), 'item')}>"
    if isinstance(value, dict):
        return f"<object, {_count(len(value), 'key')}>"
    return f"<{type(value).__name__}>"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def safe_key(key: Any) -> str:
    """An object key as shown under the guard: a plain identifier, else `*`."""
    return key if isinstance(key, str) and _IDENT.match(key) else "*"


def mask_path(path: str) -> str:
    """`$.context["bob@example.com"]` -> `$.context[*]`: quoted keys are data."""
    return _QUOTED_KEY.sub("[*]", path)


def _short(message: str) -> str:
    message = message.replace("\n", "\\n")
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _types(expected: Any) -> str:
    if isinstance(expected, list):
        return ", ".join(repr(t) for t in expected)
    return repr(expected)


def _unexpected(instance: Any, schema: Any) -> str:
    """The additional property names of an object (identifiers only, else `*`)."""
    if not isinstance(instance, dict) or not isinstance(schema, dict):
        return ""
    props = schema.get("properties") or {}
    patterns = list((schema.get("patternProperties") or {}).keys())
    extra = [
        safe_key(k)
        for k in instance
        if k not in props and not any(re.search(p, str(k)) for p in patterns)
    ]
    return ", ".join(sorted(extra))


_TEMPLATES = {
    "enum": "{d} is not one of {v!r}",
    "const": "{d} is not the constant {v!r}",
    "pattern": "{d} does not match {v!r}",
    "format": "{d} is not a {v!r}",
    "minLength": "{d} is too short (minLength {v})",
    "maxLength": "{d} is too long (maxLength {v})",
    "minItems": "{d} is too short (minItems {v})",
    "maxItems": "{d} is too long (maxItems {v})",
    "minimum": "{d} is less than the minimum of {v}",
    "maximum": "{d} is greater than the maximum of {v}",
    "exclusiveMinimum": "{d} is less than or equal to the minimum of {v}",
    "exclusiveMaximum": "{d} is greater than or equal to the maximum of {v}",
    "multipleOf": "{d} is not a multiple of {v}",
    "uniqueItems": "{d} has non-unique elements",
    "minProperties": "{d} has too few properties (minProperties {v})",
    "maxProperties": "{d} has too many properties (maxProperties {v})",
}


def schema_error_message(keyword: str, expected: Any, instance: Any, schema: Any, text: str) -> str:
    """A jsonschema error's message without the data: `keyword` (e.validator), `expected`
    (e.validator_value: the schema's constraint), `instance` (the offending value, described
    only), `schema` (the subschema), `text` (jsonschema's own message, kept only for keywords
    whose message names schema properties alone)."""
    d = describe(instance)
    if keyword in ("required", "dependencies"):
        return _short(text)  # "'user_id' is a required property": names from the schema
    if keyword == "type":
        return _short(f"{d} is not of type {_types(expected)}")
    if keyword == "additionalProperties" and isinstance(instance, dict):
        return _short(f"additional properties are not allowed ({_unexpected(instance, schema)})")
    template = _TEMPLATES.get(keyword)
    if template is not None:
        return _short(template.format(d=d, v=expected))
    return _short(f"{d} is not valid under the schema's {keyword} rule")


def rule_text(rule: str, message: str) -> str:
    """The message of an error without a schema message of its own, as shown under the guard."""
    if rule in VALUE_FREE_RULES:
        return message
    return f"the value {_RULE_TEXT.get(rule, f'fails the {rule} rule')} {NOT_SHOWN}"
