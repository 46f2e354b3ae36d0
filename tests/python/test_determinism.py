"""Reported floats do not depend on DuckDB's thread scheduling (issue #16, item 13).

A plain sum(double) in a parallel aggregate adds per-thread partial sums in whatever order the
threads finish, and double addition is not associative: the last bits of a metric changed from run
to run. recsys_eval.exact_sum (macros/cross_db/exact_sum.sql) sums the doubles as 128-bit integers
at a fixed scale, which no order can change. These tests run with DuckDB threads = 8, so even this
2-core machine splits every aggregate into several partial states:

- the macros against a plain sum over the same doubles in shuffled orders: the plain sum must
  differ at least once (the test can see the problem), the macros never, and they must agree with
  math.fsum / numpy;
- the offline metrics mart built by dbt on 160k generated exposures, then its compiled SQL run
  again several times on the same tables: byte-identical rows every time (a plain sum differs).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_BIN = Path(sys.executable).with_name("dbt")
THREADS = 8

MACROS = {
    "exact_sum": "recsys_eval.exact_sum('x')",
    "exact_avg": "recsys_eval.exact_avg('x')",
    "exact_var_pop": "recsys_eval.exact_var_pop('x')",
    "exact_var_pop_centered": "recsys_eval.exact_var_pop('x', 'c')",
    "exact_sum_window": "recsys_eval.exact_sum('x', over='partition by g')",
}
MARKER = re.compile(r"^-- @@(\w+)$", re.MULTILINE)


def _profile(folder: Path) -> Path:
    """The repo's DuckDB profile with DuckDB threads = THREADS (the settings block), in `folder`."""
    profiles = yaml.safe_load((REPO_ROOT / "profiles.yml").read_text())
    name = next(iter(profiles))
    output = dict(profiles[name]["outputs"]["duckdb"])
    output["settings"] = {**(output.get("settings") or {}), "threads": THREADS}
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({name: {"target": "duckdb", "outputs": {"duckdb": output}}})
    (folder / "profiles.yml").write_text(text)
    return folder


def _dbt(tmp: Path, database: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "RECSYS_EVAL_DUCKDB_PATH": str(database),
    }
    command = [
        str(DBT_BIN),
        *args,
        "--target",
        "duckdb",
        "--project-dir",
        str(REPO_ROOT),
        "--profiles-dir",
        str(_profile(tmp / "profiles")),
        "--target-path",
        str(tmp / "target"),
        "--log-path",
        str(tmp / "logs"),
        "--no-partial-parse",
    ]
    result = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def macros(tmp_path_factory) -> dict[str, str]:
    """Every macro rendered for DuckDB by one `dbt compile --inline`: name -> SQL expression."""
    tmp = tmp_path_factory.mktemp("exact_sum_compile")
    inline = "select\n" + "".join(
        f"-- @@{name}\n{{{{ {call} }}}}\n" for name, call in MACROS.items()
    )
    result = _dbt(tmp, tmp / "compile.duckdb", "--quiet", "compile", "--inline", inline)
    compiled = result.stdout[result.stdout.index("select\n-- @@") :]
    parts = MARKER.split(compiled)
    expressions = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    assert set(expressions) == set(MACROS)
    return expressions


def _connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"set threads = {THREADS}")
    return con


def _ulps(a: float, b: float) -> float:
    return abs(a - b) / math.ulp(max(abs(a), abs(b), 1e-300))


def test_exact_sum_does_not_depend_on_row_order_where_sum_does(macros):
    con = _connection()
    # 1.5M doubles of mixed signs and magnitudes (1e-6 .. 1e6, with fractions), three groups
    con.execute(
        """
        create table t as
        select
            i,
            i % 3 as g,
            ((hash(i, 1) % 2000001)::double / 1000000 - 1)
            * pow(10, (hash(i, 2) % 13)::double - 6) as x
        from range(1500000) as r (i)
        """
    )
    plain_global, plain_grouped, exact_global, exact_grouped = set(), set(), set(), set()
    for seed in range(10):
        # the same rows in another physical order each time
        con.execute(f"create or replace table s as select * from t order by hash(i, {seed + 7})")
        plain_global.add(con.execute("select sum(x) from s").fetchone()[0])
        plain_grouped.add(
            tuple(con.execute("select sum(x) from s group by g order by g").fetchall())
        )
        exact_global.add(con.execute(f"select {macros['exact_sum']} from s").fetchone()[0])
        exact_grouped.add(
            tuple(
                con.execute(f"select {macros['exact_sum']} from s group by g order by g").fetchall()
            )
        )
        if seed >= 3 and (len(plain_global) > 1 or len(plain_grouped) > 1):
            break
    # the setup reproduces the problem: some plain sum changed with the row order / scheduling
    assert len(plain_global) > 1 or len(plain_grouped) > 1
    assert len(exact_global) == 1 and len(exact_grouped) == 1
    xs = con.execute("select x from t order by i").fetchnumpy()["x"]
    (total,) = exact_global
    assert _ulps(total, math.fsum(xs)) <= 2
    groups = con.execute("select g, list(x) from t group by g order by g").fetchall()
    for (g, values), (value,) in zip(groups, next(iter(exact_grouped)), strict=True):
        assert _ulps(value, math.fsum(values)) <= 2, g


def test_exact_avg_and_var_pop_match_numpy_for_any_order(macros):
    con = _connection()
    con.execute(
        """
        create table t as
        select i, i % 2 as g, 1000 + ((hash(i) % 1000003)::double / 1000003) * 3.5 as x, 1000.0 as c
        from range(600000) as r (i)
        """
    )
    xs = con.execute("select x from t order by i").fetchnumpy()["x"]
    results = set()
    for seed in range(4):
        con.execute(f"create or replace table s as select * from t order by hash(i, {seed})")
        results.add(
            con.execute(
                f"select {macros['exact_avg']}, {macros['exact_var_pop']}, "
                f"{macros['exact_var_pop_centered']} from s"
            ).fetchone()
        )
    assert len(results) == 1
    ((mean, var, var_centered),) = results
    assert _ulps(mean, math.fsum(xs) / len(xs)) <= 2
    exact_var = math.fsum((xs - math.fsum(xs) / len(xs)) ** 2) / len(xs)
    # the one-pass moments lose ~E[x^2] / var ulps; the centred ones keep the variance's digits
    assert var == pytest.approx(exact_var, rel=1e-9)
    assert var_centered == pytest.approx(exact_var, rel=1e-13)


def test_exact_sum_edge_cases(macros):
    con = _connection()
    cases = {
        "empty": ([], None),
        "nulls only": ([None, None], None),
        "nulls skipped": ([None, 1.5, 2.25], 3.75),
        "small terms": ([1e-12] * 1000, math.fsum([1e-12] * 1000)),
        "cancellation": ([1e16, 1.0, -1e16], 1.0),
        "negative fractions": ([-0.1, -0.2, -0.3], -0.6),
        "large": ([1.5e30, 2.5e30], 4e30),
        "inf": ([1.0, float("inf")], float("inf")),
        "-inf": ([float("-inf"), 1.0], float("-inf")),
        "both infinities": ([float("inf"), float("-inf"), 2.0], float("nan")),
        "nan": ([1.0, float("nan")], float("nan")),
    }
    for name, (values, expected) in cases.items():
        con.execute("create or replace table s (x double)")
        if values:
            con.executemany("insert into s values (?)", [[v] for v in values])
        got = con.execute(f"select {macros['exact_sum']}, sum(x) from s").fetchone()[0]
        if expected is None:
            assert got is None, name
        elif math.isnan(expected):
            assert math.isnan(got), name
        else:
            assert got == pytest.approx(expected, rel=1e-15, abs=0), name
    # below 2^-52 a term is read as a multiple of 2^-104: within 2^-105 each
    con.execute(
        "create or replace table s as select 1e-20 * (1 + i / 7) as x from range(1000) as r (i)"
    )
    xs = con.execute("select x from s").fetchnumpy()["x"]
    got = con.execute(f"select {macros['exact_sum']} from s").fetchone()[0]
    assert abs(got - math.fsum(xs)) <= 1000 * 2.0**-105
    # the window form: every row gets its partition's sum
    con.execute(
        "create or replace table s as select i % 2 as g, i * 0.1 as x from range(10) as r (i)"
    )
    rows = con.execute(f"select g, {macros['exact_sum_window']} from s order by g").fetchall()
    assert {g: v for g, v in rows} == pytest.approx({0: 2.0, 1: 2.5}, rel=1e-15)
    # 0.1 + 0.2 + 0.3 + 0.4: the exact sum of the doubles rounds to 1.0 in any order
    assert con.execute(
        f"select {macros['exact_sum']} from (values (0.4), (0.3), (0.1), (0.2)) as v (x)"
    ).fetchone()[0] == math.fsum([0.4, 0.3, 0.1, 0.2])


# --- the offline mart, end to end -------------------------------------------------------------------

EXPOSURES = 160_000

RAW_SQL = """
create schema raw;
create table raw.exposures as
select
    'load-1' as load_id,
    1::bigint as load_seq,
    'exposures.jsonl' as source_file,
    (i + 1)::bigint as line_no,
    'req-' || i as request_id,
    'user-' || (hash(i, 1) % 50000) as user_id,
    timestamp '2025-01-01' + to_seconds(i) as ts,
    list_transform(range(10), lambda k: {{
        'item_id': 'item-' || ((floor(pow(20000, (hash(i, k, 2) % 1000003) / 1000003.0))::bigint
            + k * 7919) % 20000),
        'rank': (k + 1)::bigint,
        'propensity': null::double,
        'logging_propensity': null::double,
        'target_propensity': null::double
    }}) as items,
    map(['tenant', 'surface'], ['t' || (hash(i, 3) % 3), ['home', 'search', 'pdp'][1 + (hash(i, 4) % 3)::bigint]])
        as context,
    (hash(i, 5) % 50000) / 100.0 as latency_ms,
    false as error
from range({n}) as r (i);
create table raw.outcomes as
select
    'load-2' as load_id,
    2::bigint as load_seq,
    'outcomes.jsonl' as source_file,
    row_number() over (order by line_no, k) as line_no,
    request_id,
    user_id,
    item.item_id as item_id,
    'click' as event_type,
    null::double as value,
    ts + to_seconds(60) as ts
from (
    select line_no, request_id, user_id, ts, unnest(items) as item, generate_subscripts(items, 1) as k
    from raw.exposures
) as shown
where hash(line_no, k, 6) % 100 < 4;
"""


def test_offline_metrics_are_byte_identical_across_runs(tmp_path):
    database = tmp_path / "offline.duckdb"
    con = duckdb.connect(str(database))
    con.execute(RAW_SQL.format(n=EXPOSURES))
    con.close()
    from recsys_eval.commands.run import dbt_vars
    from recsys_eval.config import RunConfig, apply_defaults

    families = ("precision", "recall", "map", "ndcg", "mrr", "novelty", "diversity")
    raw = {
        "mode": "offline",
        "offline": {
            "metrics": [{"name": f, "k": 3} for f in families],
            "slice_keys": ["tenant", "surface"],
        },
    }
    cfg = RunConfig(
        mode="offline",
        dataset={},
        eval=apply_defaults(raw),
        dataset_file=Path("d.yaml"),
        eval_file=Path("e.yaml"),
    )
    build_vars = dbt_vars(cfg)
    _dbt(
        tmp_path,
        database,
        "run",
        "--vars",
        json.dumps(build_vars),
        "--select",
        "+fct_offline_metrics",
    )
    compiled = next((tmp_path / "target" / "compiled").rglob("fct_offline_metrics.sql")).read_text()
    con = duckdb.connect(str(database))
    con.execute(f"set threads = {THREADS}")
    (schema,) = con.execute(
        "select table_schema from information_schema.tables where table_name = 'fct_offline_metrics'"
    ).fetchone()
    con.execute(f'set schema = "{schema}"')
    built = con.execute("select * from fct_offline_metrics order by all").fetchall()
    assert len(built) == len(families) * 10  # global + 9 segments
    for _ in range(3):
        again = con.execute(f"select * from ({compiled}) as rerun order by all").fetchall()
        differing = [(a, b) for a, b in zip(built, again, strict=True) if a != b]
        assert not differing, differing[:3]
    con.close()


def test_ope_aggregates_do_not_depend_on_row_order(tmp_path):
    """int_recsys_eval__ope_group_sums and _block_sums (what the OPE CLI reads instead of the
    samples): the same rows in another physical order give the same doubles, bit for bit, and the
    sums are the exact sums rounded (math.fsum, within 2 ulps)."""
    database = tmp_path / "ope.duckdb"
    ope = {"recsys_eval__ope": {"unit": "request", "slice_keys": ["g"]}}
    _dbt(tmp_path, database, "compile", "--vars", json.dumps(ope), "--select",
         "int_recsys_eval__ope_group_sums int_recsys_eval__ope_block_sums")  # fmt: skip
    compiled = {
        name: next((tmp_path / "target" / "compiled").rglob(f"{name}.sql")).read_text()
        for name in ("int_recsys_eval__ope_group_sums", "int_recsys_eval__ope_block_sums")
    }
    found = re.search(r'"(\w+)"\."int_recsys_eval__ope_sample_terms"', compiled[
        "int_recsys_eval__ope_group_sums"])  # fmt: skip
    assert found is not None
    schema = found.group(1)
    con = duckdb.connect(str(database))
    con.execute(f"set threads = {THREADS}")
    con.execute(f'create schema if not exists "{schema}"')
    con.execute(
        """
        create table base as
        select
            i // 3 as load_seq, i % 3 as line_no, null::bigint as item_position,
            'g' || (i % 4) as segment_key,
            (hash(i, 1) % 1000003)::double / 100003 as importance_weight,
            (hash(i, 2) % 7)::double / 3 as reward,
            (hash(i, 3) % 1000003)::double / 1000003 as model_logged,
            (hash(i, 4) % 1000003)::double / 700003 as model_target,
            0 as clipped_items,
            10 as listed_items, 9 as item_count, 1 as no_logging_propensity_items,
            0 as missing_target_propensity_items, 0 as near_zero_propensities,
            (hash(i, 5) % 1000003)::double / 1000003 as target_mass,
            (hash(i, 6) % 1000003)::double / 7000003 as target_mass_without_logging,
            (hash(i, 7) % 1000003)::double / 100003 as unclipped_weight_sum,
            pow((hash(i, 7) % 1000003)::double / 100003, 2) as unclipped_weight_sq_sum,
            0 as unranked_samples
        from range(300000) as r (i)
        """
    )
    con.execute(
        "create table terms as select *, importance_weight * (reward - model_logged) "
        "as weighted_residual from base"
    )
    results = set()
    for seed in range(3):
        order = f"order by hash(load_seq, line_no, {seed + 11})"
        con.execute(
            f'create or replace table "{schema}".int_recsys_eval__ope_sample_terms as select '
            "load_seq, line_no, item_position, segment_key, importance_weight, reward, "
            "model_logged, model_target, weighted_residual, case when importance_weight <= 10 "
            "then weighted_residual else 0 end as switch_weighted_residual, clipped_items "
            f"from terms {order}"
        )
        con.execute(
            f'create or replace table "{schema}".int_recsys_eval__ope_rows as select * '
            f"from base {order}"
        )
        results.add(
            tuple(
                tuple(con.execute(f"select * from ({sql}) as q order by all").fetchall())
                for sql in compiled.values()
            )
        )
    assert len(results) == 1
    ((groups, blocks),) = results
    assert len(groups) == 5 and len(blocks) == 10_000
    names = [d[0] for d in con.execute(
        f"select * from ({compiled['int_recsys_eval__ope_group_sums']}) as q limit 0").description]  # fmt: skip
    overall = dict(zip(names, next(r for r in groups if r[0] == "global"), strict=True))
    cols = con.execute("select * from terms order by load_seq, line_no").fetchnumpy()
    w, r, m = cols["importance_weight"], cols["reward"], cols["model_logged"]
    assert _ulps(overall["target_mass"], math.fsum(cols["target_mass"])) <= 2
    assert _ulps(overall["sum_weight"], math.fsum(w)) <= 2
    assert _ulps(overall["sum_weighted_residual"], math.fsum(w * (r - m))) <= 2
    # the blocks: 30 samples each, in file order
    assert _ulps(blocks[0][2], math.fsum(w[:30])) <= 2 and blocks[0][1] == 30
