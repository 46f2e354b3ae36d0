"""The fast validator (orjson + jsonschema-rs) accepts exactly what python-jsonschema accepts."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator

from recsys_eval import schema_registry
from recsys_eval.fast_accept import fast_accept_for
from recsys_eval.validation import RecordValidator

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    2.0,
    1.5,
    -0.0,
    0.0,
    -1e-9,
    1e308,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    10**30,
    -(10**30),
    "",
    "x",
    "ü",
    "🙂",
    "a\u0000b",
    " ",
    "click",
    "Click",
    "conversion",
    "2025-01-01T00:00:00Z",
    "2025-01-01t00:00:00z",
    "2025-01-01T00:00:00+05:30",
    "2025-01-01T00:00:00.123456Z",
    "2025-01-01T23:59:60Z",
    "2025-02-30T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2025-01-01T00:00:00",
    "2025-01-01 00:00:00Z",
    "2025-01-01T00:00:00Z\n",
    "\uff12\uff10\uff12\uff15-01-01T00:00:00Z",  # full-width digits
    [],
    ["x"],
    ["", "y"],
    [1],
    {},
    {"a": "b"},
    {"a": 1},
    {"ü": "ö"},
    [{"item_id": "i", "rank": 1}],
    [{"item_id": "i"}],
]

BASE: dict[str, dict[str, Any]] = {
    "exposure.v1": {
        "request_id": "r1",
        "user_id": "u1",
        "ts": "2025-01-01T00:00:00Z",
        "items": [
            {
                "item_id": "i1",
                "rank": 1,
                "propensity": 0.5,
                "logging_propensity": 0.4,
                "target_propensity": 0.3,
            },
            {"item_id": "i2", "rank": 2},
        ],
        "context": {"tenant": "t1"},
        "latency_ms": 10.5,
        "error": False,
    },
    "outcome.v1": {
        "request_id": "r1",
        "user_id": "u1",
        "item_id": "i1",
        "event_type": "click",
        "value": 1,
        "ts": "2025-01-01T00:00:10Z",
    },
    "assignment.v1": {
        "experiment_id": "e1",
        "variant": "A",
        "request_id": "r1",
        "user_id": "u1",
        "ts": "2025-01-01T00:00:00Z",
        "context": {"country": "FI"},
    },
    "ranklist.v1": {
        "request_id": "r1",
        "user_id": "u1",
        "ts": "2025-01-01T00:00:00Z",
        "items": ["i1", "i2"],
        "context": {"tenant": "t1"},
    },
}


def corpus(name: str) -> list[Any]:
    base = BASE[name]
    docs: list[Any] = [base]
    for key in base:
        dropped = dict(base)
        del dropped[key]
        docs.append(dropped)
        for value in VALUES:
            docs.append({**base, key: value})
    docs.append({**base, "extra": 1})
    docs.append({**base, "ÿ": "x"})
    docs.extend([[], "x", 1, None, [base]])
    if name == "exposure.v1":
        item = base["items"][0]
        for key in item:
            dropped = dict(item)
            del dropped[key]
            docs.append({**base, "items": [dropped]})
            for value in VALUES:
                docs.append({**base, "items": [{**item, key: value}]})
        docs.append({**base, "items": [{**item, "score": 1, "nested": {"x": [1]}}]})
        docs.append({**base, "items": [item, "not an object"]})
        docs.append({**base, "context": {"a": "b", "c": None}})
    if name == "ranklist.v1":
        docs.append({**base, "items": ["i1", ""]})
        docs.append({**base, "items": ["i1", 2]})
    return docs


def raw_lines(name: str) -> list[bytes]:
    lines = [json.dumps(d, ensure_ascii=False).encode() for d in corpus(name)]
    # Number spellings json.dumps never writes.
    template = json.dumps(BASE[name]).encode()
    targets = {
        "exposure.v1": [b'"rank": 1', b'"latency_ms": 10.5'],
        "outcome.v1": [b'"value": 1'],
        "assignment.v1": [b'"user_id": "u1"'],
        "ranklist.v1": [b'"user_id": "u1"'],
    }[name]
    spellings = [b"1e0", b"1E2", b"1.0e1", b"-0", b"1e400", b"0.5e-400", b"100000000000000000000"]
    for spelling in spellings:
        for target in targets:
            assert target in template
            lines.append(template.replace(target, target.split(b":")[0] + b": " + spelling, 1))
    lines.append(template.replace(b'"u1"', b'"\\ud800"'))  # unpaired surrogate
    lines.append(template.replace(b'"r1"', b'"r1", "request_id": 5'))  # duplicate key
    return lines


@pytest.mark.parametrize("name", list(BASE))
def test_fast_validator_agrees_with_python_jsonschema(name: str) -> None:
    """On the JSON Schema alone (representable=False) the fast path gives python-jsonschema's
    verdict."""
    schema = schema_registry.resolve(name).schema
    canonical = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    fast = RecordValidator(schema, representable=False)
    lines = raw_lines(name)
    assert len(lines) >= 150
    disagreements = []
    fast_checked = accepted = 0
    for raw in lines:
        expected = canonical.is_valid(json.loads(raw))
        accepted += expected
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        else:
            fast_checked += 1
            if fast.is_valid(copy.deepcopy(doc)) != expected:
                disagreements.append((raw, "fast", expected))
        if fast.check(raw).ok != expected:
            disagreements.append((raw, "check", expected))
    assert disagreements == []
    assert fast_checked >= len(lines) - 4
    assert 10 < accepted < len(lines) - 100  # the corpus has both kinds


@pytest.mark.parametrize("name", list(BASE))
def test_fast_path_agrees_with_the_exact_path_under_the_warehouse_rules(name: str) -> None:
    """With the warehouse rules (the CLI's validator), `check` (orjson, jsonschema-rs, the cheap
    duplicate-key test) gives the verdict of the exact path (python json, python-jsonschema, the
    rules on the document walked)."""
    validator = RecordValidator(schema_registry.resolve(name).schema)
    lines = raw_lines(name)
    verdicts = [(validator.check(raw).ok, validator._check_slow(raw, False).ok) for raw in lines]
    assert [raw for raw, (fast, exact) in zip(lines, verdicts, strict=True) if fast != exact] == []
    assert 10 < sum(ok for ok, _ in verdicts) < len(lines) - 100


def test_corpus_size() -> None:
    assert sum(len(raw_lines(n)) for n in BASE) >= 300


def test_representable_validator_only_narrows() -> None:
    # With the warehouse rules every accepted line is also accepted by python-jsonschema.
    for name in BASE:
        schema = schema_registry.resolve(name).schema
        canonical = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
        strict = RecordValidator(schema)
        for raw in raw_lines(name):
            verdict = strict.check(raw)
            if verdict.ok:
                assert canonical.is_valid(json.loads(raw)), raw
            elif verdict.unrepresentable:
                assert canonical.is_valid(json.loads(raw)), raw
                rules = {e.rule for e in verdict.errors}
                assert rules <= {"representable", "duplicate_key"}, raw
            else:
                assert not canonical.is_valid(json.loads(raw)), raw


@pytest.mark.parametrize("name", list(BASE))
def test_msgspec_fast_accept_only_accepts_what_the_loader_accepts(name: str) -> None:
    """The loader's accept-only pre-check (fast_accept) never accepts a line the canonical
    path would refuse, and the record it writes is the one python-jsonschema validated."""
    schema = schema_registry.resolve(name).schema
    accept = fast_accept_for(schema)
    assert accept is not None
    strict = RecordValidator(schema)
    accepted = 0
    for raw in raw_lines(name):
        encoded = accept(raw)
        if encoded is None:
            continue
        accepted += 1
        verdict = strict.check(raw)
        assert verdict.ok, raw
        written = orjson.loads(encoded)
        if name == "exposure.v1":  # extra item keys are allowed by the schema but not kept
            for item in verdict.doc["items"]:
                for key in set(item) - {
                    "item_id",
                    "rank",
                    "propensity",
                    "logging_propensity",
                    "target_propensity",
                }:
                    del item[key]
        # numbers are compared as the warehouse stores them (double; rank fits BIGINT either way)
        assert as_doubles(written) == as_doubles(verdict.doc), raw
    assert accepted >= 10


def as_doubles(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: as_doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_doubles(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def test_msgspec_fast_accept_serves_only_the_bundled_contracts() -> None:
    schema = copy.deepcopy(schema_registry.resolve("outcome.v1").schema)
    assert fast_accept_for(schema) is not None
    schema["properties"]["event_type"]["enum"].append("purchase")
    assert fast_accept_for(schema) is None
    assert fast_accept_for(schema_registry.resolve("manifest.v1").schema) is None
    # duplicate keys: never accepted (the canonical path reports them)
    accept = fast_accept_for(schema_registry.resolve("outcome.v1").schema)
    assert accept is not None
    line = b'{"request_id":"a","request_id":"b","user_id":"u","item_id":"i","event_type":"click","ts":"2025-01-01T00:00:00Z"}'
    assert accept(line) is None
    assert accept(line.replace(b'"request_id":"a",', b"")) is not None
