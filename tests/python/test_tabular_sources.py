"""Tabular sources (`type: parquet`, `type: csv`, `type: table`): one good/bad corpus gets the same
accept / quarantine verdicts (and rules) through JSONL and through Parquet, CSV, a DuckDB table
and a real Postgres table; item rows, integer ids, epoch timestamps and the event_types mapping;
bad config is one clear error before anything is written; hostile names never execute; and the
CLI report from tables and files equals the report from the same data in JSONL (the README's
example dataset, run as written)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import duckdb
import pytest
from conftest import CONFIGS, EXAMPLES, ROOT
from pg_cluster import find_bin, shared_cluster

from recsys_eval.cli import main
from recsys_eval.config import Source
from recsys_eval.errors import EXIT_OK, RecsysEvalError
from recsys_eval.loader import ensure_raw_schema, load_file
from recsys_eval.tabular_sources import load_tabular_source, plan_source

TS = "2025-01-01T00:0{}:00Z"
ITEMS_TYPE = "struct(item_id varchar, rank bigint, propensity double)[]"


def _item(item_id: str, rank: int, propensity: float | None = None) -> dict:
    out: dict = {"item_id": item_id, "rank": rank}
    if propensity is not None:
        out["propensity"] = propensity
    return out


# (record as a dict: a missing key is a NULL column) -- each row's user_id names it.
CORPUS: list[dict] = [
    {"request_id": "g1", "user_id": "ok-full", "ts": TS.format(1),
     "items": [_item("a", 1, 0.5), _item("b", 2, 0.25)], "latency_ms": 12.5, "error": False},
    {"request_id": "g2", "user_id": "ok-minimal", "ts": TS.format(2), "items": [_item("a", 1)]},
    {"request_id": "g3", "user_id": "ok-offset", "ts": "2025-01-01T02:03:00+02:00",
     "items": []},
    {"request_id": "", "user_id": "empty-request-id", "ts": TS.format(3),
     "items": [_item("a", 1)]},
    {"request_id": "b2", "ts": TS.format(4), "items": [_item("a", 1)]},
    {"request_id": "b3", "user_id": "bad-ts", "ts": "not a date", "items": [_item("a", 1)]},
    {"request_id": "b4", "user_id": "rank-0", "ts": TS.format(5), "items": [_item("a", 0)]},
    {"request_id": "b5", "user_id": "negative-propensity", "ts": TS.format(6),
     "items": [_item("a", 1, -0.1)]},
    {"request_id": "b6", "user_id": "negative-latency", "ts": TS.format(7),
     "items": [_item("a", 1)], "latency_ms": -1.0},
    {"request_id": "b7", "user_id": "empty-item-id", "ts": TS.format(8),
     "items": [_item("", 1)]},
    {"request_id": "b8", "user_id": "no-items", "ts": TS.format(9)},
    {"request_id": "b9", "user_id": "ts-out-of-range", "ts": "9999-12-31T23:59:59-01:00",
     "items": [_item("a", 1)]},
    {"request_id": "", "user_id": "two-errors", "ts": TS.format(1),
     "items": [_item("a", 0)]},
    {"request_id": "b11", "user_id": "", "ts": "yesterday", "items": [_item("a", 1)]},
]  # fmt: skip
COLUMNS = ("request_id", "user_id", "ts", "items", "latency_ms", "error")


def _key(doc: dict) -> str:
    return doc.get("user_id") or str(doc.get("request_id"))


def _verdicts(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """user_id (or request_id) -> "loaded", or the sorted (path, rule) pairs of its errors."""
    out: dict[str, object] = {}
    for raw, errors in con.execute("select raw_text, errors from raw.quarantine").fetchall():
        out[_key(json.loads(raw))] = sorted((e["path"], e["rule"]) for e in json.loads(errors))
    for uid, rid in con.execute("select user_id, request_id from raw.exposures").fetchall():
        out[uid or rid] = "loaded"
    return out


def _source(name: str, typ: str, **options) -> Source:
    return Source(name, typ, None, options.get("dsn"), None, options=dict(type=typ, **options))


def _load(tmp: Path, src: Source, schema: str = "exposure.v1", table: str = "exposures"):
    con = duckdb.connect(str(tmp / f"w-{src.type}-{len(list(tmp.iterdir()))}.duckdb"))
    ensure_raw_schema(con)
    result = load_tabular_source(con, schema, src, table, base_dir=tmp)
    return con, result


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return '"' + text.replace('"', '""') + '"'


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    lines = [",".join(columns)]
    lines += [",".join(_csv_value(r.get(c)) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _corpus_relation(con: duckdb.DuckDBPyConnection) -> str:
    """A DuckDB table `corpus` with the typed columns (items a list of structs)."""
    con.execute(
        f"create table corpus (request_id varchar, user_id varchar, ts varchar, "
        f"items {ITEMS_TYPE}, latency_ms double, error boolean)"
    )
    con.executemany(
        "insert into corpus values (?, ?, ?, ?, ?, ?)",
        [[r.get(c) for c in COLUMNS] for r in CORPUS],
    )
    return "corpus"


@pytest.fixture(scope="module")
def jsonl_verdicts(tmp_path_factory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("jsonl")
    path = tmp / "exposures.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    con = duckdb.connect(str(tmp / "w.duckdb"))
    load_file(con, "exposure.v1", path, workers=0)
    verdicts = _verdicts(con)
    assert len(verdicts) == len(CORPUS)
    assert [k for k, v in verdicts.items() if v == "loaded"] == ["ok-full", "ok-minimal",
                                                                 "ok-offset"]  # fmt: skip
    return verdicts


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("files")
    con = duckdb.connect(str(tmp / "corpus.duckdb"))
    _corpus_relation(con)
    con.execute(f"copy corpus to '{tmp / 'exposures.parquet'}'")
    con.close()
    write_csv(tmp / "exposures.csv", CORPUS, COLUMNS)
    return tmp


@pytest.mark.parametrize("typ", ["parquet", "csv", "table"])
def test_the_corpus_gets_the_jsonl_verdicts(typ, corpus_files, jsonl_verdicts, tmp_path):
    if typ == "table":
        src = _source("exposures", "table", dsn=str(corpus_files / "corpus.duckdb"),
                      table="corpus")  # fmt: skip
    else:
        src = _source("exposures", typ, path=str(corpus_files / f"exposures.{typ}"))
    con, result = _load(tmp_path, src)
    assert _verdicts(con) == jsonl_verdicts
    assert (result.lines_read, result.rows_loaded) == (len(CORPUS), 3)
    # line_no is the row's place in the documented order: ts (as an instant), then position.
    loaded = con.execute("select user_id, line_no from raw.exposures order by line_no").fetchall()
    assert [u for u, _ in loaded] == ["ok-full", "ok-minimal", "ok-offset"]
    keys = con.execute("select line_no from raw.quarantine order by line_no").fetchall()
    assert sorted(n for (n,) in keys + [(n,) for _, n in loaded]) == list(range(1, 15))
    # The same rows again: not loaded twice.
    again = load_tabular_source(con, "exposure.v1", src, "exposures", base_dir=tmp_path)
    assert again.skipped_duplicate


def _contents(con: duckdb.DuckDBPyConnection) -> tuple[list, list]:
    rows = con.execute(
        "select * exclude (load_id, load_seq, source_file) from raw.exposures order by line_no"
    ).fetchall()
    bad = con.execute("select line_no, raw_text, errors from raw.quarantine order by line_no")
    return rows, bad.fetchall()


@pytest.mark.parametrize("layout", ["nested", "item_rows"])
def test_the_fast_path_stores_what_the_validator_path_stores(layout, corpus_files, tmp_path):
    """SQL proves most rows valid and inserts them typed (recsys_eval.tabular_fast); with the PII
    guard on (flag: nothing rejected) every row takes the validator's path: same rows, same
    values, same quarantine."""
    path = corpus_files / "exposures.parquet"
    if layout == "item_rows":
        path = tmp_path / "rows.parquet"
        duckdb.execute(
            "copy (select request_id, user_id, ts, i.item_id, i.rank, i.propensity, latency_ms, "
            "error from (select *, unnest(case when len(items) = 0 then [null] else items end) "
            f"as i from read_parquet(?) where items is not null)) to '{path}'",
            [str(corpus_files / "exposures.parquet")],
        )
    src = _source("exposures", "parquet", path=str(path), layout=layout)
    plan = plan_source(src, "exposure.v1", tmp_path)
    assert plan.stage is not None  # these column types have the fast path
    results = []
    for guard in ("off", "flag"):
        con = duckdb.connect(str(tmp_path / f"{guard}.duckdb"))
        ensure_raw_schema(con)
        load_tabular_source(con, "exposure.v1", src, "exposures", guard, tmp_path)
        results.append(_contents(con))
    assert results[0] == results[1]
    assert len(results[0][0]) == 3 and len(results[0][1]) >= 9


# --- Postgres ---------------------------------------------------------------------------------

PG_DB = "tabular"


@pytest.fixture(scope="module")
def pg_dsn():
    if find_bin() is None:
        pytest.skip("PostgreSQL server binaries not found: run scripts/setup_postgres")
    psycopg = pytest.importorskip("psycopg")
    from psycopg.types.json import Jsonb

    cluster = shared_cluster()
    with cluster.connect() as con:
        con.execute(f"create database {PG_DB}")
    with cluster.connect(PG_DB) as con:
        con.execute(
            "create table corpus (id serial, request_id text, user_id text, ts text, "
            "items jsonb, latency_ms double precision, error boolean)"
        )
        con.execute(
            'create table "we""ird" ("req id" bigint, "user""id" bigint, served_at timestamptz, '
            "item_id int, rank int)"
        )
        with con.cursor() as cur:
            for r in CORPUS:
                items = Jsonb(r["items"]) if "items" in r else None
                cur.execute(
                    "insert into corpus (request_id, user_id, ts, items, latency_ms, error) "
                    "values (%s, %s, %s, %s, %s, %s)",
                    [r.get("request_id"), r.get("user_id"), r.get("ts"), items,
                     r.get("latency_ms"), r.get("error")],
                )  # fmt: skip
            cur.execute(
                'insert into "we""ird" values (7, 42, %s, 3, 2), (7, 42, %s, 9, 1)',
                ["2025-01-01T01:00:00.5+01:00", "2025-01-01T01:00:00.5+01:00"],
            )
    assert psycopg is not None
    return cluster.dsn(dbname=PG_DB)


def test_a_postgres_table_gets_the_jsonl_verdicts(pg_dsn, jsonl_verdicts, tmp_path, capfd):
    con, result = _load(tmp_path, _source("exposures", "table", dsn=pg_dsn, table="corpus",
                                          schema="public"))  # fmt: skip
    assert _verdicts(con) == jsonl_verdicts
    assert result.source_file == "table:public.corpus"
    # Item rows with integer ids, a timestamp with time zone, hostile quoted names.
    src = _source(
        "exposures", "table", dsn=pg_dsn, table='we"ird', layout="item_rows",
        columns={"request_id": "req id", "user_id": 'user"id', "ts": "served_at"},
    )  # fmt: skip
    con, result = _load(tmp_path, src)
    rows = con.execute("select request_id, user_id, ts, items from raw.exposures").fetchall()
    assert rows == [("7", "42", _dt("2025-01-01 00:00:00.5"),
                     [_it("9", 1), _it("3", 2)])]  # fmt: skip
    assert "password" not in "".join(capfd.readouterr()) + str(result)


def _dt(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


def _it(item_id: str, rank: int) -> dict:
    return {"item_id": item_id, "rank": rank, "propensity": None, "logging_propensity": None,
            "target_propensity": None}  # fmt: skip


# --- item rows, integer ids, epoch timestamps, event_types -----------------------------------


def test_item_rows_integer_ids_and_epoch_ms(tmp_path):
    con = duckdb.connect()
    con.execute(
        "create table t as select * from (values "
        "(2, 20, 1735689600000, 5, 2, 0.2), (2, 20, 1735689600000, 4, 1, 0.4), "
        "(1, 10, 1735689660500, 8, 1, null)) v(req, uid, served_ms, sku, pos, p)"
    )
    con.execute(f"copy t to '{tmp_path / 'rows.parquet'}'")
    src = _source(
        "exposures", "parquet", path="rows*.parquet", layout="item_rows", ts_unit="ms",
        columns={"request_id": "req", "user_id": "uid", "ts": "served_ms", "item_id": "sku",
                 "rank": "pos", "propensity": "p"},
    )  # fmt: skip
    wh, result = _load(tmp_path, src)
    rows = wh.execute(
        "select line_no, request_id, user_id, ts::varchar, [i.item_id for i in items], "
        "[i.propensity for i in items] from raw.exposures order by line_no"
    ).fetchall()
    assert rows == [
        (1, "2", "20", "2025-01-01 00:00:00", ["4", "5"], [0.4, 0.2]),
        (2, "1", "10", "2025-01-01 00:01:00.5", ["8"], [None]),
    ]
    assert result.source_file == "parquet:rows*.parquet"


def test_event_types_apply_to_a_csv_source(tmp_path):
    rows = [
        {"request_id": "r1", "user_id": "u1", "item_id": "i1", "event_type": "tap",
         "ts": 1735689600},
        {"request_id": "r1", "user_id": "u1", "item_id": "i1", "event_type": "purchase",
         "value": 3, "ts": 1735689601},
        {"request_id": "r2", "user_id": "u2", "item_id": "i2", "event_type": "view",
         "ts": 1735689602},
    ]  # fmt: skip
    write_csv(tmp_path / "events.csv", rows, ("request_id", "user_id", "item_id", "event_type",
                                             "value", "ts"))  # fmt: skip
    src = dataclasses.replace(
        _source("outcomes", "csv", path="events.csv", ts_unit="s"),
        event_types={"tap": "click", "purchase": "conversion"},
        event_types_key="outcomes.event_types",
    )
    con, result = _load(tmp_path, src, "outcome.v1", "outcomes")
    assert con.execute("select event_type, value from raw.outcomes order by line_no").fetchall() == [
        ("click", None), ("conversion", 3.0)]  # fmt: skip
    assert result.unmapped_event_types == {"view": 1}
    (errors,) = con.execute("select errors from raw.quarantine").fetchone()
    assert [e["rule"] for e in json.loads(errors)] == ["unmapped_event_type"]


# --- bad config: one clear error, nothing written ----------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"path": "nothing-*.parquet"}, r"exposures \(parquet:nothing-\*\.parquet\): path: .* matches no file"),
        ({"path": "e.parquet", "columns": {"user_id": "uid"}}, r"columns\.user_id: the source has no column 'uid'"),
        ({"path": "e.parquet", "columns": {"ts": "epoch"}}, r"ts_unit: column 'epoch' \(ts\) is numeric"),
        ({"path": "e.parquet", "order_by": "nope"}, r"order_by: the source has no column 'nope'"),
    ],
)  # fmt: skip
def test_bad_config_is_one_error_before_anything_is_written(tmp_path, options, expected):
    duckdb.execute(
        f"copy (select 'r' as request_id, 'u' as user_id, '{TS.format(1)}' as ts, 5 as epoch, "
        f"[{{'item_id': 'a', 'rank': 1}}] as items) to '{tmp_path / 'e.parquet'}'"
    )
    db = tmp_path / "w.duckdb"
    with pytest.raises(RecsysEvalError, match=expected):
        plan_source(_source("exposures", "parquet", **options), "exposure.v1", tmp_path)
    assert not db.exists()


def test_config_errors_name_source_field_and_rule(tmp_path, capsys):
    ds = tmp_path / "ds.yaml"
    ds.write_text("exposures: {type: parquet, path: e.parquet, ts_unit: minutes}\n"
                  "outcomes: {type: csv, path: o.csv}\n")  # fmt: skip
    code = main(["run", "--dataset", str(ds), "--config", str(CONFIGS / "offline.ci.yaml"),
                 "--database", str(tmp_path / "w.duckdb"), "--output", str(tmp_path / "r.json")])  # fmt: skip
    assert code != EXIT_OK
    assert "exposures.ts_unit: unknown unit 'minutes'" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()


def test_hostile_names_never_execute(tmp_path):
    hostile = "x\"'); drop table t; -- {{ var('x') }}"
    folder = tmp_path / "it's {{ here }}"
    folder.mkdir()
    quoted = '"' + hostile.replace('"', '""') + '"'
    target = "'" + str(folder / "e.parquet").replace("'", "''") + "'"
    duckdb.execute(
        f"copy (select 'r' as {quoted}, 'u' as user_id, '{TS.format(1)}' as ts, "
        f"[{{'item_id': 'a', 'rank': 1}}] as items) to {target}"
    )
    src = _source("exposures", "parquet", path=str(folder / "e.parquet"),
                  columns={"request_id": hostile})  # fmt: skip
    con, _ = _load(tmp_path, src)
    assert con.execute("select request_id from raw.exposures").fetchall() == [("r",)]
    bad = _source("exposures", "table", dsn=str(tmp_path / "nothing.duckdb"), table=hostile)
    with pytest.raises(RecsysEvalError, match="database file not found"):
        _load(tmp_path, bad)


# --- end to end: the README's example gives the JSONL report ---------------------------------


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- tabular-example -->\n```yaml\n(.*?)```", text, re.S)
    assert found, "README.md lost its tabular-sources example"
    return found.group(1)


def write_example_files(folder: Path) -> None:
    """examples/tiny as the README's example reads it: exposures as item rows in Parquet,
    outcomes as CSV with epoch seconds, assignments as a table of a DuckDB file."""
    tiny = EXAMPLES / "tiny"
    con = duckdb.connect(str(folder / "tiny.duckdb"))
    con.execute(
        "create table assignments as select * from read_json(?, columns = {experiment_id: "
        "'varchar', variant: 'varchar', request_id: 'varchar', user_id: 'varchar', ts: "
        "'timestamptz'})",
        [str(tiny / "assignments.jsonl")],
    )
    con.execute(
        "copy (select e.request_id as req, e.user_id, e.ts, i.item_id, i.rank, "
        "i.logging_propensity, i.target_propensity, e.context, e.latency_ms, e.error "
        "from (select *, unnest(case when len(items) = 0 then [null] else items end) as i "
        "from read_json(?)) e) to '" + str(folder / "shown_items.parquet").replace("'", "''") + "'",
        [str(tiny / "exposures.jsonl")],
    )
    outcomes = [json.loads(line) for line in (tiny / "outcomes.jsonl").read_text().splitlines()]
    for o in outcomes:
        o["ts"] = int(duckdb.execute("select epoch(?::timestamptz)", [o["ts"]]).fetchone()[0])
    write_csv(folder / "outcomes.csv", outcomes, tuple(outcomes[0]))
    con.close()


@pytest.mark.slow
def test_the_readme_example_gives_the_jsonl_report(tmp_path, monkeypatch):
    write_example_files(tmp_path)
    (tmp_path / "dataset.tables.yaml").write_text(readme_example())
    monkeypatch.chdir(ROOT)  # the tables' relative paths resolve beside their YAML
    reports = {}
    for name, ds in (("jsonl", CONFIGS / "dataset.tiny.yaml"),
                     ("tables", tmp_path / "dataset.tables.yaml")):  # fmt: skip
        out = tmp_path / f"{name}.json"
        args = ["run", "--dataset", str(ds), "--config", str(CONFIGS / "offline.ci.yaml")]
        assert main([*args, "--output", str(out)]) == EXIT_OK
        reports[name] = json.loads(out.read_text())
    volatile = {"run_id", "created_at", "timings", "effective_config",
                "input_dataset_fingerprint"}  # fmt: skip
    a, b = ({k: v for k, v in r.items() if k not in volatile} for r in reports.values())
    assert a == b
    assert reports["tables"]["effective_config"]["dataset"]["exposures"]["type"] == "parquet"


def test_ties_keep_the_files_name_order_then_row_order(tmp_path):
    for name, ids in (("b", ["r3", "r4"]), ("a", ["r1", "r2"])):
        rows = ", ".join(
            f"('{i}', 'u', '{TS.format(1)}', [{{'item_id': 'x', 'rank': 1}}])" for i in ids
        )
        duckdb.execute(
            f"copy (select * from (values {rows}) v(request_id, user_id, ts, items)) "
            f"to '{tmp_path / f'part-{name}.parquet'}'"
        )
    con, _ = _load(tmp_path, _source("exposures", "parquet", path="part-*.parquet"))
    got = con.execute("select request_id from raw.exposures order by line_no").fetchall()
    assert [r for (r,) in got] == ["r1", "r2", "r3", "r4"]


def test_typed_columns_store_what_their_documents_store(tmp_path):
    """Map context, timestamp with time zone, DECIMAL and integer columns: the fast path and the
    validator's path (PII guard in flag mode) store the same values."""
    duckdb.execute(
        "copy (select 'r' || i as request_id, i as user_id, timestamptz '2025-03-01 10:00:00.25+02' "
        "+ to_seconds(i) as ts, [{'item_id': i * 3, 'rank': 1, 'propensity': 0.125::decimal(9,3)}] "
        "as items, map {'tenant': 't' || (i % 3), 'x': ''} as context, (i * 1.5)::decimal(9,2) as "
        f"latency_ms, i % 2 = 0 as error from range(5) t(i)) to '{tmp_path / 'typed.parquet'}'"
    )
    src = _source("exposures", "parquet", path="typed.parquet")
    assert plan_source(src, "exposure.v1", tmp_path).stage is not None
    results = []
    for guard in ("off", "flag"):
        con = duckdb.connect(str(tmp_path / f"{guard}.duckdb"))
        ensure_raw_schema(con)
        load_tabular_source(con, "exposure.v1", src, "exposures", guard, tmp_path)
        results.append(_contents(con))
    assert results[0] == results[1]
    assert len(results[0][0]) == 5 and results[0][1] == []


def _table_contents(con: duckdb.DuckDBPyConnection, table: str) -> tuple[list, list]:
    rows = con.execute(
        f"select * exclude (load_id, load_seq, source_file) from raw.{table} order by line_no"
    ).fetchall()
    bad = con.execute("select line_no, raw_text, errors from raw.quarantine order by line_no")
    return rows, bad.fetchall()


@pytest.mark.parametrize(
    ("schema", "table", "sql", "expected_bad"),
    [
        (
            "outcome.v1", "outcomes",
            "select * from (values ('r1', 'u1', 'i1', 'click', 1.0, '2025-01-01T00:00:01Z'), "
            "('r2', 'u2', '', 'click', null, '2025-01-01T00:00:02Z'), "
            "('r3', 'u3', 'i3', 'view', 1.0, '2025-01-01T00:00:03Z'), "
            "('r4', 'u4', 'i4', 'conversion', 'nan'::double, '2025-01-01T00:00:04Z'), "
            "('r5', 'u5', 'i5', 'click', 2.0, '2025-01-01t00:00:05z'), "
            "('r6', null, 'i6', 'click', 2.0, '2025-13-01T00:00:06Z')) "
            "v(request_id, user_id, item_id, event_type, value, ts)",
            {2: ["minLength"], 3: ["enum"], 4: ["type"], 6: ["format", "required"]},
        ),
        (
            "assignment.v1", "assignments",
            "select * from (values ('e', 'A', 'r1', 'u1', timestamp '2025-01-01 00:00:01', "
            "map {'k': 'v'}), ('e', '', 'r2', 'u2', timestamp '2025-01-01 00:00:02', map {'k': 'v'}), "
            "('e', 'B', 'r3', 'u3', timestamp '2025-01-01 00:00:03', map {'k': null}), "
            "(null, 'B', 'r4', 'u4', null, null)) "
            "v(experiment_id, variant, request_id, user_id, ts, context)",
            {2: ["minLength"], 3: ["type"], 4: ["required", "required"]},
        ),
    ],
)  # fmt: skip
def test_outcomes_and_assignments_on_both_paths(tmp_path, schema, table, sql, expected_bad):
    duckdb.execute(f"copy ({sql}) to '{tmp_path / 't.parquet'}'")
    src = _source(table, "parquet", path="t.parquet")
    assert plan_source(src, schema, tmp_path).stage is not None
    results = []
    for guard in ("off", "flag"):
        con = duckdb.connect(str(tmp_path / f"{guard}.duckdb"))
        ensure_raw_schema(con)
        load_tabular_source(con, schema, src, table, guard, tmp_path)
        results.append(_table_contents(con, table))
    assert results[0] == results[1]
    rules = {n: sorted(e["rule"] for e in json.loads(errs)) for n, _, errs in results[0][1]}
    assert rules == expected_bad
