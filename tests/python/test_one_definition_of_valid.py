"""One definition of a valid line (issue 16, item 8): `recsys-eval validate` and `recsys-eval load`
give every line the same verdict (valid <=> loaded, invalid <=> quarantined, with the same paths
and rules), for every schema the loader loads, on a corpus of edge cases (numbers beyond double
or BIGINT, unpaired surrogates, timestamps that leave the years 1-9999 in UTC, repeated keys),
the validator-equivalence corpus and the reliability fuzz corpus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability_fuzz import lines as fuzz_lines
from test_validator_equivalence import raw_lines

from recsys_eval import loader, schema_registry
from recsys_eval.cli import main
from recsys_eval.validation import RecordValidator
from recsys_eval.warehouse_rules import datetime_in_range, keys_cannot_repeat

TS = "2025-01-01T00:00:00Z"
BASES: dict[str, dict[str, Any]] = {
    "exposure.v1": {
        "request_id": "r1",
        "user_id": "u1",
        "ts": TS,
        "items": [
            {"item_id": "i1", "rank": 1, "propensity": 0.5, "logging_propensity": 0.4},
            {"item_id": "i2", "rank": 2, "target_propensity": 0.3, "extra": {"k": [1]}},
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
        "value": 1.5,
        "ts": TS,
    },
    "assignment.v1": {
        "experiment_id": "e1",
        "variant": "A",
        "request_id": "r1",
        "user_id": "u1",
        "ts": TS,
        "context": {"country": "FI"},
    },
    "ranklist.v1": {
        "request_id": "r1",
        "user_id": "u1",
        "ts": TS,
        "items": ["i1", "i2"],
        "context": {"tenant": "t1"},
    },
    "interleaved_exposure.v1": {
        "request_id": "r1",
        "user_id": "u1",
        "ts": TS,
        "items": [{"item_id": "i1", "rank": 1, "team": "A"}],
        "algorithm": "team_draft",
        "context": {"tenant": "t1"},
    },
    # Schemas without a typed layout load as JSON payloads.
    "serving_exposure.v1": {
        "schema_version": "exposure.v1",
        "occurred_at": TS,
        "tenant_id": "t1",
        "request_id": "123e4567-e89b-12d3-a456-426614174000",
        "surface": "home",
        "segment": "s",
        "served": [{"item_id": "i1", "rank": 1, "score": 0.5}],
    },
    "interaction.v1": {
        "schema_version": "interaction.v1",
        "occurred_at": TS,
        "tenant_id": "t1",
        "event_type": "click",
        "item_id": "i1",
    },
}

# JSON texts for any value: numbers at and beyond the double and BIGINT limits, strings with
# unpaired surrogates, timestamps at the edges of the years 1-9999 in UTC.
EDGE_VALUES = [
    b"1e400",
    b"-1e400",
    b"1e308",
    b"0.5e-400",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"100000000000000000000000000000",
    b"1e30",
    b"9.3e18",
    b"9.2e18",
    b"1.0",
    b"3",
    b'"\\ud800"',
    b'"a\\udc00b"',
    b'"\\ud83d\\ude00"',
    b'"x\\u0000y"',
    b'"a\\u003ab"',
    b'"0001-01-01T00:00:00+01:00"',
    b'"0001-01-01T00:59:59.999+01:00"',
    b'"0001-01-01T01:00:00+01:00"',
    b'"0001-01-01T00:00:00Z"',
    b'"0001-01-01t00:00:00-23:59"',
    b'"9999-12-31T23:59:59-01:00"',
    b'"9999-12-31T22:59:59.999999-01:00"',
    b'"9999-12-31T23:59:59Z"',
    b'"9999-12-31T23:59:59.9999999z"',
    b'"9999-12-31T00:00:00+23:59"',
    b'"2025-06-30T23:59:60Z"',
]
PLACEHOLDER = "@@EDGE@@"


def leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every value's path (containers included)."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += leaf_paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += leaf_paths(value, (*path, i))
    return found


def object_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        found = [path] if node else []
        for key, value in node.items():
            found += object_paths(value, (*path, key))
        return found
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in object_paths(value, (*path, i))]
    return []


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copy


def with_literal(doc: Any, path: tuple[Any, ...], literal: bytes) -> bytes:
    text = json.dumps(replaced(doc, path, PLACEHOLDER), ensure_ascii=False).encode()
    return text.replace(json.dumps(PLACEHOLDER).encode(), literal)


def with_repeated_key(doc: Any, path: tuple[Any, ...], value: bytes) -> bytes:
    """The object at `path` gets its first key a second time, with the JSON text `value`."""
    node = doc
    for part in path:
        node = node[part]
    key = next(iter(node))
    marked = {**node, PLACEHOLDER: 0}
    text = json.dumps(replaced(doc, path, marked) if path else marked, ensure_ascii=False).encode()
    return text.replace(
        b'"' + PLACEHOLDER.encode() + b'": 0', json.dumps(key).encode() + b": " + value
    )


def edge_corpus(name: str) -> list[bytes]:
    base = BASES[name]
    corpus = [json.dumps(base).encode()]
    for path in leaf_paths(base):
        corpus += [with_literal(base, path, literal) for literal in EDGE_VALUES]
    for path in object_paths(base):
        node = base
        for part in path:
            node = node[part]
        first = json.dumps(next(iter(node.values()))).encode()
        corpus += [with_repeated_key(base, path, v) for v in (first, b'"other"', b"7")]
    # A repeated key whose extra colon an escaped colon (\u003a) elsewhere balances.
    corpus.append(json.dumps(base).encode()[:-1] + b', "x": "\\u003a", "x": 1}')
    corpus.append(json.dumps(base).encode()[:-1] + b', "\\ud800": 1}')
    if name in {"exposure.v1", "outcome.v1", "assignment.v1", "ranklist.v1"}:
        corpus += raw_lines(name)
    return corpus


def verdicts_of_validate(
    name: str, path: Path, capsys: pytest.CaptureFixture[str]
) -> dict[int, set[tuple[str, str]]]:
    """line -> {(path, rule)} for every invalid line, from `recsys-eval validate` (JSON output)."""
    capsys.readouterr()
    code = main(["validate", "--schema", name, "--input", str(path), "--format", "json",
                 "--max-errors", "0"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert code == (0 if summary["valid"] else 1)
    return {d["line"]: {(e["path"], e["rule"]) for e in d["errors"]} for d in summary["invalid"]}


def verdicts_of_load(
    name: str, path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[set[int], dict[int, set[tuple[str, str]]]]:
    """(loaded lines, line -> {(path, rule)} for quarantined lines), from `recsys-eval load`."""
    capsys.readouterr()
    assert main(["load", "--schema", name, "--input", str(path), "--database", str(db)]) in (0, 1)
    capsys.readouterr()
    table = loader.default_table(name)
    con = duckdb.connect(str(db), read_only=True)
    try:
        loaded = {r[0] for r in con.execute(f"select line_no from raw.{table}").fetchall()}
        quarantined = {
            line_no: {(e["path"], e["rule"]) for e in json.loads(errors)}
            for line_no, errors in con.execute(
                "select line_no, errors from raw.quarantine"
            ).fetchall()
        }
    finally:
        con.close()
    return loaded, quarantined


def assert_same_verdicts(
    name: str, corpus: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, int]:
    src = tmp_path / f"{name}.jsonl"
    src.write_bytes(b"".join(line + b"\n" for line in corpus))
    invalid = verdicts_of_validate(name, src, capsys)
    loaded, quarantined = verdicts_of_load(name, src, tmp_path / f"{name}.duckdb", capsys)
    blank = {i for i, line in enumerate(corpus, 1) if not line.strip()}
    every = set(range(1, len(corpus) + 1)) - blank
    assert quarantined == invalid  # same lines, same paths and rules
    assert loaded == every - set(invalid)
    return len(loaded), len(invalid)


@pytest.mark.parametrize("name", list(BASES))
def test_validate_and_load_agree_on_every_line_of_the_edge_corpus(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    valid, invalid = assert_same_verdicts(name, edge_corpus(name), tmp_path, capsys)
    assert valid >= 20 and invalid >= 20  # the corpus has both kinds


FUZZ = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)  # fmt: skip


@FUZZ
@given(generated=st.lists(fuzz_lines(), min_size=1, max_size=30))
def test_validate_and_load_agree_on_the_fuzz_corpus(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], generated: list
) -> None:
    tmp_path = tmp_path_factory.mktemp("agree")
    assert_same_verdicts("exposure.v1", [g.text for g in generated], tmp_path, capsys)


HEAD = '{"request_id":"r1","user_id":"u1","ts":"2025-01-01T00:00:00Z","items":[{"item_id":"i1",'


@pytest.mark.parametrize(
    ("line", "path", "rule", "says"),
    [
        (HEAD + '"rank":1}],"latency_ms":1e400}', "$.latency_ms", "representable", "finite"),
        (HEAD + '"rank":9223372036854775808}]}', "$.items[0].rank", "representable", "BIGINT"),
        (HEAD + '"rank":1e30}]}', "$.items[0].rank", "representable", "BIGINT"),
        (HEAD + '"rank":1,"x":"\\ud800"}]}', "$.items[0].x", "representable", "surrogate"),
        (
            HEAD.replace(TS, "0001-01-01T00:00:00+01:00") + '"rank":1}]}',
            "$.ts",
            "representable",
            "the year 0 in UTC",
        ),
        (
            HEAD.replace(TS, "9999-12-31T23:59:59-01:00") + '"rank":1}]}',
            "$.ts",
            "representable",
            "the year 10000 in UTC",
        ),
        (HEAD + '"rank":1,"rank":2}]}', "$.items[0]", "duplicate_key", 'duplicate key "rank"'),
    ],
)
def test_validate_refuses_what_load_quarantines(
    line: str, path: str, rule: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each case of the issue: `validate` names the file, line, path and rule and says what to
    do; `load` quarantines the line with the same error."""
    src = tmp_path / "e.jsonl"
    src.write_text(HEAD + '"rank":1}]}\n' + line + "\n")
    assert main(["validate", "--schema", "exposure.v1", "--input", str(src)]) == 1
    err = capsys.readouterr().err
    shown = [x for x in err.splitlines() if x.startswith(f"{src}:2: ")]
    assert len(shown) == 1, err
    assert shown[0].startswith(f"{src}:2: {path}: ") and shown[0].endswith(f"[{rule}]")
    assert says in shown[0]
    assert "; " in shown[0] or ": write" in shown[0]  # what to do
    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", src, workers=0)
    assert (res.rows_loaded, res.rows_quarantined) == (1, 1)
    ((line_no, errors),) = con.execute("select line_no, errors from raw.quarantine").fetchall()
    assert line_no == 2
    assert [(e["path"], e["rule"]) for e in json.loads(errors)] == [(path, rule)]


def test_the_largest_bigint_and_the_first_and_last_instants_load(tmp_path: Path) -> None:
    """What the rules allow, the warehouse holds exactly."""
    lines = [
        HEAD.replace(TS, "0001-01-01T01:00:00+01:00") + '"rank":9223372036854775807}]}',
        HEAD.replace(TS, "9999-12-31T22:59:59.999999-01:00") + '"rank":1}]}',
    ]
    src = tmp_path / "e.jsonl"
    src.write_text("\n".join(lines) + "\n")
    assert main(["validate", "--schema", "exposure.v1", "--input", str(src)]) == 0
    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", src, workers=0)
    assert (res.rows_loaded, res.rows_quarantined) == (2, 0)
    got = con.execute("select items[1].rank, ts from raw.exposures order by line_no").fetchall()
    assert [(r, str(t)) for r, t in got] == [
        (2**63 - 1, "0001-01-01 00:00:00"),
        (1, "9999-12-31 23:59:59.999999"),
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.one_of(st.integers(), st.text(alphabet=':ab\\"', max_size=4), st.booleans()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(st.tuples(st.sampled_from(["a", "b", ":", "a:b"]), inner), max_size=4),
        ),
        max_leaves=12,
    ),
    st.booleans(),
)
def test_the_cheap_duplicate_key_check_never_misses_one(value: Any, escape: bool) -> None:
    """keys_cannot_repeat is sound: whenever it clears a line, no object repeats a key (lists of
    pairs are written as objects, so keys do repeat; colons in keys and values, escaped or not)."""

    def write(node: Any) -> str:
        if isinstance(node, list) and node and all(isinstance(p, tuple) for p in node):
            return "{" + ",".join(f"{write(k)}:{write(v)}" for k, v in node) + "}"
        if isinstance(node, list):
            return "[" + ",".join(write(v) for v in node) + "]"
        if isinstance(node, str):
            text = json.dumps(node)
            return text.replace(":", "\\u003a") if escape else text
        return json.dumps(node)

    def repeats(node: Any) -> bool:
        if isinstance(node, list) and node and all(isinstance(p, tuple) for p in node):
            keys = [k for k, _ in node]
            return len(set(keys)) < len(keys) or any(repeats(v) for _, v in node)
        return isinstance(node, list) and any(repeats(v) for v in node)

    line = write(value).encode()
    if keys_cannot_repeat(line, orjson.dumps(orjson.loads(line))):
        assert not repeats(value), line


def test_the_range_rule_matches_python_datetime() -> None:
    """datetime_in_range agrees with Python's own arithmetic at the edges of its range."""
    from recsys_eval.timeutil import parse_rfc3339

    for day in ("0001-01-01", "9999-12-31", "2025-01-01"):
        for clock in ("00:00:00", "00:59:59", "01:00:00", "22:59:59", "23:00:00", "23:59:59"):
            for zone in ("Z", "+00:00", "-00:00", "+01:00", "-01:00", "+23:59", "-23:59"):
                text = f"{day}T{clock}{zone}"
                try:
                    parse_rfc3339(text)
                    expected = True
                except OverflowError:
                    expected = False
                assert datetime_in_range(text) is expected, text


def test_the_schemas_describe_the_warehouse_rules() -> None:
    for name in BASES:
        schema = schema_registry.resolve(name).schema
        assert "warehouse rules" in schema["description"], name
    assert RecordValidator(schema_registry.resolve("exposure.v1").schema).representable


def test_rule_errors_quote_no_data_under_the_pii_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under --pii-guard the rule errors say what is wrong without the value, the timestamp or a
    key that is not a plain identifier."""
    lines = [
        HEAD + '"rank":1}],"context":{"bob@example.com":"a","bob@example.com":"b"}}',
        HEAD + '"rank":123456789012345678901234567890}]}',
        HEAD.replace(TS, "0001-01-01T00:00:00+01:00") + '"rank":1}]}',
    ]
    src = tmp_path / "e.jsonl"
    src.write_text("\n".join(lines) + "\n")
    args = ["validate", "--schema", "exposure.v1", "--input", str(src), "--pii-guard", "flag"]
    assert main(args) == 1
    err = capsys.readouterr().err
    for data in ("bob@example.com", "123456789012345678901234567890", "1.2345678901234568e+29",
                 "0001-01-01T00:00:00+01:00"):  # fmt: skip
        assert data not in err
    assert f"{src}:1: $.context: duplicate key (not shown): " in err
    assert f"{src}:2: $.items[0].rank: <integer> does not fit the warehouse's 64-bit BIGINT" in err
    assert f"{src}:3: $.ts: timestamp <string, 25 chars> is in the year 0 in UTC" in err
