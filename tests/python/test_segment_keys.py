"""Segment keys never merge distinct contexts (issue 16, item 10).

A segment key is `key=value` per slice key, sorted by key and joined by '|'. Before, a value
holding '|' or '=' could read as another part: with slice keys [a, b], {a: "x|b=y"} (b missing)
and {a: "x", b: "y|b="} both gave `a=x|b=y|b=`. Values are now escaped ('\\' -> '\\\\',
'|' -> '\\|', '=' -> '\\='), so a key decodes back to its values; plain values keep the keys
they always had (the golden reports compare them).

Checked through `recsys_eval.segment_key` on DuckDB and Spark (compiled by dbt, run on a table of
contexts that never passes through a SQL literal) and end to end through
`recsys-eval run --mode offline`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT
from test_hostile_config import compile_inline

from recsys_eval.cli import main
from recsys_eval.errors import EXIT_OK

SLICE_KEYS = ["b", "a"]  # unsorted on purpose: the key sorts its parts
# Pairs that gave the same key before the escaping, then values with every special character.
CONTEXTS: list[dict[str, str]] = [
    {"a": "x|b=y"},
    {"a": "x", "b": "y|b="},
    {"a": "x=", "b": "y"},
    {"a": "x", "b": "=y"},
    {"a": "x\\", "b": "|"},
    {"a": "x\\|", "b": ""},
    {"a": "x\\\\|", "b": "\\"},
    {"a": "x", "b": "\\="},
    {"a": "x", "b": "\\\\="},
    {"a": "x\\|b\\=", "b": "y"},
    {"a": "home", "b": "t1", "other": "ignored"},
    {"a": "en-US", "b": "new user: ios/14.2 (β)"},
    {},
]
# Plain values: exactly the keys written before the escaping.
PLAIN_KEYS = {10: "a=home|b=t1", 11: "a=en-US|b=new user: ios/14.2 (β)", 12: "a=|b="}


def escape(value: str) -> str:
    """The documented escaping of a segment value."""
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("=", "\\=")


def expected_key(context: dict[str, str], keys: list[str]) -> str:
    return "|".join(f"{k}={escape(context.get(k, ''))}" for k in sorted(keys))


def decode(segment_key: str) -> dict[str, str]:
    """A key back to its values: split on the unescaped '|' and '=' (the escaping's inverse)."""
    parts: list[list[str]] = [[""]]
    chars = iter(segment_key)
    for char in chars:
        if char == "\\":
            parts[-1][-1] += next(chars)
        elif char == "|":
            parts.append([""])
        elif char == "=":
            parts[-1].append("")
        else:
            parts[-1][-1] += char
    assert all(len(part) == 2 for part in parts), segment_key
    return {key: value for key, value in parts}


def projected(context: dict[str, str]) -> dict[str, str]:
    return {k: context.get(k, "") for k in SLICE_KEYS}


def assert_keys(keys: list[str]) -> None:
    assert len(keys) == len(CONTEXTS)
    for index, (context, key) in enumerate(zip(CONTEXTS, keys, strict=True)):
        assert key == expected_key(context, SLICE_KEYS), (index, context)
        assert decode(key) == projected(context)
    assert len(set(keys)) == len(CONTEXTS)  # the contexts differ on the slice keys: so do the keys
    for index, key in PLAIN_KEYS.items():
        assert keys[index] == key


INLINE = (
    "select id, {{ recsys_eval.segment_key('context', var('slice_keys')) }} as segment_key "
    "from contexts order by id"
)


def test_segment_keys_escape_values_on_duckdb(tmp_path: Path) -> None:
    sql = compile_inline(tmp_path, "duckdb", INLINE, {"slice_keys": SLICE_KEYS})
    con = duckdb.connect()
    con.execute("create table contexts (id integer, context map(varchar, varchar))")
    for index, context in enumerate(CONTEXTS):
        con.execute(
            "insert into contexts values (?, map(?::varchar[], ?::varchar[]))",
            [index, list(context), list(context.values())],
        )
    assert_keys([row[1] for row in con.execute(sql).fetchall()])
    # with slice keys every part holds its unescaped '=': no key is the whole population's name
    # `__all__`, not even from values or contexts that spell it (issue 22)
    con.execute("delete from contexts")
    for index, context in enumerate([{"a": "__all__", "b": "__all__"}, {"__all__": "x"}, {}]):
        con.execute(
            "insert into contexts values (?, map(?::varchar[], ?::varchar[]))",
            [index, list(context), list(context.values())],
        )
    keys = [row[1] for row in con.execute(sql).fetchall()]
    assert keys == ["a=__all__|b=__all__", "a=|b=", "a=|b="]
    assert all(len(decode(key)) == len(SLICE_KEYS) for key in keys)


@pytest.mark.spark
@pytest.mark.slow
def test_segment_keys_escape_values_on_spark(tmp_path: Path, monkeypatch) -> None:
    """Spark reads backslash escapes in literals: the replace() arguments must still be a single
    backslash and the escaped pair."""
    monkeypatch.setenv("SPARK_LOCAL_IP", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
    sql = compile_inline(tmp_path, "spark", INLINE, {"slice_keys": SLICE_KEYS})
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("recsys_eval_segment_keys")
        .config("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.createDataFrame(
        list(enumerate(CONTEXTS)), "id int, context map<string, string>"
    ).createOrReplaceTempView("contexts")
    assert_keys([row["segment_key"] for row in spark.sql(sql).collect()])


def test_colliding_contexts_are_distinct_segments_in_the_offline_report(
    tmp_path: Path, monkeypatch
) -> None:
    """End to end: one request per context, each with a hit at rank 1 or none, so a merged
    segment would average two requests and show 0.5."""
    monkeypatch.chdir(ROOT)
    exposures, outcomes = [], []
    for index, context in enumerate(CONTEXTS):
        request_id = f"r{index}"
        items = [{"item_id": "i1", "rank": 1}, {"item_id": "i2", "rank": 2}]
        exposures.append(
            {
                "request_id": request_id,
                "user_id": "u1",
                "ts": "2025-01-01T00:00:00Z",
                "items": items,
                "context": context,
            }
        )
        if index % 2 == 0:
            outcomes.append(
                {
                    "request_id": request_id,
                    "user_id": "u1",
                    "item_id": "i1",
                    "event_type": "click",
                    "ts": "2025-01-01T00:00:01Z",
                }
            )
    (tmp_path / "exposures.jsonl").write_text("".join(json.dumps(e) + "\n" for e in exposures))
    (tmp_path / "outcomes.jsonl").write_text("".join(json.dumps(o) + "\n" for o in outcomes))
    dataset = tmp_path / "dataset.yaml"
    dataset.write_text(
        f"exposures: {{type: jsonl, path: {tmp_path}/exposures.jsonl}}\n"
        f"outcomes: {{type: jsonl, path: {tmp_path}/outcomes.jsonl}}\n"
    )
    config = tmp_path / "eval.yaml"
    config.write_text(
        "mode: offline\noffline:\n  metrics: [{name: hitrate, k: 1}]\n"
        f"  slice_keys: {json.dumps(SLICE_KEYS)}\n"
    )
    out = tmp_path / "report.json"
    args = ["run", "--dataset", str(dataset), "--config", str(config), "--output", str(out)]
    assert main([*args, "--database", str(tmp_path / "run.duckdb")]) == EXIT_OK
    by_segment = json.loads(out.read_text())["offline"]["by_segment"]
    expected = {
        expected_key(context, SLICE_KEYS): float(index % 2 == 0)
        for index, context in enumerate(CONTEXTS)
    }
    assert len(expected) == len(CONTEXTS)
    assert {key: metrics[0]["value"] for key, metrics in by_segment.items()} == expected
    assert by_segment[PLAIN_KEYS[10]] == [{"name": "hitrate@1", "value": 1}]
    # dim_segments: each reported segment's parts as columns, unescaped (README: "where tenant = ...")
    con = duckdb.connect(str(tmp_path / "run.duckdb"), read_only=True)
    (schema,) = con.execute(
        "select table_schema from information_schema.tables where table_name = 'dim_segments'"
    ).fetchone()
    rows = con.execute(
        f'select segment_key, a, b from "{schema}".dim_segments '
        "where analysis = 'offline' order by segment_key"
    ).fetchall()
    assert {key: {"a": a, "b": b} for key, a, b in rows} == {key: decode(key) for key in by_segment}
    (hit,) = con.execute(
        f"select segment_key from \"{schema}\".dim_segments where a = 'x|b=y' and b = ''"
    ).fetchone()
    assert hit == expected_key(CONTEXTS[0], SLICE_KEYS)
