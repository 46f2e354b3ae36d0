"""JSONL validation against the JSON Schema contracts: a fast path and canonical error reports.

Fast path (every line): `orjson.loads` + a `jsonschema_rs` Draft-07 validator. Its format checks
call the very functions python-jsonschema's `FORMAT_CHECKER` uses (`date-time` is
`rfc3339_validator.validate_rfc3339(value.upper())`), so both agree by construction.

Slow path (invalid lines only): python `jsonschema.Draft7Validator` with `FORMAT_CHECKER` lists
every error with a JSON path (`$.items[0].rank`), the rule (validator keyword) and a message. It is
canonical: when the two validators ever disagree, its answer wins.

Line handling (binary, split on b"\\n", 1-based physical line numbers): zero-length and
whitespace-only lines are blank; a UTF-8 BOM at file start is stripped; `\\r\\n` endings are
accepted; invalid UTF-8, non-JSON, NaN/Infinity and a truncated last line are reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from rfc3339_validator import RFC3339_REGEX, validate_rfc3339

BOM = b"\xef\xbb\xbf"
JSON_WS = b" \t\r\n"
MAX_MESSAGE = 300
READ_BLOCK = 8 << 20

# The loader's fast path also checks that a valid record fits the warehouse types: integers must
# fit a signed 64-bit BIGINT. The upper bound is the largest double below 2**63, so an
# integer-valued float such as 9.2e18 can never overflow the cast either.
INT64_MIN = -(2**63)
INT64_SAFE_MAX = 2**63 - 1024

RULE_UTF8 = "utf8"
RULE_JSON = "json"
RULE_TRUNCATED = "truncated"
RULE_REPRESENTABLE = "representable"
RULE_DEPTH = "depth"
DEPTH_MESSAGE = (
    "nested too deeply: the JSON parsers stop at about 1000 levels of arrays and objects"
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_DATE_VERDICTS: dict[str, bool] = {}


def is_datetime(value: object) -> bool:
    """`format: date-time` exactly as python-jsonschema's FORMAT_CHECKER checks it
    (`validate_rfc3339(value.upper())`), with the calendar check memoised per date: once the
    same regex matched, the verdict depends only on the first ten characters (YYYY-MM-DD)."""
    if not isinstance(value, str):
        return True
    upper = value.upper()
    if RFC3339_REGEX.match(upper) is None:
        return False
    date = upper[:10]
    verdict = _DATE_VERDICTS.get(date)
    if verdict is None:
        verdict = validate_rfc3339(upper)
        if len(_DATE_VERDICTS) > 100_000:
            _DATE_VERDICTS.clear()
        _DATE_VERDICTS[date] = verdict
    return verdict


@dataclass(frozen=True)
class LineError:
    """One problem of one line: JSON path, rule (schema keyword or a parse rule) and message."""

    path: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule, "message": self.message}


def json_path(parts: Any) -> str:
    """`deque(['items', 0, 'rank'])` -> `$.items[0].rank`."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT.match(part):
            out.append(f".{part}")
        else:
            out.append("[" + json.dumps(part, ensure_ascii=False) + "]")
    return "".join(out)


def _short(message: str) -> str:
    message = message.replace("\n", "\\n")
    if len(message) > MAX_MESSAGE:
        return message[: MAX_MESSAGE - 1] + "…"
    return message


def _collect_formats(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        fmt = node.get("format")
        if isinstance(fmt, str):
            found.add(fmt)
        for value in node.values():
            _collect_formats(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect_formats(value, found)


def _format_functions(schema: dict[str, Any]) -> dict[str, Any]:
    """The python-jsonschema format checks for every format the schema uses."""
    names: set[str] = set()
    _collect_formats(schema, names)
    funcs: dict[str, Any] = {}
    for name in sorted(names):
        if name == "date-time":
            funcs[name] = is_datetime
            continue
        from jsonschema import Draft7Validator

        checker = Draft7Validator.FORMAT_CHECKER
        if name in checker.checkers:
            funcs[name] = lambda value, _name=name, _c=checker: _c.conforms(value, _name)
        # Formats python-jsonschema does not know are not checked by either validator.
    return funcs


def _top_level_datetime_keys(schema: dict[str, Any]) -> tuple[str, ...] | None:
    """The top-level properties with `format: date-time`, if those are the schema's only formats."""
    found: set[str] = set()
    _collect_formats(schema, found)
    if not found:
        return ()
    if found != {"date-time"}:
        return None
    props = schema.get("properties")
    if not isinstance(props, dict):
        return None
    keys = tuple(
        k for k, sub in props.items() if isinstance(sub, dict) and sub.get("format") == "date-time"
    )
    nested = json.dumps(schema).count('"date-time"')
    return keys if nested == len(keys) else None


def _without_top_level_formats(schema: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out = dict(schema)
    props = dict(out.get("properties", {}))
    for key in keys:
        props[key] = {k: v for k, v in props[key].items() if k != "format"}
    out["properties"] = props
    return out


def _native_then_python(native_is_valid: Any, keys: tuple[str, ...]) -> Any:
    if not keys:
        return native_is_valid

    def is_valid(doc: Any) -> bool:
        if not native_is_valid(doc):
            return False
        if type(doc) is dict:
            for key in keys:
                value = doc.get(key)
                if type(value) is str and not validate_rfc3339(value.upper()):
                    return False
        return True

    return is_valid


def _representable_schema(node: Any) -> Any:
    """A copy of the schema whose integers must also fit a 64-bit BIGINT."""
    if isinstance(node, list):
        return [_representable_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _representable_schema(v) for k, v in node.items()}
    types = node.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        out["allOf"] = [
            *out.get("allOf", []),
            {"minimum": INT64_MIN, "maximum": INT64_SAFE_MAX},
        ]
    return out


class _RaisingConstant:
    def __call__(self, name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON (NaN and Infinity literals are not allowed)")


_raise_constant = _RaisingConstant()


@dataclass
class Verdict:
    """The outcome for one non-blank line."""

    ok: bool
    doc: Any = None
    errors: list[LineError] = field(default_factory=list)
    # True when the line is schema-valid but cannot be stored (loader only).
    unrepresentable: bool = False


class RecordValidator:
    """A fast jsonschema-rs validator with python-jsonschema as the canonical slow path.

    With `representable=True` (the loader), a record must also fit the warehouse types: it is
    parsed by orjson (no integer beyond 64 bits, no unpaired surrogate, no number beyond double)
    and its integers fit BIGINT. Such schema-valid records get one error with rule
    `representable`.
    """

    def __init__(self, schema: dict[str, Any], *, representable: bool = False) -> None:
        self.schema = schema
        self.representable = representable
        fast_schema = _representable_schema(schema) if representable else schema
        self._fast_schema = fast_schema
        top_dt = _top_level_datetime_keys(schema)
        if top_dt is not None:
            # Measured: a Python format callback inside jsonschema-rs costs ~1-3 us per record.
            # When the only format is `date-time` on top-level properties, jsonschema-rs checks
            # everything else (format removed) and the value is then checked in Python with the
            # same function python-jsonschema uses: equal verdicts by construction.
            native_schema = _without_top_level_formats(fast_schema, top_dt)
            native = jsonschema_rs.Draft7Validator(native_schema, validate_formats=False)
            self.fast = native
            self.is_valid = _native_then_python(native.is_valid, top_dt)
        else:
            self.fast = jsonschema_rs.Draft7Validator(
                fast_schema, validate_formats=True, formats=_format_functions(schema)
            )
            self.is_valid = self.fast.is_valid
        self._slow: Any = None
        self._slow_repr: Any = None

    def _python_validator(self, schema: dict[str, Any]) -> Any:
        from jsonschema import Draft7Validator

        return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)

    def schema_errors(self, doc: Any) -> list[LineError]:
        """Every schema error of a parsed document (python-jsonschema, canonical)."""
        if self._slow is None:
            self._slow = self._python_validator(self.schema)
        return _errors_of(self._slow, doc)

    def _representable_errors(self, doc: Any) -> list[LineError]:
        errors = [
            LineError(
                e.path, RULE_REPRESENTABLE, f"not representable in the warehouse: {e.message}"
            )
            for e in _errors_of(self._slow_repr, doc)
        ]
        return errors or [
            LineError("$", RULE_REPRESENTABLE, "not representable in the warehouse types")
        ]

    def check(self, line: bytes, *, truncated_last: bool = False) -> Verdict:
        """Validate one non-blank line (no line ending, BOM already stripped)."""
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return self._check_slow(line, truncated_last, str(exc))
        if self.is_valid(doc):
            return Verdict(True, doc)
        return self._decide(doc, None)

    def _decide(self, doc: Any, orjson_message: str | None) -> Verdict:
        """python-jsonschema decides: schema errors, else (loader) representability."""
        errors = self.schema_errors(doc)
        if errors:
            return Verdict(False, doc, errors)
        if not self.representable:
            return Verdict(True, doc)
        if orjson_message is not None:
            message = _short(f"not representable in the warehouse: {orjson_message}")
            return Verdict(
                False, doc, [LineError("$", RULE_REPRESENTABLE, message)], unrepresentable=True
            )
        if self._slow_repr is None:
            self._slow_repr = self._python_validator(self._fast_schema)
        if self._slow_repr.is_valid(doc):
            return Verdict(True, doc)
        return Verdict(False, doc, self._representable_errors(doc), unrepresentable=True)

    def _check_slow(self, line: bytes, truncated_last: bool, orjson_message: str) -> Verdict:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Verdict(
                False,
                None,
                [LineError("$", RULE_UTF8, f"not valid UTF-8 (byte offset {exc.start})")],
            )
        try:
            doc = json.loads(text, parse_constant=_raise_constant)
        except RecursionError:
            return Verdict(False, None, [LineError("$", RULE_DEPTH, DEPTH_MESSAGE)])
        except ValueError as exc:
            if truncated_last:
                message = (
                    "truncated last line: the file ends without a newline inside an unfinished "
                    "JSON value"
                )
                return Verdict(False, None, [LineError("$", RULE_TRUNCATED, message)])
            return Verdict(
                False, None, [LineError("$", RULE_JSON, _short(f"not valid JSON: {exc}"))]
            )
        # Valid JSON that orjson refuses: an integer beyond 64 bits, a number beyond double, an
        # unpaired surrogate. python-jsonschema decides validity.
        return self._decide(doc, orjson_message)


def _errors_of(validator: Any, doc: Any) -> list[LineError]:
    try:
        found = [
            LineError(json_path(e.absolute_path), str(e.validator), _short(e.message))
            for e in validator.iter_errors(doc)
        ]
    except RecursionError:
        return [LineError("$", RULE_DEPTH, DEPTH_MESSAGE)]
    found.sort(key=lambda e: (e.path, e.rule, e.message))
    return found


def is_blank(line: bytes) -> bool:
    """Zero-length or JSON-whitespace-only (space, tab, CR)."""
    return not line.strip(JSON_WS)


@dataclass
class LineResult:
    line_no: int
    errors: list[LineError]
    raw: bytes


@dataclass
class FileStats:
    lines_read: int = 0
    valid: int = 0
    invalid: int = 0
    blank: int = 0
    crlf: int = 0
    bom: bool = False


def iter_physical_lines(path: Path, block_size: int = READ_BLOCK) -> Iterator[tuple[bytes, bool]]:
    """Yield (line, ends_without_newline) for each physical line, streaming whole blocks.

    The line keeps a trailing b"\\r" if it had one. A file ending in b"\\n" has no extra empty line.
    """
    with path.open("rb") as fh:
        rest = b""
        while True:
            block = fh.read(block_size)
            if not block:
                break
            data = rest + block if rest else block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1 :]
            lines = data[:cut].split(b"\n")
            for line in lines:
                yield line, False
        if rest:
            yield rest, True


def validate_file(
    path: Path,
    validator: RecordValidator,
    stats: FileStats | None = None,
    block_size: int = READ_BLOCK,
    extra_check: Callable[[bytes], list[LineError]] | None = None,
) -> Iterator[LineResult]:
    """Yield one LineResult per invalid line of `path`; fills `stats` as it goes (streaming).

    `extra_check(line)` (e.g. the PII guard) runs on schema-valid lines; errors it returns make
    the line invalid."""
    stats = stats if stats is not None else FileStats()
    first = True
    for raw, unterminated in iter_physical_lines(path, block_size):
        stats.lines_read += 1
        line = raw
        if first:
            first = False
            if line.startswith(BOM):
                line = line[len(BOM) :]
                stats.bom = True
        if line.endswith(b"\r"):
            line = line[:-1]
            stats.crlf += 1
        if is_blank(line):
            stats.blank += 1
            continue
        verdict = validator.check(line, truncated_last=unterminated)
        if verdict.ok and extra_check is not None:
            extra = extra_check(line)
            if extra:
                verdict = Verdict(False, verdict.doc, extra)
        if verdict.ok:
            stats.valid += 1
        else:
            stats.invalid += 1
            yield LineResult(stats.lines_read, verdict.errors, raw)
