"""validation: line handling (blank, BOM, CRLF, UTF-8, truncation) and canonical errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recsys_eval import schema_registry
from recsys_eval.validation import FileStats, RecordValidator, is_datetime, validate_file

GOOD: dict[str, Any] = {
    "request_id": "r1",
    "user_id": "u1",
    "ts": "2025-01-01T00:00:00Z",
    "items": [{"item_id": "i1", "rank": 1, "logging_propensity": 0.5}],
    "context": {"tenant": "t1"},
    "latency_ms": 12.5,
    "error": False,
}


@pytest.fixture(scope="module")
def exposure() -> RecordValidator:
    return RecordValidator(schema_registry.resolve("exposure.v1").schema)


def line(**changes: Any) -> bytes:
    doc = {**GOOD, **changes}
    for key, value in changes.items():
        if value is DROP:
            del doc[key]
    return json.dumps(doc).encode()


DROP = object()


def run(tmp_path: Path, data: bytes, validator: RecordValidator) -> tuple[dict, FileStats]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    stats = FileStats()
    found = {
        r.line_no: [(e.path, e.rule, e.message) for e in r.errors]
        for r in validate_file(path, validator, stats)
    }
    return found, stats


def test_valid_file(tmp_path: Path, exposure: RecordValidator) -> None:
    found, stats = run(tmp_path, line() + b"\n" + line(request_id="r2") + b"\n", exposure)
    assert found == {}
    assert (stats.lines_read, stats.valid, stats.invalid, stats.blank) == (2, 2, 0, 0)


def test_missing_field_wrong_type_extra_key(tmp_path: Path, exposure: RecordValidator) -> None:
    data = b"\n".join([line(user_id=DROP), line(latency_ms="12"), line(extra=1)]) + b"\n"
    found, stats = run(tmp_path, data, exposure)
    assert found == {
        1: [("$", "required", "'user_id' is a required property")],
        2: [("$.latency_ms", "type", "'12' is not of type 'number'")],
        3: [
            (
                "$",
                "additionalProperties",
                "Additional properties are not allowed ('extra' was unexpected)",
            )
        ],
    }
    assert stats.invalid == 3


def test_extra_key_inside_an_item_is_allowed(tmp_path: Path, exposure: RecordValidator) -> None:
    items = [{"item_id": "i1", "rank": 1, "score": 0.9, "meta": {"a": [1]}}]
    found, _ = run(tmp_path, line(items=items) + b"\n", exposure)
    assert found == {}


def test_every_error_of_a_line_is_reported(tmp_path: Path, exposure: RecordValidator) -> None:
    bad = line(user_id=DROP, items=[{"item_id": "", "rank": 0}], context={"k": 1})
    found, _ = run(tmp_path, bad + b"\n", exposure)
    assert found == {
        1: [
            ("$", "required", "'user_id' is a required property"),
            ("$.context.k", "type", "1 is not of type 'string'"),
            ("$.items[0].item_id", "minLength", "'' should be non-empty"),
            ("$.items[0].rank", "minimum", "0 is less than the minimum of 1"),
        ]
    }


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        ("2025-01-01T00:00:00Z", True),
        ("2025-01-01t00:00:00z", True),  # python-jsonschema upper-cases before checking
        ("2025-01-01T00:00:00+05:30", True),
        ("2025-01-01T00:00:00-00:00", True),
        ("2025-01-01T00:00:00.123456789Z", True),
        ("2024-02-29T00:00:00Z", True),
        ("2025-01-01T23:59:60Z", False),  # leap second: rfc3339-validator rejects it
        ("2025-02-29T00:00:00Z", False),
        ("0000-01-01T00:00:00Z", False),
        ("2025-01-01T00:00:00", False),  # no offset
        ("2025-01-01 00:00:00Z", False),
        ("2025-01-01T24:00:00Z", False),
        ("2025-01-01T00:00:00+24:00", False),
        ("yesterday", False),
    ],
)
def test_timestamps(tmp_path: Path, exposure: RecordValidator, ts: str, ok: bool) -> None:
    found, _ = run(tmp_path, line(ts=ts) + b"\n", exposure)
    assert is_datetime(ts) is ok
    if ok:
        assert found == {}
    else:
        assert found == {1: [("$.ts", "format", f"{ts!r} is not a 'date-time'")]}


def test_blank_whitespace_bom_crlf(tmp_path: Path, exposure: RecordValidator) -> None:
    data = b"\xef\xbb\xbf" + line() + b"\r\n\n   \n\t \r\n" + line() + b"\r\n"
    found, stats = run(tmp_path, data, exposure)
    assert found == {}
    assert (stats.lines_read, stats.valid, stats.blank, stats.crlf, stats.bom) == (
        5,
        2,
        3,
        3,
        True,
    )


def test_bom_only_counts_at_file_start(tmp_path: Path, exposure: RecordValidator) -> None:
    found, stats = run(tmp_path, line() + b"\n\xef\xbb\xbf" + line() + b"\n", exposure)
    assert list(found) == [2]
    assert found[2][0][1] == "json"
    assert stats.bom is False


def test_parse_problems(tmp_path: Path, exposure: RecordValidator) -> None:
    data = b"\n".join(
        [
            b"not json",
            b'{"request_id": "r\xff1"}',
            b'{"request_id": "a\x00b"}',
            b'{"latency_ms": NaN}',
            b'{"latency_ms": Infinity}',
            b"[1, 2]",
            b'"just a string"',
            b"\x00",
            line()[:30],
        ]
    )
    found, stats = run(tmp_path, data, exposure)
    assert found == {
        1: [("$", "json", "not valid JSON: Expecting value: line 1 column 1 (char 0)")],
        2: [("$", "utf8", "not valid UTF-8 (byte offset 17)")],
        3: [
            (
                "$",
                "json",
                "not valid JSON: Invalid control character at: line 1 column 18 (char 17)",
            )
        ],
        4: [
            (
                "$",
                "json",
                "not valid JSON: NaN is not valid JSON (NaN and Infinity literals are not allowed)",
            )
        ],
        5: [
            (
                "$",
                "json",
                "not valid JSON: Infinity is not valid JSON (NaN and Infinity literals are not allowed)",
            )
        ],
        6: [("$", "type", "[1, 2] is not of type 'object'")],
        7: [("$", "type", "'just a string' is not of type 'object'")],
        8: [("$", "json", "not valid JSON: Expecting value: line 1 column 1 (char 0)")],
        9: [
            (
                "$",
                "truncated",
                "truncated last line: the file ends without a newline inside an unfinished JSON value",
            )
        ],
    }
    assert (stats.lines_read, stats.invalid) == (9, 9)


def test_last_line_without_newline_that_is_valid(tmp_path: Path, exposure: RecordValidator) -> None:
    found, stats = run(tmp_path, line() + b"\n" + line(), exposure)
    assert found == {}
    assert (stats.lines_read, stats.valid) == (2, 2)


def test_unterminated_garbage_that_is_not_last_is_plain_json_error(
    tmp_path: Path, exposure: RecordValidator
) -> None:
    found, _ = run(tmp_path, line()[:30] + b"\n" + line() + b"\n", exposure)
    assert found[1][0][1] == "json"


def test_escaped_nul_is_a_valid_string(tmp_path: Path, exposure: RecordValidator) -> None:
    found, _ = run(tmp_path, line(request_id="a\u0000b") + b"\n", exposure)
    assert found == {}


def test_empty_file(tmp_path: Path, exposure: RecordValidator) -> None:
    found, stats = run(tmp_path, b"", exposure)
    assert found == {}
    assert stats.lines_read == 0


def test_big_integers_and_integral_floats(tmp_path: Path, exposure: RecordValidator) -> None:
    ranks = [b"1.0", b"99999999999999999999999", b"18446744073709551616", b"1e2", b"1.5", b"true"]
    data = b"\n".join(
        b'{"request_id":"r","user_id":"u","ts":"2025-01-01T00:00:00Z","items":[{"item_id":"a","rank":'
        + r
        + b"}]}"
        for r in ranks
    )
    found, _ = run(tmp_path, data + b"\n", exposure)
    bigint = "does not fit the warehouse's 64-bit BIGINT"
    assert {n: [(p, r, bigint in m) for p, r, m in e] for n, e in found.items()} == {
        2: [("$.items[0].rank", "representable", True)],
        3: [("$.items[0].rank", "representable", True)],
        5: [("$.items[0].rank", "type", False)],
        6: [("$.items[0].rank", "type", False)],
    }
    assert found[5][0][2] == "1.5 is not of type 'integer'"


def test_validate_flags_values_the_warehouse_cannot_hold() -> None:
    schema = schema_registry.resolve("exposure.v1").schema
    strict = RecordValidator(schema)
    head = b'{"request_id":"r","user_id":"u","ts":"2025-01-01T00:00:00Z","items":[{"item_id":"a","rank":'
    ok = strict.check(head + b"9223372036854775807}]}")
    assert ok.ok
    big = strict.check(head + b"9223372036854775808}]}")
    assert (big.ok, big.unrepresentable) == (False, True)
    assert [(e.path, e.rule) for e in big.errors] == [("$.items[0].rank", "representable")]
    huge = strict.check(head + b"99999999999999999999999}]}")
    assert (huge.ok, huge.unrepresentable) == (False, True)
    surrogate = strict.check(head.replace(b'"u"', b'"\\ud800"') + b"1}]}")
    assert (surrogate.ok, surrogate.unrepresentable) == (False, True)
    assert [(e.path, e.rule) for e in surrogate.errors] == [("$.user_id", "representable")]
    # Every error is listed: the schema's and the warehouse's.
    both = strict.check(head + b'99999999999999999999999}],"extra":1}')
    assert [(e.path, e.rule) for e in both.errors] == [
        ("$", "additionalProperties"),
        ("$.items[0].rank", "representable"),
    ]
    assert not both.unrepresentable
    # The JSON Schema alone (python-jsonschema's verdict) accepts them.
    plain = RecordValidator(schema, representable=False)
    assert plain.check(head + b"99999999999999999999999}]}").ok
    assert plain.check(head.replace(b'"u"', b'"\\ud800"') + b"1}]}").ok
    assert plain.check(head + b'1}],"user_id":"u"}').ok  # a repeated key: the last wins


def test_long_messages_are_shortened(tmp_path: Path, exposure: RecordValidator) -> None:
    found, _ = run(tmp_path, json.dumps(["x" * 1000]).encode() + b"\n", exposure)
    message = found[1][0][2]
    assert len(message) == 300
    assert message.endswith("…")


def test_odd_keys_get_bracket_paths(tmp_path: Path, exposure: RecordValidator) -> None:
    found, _ = run(tmp_path, line(context={"a b": 1, "ok_1": 2}) + b"\n", exposure)
    assert [e[0] for e in found[1]] == ["$.context.ok_1", '$.context["a b"]']


def test_other_formats_use_python_jsonschema_checkers() -> None:
    schema = {
        "type": "object",
        "properties": {"when": {"format": "date"}, "ip": {"format": "ipv4"}},
    }
    v = RecordValidator(schema)
    assert v.check(b'{"when": "2025-01-31", "ip": "10.0.0.1"}').ok
    bad = v.check(b'{"when": "2025-02-31", "ip": "10.0.0.999"}')
    assert [(e.path, e.rule) for e in bad.errors] == [("$.ip", "format"), ("$.when", "format")]
