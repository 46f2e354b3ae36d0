"""`recsys-eval run --target spark_thrift`: the models build on a Spark cluster through its Thrift
JDBC server (dbt-spark's `thrift` method, profiles.yml target `spark_thrift`).

What runs where:
  1. validation and loading stay local: the sources load into the run's DuckDB file as on the
     DuckDB path (the same contract rules, quarantine and PII guard);
  2. the raw tables are written as Parquet into a staging folder the cluster can read (by default a
     folder in the run's temporary folder: right for a cluster on this machine; for a cluster
     elsewhere, `--spark-stage-dir` names a folder mounted at the same path on the Thrift server and
     the executors) and registered as Spark tables (`create table ... using parquet location`) in a
     raw schema of this run's own;
  3. `dbt build` runs on the cluster with the run's vars (encoded as on DuckDB), the models in this
     run's own staging and marts schemas (recsys_eval_run_<id>_raw / _staging / _marts), so two runs
     on one cluster never share a table;
  4. the marts the report reads (aggregates: a few rows per metric, variant or segment) are copied
     back into the local DuckDB file under the usual schema names, and the report, decision and
     renders come from the same code as on DuckDB;
  5. the run's schemas and staged files are dropped at the end, also on failure.

Connection settings are the profile's: RECSYS_EVAL_SPARK_THRIFT_HOST (127.0.0.1),
RECSYS_EVAL_SPARK_THRIFT_PORT (10000), RECSYS_EVAL_SPARK_THRIFT_USER (recsys_eval),
RECSYS_EVAL_SPARK_THREADS (2). Every statement here names only identifiers this module makes and
paths it checks (`spark_path_literal`); no config value reaches Spark SQL except through dbt's
encoded vars.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from recsys_eval.config import RunConfig
from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.modes import MARTS_SCHEMA, STAGING_SCHEMA, model_schema

TARGETS = ("duckdb", "spark_thrift")
SPARK_TARGET = "spark_thrift"
# The raw tables the models read (recsys_eval.loader creates all of them, empty when unused).
RAW_TABLES = (
    "exposures",
    "outcomes",
    "assignments",
    "ranker_a",
    "ranker_b",
    "interleaved_exposures",
)
# Every session (dbt's and ours) runs in UTC: the staged timestamps are UTC instants and the
# models bucket them by day and hour.
SESSION_CONF = {"spark.sql.session.timeZone": "UTC"}
_SIMPLE_TYPES = {
    "string": "varchar",
    "bigint": "bigint",
    "int": "integer",
    "smallint": "smallint",
    "tinyint": "tinyint",
    "double": "double",
    "float": "float",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "timestamp_ntz": "timestamp",
    "date": "date",
    "void": "varchar",
}
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")
# A staging path goes into Spark and DuckDB string literals: printable, no quote or backslash.
_PATH_UNSAFE = re.compile(r"['\"\\`\x00-\x1f\x7f]")


def check_target(name: str) -> str:
    """The --target value, refused unless this version can run on it."""
    value = (name or "duckdb").strip()
    if value == "spark":
        raise ConfigError(
            "--target spark: profiles.yml's `spark` target is dbt-spark's in-process session (for "
            "the model tests); the CLI runs on a Spark Thrift server: use --target spark_thrift"
        )
    if value not in TARGETS:
        raise ConfigError(f"--target {name!r}: expected one of {', '.join(TARGETS)}")
    return value


@dataclass(frozen=True)
class Endpoint:
    """Where the Thrift server listens (the profile's env vars)."""

    host: str
    port: int
    user: str

    @classmethod
    def from_env(cls) -> Endpoint:
        host = os.environ.get("RECSYS_EVAL_SPARK_THRIFT_HOST", "127.0.0.1").strip()
        port_text = os.environ.get("RECSYS_EVAL_SPARK_THRIFT_PORT", "10000").strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(
                f"RECSYS_EVAL_SPARK_THRIFT_PORT {port_text!r}: expected a port number (1-65535)"
            )
        user = os.environ.get("RECSYS_EVAL_SPARK_THRIFT_USER", "recsys_eval").strip()
        return cls(host=host, port=int(port_text), user=user or "recsys_eval")

    def check_reachable(self, timeout: float = 5.0) -> None:
        """Refuse the run before any work when nothing accepts connections at host:port."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout):
                return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        raise RecsysEvalError(
            f"cannot reach the Spark Thrift server at {self.host}:{self.port} ({reason}); start "
            "it (scripts/spark_cluster start for a local cluster) or point "
            "RECSYS_EVAL_SPARK_THRIFT_HOST / RECSYS_EVAL_SPARK_THRIFT_PORT at yours. Nothing was "
            "loaded or written."
        )

    def cursor(self) -> Any:
        from pyhive import hive

        try:
            con = hive.connect(
                host=self.host, port=self.port, username=self.user, configuration=SESSION_CONF
            )
        except Exception as exc:  # thrift transport errors have no common base
            raise RecsysEvalError(
                f"cannot open a session on the Spark Thrift server at {self.host}:{self.port}: "
                f"{type(exc).__name__}"
            ) from None
        return con.cursor()


def check_stage_dir(path: Path) -> Path:
    """A --spark-stage-dir: an existing folder whose absolute path can be quoted into SQL."""
    folder = path.absolute()
    if _PATH_UNSAFE.search(str(folder)):
        raise ConfigError(
            f"--spark-stage-dir {str(path)!r}: the path holds a quote, backslash or control "
            "character; choose a folder without them"
        )
    if not folder.is_dir():
        raise ConfigError(f"--spark-stage-dir {path}: not an existing folder")
    return folder


def spark_path_literal(path: Path) -> str:
    """A checked path as a Spark SQL string literal."""
    text = str(path)
    if _PATH_UNSAFE.search(text):
        raise RecsysEvalError(f"internal error: unsafe staging path {text!r}")
    return f"'{text}'"


@dataclass
class SparkRun:
    """One run's schemas and staged files on the cluster (see the module docstring)."""

    endpoint: Endpoint
    stage_root: Path
    token: str = field(default_factory=lambda: secrets.token_hex(6))
    staged_tables: int = 0
    staged_rows: int = 0
    pulled_rows: int = 0
    _cursor: Any = None

    @property
    def schemas(self) -> dict[str, str]:
        base = f"recsys_eval_run_{self.token}"
        return {"raw": f"{base}_raw", "staging": f"{base}_staging", "marts": f"{base}_marts"}

    @property
    def stage_dir(self) -> Path:
        return self.stage_root / f"recsys_eval_stage_{self.token}"

    def dbt_vars(self) -> dict[str, str]:
        """The vars that put the sources and models in this run's schemas."""
        return {
            "recsys_eval__raw_schema": self.schemas["raw"],
            "recsys_eval__staging_schema": self.schemas["staging"],
            "recsys_eval__marts_schema": self.schemas["marts"],
        }

    def cursor(self) -> Any:
        if self._cursor is None:
            self._cursor = self.endpoint.cursor()
        return self._cursor

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self.cursor()
        try:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []
        except RecsysEvalError:
            raise
        except Exception as exc:
            raise RecsysEvalError(f"Spark statement failed: {_first_line(exc)}") from None

    # --- 2. the raw tables to the cluster --------------------------------------------------------
    def stage(self, database: Path) -> None:
        """Write the raw tables as Parquet into the staging folder and register them on Spark."""
        from recsys_eval.warehouse import connect

        self.stage_dir.mkdir(mode=0o700)
        con = connect(database, read_only=True)
        try:
            con.execute("set TimeZone = 'UTC'")
            for table in RAW_TABLES:
                columns = con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = 'raw' and table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
                if not columns:
                    continue
                # naive timestamps (UTC by the loader's contract) as instants: Parquet marks them
                # adjusted to UTC and Spark reads them as its `timestamp`
                select = ", ".join(
                    f'cast("{name}" as timestamptz) as "{name}"'
                    if kind == "TIMESTAMP"
                    else f'"{name}"'
                    for name, kind in columns
                )
                folder = self.stage_dir / table
                folder.mkdir(mode=0o700)
                target = spark_path_literal(folder / "part-0.parquet")
                con.execute(
                    f'copy (select {select} from raw."{table}") to {target} (format parquet)'
                )
                count = con.execute(f'select count(*) from raw."{table}"').fetchone()
                self.staged_rows += int(count[0]) if count else 0
                self.staged_tables += 1
        finally:
            con.close()
        raw = self.schemas["raw"]
        self.execute(f"create schema if not exists {raw}")
        for table in RAW_TABLES:
            folder = self.stage_dir / table
            if folder.is_dir():
                location = spark_path_literal(folder)
                self.execute(f"create table {raw}.{table} using parquet location {location}")

    # --- 4. the marts back ------------------------------------------------------------------------
    def pull(self, database: Path, relations: list[tuple[str, tuple[str, ...] | None]]) -> None:
        """Copy each relation (a model name, and the columns to copy or None for all) into the
        local DuckDB file, in the schema the report code reads it from (recsys_eval_marts /
        recsys_eval_staging), with its Spark types."""
        from recsys_eval.warehouse import connect

        con = connect(database)
        try:
            for schema in (STAGING_SCHEMA, MARTS_SCHEMA):
                con.execute(f'create schema if not exists "{schema}"')
            for name, only in relations:
                self._pull_one(con, name, only)
        finally:
            con.close()

    def _pull_one(self, con: Any, name: str, only: tuple[str, ...] | None) -> None:
        remote = f"{self._schema_of(name)}.{name}"
        described = []
        for col_name, col_type, *_ in self.execute(f"describe {remote}"):
            if not col_name or col_name.startswith("#"):
                break  # partition information follows the columns
            if only is None or col_name in only:
                described.append((col_name, col_type))
        columns = [(col, duckdb_type(kind, f"{name}.{col}")) for col, kind in described]
        picked = ", ".join(f"`{col}`" for col, _kind in columns)
        rows = self.execute(f"select {picked} from {remote}")
        local = f'"{model_schema(name)}"."{name}"'
        ddl = ", ".join(f'"{col}" {kind}' for col, kind in columns)
        con.execute(f"create or replace table {local} ({ddl})")
        if rows:
            marks = ", ".join("?" * len(columns))
            con.executemany(
                f"insert into {local} values ({marks})",
                [list(row) for row in rows],
            )
        self.pulled_rows += len(rows)

    def _schema_of(self, name: str) -> str:
        local = model_schema(name)
        return self.schemas["staging"] if local == STAGING_SCHEMA else self.schemas["marts"]

    def scalar(self, sql_template: str) -> Any:
        """One value of a query over this run's schemas ({staging}, {marts} in the template)."""
        rows = self.execute(
            sql_template.format(staging=self.schemas["staging"], marts=self.schemas["marts"])
        )
        return rows[0][0] if rows else None

    def dataset_window(self) -> dict[str, Any]:
        """The first and last event time of the staged exposures and outcomes (as on DuckDB)."""
        rows = self.execute(
            f"""
            select min(ts), max(ts) from (
                select exposed_at as ts from {self.schemas["staging"]}.stg_recsys_eval__exposures
                union all
                select occurred_at from {self.schemas["staging"]}.stg_recsys_eval__outcomes
            ) as stamps
            """
        )
        start, end = rows[0] if rows else (None, None)
        return {"start": _timestamp(start), "end": _timestamp(end)}

    # --- 5. cleanup ------------------------------------------------------------------------------
    def drop(self) -> None:
        """Drop this run's schemas on the cluster and remove its staged files (best effort)."""
        if self._cursor is not None or self.staged_tables:
            for schema in self.schemas.values():
                with contextlib.suppress(RecsysEvalError):
                    self.execute(f"drop schema if exists {schema} cascade")
        if self._cursor is not None:
            with contextlib.suppress(Exception):
                self._cursor.close()
            self._cursor = None
        shutil.rmtree(self.stage_dir, ignore_errors=True)


@contextlib.contextmanager
def spark_run(endpoint: Endpoint, stage_root: Path) -> Iterator[SparkRun]:
    run = SparkRun(endpoint=endpoint, stage_root=stage_root)
    try:
        yield run
    finally:
        run.drop()


def duckdb_type(spark_type: str, where: str) -> str:
    """The DuckDB column type for a Spark column type of a mart (flat types only)."""
    kind = spark_type.strip().lower()
    if kind in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[kind]
    m = _DECIMAL.fullmatch(kind.replace(" ", ""))
    if m:
        return f"decimal({m.group(1)},{m.group(2)})"
    raise RecsysEvalError(f"internal error: {where} has Spark type {spark_type!r}, not read back")


def _timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    # a Thrift status holds Spark's whole message; its first lines say what went wrong
    match = re.search(r"errorMessage=['\"]([^'\"]{1,600})", text)
    if match:
        text = match.group(1)
    return text.splitlines()[0][:600] if text else type(exc).__name__


def relations_for(cfg: RunConfig, run: SparkRun) -> list[tuple[str, tuple[str, ...] | None]]:
    """The models the report code reads for this run's mode (commands/run.py and the plug-ins'
    collect()). Every mode reads aggregates: OPE its sums per scope and per bootstrap block
    (int_recsys_eval__ope_group_sums, int_recsys_eval__ope_block_sums; ope/aggregates.py)."""
    from recsys_eval.experiment_report import EXPERIMENT_MARTS

    names = ["fct_data_quality", "fct_data_quality_checks"]
    if cfg.mode == "offline":
        names.append("fct_offline_metrics")
        if cfg.eval["offline"]["bootstrap"]["enabled"]:
            names.append("fct_offline_metric_intervals")
    elif cfg.mode in ("experiment", "aa-check"):
        names += list(EXPERIMENT_MARTS)
    elif cfg.mode == "interleaving":
        names.append("fct_interleaving_results")
    elif cfg.mode == "ope":
        names += ["int_recsys_eval__ope_group_sums", "int_recsys_eval__ope_block_sums"]
        if any(n.startswith("slate_") for n in cfg.eval["ope"].get("estimators", [])):
            # the slate estimators' sums and bootstrap replicates (ope/slate.py)
            names += ["int_recsys_eval__ope_slate_sums", "int_recsys_eval__ope_slate_bootstrap"]
        unranked = run.scalar(
            "select coalesce(sum(unranked_samples), 0) from {staging}.int_recsys_eval__ope_rows"
        )
        if unranked:  # the error path names the first unranked item's line
            names.append("int_recsys_eval__ope_items")
            return [(n, None) for n in names] + [
                ("stg_recsys_eval__exposures", ("exposure_row_id", "source_file"))
            ]
    return [(n, None) for n in names]


def build_progress(log: Any, endpoint: Endpoint) -> Any:
    """A BuildProgress whose line says the models build on the cluster."""
    from recsys_eval.stages import BuildProgress

    class _SparkProgress(BuildProgress):
        def dbt(self) -> contextlib.AbstractContextManager[None]:
            self.via = "dbt"
            self.log.line(
                f"building models with dbt on Spark ({SPARK_TARGET}, "
                f"{endpoint.host}:{endpoint.port})"
            )
            return self.log.ticker("building models with dbt on Spark")

    return _SparkProgress(log)
