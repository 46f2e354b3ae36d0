"""JSONL validation against the JSON Schema contracts: a fast path and canonical error reports.

Fast path (every line): `orjson.loads` + a `jsonschema_rs` Draft-07 validator. Its format checks
call the very functions python-jsonschema's `FORMAT_CHECKER` uses (`date-time` is
`rfc3339_validator.validate_rfc3339(value.upper())`), so both agree by construction.

Slow path (invalid lines, and lines where a key may repeat): python json (exact) and python
`jsonschema.Draft7Validator` with `FORMAT_CHECKER` list every error with a JSON path
(`$.items[0].rank`), the rule (validator keyword) and a message. It is canonical: when the two
validators ever disagree, its answer wins.

Valid means the schema and the warehouse rules (`recsys_eval.warehouse_rules`, rules
`representable` and `duplicate_key`), for `validate` and `load` alike: one RecordValidator.

Line handling (binary, split on b"\\n", 1-based physical line numbers): zero-length and
whitespace-only lines are blank; a UTF-8 BOM at file start is stripped; `\\r\\n` endings are
accepted; invalid UTF-8, non-JSON, NaN/Infinity and a truncated last line are reported. A line
longer than MAX_LINE_BYTES is never held whole: it is streamed (length, SHA-256, first
QUARANTINE_PREFIX_BYTES bytes) and reported as too long. A line that does not parse and holds a
lone CR (classic Mac OS line endings) is reported as such: the loader and `validate` both refuse
it (lines are never split on a lone CR).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from rfc3339_validator import RFC3339_REGEX, validate_rfc3339

from recsys_eval.value_free import schema_error_message
from recsys_eval.warehouse_rules import (
    FAST_INT64_MIN,
    RULE_REPRESENTABLE,
    WAREHOUSE_DATE_TIME,
    Duplicates,
    datetime_in_range,
    keys_cannot_repeat,
    parse_exact,
    printable,
    rule_message,
    value_errors,
    warehouse_schema,
)

BOM = b"\xef\xbb\xbf"
JSON_WS = b" \t\r\n"
MAX_MESSAGE = 300
READ_BLOCK = 8 << 20
# One JSONL record may be at most 64 MiB; a longer line is refused ("line too long") without being
# parsed or held in memory whole. Its first 64 KiB are kept for the quarantine.
MAX_LINE_BYTES = 64 << 20
QUARANTINE_PREFIX_BYTES = 64 << 10


RULE_UTF8 = "utf8"
RULE_JSON = "json"
RULE_TRUNCATED = "truncated"
RULE_DEPTH = "depth"
RULE_LINE_LENGTH = "line_length"
RULE_LINE_ENDING = "line_ending"
LONE_CR_MESSAGE = (
    "lines end in a lone CR (classic Mac OS): several records are on one line; convert the file "
    "with `tr '\\r' '\\n' < FILE > FILE.jsonl`"
)
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
    # The message without any data value, shown under a PII guard (recsys_eval.value_free);
    # None when only the rule says what is wrong without quoting data.
    value_free: str | None = field(default=None, compare=False)

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
            out.append("[" + json.dumps(printable(part), ensure_ascii=False) + "]")
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


def _native_then_python(
    native_is_valid: Any, keys: tuple[str, ...], representable: bool = False
) -> Any:
    if not keys:
        return native_is_valid

    def is_valid(doc: Any) -> bool:
        if not native_is_valid(doc):
            return False
        if type(doc) is dict:
            for key in keys:
                value = doc.get(key)
                if type(value) is str and not (
                    is_datetime(value) and (not representable or datetime_in_range(value))
                ):
                    return False
        return True

    return is_valid


def _in_warehouse_range(value: object) -> bool:
    """The WAREHOUSE_DATE_TIME format: a valid `date-time` in the years 1 to 9999 in UTC (any other
    value is left to `date-time` itself)."""
    return not isinstance(value, str) or not is_datetime(value) or datetime_in_range(value)


class _RaisingConstant:
    def __call__(self, name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON (NaN and Infinity literals are not allowed)")


_raise_constant = _RaisingConstant()

TOO_DEEP_TO_STORE = "not representable in the warehouse: nested too deeply to re-encode for storage"


def encode(doc: Any) -> bytes | None:
    """The document as stored (compact JSON, colons in strings literal): by orjson (at most 254
    levels of nesting, integers within 64 bits), else by the json module (to Python's recursion
    limit); None when it is too deep for both."""
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:
        pass
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (RecursionError, ValueError):
        return None
    return text.encode("utf-8")


@dataclass
class Verdict:
    """The outcome for one non-blank line."""

    ok: bool
    doc: Any = None
    errors: list[LineError] = field(default_factory=list)
    # True when the line is schema-valid but breaks a warehouse rule (see warehouse_rules).
    unrepresentable: bool = False
    # A valid line's document as the warehouse stores it (see `encode`).
    encoded: bytes | None = None


class RecordValidator:
    """The one definition of a valid line, for `validate` and `load`: the JSON Schema plus the
    warehouse rules (`recsys_eval.warehouse_rules`: integers within BIGINT, finite numbers, no
    unpaired surrogate, timestamps within the years 1-9999 in UTC, no repeated key).

    Fast path: orjson + jsonschema-rs on the schema's warehouse copy, then `keys_cannot_repeat`.
    Anything else takes the slow path: python json (exact, every key seen) and python-jsonschema
    (canonical) list every error with its path and rule. `representable=False` checks the JSON
    Schema alone (python-jsonschema's verdict; for tests and schema tooling, not the CLI).
    """

    def __init__(self, schema: dict[str, Any], *, representable: bool = True) -> None:
        self.schema = schema
        self.representable = representable
        fast_schema = warehouse_schema(schema, FAST_INT64_MIN) if representable else schema
        top_dt = _top_level_datetime_keys(schema)
        if top_dt is not None:
            # Measured: a Python format callback inside jsonschema-rs costs ~1-3 us per record.
            # When the only format is `date-time` on top-level properties, jsonschema-rs checks
            # everything else (formats off) and the value is then checked in Python with the
            # same function python-jsonschema uses: equal verdicts by construction.
            native_schema = _without_top_level_formats(fast_schema, top_dt)
            native = jsonschema_rs.Draft7Validator(native_schema, validate_formats=False)
            self.fast = native
            self.is_valid = _native_then_python(native.is_valid, top_dt, representable)
        else:
            formats = _format_functions(schema)
            if representable:
                formats[WAREHOUSE_DATE_TIME] = _in_warehouse_range
            self.fast = jsonschema_rs.Draft7Validator(
                fast_schema, validate_formats=True, formats=formats
            )
            self.is_valid = self.fast.is_valid
        self._slow: Any = None
        self._slow_rules: Any = None

    def _python_validator(self, schema: dict[str, Any]) -> Any:
        from jsonschema import Draft7Validator

        return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)

    def schema_errors(self, doc: Any) -> list[LineError]:
        """Every schema error of a parsed document (python-jsonschema, canonical)."""
        if self._slow is None:
            self._slow = self._python_validator(self.schema)
        return _errors_of(self._slow, doc)

    def _schema_rule_errors(self, doc: Any, schema_errors: list[LineError]) -> list[LineError]:
        """Errors of the schema's warehouse copy that the schema itself does not have."""
        if self._slow_rules is None:
            from jsonschema import Draft7Validator, FormatChecker

            checker = FormatChecker(formats=())
            checker.checks(WAREHOUSE_DATE_TIME)(_in_warehouse_range)
            self._slow_rules = Draft7Validator(
                warehouse_schema(self.schema), format_checker=checker
            )
        known = {(e.path, e.rule, e.message) for e in schema_errors}
        found = []
        try:
            for e in self._slow_rules.iter_errors(doc):
                path, rule = json_path(e.absolute_path), str(e.validator)
                if (path, rule, _short(e.message)) not in known:
                    message, free = rule_message(e.schema, rule, e.instance, e.message)
                    free = _short(free) if free is not None else None
                    found.append(LineError(path, RULE_REPRESENTABLE, _short(message), free))
        except RecursionError:
            return []  # schema_errors reported the depth
        return found

    def _rule_errors(
        self, doc: Any, dups: Duplicates, schema_errors: list[LineError]
    ) -> list[LineError]:
        found = self._schema_rule_errors(doc, schema_errors)
        found += [LineError(json_path(p), r, m, f) for p, r, m, f in value_errors(doc, dups)]
        return found

    def check(self, line: bytes, *, truncated_last: bool = False) -> Verdict:
        """Validate one non-blank line (no line ending, BOM already stripped)."""
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            return self._check_slow(line, truncated_last)
        if self.is_valid(doc):
            if not self.representable:
                return Verdict(True, doc)
            encoded = encode(doc)
            if encoded is not None and keys_cannot_repeat(line, encoded):
                return Verdict(True, doc, encoded=encoded)
        return self._check_slow(line, truncated_last)

    def _judge(self, doc: Any, dups: Duplicates) -> Verdict:
        """python-jsonschema and the warehouse rules decide, listing every error."""
        errors = self.schema_errors(doc)
        if not self.representable:
            return Verdict(not errors, doc, errors)
        rules = self._rule_errors(doc, dups, errors)
        if errors or rules:
            found = sorted(set(errors + rules), key=lambda e: (e.path, e.rule, e.message))
            return Verdict(False, doc, found, unrepresentable=not errors)
        encoded = encode(doc)
        if encoded is None:
            too_deep = LineError("$", RULE_REPRESENTABLE, TOO_DEEP_TO_STORE)
            return Verdict(False, doc, [too_deep], unrepresentable=True)
        return Verdict(True, doc, encoded=encoded)

    def _check_slow(self, line: bytes, truncated_last: bool) -> Verdict:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Verdict(
                False,
                None,
                [LineError("$", RULE_UTF8, f"not valid UTF-8 (byte offset {exc.start})")],
            )
        try:
            doc, dups = parse_exact(text, _raise_constant)
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
        # Parsed exactly (integers beyond 64 bits, infinity, unpaired surrogates and repeated
        # keys are all visible here): python-jsonschema and the warehouse rules decide.
        return self._judge(doc, dups)


def _errors_of(validator: Any, doc: Any) -> list[LineError]:
    try:
        found = [
            LineError(
                json_path(e.absolute_path), str(e.validator), _short(e.message), _value_free(e)
            )
            for e in validator.iter_errors(doc)
        ]
    except RecursionError:
        return [LineError("$", RULE_DEPTH, DEPTH_MESSAGE)]
    found.sort(key=lambda e: (e.path, e.rule, e.message))
    return found


def _value_free(e: Any) -> str:
    """A jsonschema error's message without the offending value (`<string, 7 chars> is not of
    type 'integer'`)."""
    return schema_error_message(
        str(e.validator), e.validator_value, e.instance, e.schema, e.message
    )


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
    lone_cr: int = 0  # lines holding a CR that does not end a CRLF line ending


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


def too_long_error(length: int, *, complete: bool = True) -> LineError:
    """The error of a line longer than MAX_LINE_BYTES (never parsed)."""
    size = f"{length:,} bytes" if complete else f"more than {length:,} bytes without a newline"
    return LineError(
        "$",
        RULE_LINE_LENGTH,
        f"line too long: {size}, over the limit of {MAX_LINE_BYTES:,} bytes (64 MiB) for one "
        "JSON record; it was not parsed: split the record, or remove the line if it is garbage",
    )


def lone_cr_error() -> LineError:
    return LineError("$", RULE_LINE_ENDING, LONE_CR_MESSAGE)


def has_lone_cr(line: bytes) -> bool:
    """A CR inside the line (its CRLF ending already removed)."""
    return b"\r" in line


def with_line_ending_hint(line: bytes, verdict: Verdict) -> list[LineError]:
    """A line that does not parse and holds a lone CR: first say what the file is."""
    if verdict.doc is None and not verdict.ok and has_lone_cr(line):
        # The JSON parser's complaint (trailing characters, "truncated") is about the framing.
        rest = [e for e in verdict.errors if e.rule not in (RULE_JSON, RULE_TRUNCATED)]
        return [lone_cr_error(), *rest]
    return verdict.errors


@dataclass(frozen=True)
class LongLine:
    """A line longer than MAX_LINE_BYTES, streamed: never held in memory whole.

    `length` and `sha256` describe the line without its newline (and without a CR before it, a
    BOM at file start); `prefix` is its first QUARANTINE_PREFIX_BYTES bytes. `complete` is False
    when reading stopped inside it (a stream, not a regular file)."""

    prefix: bytes
    length: int
    sha256: str
    complete: bool = True
    bom: bool = False

    def errors(self) -> list[LineError]:
        found = [too_long_error(self.length, complete=self.complete)]
        if has_lone_cr(self.prefix):
            found.insert(0, lone_cr_error())
        return found


class LineDigest:
    """Streams one line: byte length, SHA-256 and the first `keep` bytes, in bounded memory.

    A trailing newline (and a CR before it) fed at the end is not counted; nor is a UTF-8 BOM at
    the start when `strip_bom`."""

    def __init__(self, *, strip_bom: bool = False, keep: int = QUARANTINE_PREFIX_BYTES) -> None:
        self.sha = hashlib.sha256()
        self.length = 0
        self.keep = keep
        self.prefix = bytearray()
        self.held = b""  # the last two bytes: a possible CRLF ending
        self.strip_bom = strip_bom
        self.bom = False

    def update(self, data: bytes) -> None:
        if self.strip_bom:
            self.strip_bom = False
            if data.startswith(BOM):
                data = data[len(BOM) :]
                self.bom = True
        if len(data) < 2:
            data = self.held + data
            self.held = data[-2:]
            self._feed(data[:-2])
            return
        self._feed(self.held)
        self._feed(memoryview(data)[:-2])  # no copy of a large block
        self.held = data[-2:]

    def _feed(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self.sha.update(data)
        self.length += len(data)
        if len(self.prefix) < self.keep:
            self.prefix += data[: self.keep - len(self.prefix)]

    def finish(self, *, complete: bool = True) -> LongLine:
        tail = self.held
        tail = tail[:-1] if tail.endswith(b"\n") else tail
        tail = tail[:-1] if tail.endswith(b"\r") else tail
        self.held = b""
        self._feed(tail)
        return LongLine(bytes(self.prefix), self.length, self.sha.hexdigest(), complete, self.bom)


def bounded_prefix(line: bytes, keep: int = QUARANTINE_PREFIX_BYTES) -> bytes:
    """The first `keep` bytes of a line, cut before a split UTF-8 character."""
    if len(line) <= keep:
        return line
    cut = keep
    while cut > keep - 3 and (line[cut] & 0xC0) == 0x80:
        cut -= 1
    return line[:cut]


class LineTooLongInStream(Exception):
    """A stream (not a regular file) has a line over MAX_LINE_BYTES: reading stops there."""


def iter_bounded_lines(
    path: Path, block_size: int = READ_BLOCK, max_line: int = MAX_LINE_BYTES
) -> Iterator[tuple[bytes | LongLine, bool]]:
    """Yield (line, ends_without_newline) like iter_physical_lines, in bounded memory.

    A line longer than `max_line` comes as a LongLine (streamed, hashed, its prefix kept). A
    regular file is read up to its size when reading starts (a file that keeps growing still
    ends); in a stream (a pipe, /dev/zero) such a line ends the iteration with an incomplete
    LongLine, since skipping it might never end."""
    with path.open("rb") as fh:
        info = os.fstat(fh.fileno())
        remaining = info.st_size if stat.S_ISREG(info.st_mode) else None
        pieces: list[bytes] = []  # the current line so far (no newline yet), at most max_line
        pending = 0
        at_start = True
        long: LineDigest | None = None
        while True:
            want = block_size if remaining is None else min(block_size, remaining)
            block = fh.read(want) if want else b""
            if not block:
                break
            if remaining is not None:
                remaining -= len(block)
            nl = block.find(b"\n")
            if nl < 0:
                if long is not None:
                    long.update(block)
                    continue
                pieces.append(block)
                pending += len(block)
                if pending > max_line:
                    long = LineDigest(strip_bom=at_start)
                    for piece in pieces:
                        long.update(piece)
                    pieces, pending, at_start = [], 0, False
                    if remaining is None:
                        yield long.finish(complete=False), True
                        return
                continue
            # The line in progress ends at `nl`.
            if long is None and pending + nl > max_line:
                long = LineDigest(strip_bom=at_start)
                for piece in pieces:
                    long.update(piece)
                pieces, pending = [], 0
            if long is not None:
                long.update(block[:nl])
                yield long.finish(), False
                long = None
            else:
                line = b"".join([*pieces, block[:nl]]) if pieces else block[:nl]
                pieces, pending = [], 0
                yield (_long_line(line, at_start) if len(line) > max_line else line), False
            at_start = False
            cut = block.rfind(b"\n")
            if cut > nl:
                for line in block[nl + 1 : cut].split(b"\n"):
                    yield (_long_line(line, False) if len(line) > max_line else line), False
            rest = block[cut + 1 :]
            if rest:
                pieces, pending = [rest], len(rest)
        if long is not None:
            yield long.finish(), True
        elif pieces:
            line = b"".join(pieces)
            yield (_long_line(line, at_start) if len(line) > max_line else line), True


def _long_line(line: bytes, at_start: bool) -> LongLine:
    digest = LineDigest(strip_bom=at_start)
    digest.update(line)
    return digest.finish()


def validate_file(
    path: Path,
    validator: RecordValidator,
    stats: FileStats | None = None,
    block_size: int = READ_BLOCK,
    extra_check: Callable[[bytes], list[LineError]] | None = None,
    max_line: int = MAX_LINE_BYTES,
) -> Iterator[LineResult]:
    """Yield one LineResult per invalid line of `path`; fills `stats` as it goes (streaming).

    `extra_check(line)` (e.g. the PII guard) runs on schema-valid lines; errors it returns make
    the line invalid. A line over `max_line` bytes is invalid (rule `line_length`); in a stream
    that is not a regular file it stops the validation (LineTooLongInStream)."""
    stats = stats if stats is not None else FileStats()
    first = True
    for raw, unterminated in iter_bounded_lines(path, block_size, max_line):
        stats.lines_read += 1
        if isinstance(raw, LongLine):
            first = False
            stats.bom = stats.bom or raw.bom
            if not raw.complete:
                raise LineTooLongInStream(stats.lines_read)
            stats.invalid += 1
            stats.lone_cr += has_lone_cr(raw.prefix)
            yield LineResult(stats.lines_read, raw.errors(), raw.prefix)
            continue
        line = raw
        if first:
            first = False
            if line.startswith(BOM):
                line = line[len(BOM) :]
                stats.bom = True
        lone = False
        if line.endswith(b"\r"):
            line = line[:-1]
            lone = unterminated  # a CR that ends the file: no newline follows it
            stats.crlf += not unterminated
        stats.lone_cr += lone or has_lone_cr(line)
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
            yield LineResult(stats.lines_read, with_line_ending_hint(line, verdict), raw)
