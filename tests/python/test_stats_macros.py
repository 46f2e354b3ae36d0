"""Check the statistics macros (macros/stats) against SciPy.

The macros are rendered once per target with `dbt compile --inline` (one select holding every macro,
each expression after a `-- @@name` marker line); the compiled expressions are then evaluated
directly over a grid in DuckDB (and, for the `spark` test, in a local SparkSession) and compared
with scipy.stats / scipy.special. No dbt build runs.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import special, stats

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_BIN = Path(sys.executable).with_name("dbt")

ABS_TOLERANCE = 1e-9
TAIL_REL_TOLERANCE = 1e-6
GOLDEN_TOLERANCE = 1e-12

# name -> Jinja call; `x`/`p`/`t` and `df` are columns of the grid table `g`.
MACROS = {
    "erf": "recsys_eval.erf('x')",
    "erfc": "recsys_eval.erfc('x')",
    "normal_cdf": "recsys_eval.normal_cdf('x')",
    "normal_sf": "recsys_eval.normal_sf('x')",
    "normal_two_sided_p_value": "recsys_eval.normal_two_sided_p_value('x')",
    "normal_quantile": "recsys_eval.normal_quantile('p')",
    "chi2_sf": "recsys_eval.chi2_sf('x', 'df')",
    "student_t_cdf": "recsys_eval.student_t_cdf('x', 'df')",
}
MARKER = re.compile(r"^-- @@(\w+)$", re.MULTILINE)


def compile_macros(tmp_path: Path, target: str) -> dict[str, str]:
    """Render every macro with one `dbt compile --inline` and return name -> SQL expression."""
    inline = "select\n" + "".join(
        f"-- @@{name}\n{{{{ {call} }}}}\n" for name, call in MACROS.items()
    )
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(REPO_ROOT),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "RECSYS_EVAL_DUCKDB_PATH": str(tmp_path / "stats.duckdb"),
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }
    command = [
        str(DBT_BIN),
        "--quiet",
        "--no-populate-cache",  # nothing to introspect; on Spark this also avoids starting a session
        "compile",
        "--target",
        target,
        "--project-dir",
        str(REPO_ROOT),
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "logs"),
        "--no-partial-parse",
        "--inline",
        inline,
    ]
    # Run from tmp_path: were a Spark session started, it would write metastore_db/ and derby.log here.
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    compiled = result.stdout[result.stdout.index("select\n-- @@") :]
    parts = MARKER.split(compiled)
    expressions = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    assert set(expressions) == set(MACROS)
    for name, body in expressions.items():
        assert "{{" not in body and body, name
    return expressions


@pytest.fixture(scope="module")
def duckdb_sql(tmp_path_factory) -> dict[str, str]:
    return compile_macros(tmp_path_factory.mktemp("stats_duckdb"), "duckdb")


def evaluate(expression: str, columns: dict[str, list]) -> np.ndarray:
    """Evaluate one compiled expression over the grid `g` in DuckDB; null -> nan."""
    names = list(columns)
    con = duckdb.connect()
    types = {"df": "integer"}
    projection = ", ".join(
        f"unnest(${i + 1}::{types.get(n, 'double')}[]) as {n}" for i, n in enumerate(names)
    )
    con.execute(f"create table g as select {projection}", [columns[n] for n in names])
    rows = con.execute(f"select {expression} as v from g").fetchall()
    return np.array([math.nan if v is None else v for (v,) in rows], dtype=float)


def max_abs_error(actual: np.ndarray, expected: np.ndarray) -> float:
    same_infinity = np.isinf(expected) & (actual == expected)
    return float(np.max(np.where(same_infinity, 0.0, np.abs(actual - expected))))


Z_GRID = sorted(
    {*np.round(np.linspace(-38.0, 38.0, 761), 10).tolist()}
    | {
        s * v
        for s in (-1, 1)
        for v in (
            0.0,
            1e-300,
            1e-8,
            0.3,
            0.46875 * 2**0.5,
            0.6629,
            4 * 2**0.5,
            5.66,
            7.0,
            7.13,
            26.5 * 2**0.5,
            37.5,
        )
    }
)


NORMAL_REFERENCES = {
    "erf": special.erf,
    "erfc": special.erfc,
    "normal_cdf": stats.norm.cdf,
    "normal_sf": stats.norm.sf,
    "normal_two_sided_p_value": lambda z: 2 * stats.norm.sf(np.abs(z)),
}


@pytest.mark.parametrize("name", list(NORMAL_REFERENCES))
def test_normal_family_matches_scipy(duckdb_sql, name):
    reference = NORMAL_REFERENCES[name]
    actual = evaluate(duckdb_sql[name], {"x": Z_GRID})
    expected = reference(np.array(Z_GRID))
    assert max_abs_error(actual, expected) <= ABS_TOLERANCE


@pytest.mark.parametrize("name", ["erfc", "normal_cdf", "normal_sf", "normal_two_sided_p_value"])
def test_normal_tails_keep_relative_accuracy(duckdb_sql, name):
    """Relative accuracy in the tails, for values down to 1e-12 (two-sided p-values)."""
    reference = NORMAL_REFERENCES[name]
    grid = np.linspace(-7.5, 7.5, 1501)
    expected = reference(grid)
    keep = expected >= 1e-12
    actual = evaluate(duckdb_sql[name], {"x": grid[keep].tolist()})
    relative = np.abs(actual - expected[keep]) / expected[keep]
    assert float(np.max(relative)) <= TAIL_REL_TOLERANCE


def test_two_sided_p_value_reference_goldens(duckdb_sql):
    """reference §11.3: the golden experiment's two z statistics."""
    actual = evaluate(
        duckdb_sql["normal_two_sided_p_value"],
        {"x": [-0.8660254037844386, 1.7320508075688772, None]},
    )
    assert abs(actual[0] - 0.38647623077123283) <= GOLDEN_TOLERANCE
    assert abs(actual[1] - 0.08326451666355039) <= GOLDEN_TOLERANCE
    assert math.isnan(actual[2])  # null in, null out


def test_normal_quantile_matches_scipy(duckdb_sql):
    tail = np.logspace(-12, math.log10(0.5), 400)
    grid = sorted(
        {
            *tail.tolist(),
            *(1 - tail).tolist(),
            *np.linspace(0.001, 0.999, 999).tolist(),
            0.075,
            0.925,
            0.5,
        }
    )
    actual = evaluate(duckdb_sql["normal_quantile"], {"p": grid})
    assert max_abs_error(actual, stats.norm.ppf(np.array(grid))) <= ABS_TOLERANCE
    edges = evaluate(duckdb_sql["normal_quantile"], {"p": [0.0, 1.0, -0.1, 1.1, None]})
    assert edges[0] == -math.inf and edges[1] == math.inf
    assert all(math.isnan(v) for v in edges[2:])


def test_chi2_sf_matches_scipy(duckdb_sql):
    xs = sorted({*np.linspace(0.0, 500.0, 251).tolist(), *np.logspace(-6, 2, 60).tolist(), 1 / 3})
    dfs = [*range(1, 61), 61, 64, 75, 77, 88, 99, 100]
    x_column = [x for _ in dfs for x in xs]
    df_column = [df for df in dfs for _ in xs]
    actual = evaluate(duckdb_sql["chi2_sf"], {"x": x_column, "df": df_column})
    expected = stats.chi2.sf(np.array(x_column), np.array(df_column))
    assert max_abs_error(actual, expected) <= ABS_TOLERANCE


def test_chi2_sf_edges_and_reference_value(duckdb_sql):
    actual = evaluate(
        duckdb_sql["chi2_sf"],
        {"x": [1 / 3, 0.0, -1.0, 5.0, 5.0, 5.0, None], "df": [1, 3, 2, 0, 101, None, 2]},
    )
    assert abs(actual[0] - 0.5637028616507731) <= GOLDEN_TOLERANCE  # reference §11.6(e)
    assert actual[1] == 1.0 and actual[2] == 1.0
    assert all(math.isnan(v) for v in actual[3:])  # df out of [1, max_df], nulls


def test_student_t_cdf_matches_scipy(duckdb_sql):
    ts = sorted(
        {
            *np.linspace(-40.0, 40.0, 81).tolist(),
            *np.linspace(-4.0, 4.0, 41).tolist(),
            1e-9,
            1e4,
            -1e4,
        }
    )
    dfs = list(range(1, 201))
    t_column = [t for _ in dfs for t in ts]
    df_column = [df for df in dfs for _ in ts]
    actual = evaluate(duckdb_sql["student_t_cdf"], {"x": t_column, "df": df_column})
    expected = stats.t.cdf(np.array(t_column), np.array(df_column))
    assert max_abs_error(actual, expected) <= ABS_TOLERANCE
    edges = evaluate(duckdb_sql["student_t_cdf"], {"x": [1.0, 1.0, None], "df": [0, 201, 5]})
    assert all(math.isnan(v) for v in edges)


@pytest.mark.spark
def test_compiled_macros_run_on_spark(tmp_path, monkeypatch):
    """Compile with --target spark and run every macro through a local SparkSession (~20 points each).

    Fails (does not skip) when pyspark or Java is missing: the macros must stay Spark-compatible.
    """
    monkeypatch.setenv("SPARK_LOCAL_IP", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
    spark_sql = compile_macros(tmp_path, "spark")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("recsys_eval_stats_macros")
        .config("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    zs = [
        -38.0,
        -9.0,
        -5.0,
        -3.0,
        -1.5,
        -0.6,
        -0.3,
        0.0,
        0.2,
        0.5,
        0.9,
        1.7320508075688772,
        2.5,
        4.5,
        6.0,
        7.1,
        12.0,
        30.0,
        None,
    ]
    ps = [
        1e-12,
        1e-9,
        1e-5,
        0.001,
        0.02,
        0.05,
        0.1,
        0.3,
        0.5,
        0.7,
        0.9,
        0.95,
        0.975,
        0.999,
        1 - 1e-9,
        0.0,
        1.0,
        None,
    ]
    chi = [
        (0.0, 1),
        (1 / 3, 1),
        (0.5, 2),
        (2.0, 3),
        (5.0, 4),
        (11.0, 7),
        (30.0, 20),
        (60.0, 45),
        (120.0, 99),
        (200.0, 100),
        (500.0, 60),
        (3.0, None),
    ]
    ts = [
        (-30.0, 1),
        (-3.0, 2),
        (-1.0, 3),
        (0.0, 4),
        (0.5, 5),
        (2.0, 10),
        (2.5, 29),
        (-2.0, 60),
        (1.96, 121),
        (3.0, 200),
        (None, 8),
    ]
    cases = [
        (name, "x double", [(z,) for z in zs], reference)
        for name, reference in NORMAL_REFERENCES.items()
    ]
    cases += [
        ("normal_quantile", "p double", [(p,) for p in ps], stats.norm.ppf),
        ("chi2_sf", "x double, df int", chi, stats.chi2.sf),
        ("student_t_cdf", "x double, df int", ts, stats.t.cdf),
    ]
    try:
        for name, schema, rows, reference in cases:
            spark.createDataFrame(rows, schema).createOrReplaceTempView("g")
            sql_rows = list(spark.sql(f"select *, {spark_sql[name]} as v from g").collect())
            for row in sql_rows:
                if any(value is None for value in row[:-1]):
                    assert row[-1] is None, (name, row)
                    continue
                expected = float(reference(*row[:-1]))
                assert row[-1] is not None, (name, row)
                if math.isinf(expected):
                    assert row[-1] == expected, (name, row)
                else:
                    assert abs(row[-1] - expected) <= ABS_TOLERANCE, (name, row, expected)
    finally:
        spark.stop()
