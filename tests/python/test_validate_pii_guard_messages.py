"""`validate` under a PII guard (issue 16, item 5): messages name the JSON path, the rule and
what the schema expects, never a data value (`<string, 9 chars> is not of type 'integer'`);
without a guard the messages are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_eval import privacy
from recsys_eval.cli import main
from recsys_eval.errors import EXIT_ERROR
from recsys_eval.validation import RecordValidator
from recsys_eval.value_free import describe, mask_path

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["a", "z"],
    "properties": {
        "a": {"type": "integer"},
        "b": {"enum": ["x", "y"]},
        "c": {"type": "string", "pattern": "^u_[0-9]+$"},
        "d": {"type": "string", "maxLength": 3},
        "e": {"const": "k"},
        "f": {"type": "number", "minimum": 0},
        "g": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
        "h": {"type": "string", "format": "date-time"},
        "i": {"type": "array", "uniqueItems": True},
        "n": {"type": "integer"},
        "ctx": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
RECORD = {
    "a": "hunter2pw",
    "b": "alice@example.com",
    "c": "+44 20 7946 0958",
    "d": "s3cr3tvalue",
    "e": "tok-123456",
    "f": -98765,
    "g": "ghp_abcdef",
    "h": "bob@corp.example",
    "i": ["dupSECRET", "dupSECRET"],
    "n": 123456789012345678901234567890,  # beyond 64 bits: not representable in the warehouse
    "ctx": {"carol@example.com": 5, "password": 77123},
    "dave@example.com": 1,
}
LEAKS = ("hunter2pw", "alice", "7946", "s3cr3tvalue", "tok-123456", "98765", "ghp_abcdef",
         "bob@corp", "dupSECRET", "1234567890", "carol", "77123", "dave")  # fmt: skip
# What the guarded messages say instead: path, description, the schema's constraint, rule.
EXPECTED_LINES = [
    "$.a: <string, 9 chars> is not of type 'integer' [type]",
    "$.b: <string, 17 chars> is not one of ['x', 'y'] [enum]",
    "$.c: <string, 16 chars> does not match '^u_[0-9]+$' [pattern]",
    "$.d: <string, 11 chars> is too long (maxLength 3) [maxLength]",
    "$.e: <string, 10 chars> is not the constant 'k' [const]",
    "$.f: <integer> is less than the minimum of 0 [minimum]",
    "$.g: <string, 10 chars> is not valid under the schema's anyOf rule [anyOf]",
    "$.h: <string, 16 chars> is not a 'date-time' [format]",
    "$.i: <array, 2 items> has non-unique elements [uniqueItems]",
    "$.ctx[*]: <integer> is not of type 'string' [type]",
    "$.ctx.password: <integer> is not of type 'string' [type]",
    "$: additional properties are not allowed (*) [additionalProperties]",
    "$: 'z' is a required property [required]",
]


@pytest.fixture
def bad_file(tmp_path: Path) -> tuple[Path, Path]:
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(SCHEMA))
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(RECORD) + "\n")
    return schema, data


def _validate(schema: Path, data: Path, capsys, *extra: str) -> str:
    code = main(["validate", "--schema", str(schema), "--input", str(data), *extra])
    assert code == EXIT_ERROR
    out = capsys.readouterr()
    return out.out + out.err


@pytest.mark.parametrize("mode", ["flag", "reject"])
def test_guarded_text_output_names_path_rule_and_type_never_a_value(bad_file, capsys, mode) -> None:
    schema, data = bad_file
    text = _validate(schema, data, capsys, "--pii-guard", mode)
    for leaked in LEAKS:
        assert leaked not in text, leaked
    for line in EXPECTED_LINES:
        assert f"{data}:1: {line}" in text, line
    assert "validation failed for 1 line(s)" in text


@pytest.mark.parametrize("mode", ["flag", "reject"])
def test_guarded_json_output_holds_no_value(bad_file, capsys, mode) -> None:
    schema, data = bad_file
    text = _validate(schema, data, capsys, "--pii-guard", mode, "--format", "json")
    for leaked in LEAKS:
        assert leaked not in text, leaked
    errors = json.loads(text)["invalid"][0]["errors"]
    assert {"path": "$.a", "rule": "type",
            "message": "<string, 9 chars> is not of type 'integer'"} in errors  # fmt: skip
    assert {e["path"] for e in errors} >= {"$.a", "$.h", "$.ctx[*]", "$"}


def test_without_a_guard_the_messages_are_unchanged(bad_file, capsys) -> None:
    schema, data = bad_file
    text = _validate(schema, data, capsys)
    assert f"{data}:1: $.a: 'hunter2pw' is not of type 'integer' [type]" in text
    assert f'{data}:1: $.ctx["carol@example.com"]: 5 is not of type' in text


def test_pii_rejections_and_parse_errors_keep_their_value_free_messages(tmp_path, capsys) -> None:
    data = tmp_path / "e.jsonl"
    ok = {"request_id": "r1", "user_id": "erin@example.com", "ts": "2024-01-01T00:00:00Z",
          "items": [{"item_id": "i1", "rank": 1}]}  # fmt: skip
    data.write_text(json.dumps(ok) + "\n" + '{"request_id": "r2", "user_id": "frank\n')
    code = main(["validate", "--schema", "exposure.v1", "--input", str(data), "--pii-guard",
                 "reject"])  # fmt: skip
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"{data}:1: $.user_id: looks like an email address" in err
    assert f"{data}:2: $: " in err and ("[truncated]" in err or "[json]" in err)
    assert "erin" not in err and "frank" not in err


# --- the building blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("hunter2", "<string, 7 chars>"),
        ("", "<string, 0 chars>"),
        ("x", "<string, 1 char>"),
        (12, "<integer>"),
        (1.5, "<number>"),
        (True, "<boolean>"),
        (None, "<null>"),
        ([1, 2], "<array, 2 items>"),
        ({"k": 1}, "<object, 1 key>"),
    ],
)
def test_describe_gives_type_and_size_only(value, text) -> None:
    assert describe(value) == text


def test_mask_path_hides_quoted_keys_only() -> None:
    assert mask_path('$.context["bob@example.com"].x[0]') == "$.context[*].x[0]"
    assert mask_path('$.a["q\\"uote"]["b c"]') == "$.a[*][*]"
    assert mask_path("$.items[3].rank") == "$.items[3].rank"


_VALUES = st.one_of(
    st.text(min_size=1, max_size=30).map(lambda s: f"QZX{s}XZQ"),
    st.lists(st.just("QZXdupXZQ"), min_size=2, max_size=3),
    # Keys that are not plain identifiers (an email, say) are data too; identifiers are kept.
    st.dictionaries(st.text(max_size=8).map(lambda s: f"QZX@{s}XZQ"), st.integers(), min_size=1),
)


@settings(max_examples=150, deadline=None)
@given(value=_VALUES, field=st.sampled_from(["a", "b", "c", "d", "e", "g", "h", "i", "ctx"]))
def test_property_no_value_survives_the_guard(value, field) -> None:
    """Whatever a field holds, the guarded errors (path and message) never contain it."""
    validator = RecordValidator(SCHEMA)
    doc = {"a": 1, "z": 0, field: value}
    line = json.dumps(doc, ensure_ascii=False).encode()
    errors = validator.check(line).errors
    shown = json.dumps([privacy.without_values(e).as_dict() for e in errors], ensure_ascii=False)
    assert "QZX" not in shown
