"""SQL sources (`type: postgres`, `type: duckdb`): the tiny dataset served from a REAL PostgreSQL
server and from a DuckDB file gives the same report as the JSONL files; bad rows are quarantined
with their 1-based row index; a query's rows are loaded once; the DSN never reaches an output.

The Postgres tests start a throw-away cluster (tests/python/pg_cluster.py: initdb + pg_ctl on a
unix socket in a temporary folder, password authentication) and skip, saying why, when the server
binaries are missing (scripts/setup_postgres installs them; scripts/test runs it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import CONFIGS, EXAMPLES, ROOT
from pg_cluster import find_bin, shared_cluster

from recsys_eval.cli import main
from recsys_eval.config import load_run_config
from recsys_eval.errors import EXIT_ERROR, EXIT_OK, RecsysEvalError
from recsys_eval.loader import ensure_raw_schema
from recsys_eval.metadata import dataset_fingerprint
from recsys_eval.sql_sources import describe, load_sql_source

PASSWORD = "pw-S3cr3t-x9"  # the reader's password: must appear in no output
READER = "rse_reader"
DB = "recsys"
TINY = {
    name: EXAMPLES / "tiny" / f"{name}.jsonl" for name in ("exposures", "outcomes", "assignments")
}
# Report keys that legitimately differ between the same data served by different sources.
VOLATILE = {"run_id", "created_at", "timings", "effective_config", "input_dataset_fingerprint"}


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").split("\n") if ln.strip()]


# --- the Postgres server ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg():
    """A throw-away cluster with database `recsys`: the tiny dataset as jsonb (exposures), bytea
    (outcomes) and text (assignments) rows, a json copy of the exposures, and a reader role."""
    if find_bin() is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: run scripts/setup_postgres "
            "(Debian's postgresql package) or set RECSYS_EVAL_PG_BIN"
        )
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e .)")
    cluster = shared_cluster()  # one per test session (test_tabular_sources uses it too)
    with cluster.connect() as con:
        con.execute(f"create database {DB}")
        con.execute(f"create role {READER} login password '{PASSWORD}'")
    with cluster.connect(DB) as con:
        for name, typ in (
            ("exposures", "jsonb"),
            ("exposures_json", "json"),
            ("outcomes", "bytea"),
            ("assignments", "text"),
        ):
            con.execute(f"create table {name} (id serial primary key, doc {typ})")
            src = TINY["exposures" if name == "exposures_json" else name]
            with con.cursor() as cur:
                for line in _lines(src):
                    value = line.encode() if typ == "bytea" else line
                    cur.execute(f"insert into {name} (doc) values (%s)", [value])
        con.execute("create table bad (id int primary key, doc text)")
        con.execute(f"grant select on all tables in schema public to {READER}")
    return cluster


def pg_dataset(pg, tmp_path: Path, *, url: bool = True) -> Path:
    dsn = pg.url(READER, PASSWORD, DB) if url else pg.dsn(READER, PASSWORD, DB)
    ds = tmp_path / "dataset.postgres.yaml"
    ds.write_text(
        "\n".join(
            f"{name}:\n  type: postgres\n  dsn: {json.dumps(dsn)}\n"
            f"  query: select doc from {name} order by id"
            for name in ("exposures", "outcomes", "assignments")
        )
        + "\n"
    )
    return ds


# --- the DuckDB file -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def duck(tmp_path_factory) -> Path:
    """tiny.duckdb: exposures as JSON, outcomes as VARCHAR, assignments as BLOB rows."""
    path = tmp_path_factory.mktemp("duck") / "tiny.duckdb"
    con = duckdb.connect(str(path))
    for name, typ in (("exposures", "json"), ("outcomes", "varchar"), ("assignments", "blob")):
        con.execute(f"create table {name} (id bigint, doc {typ})")
        rows = [
            [i, line.encode() if typ == "blob" else line]
            for i, line in enumerate(_lines(TINY[name]), 1)
        ]
        con.executemany(f"insert into {name} values (?, ?)", rows)
    con.close()
    return path


def duck_dataset(duck: Path, tmp_path: Path) -> Path:
    """A dataset file beside a copy of the database, with a relative DSN (resolved beside it)."""
    shutil.copy(duck, tmp_path / "tiny.duckdb")
    ds = tmp_path / "dataset.duckdb.yaml"
    ds.write_text(
        "".join(
            f"{name}:\n  type: duckdb\n  dsn: tiny.duckdb\n"
            f"  query: select doc from {name} order by id;\n"
            for name in ("exposures", "outcomes", "assignments")
        )
    )
    return ds


# --- end to end: the same report -------------------------------------------------------------

RUNS = {
    "offline": ("offline.ci.yaml", ()),
    "experiment": ("experiment.default.yaml", ("--mode", "experiment")),
}


def run_cli(dataset: Path, mode: str, out: Path) -> dict:
    config, extra = RUNS[mode]
    args = ["run", "--dataset", str(dataset), "--config", str(CONFIGS / config)]
    code = main([*args, "--output", str(out), *extra])
    assert code == EXIT_OK
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def jsonl_reports(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("jsonl")
    return {
        mode: run_cli(CONFIGS / "dataset.tiny.yaml", mode, out / f"{mode}.json") for mode in RUNS
    }


def stable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in VOLATILE}


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(RUNS))
def test_postgres_gives_the_jsonl_report(pg, jsonl_reports, tmp_path, mode, monkeypatch, capfd):
    monkeypatch.chdir(ROOT)
    report = run_cli(pg_dataset(pg, tmp_path), mode, tmp_path / "report.json")
    assert stable(report) == stable(jsonl_reports[mode])
    assert "quarantined_rows" not in json.dumps(report.get("warnings", []))
    assert report["input_dataset_fingerprint"] != jsonl_reports[mode]["input_dataset_fingerprint"]
    text = (tmp_path / "report.json").read_text() + "".join(capfd.readouterr())
    assert PASSWORD not in text
    assert report["effective_config"]["dataset"]["exposures"]["type"] == "postgres"


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(RUNS))
def test_duckdb_file_gives_the_jsonl_report(duck, jsonl_reports, tmp_path, mode, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative dsn resolves beside the dataset file
    report = run_cli(duck_dataset(duck, tmp_path), mode, tmp_path / "report.json")
    assert stable(report) == stable(jsonl_reports[mode])


# --- row by row: the loader's rules, the row index -------------------------------------------

GOOD = _lines(TINY["exposures"])[0]
BAD_ROWS = [
    GOOD,  # 1
    '{"request_id": "r-x", "user_id": ',  # 2: not JSON
    '{"request_id": "r-y", "user_id": "u", "ts": "2025-01-01T00:00:00Z", "items": [{"item_id": "a", "rank": 0}]}',  # 3: rank >= 1
    None,  # 4: NULL
    '{"request_id": "r-z", "user_id": "u", "ts": "not a time", "items": []}',  # 5: date-time
    '{"request_id": "r-d", "request_id": "r-e", "user_id": "u", "ts": "2025-01-01T00:00:00Z", "items": []}',  # 6: repeated key
    "",  # 7: no document
    _lines(TINY["exposures"])[1],  # 8
]
EXPECTED_RULES = {
    2: {"json"},
    3: {"minimum"},
    4: {"null"},
    5: {"format"},
    6: {"duplicate_key"},
    7: {"json"},
}


def _check_quarantine(con, label: str, result) -> None:
    assert (result.lines_read, result.rows_loaded, result.rows_quarantined) == (8, 2, 6)
    loaded = con.execute(
        "select line_no, source_file, request_id from raw.exposures order by line_no"
    ).fetchall()
    first, second = json.loads(BAD_ROWS[0])["request_id"], json.loads(BAD_ROWS[7])["request_id"]
    assert loaded == [(1, label, first), (8, label, second)]
    rows = con.execute(
        "select line_no, source_file, errors, raw_text from raw.quarantine order by line_no"
    ).fetchall()
    assert [r[0] for r in rows] == sorted(EXPECTED_RULES)
    for line_no, source_file, errors, raw_text in rows:
        assert source_file == label
        rules = {e["rule"] for e in json.loads(errors)}
        assert EXPECTED_RULES[line_no] <= rules, (line_no, rules)
        assert raw_text == (BAD_ROWS[line_no - 1] or "")
    ledger = con.execute(
        "select source_file, lines_read, rows_loaded, rows_quarantined from raw.load_ledger"
    ).fetchall()
    assert ledger == [(label, 8, 2, 6)]


@pytest.mark.parametrize("fetch_rows", [1000, 3])  # one fetch, and several with a partial last
def test_postgres_bad_rows_are_quarantined_with_their_row_index(pg, fetch_rows) -> None:
    with pg.connect(DB) as pcon:
        pcon.execute("delete from bad")
        for i, row in enumerate(BAD_ROWS, 1):
            pcon.execute("insert into bad values (%s, %s)", [i, row])
    query = "select doc from bad order by id"
    con = duckdb.connect()
    ensure_raw_schema(con)
    result = load_sql_source(
        con, "exposure.v1", "exposures", "postgres", pg.dsn(READER, PASSWORD, DB), query,
        fetch_rows=fetch_rows, insert_rows=1,
    )  # fmt: skip
    label = describe("postgres", query)
    assert label == "postgres:" + __import__("hashlib").sha256(query.encode()).hexdigest()[:16]
    _check_quarantine(con, label, result)


def test_duckdb_bad_rows_are_quarantined_with_their_row_index(tmp_path: Path) -> None:
    db = tmp_path / "bad.duckdb"
    src = duckdb.connect(str(db))
    src.execute("create table bad (id int, doc varchar)")
    src.executemany("insert into bad values (?, ?)", [[i, r] for i, r in enumerate(BAD_ROWS, 1)])
    src.close()
    query = "select doc from bad order by id"
    con = duckdb.connect()
    result = load_sql_source(
        con, "exposure.v1", "exposures", "duckdb", str(db), query, fetch_rows=2, insert_rows=1
    )
    _check_quarantine(con, describe("duckdb", query), result)


def test_bytea_rows_are_checked_as_utf8(pg) -> None:
    with pg.connect(DB) as pcon:
        pcon.execute("create table if not exists raw_bytes (id int, doc bytea)")
        pcon.execute("delete from raw_bytes")
        pcon.execute(
            "insert into raw_bytes values (1, %s), (2, %s)", [b'{"a": "\xff"}', GOOD.encode()]
        )
        pcon.execute(f"grant select on raw_bytes to {READER}")
    con = duckdb.connect()
    result = load_sql_source(
        con, "exposure.v1", "exposures", "postgres", pg.dsn(READER, PASSWORD, DB),
        "select doc from raw_bytes order by id",
    )  # fmt: skip
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    (errors,) = con.execute("select errors from raw.quarantine where line_no = 1").fetchone()
    assert [e["rule"] for e in json.loads(errors)] == ["utf8"]


def test_the_same_rows_are_not_loaded_twice(tmp_path: Path) -> None:
    """The ledger identifies a query's load by the SHA-256 of its rows' bytes."""
    db = tmp_path / "src.duckdb"
    src = duckdb.connect(str(db))
    src.execute("create table t (id int, doc varchar)")
    src.executemany(
        "insert into t values (?, ?)", [[i, r] for i, r in enumerate(_lines(TINY["exposures"]))]
    )
    src.close()
    con = duckdb.connect()
    args = (con, "exposure.v1", "exposures", "duckdb", str(db))
    first = load_sql_source(*args, "select doc from t order by id")
    # The same rows from another query text: the same source, skipped.
    again = load_sql_source(*args, "select doc from t where id >= 0 order by id")
    assert not first.skipped_duplicate and again.skipped_duplicate
    assert again.load_id == first.load_id and again.file_sha256 == first.file_sha256
    n = len(_lines(TINY["exposures"]))
    assert con.execute("select count(*) from raw.exposures").fetchone()[0] == n
    # Other rows (one fewer): a new load.
    third = load_sql_source(*args, "select doc from t where id > 0 order by id")
    assert not third.skipped_duplicate and third.rows_loaded == n - 1
    assert con.execute("select count(*) from raw.load_ledger").fetchone()[0] == 2


def test_rerun_on_the_same_database_loads_nothing_new(duck, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ds = duck_dataset(duck, tmp_path)
    db = tmp_path / "run.duckdb"
    for _ in range(2):
        cfg = load_run_config(ds, CONFIGS / "offline.ci.yaml")
        from recsys_eval.commands.run import load_sources

        loads = load_sources(cfg, db)
    assert all(r.skipped_duplicate for r in loads["loads"].values())
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from raw.load_ledger").fetchone()[0] == 3
    n = len(_lines(TINY["exposures"]))
    assert con.execute("select count(*) from raw.exposures").fetchone()[0] == n
    con.close()


# --- errors: one line, the source named, never the DSN ---------------------------------------


def _run_error(dataset: Path, capsys) -> str:
    out = dataset.parent / "r.json"
    code = main(
        [
            "run",
            "--dataset",
            str(dataset),
            "--config",
            str(CONFIGS / "offline.ci.yaml"),
            "--output",
            str(out),
            "--quiet",  # no stage lines: what is left on stderr is the error alone
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_ERROR, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("url", [True, False], ids=["url", "key-value"])
def test_a_query_error_is_one_line_naming_the_source_not_the_dsn(pg, tmp_path, capsys, url):
    ds = pg_dataset(pg, tmp_path, url=url)
    ds.write_text(ds.read_text().replace("select doc from outcomes", "selec doc from outcomes"))
    err = _run_error(ds, capsys)
    label = describe("postgres", "selec doc from outcomes order by id")
    assert err.count("\n") == 1, err
    assert f"outcomes ({label}): query failed: syntax error" in err
    assert PASSWORD not in err


def test_a_wrong_password_is_refused_without_echoing_it(pg, tmp_path, capsys) -> None:
    ds = pg_dataset(pg, tmp_path)
    ds.write_text(ds.read_text().replace("S3cr3t", "Wr0ng"))
    err = _run_error(ds, capsys)
    assert err.count("\n") == 1, err
    assert "exposures (postgres:" in err and "cannot connect" in err
    assert "password authentication failed" in err
    assert "Wr0ng" not in err and PASSWORD.replace("S3cr3t", "Wr0ng") not in err


def test_a_malformed_dsn_is_not_echoed(tmp_path, capsys) -> None:
    ds = tmp_path / "d.yaml"
    dsn = "host=/tmp password=" + PASSWORD + " port"  # not key=value: psycopg echoes a piece
    ds.write_text(
        f"exposures: {{type: postgres, dsn: '{dsn}', query: select 1}}\n"
        f"outcomes: {{type: jsonl, path: {TINY['outcomes']}}}\n"
    )
    err = _run_error(ds, capsys)
    assert "not a valid PostgreSQL connection string" in err and PASSWORD not in err


def test_the_query_must_return_one_json_column(pg, duck, tmp_path) -> None:
    con = duckdb.connect()
    dsn = pg.dsn(READER, PASSWORD, DB)
    with pytest.raises(
        RecsysEvalError, match=r"exposures \(postgres:\w+\): the query's column is of type int4"
    ):
        load_sql_source(con, "exposure.v1", "exposures", "postgres", dsn, "select id from bad")
    with pytest.raises(RecsysEvalError, match="exactly one column .* it returns 2"):
        load_sql_source(con, "exposure.v1", "exposures", "postgres", dsn, "select id, doc from bad")
    with pytest.raises(RecsysEvalError, match=r"the query's column is of type BIGINT"):
        load_sql_source(
            con, "exposure.v1", "exposures", "duckdb", str(duck), "select id from exposures"
        )
    assert con.execute("select count(*) from raw.load_ledger").fetchone()[0] == 0


def test_a_missing_duckdb_file_is_named_without_the_dsn(tmp_path, capsys) -> None:
    ds = tmp_path / "d.yaml"
    ds.write_text(
        "exposures: {type: duckdb, dsn: nowhere.duckdb, query: select 1}\n"
        f"outcomes: {{type: jsonl, path: {TINY['outcomes']}}}\n"
    )
    err = _run_error(ds, capsys)
    assert "exposures (duckdb:" in err and "DuckDB database file not found" in err


# --- the fingerprint (§8.6) ------------------------------------------------------------------


def test_the_fingerprint_holds_the_dsn_and_the_query(tmp_path) -> None:
    """As the reference: mode, per source its name, type, DSN and query; sorted, '|', SHA-256."""
    import hashlib

    def fingerprint(dsn: str, query: str) -> str:
        ds = tmp_path / "d.yaml"
        ds.write_text(
            f"exposures: {{type: postgres, dsn: '{dsn}', query: '{query}'}}\n"
            f"outcomes: {{type: duckdb, dsn: x.duckdb, query: select 2}}\n"
        )
        return dataset_fingerprint(load_run_config(ds, CONFIGS / "offline.ci.yaml"))

    parts = [
        "offline",
        "exposures",
        "postgres",
        "postgres://u:p@h/db",
        "select 1",
        "outcomes",
        "duckdb",
        "x.duckdb",
        "select 2",
    ]
    expected = hashlib.sha256("|".join(sorted(parts)).encode()).hexdigest()
    assert fingerprint("postgres://u:p@h/db", "select 1") == expected
    assert fingerprint("postgres://u:p@h/db2", "select 1") != expected
    assert fingerprint("postgres://u:p@h/db", "select 1 ") != expected


def test_the_pii_guard_applies_to_rows(tmp_path: Path) -> None:
    """--pii-guard reject quarantines a row as it does a line (rule pii), flag counts it."""
    doc = json.loads(GOOD)
    doc["user_id"] = "jane.doe@example.com"
    db = tmp_path / "pii.duckdb"
    src = duckdb.connect(str(db))
    src.execute("create table t (id int, doc json)")
    src.executemany("insert into t values (?, ?)", [[1, GOOD], [2, json.dumps(doc)]])
    src.close()
    for mode, loaded in (("flag", 2), ("reject", 1)):
        con = duckdb.connect()
        result = load_sql_source(
            con, "exposure.v1", "exposures", "duckdb", str(db), "select doc from t order by id",
            pii_guard=mode,
        )  # fmt: skip
        assert result.rows_loaded == loaded and result.pii_findings == {"user_id|email": 1}
        if mode == "reject":
            (line_no, errors) = con.execute("select line_no, errors from raw.quarantine").fetchone()
            assert line_no == 2 and [e["rule"] for e in json.loads(errors)] == ["pii"]


def test_postgres_rows_judged_by_worker_processes_keep_their_row_index(pg) -> None:
    with pg.connect(DB) as pcon:
        pcon.execute("delete from bad")
        for i, row in enumerate(BAD_ROWS, 1):
            pcon.execute("insert into bad values (%s, %s)", [i, row])
    query = "select doc from bad order by id"
    con = duckdb.connect()
    result = load_sql_source(
        con, "exposure.v1", "exposures", "postgres", pg.dsn(READER, PASSWORD, DB), query,
        fetch_rows=3, insert_rows=1, workers=2,
    )  # fmt: skip
    _check_quarantine(con, describe("postgres", query), result)


def _jsonb_corpus() -> list[str]:
    """Documents whose jsonb text tests what DuckDB reads from it as it is (unique_keys)."""
    doc = json.loads(GOOD)
    item = doc["items"][0]
    variants = [
        {"latency_ms": 1e2},
        {"latency_ms": 123456789012345678901234567890},  # an integer literal into a double
        {"latency_ms": 0.1, "error": True},
        {"user_id": 'caf\u00e9 "q" \\ \n\t \U0001f600 :', "context": {"k:1": "v\u2028", "": ""}},
        {"items": [dict(item, note="extra item key", rank=9223372036854775807)]},
        {"items": [dict(item, propensity=1.7976931348623157e308, target_propensity=5e-324)]},
        {"items": [dict(item, logging_propensity=1e-7)]},
        {"ts": "2025-01-01t10:00:00.123456+05:30"},
        {"ts": "9999-12-31T23:59:59Z", "items": []},
    ]
    rows = [json.dumps(dict(doc, request_id=f"r-{k}", **v)) for k, v in enumerate(variants)]
    rows.append(rows[0].replace('"items"', '"items": 3, "items"', 1))  # jsonb keeps the last
    rows.append(rows[1].replace('"rank": 1', '"rank": 1.0'))  # jsonb keeps 1.0: the validator
    rows.append(rows[2].replace('"rank": 1', '"rank": 9223372036854775808'))  # beyond BIGINT
    rows.append(rows[3].replace('"ts": "', '"ts": "x'))
    return rows


@pytest.mark.parametrize("workers", [0, 2])
def test_jsonb_documents_are_stored_as_their_text_would_be(pg, workers, monkeypatch) -> None:
    """A jsonb column's documents (no repeated key: stored as they are, not re-encoded) give the
    verdicts, rows, quarantine and ledger of the same text from a text column (re-encoded)."""
    from recsys_eval import sql_sources

    with pg.connect(DB) as pcon:
        pcon.execute("create table if not exists jsonb_docs (id int primary key, doc jsonb)")
        pcon.execute("delete from jsonb_docs")
        for i, row in enumerate(_jsonb_corpus(), 1):
            pcon.execute("insert into jsonb_docs values (%s, %s)", [i, row])
        pcon.execute(f"grant select on jsonb_docs to {READER}")
    kinds: list[str] = []
    judge_rows = sql_sources.judge_rows

    def spy(judge, rows, task):
        kinds.append(task.kind)
        return judge_rows(judge, rows, task)

    monkeypatch.setattr(sql_sources, "judge_rows", spy)
    loads = {}
    for query in (
        "select doc from jsonb_docs order by id",
        "select doc::text from jsonb_docs order by id",
    ):
        con = duckdb.connect()
        result = load_sql_source(
            con, "exposure.v1", "exposures", "postgres", pg.dsn(READER, PASSWORD, DB), query,
            fetch_rows=4, workers=workers,
        )  # fmt: skip
        loads[query] = (
            (result.lines_read, result.rows_loaded, result.rows_quarantined, result.file_sha256),
            con.execute(
                "select * exclude (load_id, source_file) from raw.exposures order by line_no"
            ).fetchall(),
            con.execute(
                "select line_no, errors, raw_text, line_bytes, line_sha256 from raw.quarantine "
                "order by line_no"
            ).fetchall(),
        )
        con.close()
    jsonb, text = loads.values()
    assert jsonb == text
    assert jsonb[0][:3] == (13, 11, 2)  # hand count: the 9 variants, repeated key, 1.0 valid
    if workers == 0:  # the jsonb batches took the unique-keys path, the text ones did not
        assert set(kinds) == {"sql_rows_unique_keys", "sql_rows"}
