"""Bad input, generated (issue 8, item 1): property-based tests of the loader and `validate`.

Each generated file mixes lines whose verdict is known by construction (valid records, malformed
JSON, wrong types, missing and extra keys, invalid UTF-8, NUL bytes, NaN, huge integers, deep
nesting, timestamps in odd zones and formats, blank and CRLF lines, duplicated and conflicting
records). The properties: nothing crashes or hangs; every valid line is loaded, with its values
and its line number; every invalid line is quarantined with its errors (or reported by
`validate`); `lines read = loaded + quarantined + blank` always holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_eval import loader
from recsys_eval.validation import FileStats, RecordValidator, validate_file

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Identifier text: any Unicode scalar (quotes, backslashes, NUL, newlines escaped by json.dumps).
ident = st.text(min_size=1, max_size=12)
finite = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)


@st.composite
def odd_timestamps(draw) -> tuple[str, datetime]:
    """A valid RFC 3339 text in an odd zone / spelling, and its UTC value (naive, microseconds)."""
    base = draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)))
    minutes = draw(st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
    digits = draw(st.sampled_from([0, 1, 3, 6]))
    micro = (
        base.microsecond
        if digits == 6
        else (base.microsecond // 10 ** (6 - digits)) * 10 ** (6 - digits)
    )
    local = base.replace(microsecond=micro)
    frac = "" if digits == 0 else "." + f"{micro:06d}"[:digits]
    if minutes == 0 and draw(st.booleans()):
        zone = draw(st.sampled_from(["Z", "z"]))
    else:
        sign = "+" if minutes >= 0 else "-"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    sep = draw(st.sampled_from(["T", "t"]))
    text = f"{local:%Y-%m-%d}{sep}{local:%H:%M:%S}{frac}{zone}"
    utc = (local.replace(tzinfo=timezone(timedelta(minutes=minutes)))).astimezone(UTC)
    return text, utc.replace(tzinfo=None)


@st.composite
def exposures(draw) -> tuple[dict, datetime]:
    ts_text, ts_utc = draw(odd_timestamps())
    items = draw(
        st.lists(
            st.fixed_dictionaries(
                {"item_id": ident, "rank": st.integers(min_value=1, max_value=2**62)},
                optional={"propensity": finite, "logging_propensity": finite},
            ),
            max_size=4,
        )
    )
    doc: dict = {
        "request_id": draw(ident),
        "user_id": draw(ident),
        "ts": ts_text,
        "items": items,
    }
    if draw(st.booleans()):
        doc["context"] = draw(st.dictionaries(st.text(max_size=6), st.text(max_size=8), max_size=3))
    if draw(st.booleans()):
        doc["latency_ms"] = draw(finite)
    if draw(st.booleans()):
        doc["error"] = draw(st.booleans())
    return doc, ts_utc


@dataclass
class Line:
    text: bytes
    kind: str  # valid | blank | invalid (for validate and load alike)
    rule: str | None = None  # the rule every invalid line's errors must include
    doc: dict | None = None
    ts: datetime | None = None


def dumps(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


@st.composite
def lines(draw) -> Line:
    doc, ts = draw(exposures())
    kind = draw(
        st.sampled_from(
            [
                "valid", "valid", "valid", "valid_spaced", "duplicate_key", "blank", "truncated",
                "wrong_type", "missing", "extra_key", "bad_utf8", "raw_nul", "nan", "huge_int",
                "bad_ts", "deep", "deep_extra", "not_object", "bom_inside",
            ]
        )
    )  # fmt: skip
    if kind == "valid":
        return Line(dumps(doc), "valid", doc=doc, ts=ts)
    if kind == "valid_spaced":
        return Line(
            b"  " + json.dumps(doc, indent=None, separators=(" , ", " : ")).encode() + b"\t",
            "valid",
            doc=doc,
            ts=ts,
        )
    if kind == "duplicate_key":
        # A repeated key: refused by validate and load alike (no "last value wins").
        first = draw(ident)
        text = b'{"user_id": ' + json.dumps(first).encode() + b", " + dumps(doc)[1:]
        return Line(text, "invalid", "duplicate_key")
    if kind == "blank":
        return Line(draw(st.sampled_from([b"", b" ", b"\t", b"  \t "])), "blank")
    if kind == "truncated":
        text = dumps(doc)
        cut = draw(st.integers(min_value=1, max_value=len(text) - 1))
        prefix = text[:cut]
        if not prefix.strip():
            return Line(b"{", "invalid", "json")
        try:
            prefix.decode("utf-8")
        except UnicodeDecodeError:
            return Line(prefix, "invalid", "utf8")
        return Line(prefix, "invalid", "json")
    if kind == "wrong_type":
        field, value, rule = draw(
            st.sampled_from(
                [
                    ("user_id", 7, "type"),
                    ("request_id", None, "type"),
                    ("items", {"item_id": "x"}, "type"),
                    ("latency_ms", "fast", "type"),
                    ("error", "yes", "type"),
                    ("context", {"k": 1}, "type"),
                    ("items", [{"item_id": "x", "rank": "1"}], "type"),
                    ("items", [{"item_id": "x", "rank": 0}], "minimum"),
                    ("items", [{"item_id": "", "rank": 1}], "minLength"),
                    ("latency_ms", -1, "minimum"),
                ]
            )
        )
        return Line(dumps({**doc, field: value}), "invalid", rule)
    if kind == "missing":
        field = draw(st.sampled_from(["request_id", "user_id", "ts", "items"]))
        return Line(dumps({k: v for k, v in doc.items() if k != field}), "invalid", "required")
    if kind == "extra_key":
        return Line(
            dumps({**doc, "extra": draw(st.text(max_size=5))}), "invalid", "additionalProperties"
        )
    if kind == "bad_utf8":
        text = dumps({**doc, "user_id": "\u00e9" + doc["user_id"]})
        at = text.index("\u00e9".encode())
        return Line(text[:at] + b"\xff" + text[at + 2 :], "invalid", "utf8")
    if kind == "raw_nul":
        text = dumps({**doc, "user_id": "a_b"})
        return Line(text.replace(b"a_b", b"a\x00b", 1), "invalid", "json")
    if kind == "nan":
        return Line(dumps(doc)[:-1] + b', "latency_ms": NaN}', "invalid", "json")
    if kind == "huge_int":
        value = draw(st.sampled_from([2**63, 2**64 + 1, 10**30]))
        bad = {**doc, "items": [{"item_id": "x", "rank": value}]}
        return Line(dumps(bad), "invalid", "representable")
    if kind == "bad_ts":
        value = draw(
            st.sampled_from(
                [
                    "2024-01-01", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "1704067200",
                    "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z",
                    "2024-01-01T00:00:00+24:00", "0000-01-01T00:00:00Z", "", "yesterday",
                    "2024-01-01T00:00:00.Z", "\u0662\u0660\u0662\u0664-01-01T00:00:00Z",
                ]
            )
        )  # fmt: skip
        return Line(dumps({**doc, "ts": value}), "invalid", "format")
    if kind == "deep":
        depth = draw(st.sampled_from([2000, 5000]))
        return Line(b"[" * depth + b"]" * depth, "invalid", "depth")
    if kind == "deep_extra":
        # Items are open: a deeply nested extra key is valid and is not kept.
        depth = draw(st.sampled_from([50, 300, 900]))
        item = {"item_id": "x", "rank": 1}
        nested = b"[" * depth + b"]" * depth
        text = dumps({**doc, "items": [item]})[:-1]
        text = text.replace(b'"rank": 1}', b'"rank": 1, "deep": ' + nested + b"}", 1)
        return Line(text + b"}", "valid", doc={**doc, "items": [item]}, ts=ts)
    if kind == "not_object":
        value = draw(st.sampled_from([b"[]", b"1", b'"x"', b"null", b"true"]))
        return Line(value, "invalid", "type")
    # bom_inside: a BOM is only stripped at the very start of the file, not after a space
    return Line(b" \xef\xbb\xbf" + dumps(doc), "invalid", "json")


def write(tmp_path: Path, generated: list[Line], crlf: bool) -> Path:
    path = tmp_path / "fuzz.jsonl"
    end = b"\r\n" if crlf else b"\n"
    path.write_bytes(b"".join(line.text + end for line in generated))
    return path


def check_load(path: Path, generated: list[Line], chunk_bytes: int) -> None:
    con = duckdb.connect()
    try:
        res = loader.load_file(con, "exposure.v1", path, workers=0, chunk_bytes=chunk_bytes)
        n = len(generated)
        valid = {i + 1 for i, g in enumerate(generated) if g.kind == "valid"}
        blank = {i + 1 for i, g in enumerate(generated) if g.kind == "blank"}
        bad = set(range(1, n + 1)) - valid - blank
        assert (res.lines_read, res.rows_loaded, res.rows_quarantined, res.blank_lines) == (
            n,
            len(valid),
            len(bad),
            len(blank),
        )
        assert res.lines_read == res.rows_loaded + res.rows_quarantined + res.blank_lines
        rows = con.execute(
            "select line_no, request_id, user_id, ts, len(items), "
            "list_transform(items, lambda i: i.rank), context, latency_ms, error "
            "from raw.exposures order by line_no"
        ).fetchall()
        assert [r[0] for r in rows] == sorted(valid)
        for line_no, request_id, user_id, ts, n_items, ranks, context, latency, error in rows:
            g = generated[line_no - 1]
            assert g.doc is not None
            assert request_id == g.doc["request_id"]
            assert user_id == g.doc["user_id"]
            assert ts == g.ts
            assert n_items == len(g.doc["items"])
            assert ranks == [i["rank"] for i in g.doc["items"]]
            assert (context or {}) == g.doc.get("context", {})
            if "latency_ms" in g.doc:
                assert math.isclose(latency, g.doc["latency_ms"], rel_tol=1e-15)
            else:
                assert latency is None
            assert error == g.doc.get("error")
        quarantined = con.execute(
            "select line_no, errors, error_count, raw_text from raw.quarantine order by line_no"
        ).fetchall()
        assert [q[0] for q in quarantined] == sorted(bad)
        for line_no, errors, error_count, raw_text in quarantined:
            parsed = json.loads(errors)
            assert error_count == len(parsed) >= 1
            g = generated[line_no - 1]
            rules = {e["rule"] for e in parsed}
            assert g.rule in rules, (g.kind, g.rule, parsed)
            assert raw_text == g.text.rstrip(b"\r").decode("utf-8", "replace")
        ledger = con.execute(
            "select lines_read, rows_loaded, rows_quarantined, blank_lines from raw.load_ledger"
        ).fetchall()
        assert ledger == [(n, len(valid), len(bad), len(blank))]
    finally:
        con.close()


def check_validate(path: Path, generated: list[Line]) -> None:
    validator = RecordValidator(
        json.loads((loader.schema_registry.resolve("exposure.v1").path).read_text())
    )
    stats = FileStats()
    results = list(validate_file(path, validator, stats, block_size=4096))
    invalid = {i + 1 for i, g in enumerate(generated) if g.kind == "invalid"}
    assert {r.line_no for r in results} == invalid
    assert stats.lines_read == len(generated)
    assert stats.blank == sum(g.kind == "blank" for g in generated)
    assert stats.valid + stats.invalid + stats.blank == stats.lines_read
    for r in results:
        assert generated[r.line_no - 1].rule in {e.rule for e in r.errors}


@FUZZ
@given(
    generated=st.lists(lines(), min_size=1, max_size=25),
    crlf=st.booleans(),
    chunk_bytes=st.sampled_from([64, 700, 16 << 20]),
)
def test_loader_and_validate_on_generated_bad_input(
    tmp_path_factory, generated: list[Line], crlf: bool, chunk_bytes: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("fuzz")
    path = write(tmp_path, generated, crlf)
    check_load(path, generated, chunk_bytes)
    check_validate(path, generated)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([32, 4096]))
def test_arbitrary_bytes_never_crash_and_counts_add_up(tmp_path_factory, data: bytes, chunk: int):
    """Any bytes at all: the load ends, and read = loaded + quarantined + blank."""
    path = tmp_path_factory.mktemp("bytes") / "any.jsonl"
    path.write_bytes(data)
    con = duckdb.connect()
    try:
        res = loader.load_file(con, "exposure.v1", path, workers=0, chunk_bytes=chunk)
        assert res.lines_read == res.rows_loaded + res.rows_quarantined + res.blank_lines
        expected_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        assert res.lines_read == expected_lines
        stored = con.execute("select count(*) from raw.quarantine").fetchone()[0]
        assert stored == res.rows_quarantined
    finally:
        con.close()
    stats = FileStats()
    validator = RecordValidator(loader.schema_registry.resolve("exposure.v1").schema)
    list(validate_file(path, validator, stats, block_size=64))
    assert stats.lines_read == expected_lines
    assert stats.valid + stats.invalid + stats.blank == stats.lines_read


VALID = {
    "request_id": "r1",
    "user_id": "u1",
    "ts": "2024-03-01T12:00:00Z",
    "items": [{"item_id": "i1", "rank": 1}],
}


def test_very_long_lines_load(tmp_path: Path) -> None:
    """A 3 MB context value and a 50 000-item slate load intact, between ordinary lines."""
    long_value = {**VALID, "request_id": "long", "context": {"blob": "x" * (3 << 20)}}
    many = {
        **VALID,
        "request_id": "many",
        "items": [{"item_id": f"i{k}", "rank": k + 1} for k in range(50_000)],
    }
    path = tmp_path / "long.jsonl"
    path.write_bytes(
        b"\n".join([dumps(VALID), dumps(long_value), dumps(many), dumps(VALID)]) + b"\n"
    )
    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", path, workers=0, chunk_bytes=1 << 20)
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined) == (4, 4, 0)
    got = con.execute(
        "select line_no, len(items), length(context['blob']) from raw.exposures order by line_no"
    ).fetchall()
    assert got == [(1, 1, None), (2, 1, 3 << 20), (3, 50_000, None), (4, 1, None)]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-01-01T00:30:00+14:00", datetime(2023, 12, 31, 10, 30)),
        ("2024-01-01T23:30:00-12:00", datetime(2024, 1, 2, 11, 30)),
        ("2024-02-29t23:59:59.999999z", datetime(2024, 2, 29, 23, 59, 59, 999999)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59)),
        ("1969-12-31T23:59:59.5-00:00", datetime(1969, 12, 31, 23, 59, 59, 500000)),
    ],
)
def test_timestamps_in_odd_zones_are_stored_in_utc(tmp_path: Path, ts: str, expected) -> None:
    path = tmp_path / "ts.jsonl"
    path.write_bytes(dumps({**VALID, "ts": ts}) + b"\n")
    con = duckdb.connect()
    loader.load_file(con, "exposure.v1", path, workers=0)
    assert con.execute("select ts from raw.exposures").fetchall() == [(expected,)]


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-00:01", "0001-01-01T00:00:00+00:01"])
def test_timestamps_outside_years_1_to_9999_in_utc_are_quarantined(tmp_path: Path, ts: str) -> None:
    """Valid RFC 3339 whose UTC value leaves the years Spark and Python hold."""
    path = tmp_path / "ts.jsonl"
    path.write_bytes(dumps({**VALID, "ts": ts}) + b"\n" + dumps(VALID) + b"\n")
    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", path, workers=0)
    assert (res.rows_loaded, res.rows_quarantined) == (1, 1)
    ((line_no, errors),) = con.execute("select line_no, errors from raw.quarantine").fetchall()
    assert line_no == 1
    assert json.loads(errors)[0]["rule"] == "representable"


def test_duplicated_and_conflicting_records_are_all_kept_in_file_order(tmp_path: Path) -> None:
    """The raw layer keeps every record; the marts' rule (first exposure wins) needs line order."""
    a = {**VALID, "user_id": "ua"}
    b = {**VALID, "user_id": "ub", "items": [{"item_id": "other", "rank": 1}]}
    path = tmp_path / "dups.jsonl"
    path.write_bytes(b"\n".join([dumps(a), dumps(a), dumps(b)]) + b"\n")
    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", path, workers=0)
    assert (res.rows_loaded, res.rows_quarantined) == (3, 0)
    got = con.execute(
        "select line_no, user_id, items[1].item_id from raw.exposures order by line_no"
    ).fetchall()
    assert got == [(1, "ua", "i1"), (2, "ua", "i1"), (3, "ub", "other")]


def test_deep_nesting_is_a_clear_error_in_validate(tmp_path: Path, capsys) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b"[" * 10_000 + b"]" * 10_000 + b"\n" + dumps(VALID) + b"\n")
    from recsys_eval.cli import main

    assert main(["validate", "--schema", "exposure.v1", "--input", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1: $: nested too deeply" in err
    assert "[depth]" in err
    assert "validation failed for 1 line(s)" in err
