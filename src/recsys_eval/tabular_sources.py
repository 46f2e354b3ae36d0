"""Tabular sources: `type: table`, `type: parquet` and `type: csv` in the dataset YAML.

Tables and files are read as they are, without JSON: DuckDB reads the Parquet / CSV files (a path
or a glob), a table or view of a DuckDB database file, or a Postgres table (`COPY ... TO STDOUT`
into a temporary CSV file that DuckDB reads with the table's column types). One SQL query over
that relation builds, per row, the record the contract describes, as a JSON document:

- `columns` maps contract fields onto the source's columns (`{request_id: req_id, ts: served_at}`);
  a field not mapped is read from the column of its own name. A column that is NULL leaves its
  field out of the record (so a NULL required field is a `required` error, as a missing key is).
- ids of an integer type become their decimal string; `ts` may be an ISO-8601 string, a
  timestamp (taken as UTC), a timestamp with time zone, or epoch seconds / milliseconds
  (`ts_unit: s | ms`).
- exposures are `layout: nested` (a list of item structs, or a JSON text column) or
  `layout: item_rows` (one row per shown item: request_id, item_id, rank, ... grouped by
  request_id into the items list ordered by rank; the request's other fields come from its first
  item; a request shown nothing is one row with item_id and rank NULL).

The documents are then judged and loaded by `recsys_eval.sql_sources.load_sql_source`: the one
definition of valid (the JSON Schema plus the warehouse rules, through the loader's own
RecordValidator), the quarantine with every error (same rule names as `validate`), the ledger
(the same rows in the same order are not loaded twice), `outcomes.event_types`, all-or-nothing.

Order. A table has no file order, so the rows are numbered (`line_no`) in an explicit order: the
`order_by` column if configured, else `ts` (as an instant), NULLs last, then a stable tie-break:
the row's position in the files (file name order of a glob, then row order) or in the DuckDB
table; for a Postgres table (no stable order) every selected column. With item rows, requests are
ordered by their earliest row's key, then request_id. "First wins" (exposures) and "last wins"
(assignments, OPE outcomes) follow that order, within a load as `load_seq` orders loads.

Hostile names never execute: identifiers are quoted (double quotes doubled), paths and values are
query parameters, and the DSN is never printed (`source_file` is `parquet:<path>`,
`csv:<path>` or `table:<schema>.<table>`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from recsys_eval import tabular_fast, tempdirs
from recsys_eval.errors import RecsysEvalError
from recsys_eval.loader import LoadResult
from recsys_eval.sql_sources import FETCH_ROWS, _duckdb_path, load_sql_source, scrub

TABULAR_TYPES = ("table", "parquet", "csv")
TS_UNITS = ("s", "ms")
LAYOUT_NAMES = ("nested", "item_rows")
KEYS = {
    "table": {"type", "dsn", "table", "schema", "columns", "ts_unit", "order_by", "layout"},
    "parquet": {"type", "path", "columns", "ts_unit", "order_by", "layout"},
    "csv": {"type", "path", "columns", "ts_unit", "order_by", "layout"},
}
POS = "__rse_pos"  # the row's physical position (tie-break)

# Contract fields and how a column becomes their JSON value.
STRING, INTEGER, NUMBER, BOOLEAN, TS, OBJECT, ITEMS, STR_LIST = (
    "string", "integer", "number", "boolean", "ts", "object", "items", "str_list",
)  # fmt: skip
FIELDS: dict[str, dict[str, str]] = {
    "exposure.v1": {
        "request_id": STRING, "user_id": STRING, "ts": TS, "items": ITEMS, "context": OBJECT,
        "latency_ms": NUMBER, "error": BOOLEAN,
    },
    "outcome.v1": {
        "request_id": STRING, "user_id": STRING, "item_id": STRING, "event_type": STRING,
        "value": NUMBER, "ts": TS,
    },
    "assignment.v1": {
        "experiment_id": STRING, "variant": STRING, "request_id": STRING, "user_id": STRING,
        "ts": TS, "context": OBJECT,
    },
    "ranklist.v1": {
        "request_id": STRING, "user_id": STRING, "ts": TS, "items": STR_LIST, "context": OBJECT,
    },
    "interleaved_exposure.v1": {
        "request_id": STRING, "user_id": STRING, "ts": TS, "items": ITEMS, "algorithm": STRING,
        "context": OBJECT,
    },
}  # fmt: skip
ITEM_FIELDS = {
    "item_id": STRING, "rank": INTEGER, "propensity": NUMBER, "logging_propensity": NUMBER,
    "target_propensity": NUMBER, "team": STRING,
}  # fmt: skip
ITEM_ROW_SCHEMAS = ("exposure.v1", "interleaved_exposure.v1")

INT_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT",
}  # fmt: skip
TS_TYPES = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}
TSTZ = "TIMESTAMP WITH TIME ZONE"
TEXT_TYPES = {"VARCHAR", "JSON"}

# Postgres type OIDs -> the DuckDB type its COPY text is read as (anything else: VARCHAR).
PG_TYPES = {
    16: "BOOLEAN", 20: "BIGINT", 21: "BIGINT", 23: "BIGINT", 700: "DOUBLE", 701: "DOUBLE",
    1700: "DOUBLE", 1082: "DATE", 1114: "TIMESTAMP", 1184: "TIMESTAMPTZ", 114: "JSON",
    3802: "JSON",
}  # fmt: skip


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_number(typ: str) -> bool:
    return typ in INT_TYPES or typ in {"FLOAT", "DOUBLE"} or typ.startswith("DECIMAL")


def is_postgres_dsn(dsn: str) -> bool:
    """A Postgres URL or key=value connection string (else: a DuckDB database file path)."""
    return dsn.startswith(("postgres://", "postgresql://")) or bool(
        re.search(r"(^|\s)(host|dbname|user|port|service)\s*=", dsn)
    )


# ---------------------------------------------------------------------------------------------
# Config (checked when the dataset file is read: nothing is loaded on a bad config)


def check_config(src: dict[str, Any], where: str, dataset_file: Path, schema_name: str) -> None:
    """The keys of a table / parquet / csv source, without reading it."""
    typ = src["type"].lower()
    key = f"{dataset_file}: {where}"
    unknown = sorted(set(src) - KEYS[typ] - {"event_types"})
    if unknown:
        raise RecsysEvalError(
            f"{key}.{unknown[0]}: unknown key for a {typ} source (known: "
            f"{', '.join(sorted(KEYS[typ]))})"
        )
    if typ == "table":
        for k in ("dsn", "table"):
            if not isinstance(src.get(k), str) or not src[k].strip():
                raise RecsysEvalError(f"{key}.{k}: required for a table source (a string)")
        if "schema" in src and (not isinstance(src["schema"], str) or not src["schema"]):
            raise RecsysEvalError(f"{key}.schema: must be a non-empty string")
    elif not isinstance(src.get("path"), str) or not src["path"].strip():
        raise RecsysEvalError(f"{key}.path: required for a {typ} source (a file or a glob)")
    fields = FIELDS.get(schema_name, {})
    layout = src.get("layout", "nested")
    if layout not in LAYOUT_NAMES:
        raise RecsysEvalError(f"{key}.layout: unknown layout {layout!r}: use nested or item_rows")
    if layout == "item_rows" and schema_name not in ITEM_ROW_SCHEMAS:
        raise RecsysEvalError(f"{key}.layout: item_rows applies to exposures only")
    allowed = set(fields) | (set(ITEM_FIELDS) if layout == "item_rows" else set())
    columns = src.get("columns", {})
    if not isinstance(columns, dict):
        raise RecsysEvalError(f"{key}.columns: must map contract fields to column names")
    for name, column in columns.items():
        if name not in allowed:
            raise RecsysEvalError(
                f"{key}.columns.{name}: not a field of {schema_name} (fields: "
                f"{', '.join(sorted(allowed))})"
            )
        if not isinstance(column, str) or not column:
            raise RecsysEvalError(f"{key}.columns.{name}: must be a column name (a string)")
    if "ts_unit" in src and src["ts_unit"] not in TS_UNITS:
        raise RecsysEvalError(
            f"{key}.ts_unit: unknown unit {src['ts_unit']!r}: use s (epoch seconds) or ms "
            "(epoch milliseconds)"
        )
    if "order_by" in src and (not isinstance(src["order_by"], str) or not src["order_by"]):
        raise RecsysEvalError(f"{key}.order_by: must be a column name (a string)")


# ---------------------------------------------------------------------------------------------
# The plan: the relation, its columns, and the query that builds one document per row


@dataclass
class Plan:
    name: str  # exposures, outcomes, ...
    who: str  # how messages name the source
    label: str  # source_file
    typ: str
    query: str = ""  # over the relation; returns (doc) in the documented order
    params: list[Any] = field(default_factory=list)
    database: str = ":memory:"  # the DuckDB file the query runs in (table sources)
    dsn: str = ""  # secrets to scrub from messages
    pg_copy: str | None = None  # Postgres: the COPY statement that fills the staging file
    pg_columns: list[tuple[str, str]] = field(default_factory=list)  # staging name, type
    # The fast path (recsys_eval.tabular_fast): the statements that number the records, give
    # the typed columns of those SQL proves valid and the documents of the others; None: not
    # available for these column types.
    stage: tabular_fast.FastSql | None = None
    position: str | None = None  # the row's position in the source, if not row_number() over ()


def _files(pattern: str, base_dir: Path | None) -> list[str]:
    """The files a path or glob names: in the working directory, else beside the dataset file."""
    candidates = [pattern]
    if base_dir is not None and not Path(pattern).expanduser().is_absolute():
        candidates.append(str(base_dir / pattern))
    for cand in candidates:
        cand = os.path.expanduser(cand)
        found = sorted(glob.glob(cand)) if glob.has_magic(cand) else [cand]
        found = [f for f in found if os.path.isfile(f)]
        if found:
            return found
    return []


def _describe(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[tuple[str, str]]:
    return [(r[0], str(r[1])) for r in con.execute(f"describe {sql}", params).fetchall()]


def plan_source(src: Any, schema_name: str, base_dir: Path | None = None) -> Plan:
    """Check the source against what it holds (files, table, columns) and build its query.

    Raises RecsysEvalError naming the source, the key and the rule; nothing is read but the
    source's column names and types."""
    opts: dict[str, Any] = dict(getattr(src, "options", {}) or {})
    typ = src.type
    if typ == "table":
        dsn = str(opts["dsn"])
        table = str(opts["table"])
        schema = opts.get("schema")
        label = f"table:{schema + '.' if schema else ''}{table}"
    else:
        dsn = ""
        label = f"{typ}:{opts['path']}"
    plan = Plan(name=src.name, who=f"{src.name} ({label})", label=label, typ=typ, dsn=dsn)
    who = plan.who
    con = None
    try:
        if typ in ("parquet", "csv"):
            files = _files(str(opts["path"]), base_dir)
            if not files:
                raise RecsysEvalError(
                    f"{who}: path: {opts['path']!r} matches no file (looked in the working "
                    "directory and beside the dataset file)"
                )
            if typ == "parquet":
                relation = "read_parquet($1)"
            else:
                relation = (
                    "read_csv($1, header = true, all_varchar = true, allow_quoted_nulls = false)"
                )
            plan.params = [files]
            con = duckdb.connect()
            cols = _describe(con, f"select * from {relation}", plan.params)
            sub = _subquery(con, relation, plan.params)
            if typ == "parquet" and not {"filename", "file_row_number"} & {c for c, _ in cols}:
                # The position without numbering the rows: the file's place in the (sorted)
                # list, then the row's in the file.
                relation = "read_parquet($1, filename = true, file_row_number = true)"
                plan.position = (
                    "(coalesce(list_position($1, filename), 0)::bigint << 40) + file_row_number"
                )
        elif is_postgres_dsn(dsn):
            cols, relation = _plan_postgres(plan, table, schema)
            sub = None
        else:
            path = _duckdb_path(dsn, base_dir)
            if not Path(path).is_file():
                raise RecsysEvalError(
                    f"{who}: dsn: DuckDB database file not found (looked in the working "
                    "directory and beside the dataset file)"
                )
            plan.database = path
            con = duckdb.connect(path, read_only=True)
            relation = (quote_ident(schema) + "." if schema else "") + quote_ident(table)
            try:
                cols = _describe(con, f"select * from {relation}", [])
            except duckdb.Error:
                raise RecsysEvalError(
                    f"{who}: table: no table or view {label[len('table:') :]!r} in the database"
                ) from None
            sub = _subquery(con, relation, [])
        plan.query = build_query(plan, cols, relation, sub, opts, schema_name)
        if plan.database != ":memory:":  # the fast path reads it attached to the warehouse
            build_query(plan, cols, f"{tabular_fast.ATTACHED}.{relation}", sub, opts, schema_name)
    except duckdb.Error as exc:
        raise RecsysEvalError(f"{who}: cannot read the source: {scrub(str(exc), dsn)}") from None
    finally:
        if con is not None:
            con.close()
    return plan


def _subquery(con: duckdb.DuckDBPyConnection, relation: str, params: list[Any]) -> Any:
    """A function: the struct fields (name, type) of a list-of-struct column (or None)."""

    def fields(column_sql: str) -> list[tuple[str, str]] | None:
        try:
            return _describe(
                con, f"select __i.* from (select unnest({column_sql}) as __i from {relation})",
                params,
            )  # fmt: skip
        except duckdb.Error:
            return None

    return fields


def _plan_postgres(plan: Plan, table: str, schema: str | None) -> tuple[list[tuple[str, str]], str]:
    """The table's columns (from the server) and the staging relation its COPY output fills."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:  # pragma: no cover - psycopg is a dependency
        raise RecsysEvalError(f"{plan.who}: postgres tables need psycopg") from None
    who, dsn = plan.who, plan.dsn
    name = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    try:
        conn = psycopg.connect(dsn, application_name="recsys-eval")
    except Exception as exc:
        raise RecsysEvalError(f"{who}: cannot connect: {scrub(str(exc), dsn)}") from None
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(sql.SQL("select * from {} limit 0").format(name))
            except psycopg.Error as exc:
                raise RecsysEvalError(
                    f"{who}: table: cannot read {plan.label[len('table:') :]!r}: "
                    f"{scrub(str(exc), dsn)}"
                ) from None
            desc = cur.description or []
            plan.pg_copy = (
                sql.SQL("copy (select * from {}) to stdout with (format csv)")
                .format(name)
                .as_string(conn)
            )
    finally:
        conn.close()
    cols = [(d.name, PG_TYPES.get(d.type_code, "VARCHAR")) for d in desc]
    plan.pg_columns = [(f"c{i}", typ) for i, (_, typ) in enumerate(cols)]
    # The staging relation names the columns after the table's (quoted): the query is the same.
    spec = "{" + ", ".join(f"'c{i}': '{t}'" for i, (_, t) in enumerate(cols)) + "}"
    renames = ", ".join(f"c{i} as {quote_ident(n)}" for i, (n, _) in enumerate(cols))
    relation = (
        f"(select {renames} from read_csv($1, columns = {spec}, header = false, "
        "allow_quoted_nulls = false, auto_detect = false, max_line_size = 268435456))"
    )
    return cols, relation


# ---------------------------------------------------------------------------------------------
# SQL: a column -> the JSON text of a field's value (NULL: the field is left out)


def _iso(t: str) -> str:
    """An ISO-8601 UTC string (with Z) of a timestamp expression, microseconds when not 0."""
    us = f"((epoch_us({t}) % 1000000 + 1000000) % 1000000)"
    return (
        f"'\"' || strftime({t}, '%Y-%m-%dT%H:%M:%S') || case when {us} = 0 then '' "
        f"else '.' || lpad({us}::varchar, 6, '0') end || 'Z\"'"
    )


def _number(x: str, typ: str) -> str:
    if typ in INT_TYPES:
        return f"{x}::varchar"
    if _is_number(typ):
        return (
            f"case when isfinite({x}::double) then to_json({x}::double)::varchar "
            f"else to_json({x}::varchar)::varchar end"
        )
    if typ == "VARCHAR":
        return (
            f"case when try_cast({x} as hugeint) is not null "
            f"then try_cast({x} as hugeint)::varchar "
            f"when isfinite(try_cast({x} as double)) "
            f"then to_json(try_cast({x} as double))::varchar "
            f"else to_json({x})::varchar end"
        )
    return f"to_json({x})::varchar"


def _epoch(x: str, typ: str, unit: str) -> str:
    num = f"try_cast({x} as double)" if typ == "VARCHAR" else f"{x}::double"
    us = f"({num} * {1_000_000 if unit == 's' else 1_000})"
    lo, hi = -62135596800000000, 253402300799999999
    return (
        f"case when {us} between {lo} and {hi} then "
        f"{_iso(f'make_timestamp(cast(round({us}) as bigint))')} "
        f"else to_json({x})::varchar end"
    )


def value_sql(x: str, typ: str, kind: str, ts_unit: str | None, item_fields: Any = None) -> str:
    """The JSON text of one field's value from SQL expression `x` of DuckDB type `typ`."""
    base = typ.upper()
    if kind == STRING:
        if base in INT_TYPES or base in TEXT_TYPES:
            return f"to_json({x}::varchar)::varchar"
        return f"to_json({x})::varchar"
    if kind in (INTEGER, NUMBER):
        return _number(x, base)
    if kind == BOOLEAN:
        if base == "VARCHAR":
            return (
                f"case lower({x}) when 'true' then 'true' when 'false' then 'false' "
                f"else to_json({x})::varchar end"
            )
        return f"to_json({x})::varchar"
    if kind == TS:
        if ts_unit is not None:
            return _epoch(x, base, ts_unit)
        if base in TEXT_TYPES:
            return f"to_json({x}::varchar)::varchar"
        if base == TSTZ or base == "TIMESTAMPTZ":
            return _iso(f"timezone('UTC', {x})")
        if base in TS_TYPES:
            return _iso(f"{x}::timestamp")
        return f"to_json({x})::varchar"
    if kind in (OBJECT, ITEMS, STR_LIST) and base in TEXT_TYPES:
        return (
            f"case when json_valid({x}) then {x}::varchar else to_json({x}::varchar)::varchar end"
        )
    if kind == ITEMS and item_fields:
        parts = [
            f"'\"{name}\":' || {value_sql(f'__i.{quote_ident(name)}', t, ITEM_FIELDS[name], None)}"
            for name, t in item_fields
            if name in ITEM_FIELDS
        ]
        item = (
            f"case when __i is null then 'null' "
            f"else '{{' || concat_ws(',', {', '.join(parts)}) || '}}' end"
        )
        return f"'[' || array_to_string(list_transform({x}, lambda __i: {item}), ',') || ']'"
    if kind == STR_LIST and base.endswith("[]"):
        return f"to_json(list_transform({x}, lambda __v: __v::varchar))::varchar"
    return f"to_json({x})::varchar"


def _order_key(x: str, typ: str, is_ts: bool) -> str:
    base = typ.upper()
    if is_ts and base in TEXT_TYPES:
        return f"try_cast(upper({x}::varchar) as timestamptz)"
    if is_ts and base == "VARCHAR":
        return f"try_cast({x} as double)"
    return x


def build_query(
    plan: Plan,
    cols: list[tuple[str, str]],
    relation: str,
    struct_fields: Any,
    opts: dict[str, Any],
    schema_name: str,
) -> str:
    """The query returning one JSON document (varchar) per record, in the documented order."""
    who = plan.who
    types = dict(cols)
    mapping: dict[str, str] = dict(opts.get("columns") or {})
    layout = opts.get("layout", "nested")
    ts_unit = opts.get("ts_unit")
    fields = FIELDS.get(schema_name)
    if fields is None:
        raise RecsysEvalError(f"{who}: {schema_name} cannot be read from a table or file")
    from recsys_eval import schema_registry

    required = set(schema_registry.resolve(schema_name).schema.get("required", []))
    wanted = dict(fields)
    if layout == "item_rows":
        wanted.pop("items")
        wanted.update({k: v for k, v in ITEM_FIELDS.items()})
        required = (required - {"items"}) | {"item_id", "rank"}
    present: dict[str, str] = {}  # field -> source column
    for name in wanted:
        column = mapping.get(name, name)
        if column in types:
            present[name] = column
        elif name in mapping:
            raise RecsysEvalError(
                f"{who}: columns.{name}: the source has no column {column!r} (columns: "
                f"{', '.join(repr(c) for c, _ in cols[:30])})"
            )
        elif name in required:
            raise RecsysEvalError(
                f"{who}: columns.{name}: the source has no column {name!r}, which {schema_name} "
                f"requires; map it (columns: {{{name}: <column>}})"
            )
    if schema_name == "ranklist.v1" or "items" not in present or layout == "item_rows":
        item_fields = None
    else:
        item_fields = struct_fields(quote_ident(present["items"])) if struct_fields else None
        if item_fields is not None:
            names = {n for n, _ in item_fields}
            for need in ("item_id", "rank"):
                if need not in names:
                    raise RecsysEvalError(
                        f"{who}: columns.items: the item structs of column "
                        f"{present['items']!r} have no field {need!r} (they need item_id and rank)"
                    )
    if "ts" in present:
        ts_type = types[present["ts"]].upper()
        numeric = _is_number(ts_type)
        if ts_unit is None and numeric:
            raise RecsysEvalError(
                f"{who}: ts_unit: column {present['ts']!r} (ts) is numeric ({ts_type}); set "
                "ts_unit: s (epoch seconds) or ms (epoch milliseconds)"
            )
        if ts_unit is not None and not numeric and ts_type != "VARCHAR":
            raise RecsysEvalError(
                f"{who}: ts_unit: applies to a numeric ts column; column {present['ts']!r} is "
                f"{ts_type}"
            )
    order_by = opts.get("order_by")
    if order_by is not None and order_by not in types:
        raise RecsysEvalError(f"{who}: order_by: the source has no column {order_by!r}")

    def val(name: str) -> str:
        column = present[name]
        return value_sql(
            quote_ident(column), types[column], wanted[name],
            ts_unit if name == "ts" else None, item_fields if name == "items" else None,
        )  # fmt: skip

    if order_by is not None:
        key = _order_key(quote_ident(order_by), types[order_by], False)
    elif "ts" in present:
        key = _order_key(quote_ident(present["ts"]), types[present["ts"]], True)
        if ts_unit is not None and types[present["ts"]].upper() == "VARCHAR":
            key = f"try_cast({quote_ident(present['ts'])} as double)"
    else:
        key = "null"
    if plan.pg_copy is not None:  # a Postgres table has no stable order: every column
        tie = ", ".join(quote_ident(c) for c, _ in cols)
        # item rows compare positions only within a request: numbered per request
        within = (
            f"partition by {quote_ident(present['request_id'])} " if layout == "item_rows" else ""
        )
        position = f"row_number() over ({within}order by {tie})"
    else:
        position = plan.position or "row_number() over ()"
    scan = f"(select *, {position} as {POS} from {relation}) as s"
    fast = _Fast(schema_name, present, types, ts_unit, item_fields)
    if layout != "item_rows":
        parts = [f"'\"{n}\":' || {val(n)}" for n in fields if n in present]
        doc = f"'{{' || concat_ws(',', {', '.join(parts)}) || '}}'"
        plan.stage = fast.row_stage(doc, key, scan, direct=plan.position is not None)
        return (
            f"select doc from (select {doc} as doc, {key} as k, {POS} from {scan}) "
            f"order by k nulls last, {POS}"
        )
    # Item rows: one document per request_id, items ordered by rank; a row whose item_id and
    # rank are both NULL stands for a request shown no items.
    rank = quote_ident(present["rank"])
    rank_key = _order_key(rank, types[present["rank"]], False)
    if types[present["rank"]].upper() == "VARCHAR":
        rank_key = f"try_cast({rank} as double)"
    order = f"order by {rank_key} nulls last, {POS}"
    item_parts = [f"'\"{n}\":' || {val(n)}" for n in ITEM_FIELDS if n in present]
    item = f"'{{' || concat_ws(',', {', '.join(item_parts)}) || '}}'"
    parts = []
    for n in fields:
        if n == "items":
            shown = f"{quote_ident(present['item_id'])} is not null or {rank} is not null"
            items = f"string_agg({item}, ',' {order}) filter (where {shown})"
            parts.append(f"'\"items\":[' || coalesce({items}, '') || ']'")
        elif n in present:
            parts.append(f"'\"{n}\":' || first({val(n)} {order})")
    doc = f"'{{' || concat_ws(',', {', '.join(parts)}) || '}}'"
    rid = quote_ident(present["request_id"])
    # the rows of the requests SQL did not prove valid (positions keep their relative order)
    direct = plan.position is not None  # a columnar source: its narrow scans are cheap
    bad_keys = (
        f"{BAD_KEYS} as b where b.{KEY}" if direct else f"{STAGE} as b where not b.ok and b.rid"
    )
    bad_rows = (
        f"(select *, {position} as {POS} from {relation} as __rse_r where exists (select 1 from "
        f"{bad_keys} is not distinct from __rse_r.{rid})) as s"
    )
    plan.stage = fast.item_rows_stage(doc, key, scan, rid, bad_rows, direct)
    return (
        f"select doc from (select {doc} as doc, min({key}) as k, {rid} as rid from {scan} "
        f"group by {rid}) order by k nulls last, rid"
    )


# ---------------------------------------------------------------------------------------------
# The fast path: SQL proves a record valid and builds the raw table's typed columns

FAST_SCHEMAS = ("exposure.v1", "outcome.v1", "assignment.v1")
FastSql = tabular_fast.FastSql
STAGE, ORDER = tabular_fast.STAGE, tabular_fast.ORDER  # the fast path's temporary tables
BADLINES = tabular_fast.BADLINES
KEY, LINE = "__rse_key", "__rse_line"  # ORDER's columns: a record's key, its line_no
# ORDER's rows of the records the insert left out
BAD_KEYS = (
    f"(select o.{KEY}, o.{LINE} from {ORDER} as o semi join {BADLINES} as b on b.{LINE} = o.{LINE})"
)
SMALL_INTS = INT_TYPES - {"HUGEINT", "UBIGINT", "UHUGEINT"}
# RFC 3339 date-times that every checker accepts (a subset of what `format: date-time` allows;
# anything else takes the validator's path, so the verdicts stay those of the validator).
RFC3339_SUBSET = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
FAST_YEARS = "between 1000 and 9999"  # 4-digit years: the document path prints them the same


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Fast:
    """Per raw-table column: the typed value and the SQL condition under which the record's
    field is valid for the contract (conservative: a record SQL cannot prove valid goes to the
    validator). `None` from `column()`: these column types have no fast path."""

    def __init__(
        self,
        schema_name: str,
        present: dict[str, str],
        types: dict[str, str],
        ts_unit: str | None,
        item_fields: list[tuple[str, str]] | None,
    ) -> None:
        from recsys_eval import schema_registry
        from recsys_eval.loader import layout_for

        self.enabled = schema_name in FAST_SCHEMAS
        self.schema = schema_registry.resolve(schema_name).schema if self.enabled else {}
        self.layout = layout_for(schema_name)
        self.present, self.types, self.ts_unit = present, types, ts_unit
        self.item_fields = item_fields

    def scalar(
        self, x: str, typ: str, kind: str, prop: dict[str, Any], required: bool
    ) -> tuple[str, str] | None:
        base = typ.upper()
        conds: list[str] = []
        if kind == STRING:
            if base != "VARCHAR" and base not in SMALL_INTS:
                return None
            if set(prop) - {"type", "minLength", "enum"}:
                return None
            typed = f"{x}::varchar"
            if "minLength" in prop:
                conds.append(f"length({typed}) >= {int(prop['minLength'])}")
            if "enum" in prop:
                conds.append(f"{typed} in ({', '.join(_lit(str(v)) for v in prop['enum'])})")
        elif kind in (INTEGER, NUMBER):
            if set(prop) - {"type", "minimum"}:
                return None
            if kind == INTEGER:
                if base not in SMALL_INTS:
                    return None
                typed = f"{x}::bigint"
            else:
                if not (
                    base in SMALL_INTS or base in {"FLOAT", "DOUBLE"} or base.startswith("DECIMAL")
                ):
                    return None
                typed = f"{x}::double"
                conds.append(f"isfinite({typed})")
            if "minimum" in prop:
                conds.append(f"{typed} >= {float(prop['minimum'])!r}")
        elif kind == BOOLEAN:
            if base != "BOOLEAN":
                return None
            typed = x
        elif kind == TS:
            typed_ok = self.timestamp(x, base)
            if typed_ok is None:
                return None
            typed, cond = typed_ok
            conds.append(cond)
        elif kind == OBJECT:
            if base != "MAP(VARCHAR, VARCHAR)":
                return None
            typed = x
            conds.append(
                f"coalesce(list_bool_and(list_transform(map_values({x}), "
                "lambda __v: __v is not null)), true)"
            )
        else:
            return None
        cond = " and ".join(conds) or "true"
        ok = f"({typed} is not null and {cond})" if required else f"({typed} is null or ({cond}))"
        return typed, ok

    def timestamp(self, x: str, base: str) -> tuple[str, str] | None:
        if self.ts_unit is not None:
            if base not in SMALL_INTS and base not in {"FLOAT", "DOUBLE"}:
                return None
            us = f"({x}::double * {1_000_000 if self.ts_unit == 's' else 1_000})"
            # years 1000-9999: from 1000-01-01 to the end of 9999
            cond = f"{us} between -30610224000000000 and 253402300799999999"
            typed = f"case when {cond} then make_timestamp(cast(round({us}) as bigint)) end"
            return typed, cond
        if base == "VARCHAR":
            typed = f"timezone('UTC', try_cast(upper({x}) as timestamptz))"
            cond = f"regexp_full_match({x}, {_lit(RFC3339_SUBSET)}) and year({typed}) {FAST_YEARS}"
            return typed, cond
        if base in (TSTZ, "TIMESTAMPTZ"):
            typed = f"timezone('UTC', {x})"
        elif base in {"TIMESTAMP", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}:
            typed = f"{x}::timestamp"
        else:
            return None
        return typed, f"isfinite({typed}) and year({typed}) {FAST_YEARS}"

    def item(self, ref: Any, types: dict[str, str]) -> tuple[str, str] | None:
        """(struct, ok) of one item from its fields (`ref(name)`: the SQL of a field)."""
        spec = self.schema["properties"]["items"]["items"]
        props, required = spec["properties"], set(spec.get("required", []))
        if set(types) & {"team"}:
            return None
        parts, oks = [], []
        for name, typ in (
            ("item_id", "varchar"), ("rank", "bigint"), ("propensity", "double"),
            ("logging_propensity", "double"), ("target_propensity", "double"),
        ):  # fmt: skip
            if name not in types:
                parts.append(f"'{name}': null::{typ}")
                continue
            got = self.scalar(ref(name), types[name], ITEM_FIELDS[name], props[name],
                              name in required)  # fmt: skip
            if got is None:
                return None
            parts.append(f"'{name}': {got[0]}")
            oks.append(got[1])
        return "{" + ", ".join(parts) + "}", " and ".join(oks) or "true"

    def columns(self) -> list[tuple[str, str]] | None:
        """(typed, ok) per raw column (after the lineage columns) of a nested row."""
        if not self.enabled:
            return None
        props = self.schema["properties"]
        required = set(self.schema.get("required", []))
        out = []
        for column, table_type, _, _ in self.layout.columns:
            if column == "items":
                got = self.items(None, props)
            elif column not in self.present:
                got = (f"null::{table_type or 'timestamp'}", "true")
            else:
                src = self.present[column]
                got = self.scalar(quote_ident(src), self.types[src], FIELDS_KIND[column],
                                  props[column], column in required)  # fmt: skip
            if got is None:
                return None
            out.append(got)
        return out

    def items(self, aggregate: str | None, props: dict[str, Any]) -> tuple[str, str] | None:
        """(typed, ok) of the items: of a list column (`aggregate` None), else aggregated from
        item rows sorted by the integer key `aggregate`."""
        item_type = (
            "struct(item_id varchar, rank bigint, propensity double, logging_propensity double, "
            "target_propensity double)[]"
        )
        if aggregate is None:
            if "items" not in self.present or self.item_fields is None:
                return None
            x = quote_ident(self.present["items"])
            got = self.item(lambda n: f"__i.{quote_ident(n)}", dict(self.item_fields))
            if got is None:
                return None
            struct, ok = got
            typed = f"list_transform({x}, lambda __i: {struct})::{item_type}"
            each = f"list_transform({x}, lambda __i: __i is not null and {ok})"
            all_ok = f"coalesce(list_bool_and({each}), true)"
            return typed, f"({x} is not null and {all_ok})"
        names = {n: self.types[self.present[n]] for n in ITEM_FIELDS if n in self.present}
        got = self.item(lambda n: quote_ident(self.present[n]), names)
        if got is None:
            return None
        struct, ok = got
        shown = (
            f"{quote_ident(self.present['item_id'])} is not null or "
            f"{quote_ident(self.present['rank'])} is not null"
        )
        pairs = f"list({{'k': {aggregate}, 'i': {struct}}}) filter (where {shown})"
        typed = f"coalesce(list_transform(list_sort({pairs}), lambda __x: __x.i), [])::{item_type}"
        return typed, f"coalesce(bool_and({ok}) filter (where {shown}), true)"

    def row_stage(self, doc: str, key: str, scan: str, direct: bool) -> FastSql | None:
        """Nested rows. `direct` (a position the source gives without numbering the rows:
        Parquet): the order is numbered from the key and position columns only, and the typed
        rows go from the source into the raw table in one statement. Otherwise the records are
        computed once into a temporary table (the position is a window over the whole source)."""
        cols = self.columns()
        if cols is None:
            return None
        ok = "coalesce(" + " and ".join(o for _, o in cols) + ", false)"
        typed = ", ".join(f"{t} as c{i}" for i, (t, _) in enumerate(cols))
        names = ", ".join(f"c{i}" for i in range(len(cols)))
        number = f"row_number() over (order by k nulls last, {POS}) as {LINE}"
        if direct:
            # `ok` is evaluated once per record: the documents' pass reads only the positions of
            # the records the insert left out (BADLINES: ORDER's lines not in the raw table)
            bad_keys = f"{BAD_KEYS} as o"
            # Rows already in the documented order within each file (line_no - row constant per
            # file: logs written in time order) get their line_no from the position, no join.
            row, file = f"({POS} & {(1 << 40) - 1})", f"({POS} >> 40)"
            return FastSql(
                [f"create temp table {ORDER} as select {POS} as {KEY}, {number} from "
                 f"(select {key} as k, {POS} from {scan})"],
                f"select o.{LINE}, {typed} from {scan} join {ORDER} as o on o.{KEY} = s.{POS} "
                f"where {ok}",
                f"select o.{LINE}, {doc} as doc from {scan} join {bad_keys} on o.{KEY} = s.{POS}",
                by_lines=True,
                offsets=f"select {KEY} >> 40 as f, min({LINE} - ({KEY} & {(1 << 40) - 1})), "
                f"max({LINE} - ({KEY} & {(1 << 40) - 1})) from {ORDER} group by f",
                positional=f"select {row} + list_extract({tabular_fast.OFFSETS}, {file} + 1), "
                f"{typed} from {scan} where {ok}",
            )  # fmt: skip
        join = f"join {ORDER} as o on o.{KEY} = b.rowid"
        return FastSql(
            [f"create temp table {STAGE} as select {ok} as ok, {typed}, case when {ok} then null "
             f"else {doc} end as doc, {key} as k, {POS} from {scan}",
             f"create temp table {ORDER} as select rowid as {KEY}, {number} from {STAGE}"],
            f"select o.{LINE}, {names} from {STAGE} as b {join} where b.ok",
            f"select o.{LINE}, b.doc from {STAGE} as b {join} where not b.ok",
        )  # fmt: skip

    def item_rows_stage(
        self, doc: str, key: str, scan: str, rid: str, bad_rows: str, direct: bool
    ) -> FastSql | None:
        """Item rows: one aggregation computes each request's typed columns (its fields from its
        first item by rank, then position: `arg_min_null` on one integer key; its items sorted by
        that key) and `ok`. `direct` (Parquet: a narrow scan reads two columns): ORDER numbers
        the requests from a narrow aggregation (request_id and the least order key) and the
        aggregation is joined to ORDER by request_id and inserted in the same statement.
        Otherwise (a CSV or Postgres staging file, a table: every scan reads whole rows) the
        aggregation is computed once into a temporary table and numbered over its key columns.
        The documents of the requests not proven valid are built in a second statement, for
        those requests only."""
        if not self.enabled or not {"item_id", "rank"} <= set(self.present):
            return None
        rank = quote_ident(self.present["rank"])
        if self.types[self.present["rank"]].upper() not in SMALL_INTS:
            return None
        # (rank nulls last, position) as one hugeint: rank + 2^63 (or 2^64 for NULL) above the
        # position's 62 bits (positions are row numbers or (file << 40) + row).
        first_key = (
            f"((case when {rank} is null then 18446744073709551616::hugeint else {rank}::hugeint "
            f"+ 9223372036854775808::hugeint end << 62) + {POS}::hugeint)"
        )
        props = self.schema["properties"]
        required = set(self.schema.get("required", []))
        # inner: per request, the first row's source values and the items; outer: the typed
        # columns and `ok` from those (the same expressions as a nested row's)
        inner, typed, oks = [], [], []
        for i, (column, table_type, _, _) in enumerate(self.layout.columns):
            if column == "items":
                got = self.items(first_key, props)
                if got is None:
                    return None
                inner += [f"{got[0]} as c{i}", f"{got[1]} as __rse_ok{i}"]
                typed.append(f"c{i}")
                oks.append(f"__rse_ok{i}")
            elif column not in self.present:
                typed.append(f"null::{table_type or 'timestamp'} as c{i}")
            else:
                src = self.present[column]
                value = f"arg_min_null({quote_ident(src)}, {first_key})"
                if column == "request_id":  # the group's key: every row's, so the first row's
                    value = rid
                inner.append(f"{value} as __rse_f{i}")
                got = self.scalar(f"__rse_f{i}", self.types[src], FIELDS_KIND[column],
                                  props[column], column in required)  # fmt: skip
                if got is None:
                    return None
                typed.append(f"{got[0]} as c{i}")
                oks.append(got[1])
        ok = "coalesce(" + " and ".join(oks) + ", false)"
        grouped = f"select {', '.join(inner)}, {rid} as rid from {scan} group by {rid}"
        names = ", ".join(f"c{i}" for i in range(len(typed)))
        docs = f"select {doc} as doc, {rid} as rid from {bad_rows} group by {rid}"
        if not direct:
            join = f"join {ORDER} as o on o.{KEY} = b.rowid"
            docs = (
                f"select b.rowid, d.doc from ({docs}) as d join {STAGE} as b on not b.ok and "
                "b.rid is not distinct from d.rid"
            )
            grouped = (
                f"select {', '.join(inner)}, min({key}) as k, {rid} as rid from {scan} "
                f"group by {rid}"
            )
            return FastSql(
                [f"create temp table {STAGE} as select {ok} as ok, {', '.join(typed)}, k, rid "
                 f"from ({grouped})",
                 f"create temp table {ORDER} as select rowid as {KEY}, row_number() over (order "
                 f"by k nulls last, rid) as {LINE} from {STAGE}"],
                f"select o.{LINE}, {names} from {STAGE} as b {join} where b.ok",
                f"select o.{LINE}, b.doc from ({docs}) as b {join}",
            )  # fmt: skip
        return FastSql(
            [f"create temp table {ORDER} as select rid as {KEY}, row_number() over (order by "
             f"k nulls last, rid) as {LINE} from (select min({key}) as k, {rid} as rid from "
             f"{scan} group by {rid})"],
            f"select o.{LINE}, {names} from (select {ok} as ok, {', '.join(typed)}, rid from "
            f"({grouped})) as b join {ORDER} as o on o.{KEY} is not distinct from b.rid "
            "where b.ok",
            f"select b.{LINE}, d.doc from ({docs}) as d join {BAD_KEYS} as b on b.{KEY} is not "
            "distinct from d.rid",
            by_lines=True,
        )  # fmt: skip


FIELDS_KIND = {name: kind for fields in FIELDS.values() for name, kind in fields.items()}


# ---------------------------------------------------------------------------------------------
# Reading and loading


def iter_docs(plan: Plan, fetch_rows: int = FETCH_ROWS) -> Iterator[list[Any]]:
    """Batches of the documents, in order (the Postgres table copied to a staging file first)."""
    tmp_dir = None
    params = list(plan.params)
    try:
        if plan.pg_copy is not None:
            tmp_dir = tempdirs.create(tempdirs.LOAD_PREFIX)
            staging = os.path.join(tmp_dir, "table.csv")
            _copy_postgres(plan, staging)
            params = [staging]
        try:
            con = duckdb.connect(plan.database, read_only=plan.database != ":memory:")
        except duckdb.Error as exc:
            raise RecsysEvalError(
                f"{plan.who}: cannot open the database: {scrub(str(exc), plan.dsn)}"
            ) from None
        try:
            con.execute("set enable_progress_bar = false")
            if tmp_dir is not None:
                con.execute("set temp_directory = ?", [str(tmp_dir)])
            cur = con.execute(plan.query, params)
            while True:
                rows = cur.fetchmany(fetch_rows)
                if not rows:
                    break
                yield [r[0] for r in rows]
        except duckdb.Error as exc:
            raise RecsysEvalError(
                f"{plan.who}: reading the source failed: {scrub(str(exc), plan.dsn)}"
            ) from None
        finally:
            con.close()
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _copy_postgres(plan: Plan, staging: str) -> None:
    import psycopg

    try:
        conn = psycopg.connect(plan.dsn, application_name="recsys-eval")
    except Exception as exc:
        raise RecsysEvalError(f"{plan.who}: cannot connect: {scrub(str(exc), plan.dsn)}") from None
    try:
        conn.read_only = True
        with conn.cursor() as cur:
            cur.execute("set timezone = 'UTC'")
            cur.execute("set datestyle = 'ISO, YMD'")
            cur.execute("set extra_float_digits = 3")
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh, cur.copy(plan.pg_copy) as copy:
                for data in copy:
                    fh.write(data)
    except psycopg.Error as exc:
        raise RecsysEvalError(f"{plan.who}: COPY failed: {scrub(str(exc), plan.dsn)}") from None
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
        with contextlib.suppress(Exception):
            conn.close()


def load_tabular_source(
    con: duckdb.DuckDBPyConnection,
    schema_name: str,
    src: Any,
    table: str | None = None,
    pii_guard: str = "off",
    base_dir: Path | None = None,
    plan: Plan | None = None,
    fetch_rows: int = FETCH_ROWS,
) -> LoadResult:
    """Load a table / parquet / csv source (a `recsys_eval.config.Source`) into raw.<table>."""
    if plan is None:
        plan = plan_source(src, schema_name, base_dir)
    event_types = getattr(src, "event_types", None)
    if tabular_fast.available(plan, pii_guard, event_types):
        return tabular_fast.load_fast(con, schema_name, plan, table, _copy_postgres)
    return load_sql_source(
        con, schema_name, src.name, src.type, plan.dsn, plan.query, table,
        pii_guard=pii_guard, base_dir=base_dir, rows=iter_docs(plan, fetch_rows),
        label=plan.label, event_types=getattr(src, "event_types", None),
        event_types_key=getattr(src, "event_types_key", "") or "event_types",
    )  # fmt: skip
