"""Paired significance of an offline run against its baseline (`offline.significance`).

The sums, the sign-flip replicates and the bootstrap replicates are computed in SQL
(`fct_offline_paired_tests`); this module holds the numerical steps from those aggregates: the
paired t-test's two-sided p-value (Student's t through the regularized incomplete beta function),
the corrections across metrics (Holm, Benjamini-Hochberg), the report section and the gate rule.

A run with `offline.significance.enabled` writes its per-request metric values beside the report
(`<output>.request_metrics.parquet`: run_id, request_id, metric_name, metric_value; mode 0600), so
that it can be a later run's baseline; with `--baseline R.json` the run reads
`R.json.request_metrics.parquet`, checks that it belongs to that report (same run_id) and loads it
into `raw.baseline_request_metrics`, which `int_recsys_eval__offline_paired_requests` pairs with
this run's values by request_id and metric name.
"""

from __future__ import annotations

import atexit
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from recsys_eval.errors import ConfigError, RecsysEvalError

CORRECTIONS = ("holm", "fdr_bh", "none")
TESTS = ("t", "permutation")
DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "test": "t",
    "correction": "holm",
    "alpha": 0.05,
    "permutations": 1000,
    "iterations": 1000,
    "seed": 42,
}
MAX_REPLICATES = 100_000
PER_CASE_FAMILIES = ("precision", "recall", "map", "ndcg", "hitrate", "mrr")
SIDECAR_SUFFIX = ".request_metrics.parquet"
BASELINE_TABLE = "raw.baseline_request_metrics"
MART = "fct_offline_paired_tests"


# --- configuration ---------------------------------------------------------------------------


def settings(off: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """offline.significance with its defaults filled in, and the keys that were defaulted."""
    block = off.get("significance") or {}
    out = {key: block.get(key, default) for key, default in DEFAULTS.items()}
    out["test"] = str(out["test"]).strip().lower()
    out["correction"] = str(out["correction"]).strip().lower()
    return out, [key for key in DEFAULTS if key not in block and key != "enabled"]


def validate(off: dict[str, Any], file: Path | str) -> None:
    """offline.significance and offline.gates[].require_significance; errors name the key."""
    block = off.get("significance") or {}
    where = f"{file}: offline.significance"
    conf, _ = settings(off)
    if conf["test"] not in TESTS:
        raise ConfigError(f"{where}.test: must be {' or '.join(TESTS)}, got {block['test']!r}")
    if conf["correction"] not in CORRECTIONS:
        raise ConfigError(
            f"{where}.correction: must be {', '.join(CORRECTIONS)}, got {block['correction']!r}"
        )
    if not 0 < conf["alpha"] < 1:
        raise ConfigError(f"{where}.alpha: must be in (0, 1), got {conf['alpha']}")
    for key in ("permutations", "iterations"):
        if not 1 <= conf[key] <= MAX_REPLICATES:
            raise ConfigError(f"{where}.{key}: must be in [1, {MAX_REPLICATES}], got {conf[key]}")
    for i, gate in enumerate(off.get("gates", [])):
        if not gate.get("require_significance", False):
            continue
        key = f"{file}: offline.gates[{i}].require_significance"
        if not conf["enabled"]:
            raise ConfigError(f"{key}: needs offline.significance.enabled: true")
        if str(gate.get("metric", "")).strip().lower().split("@")[0] not in PER_CASE_FAMILIES:
            raise ConfigError(
                f"{key}: {gate.get('metric')!r} has no per-request values (only precision, "
                "recall, map, ndcg, hitrate and mrr are tested)"
            )


def dbt_var(conf: dict[str, Any]) -> dict[str, Any]:
    """var recsys_eval__offline_significance (read by the offline_significance() macro)."""
    return {
        "enabled": bool(conf["enabled"]),
        "permutations": int(conf["permutations"]),
        "iterations": int(conf["iterations"]),
        "seed": int(conf["seed"]),
        "ci_level": 1.0 - float(conf["alpha"]),
    }


# --- numerics --------------------------------------------------------------------------------


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1_000_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise RecsysEvalError("internal error: the incomplete beta function did not converge")


def _stirling_tail(x: float) -> float:
    """lgamma(x) - ((x - 1/2) ln x - x + ln(2 pi) / 2): the Stirling series, for x >= 100."""
    inv, inv2 = 1.0 / x, 1.0 / (x * x)
    return inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))


def log_beta(a: float, b: float) -> float:
    """ln B(a, b). With one argument large, lgamma(a + b) - lgamma(big) is taken from the Stirling
    series as (big - 1/2) log1p(small / big) + small ln(a + b) - small + tail difference: the plain
    difference of two lgamma values near 1e8 loses about 1e-8 (the t-test's p-value at df 1e7)."""
    small, big = min(a, b), max(a, b)
    if big < 100:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    ratio = (
        (big - 0.5) * math.log1p(small / big)
        + small * math.log(big + small)
        - small
        + _stirling_tail(big + small)
        - _stirling_tail(big)
    )
    return math.lgamma(small) - ratio


def regularized_beta(a: float, b: float, x: float, y: float | None = None) -> float:
    """I_x(a, b) for a, b > 0 and x in [0, 1]; `y` = 1 - x when the caller has it without
    cancellation (the t-test's t^2 / (df + t^2)), so tiny tails keep their digits."""
    y = 1.0 - x if y is None else y
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log(y) - log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def t_two_sided_p(t: float | None, df: int | None) -> float | None:
    """P(|T| >= |t|) for Student's t with df degrees of freedom: I_x(df/2, 1/2) with
    x = df / (df + t^2) (and 1 - x = t^2 / (df + t^2) computed as such). None when t or df is
    undefined (fewer than 2 pairs, or every difference equal)."""
    if t is None or df is None or df < 1 or math.isnan(t):
        return None
    if math.isinf(t):
        return 0.0
    denominator = df + t * t
    return regularized_beta(df / 2.0, 0.5, df / denominator, t * t / denominator)


def adjust(p_values: list[float | None], method: str) -> list[float | None]:
    """Adjusted p-values across the family of non-null p-values (None stays None): holm (step-down,
    family-wise error), fdr_bh (Benjamini-Hochberg step-up, false discovery rate) or none. The same
    definitions as the experiment mode's experiment_adjusted_p_value macro and statsmodels'
    multipletests."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    out: list[float | None] = [None] * len(p_values)
    if method == "none":
        return list(p_values)
    if method == "holm":
        running = 0.0
        for rank, (p, i) in enumerate(indexed):
            running = max(running, min(1.0, (m - rank) * p))
            out[i] = running
    elif method == "fdr_bh":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            p, i = indexed[rank]
            running = min(running, min(1.0, p * m / (rank + 1)))
            out[i] = running
    else:
        raise RecsysEvalError(f"internal error: unknown correction {method!r}")
    return out


# --- the report ------------------------------------------------------------------------------


def section(
    rows: list[dict[str, Any]], conf: dict[str, Any], defaulted: list[str], baseline_run_id: str
) -> dict[str, Any]:
    """The report's offline.significance: per metric the paired t-test, the randomization test and
    the bootstrap interval of the mean difference, each p-value also corrected across metrics."""
    rows = sorted(rows, key=lambda r: int(r["metric_position"]))
    t_p = [t_two_sided_p(r["t_statistic"], r["degrees_of_freedom"]) for r in rows]
    perm_p = [r["permutation_p_value"] for r in rows]
    t_adj, perm_adj = adjust(t_p, conf["correction"]), adjust(perm_p, conf["correction"])
    decisive = t_adj if conf["test"] == "t" else perm_adj
    metrics = []
    for i, r in enumerate(rows):
        entry: dict[str, Any] = {
            "name": r["metric_name"],
            "paired_requests": int(r["paired_requests"]),
            "current_only_requests": int(r["current_only_requests"]),
            "baseline_only_requests": int(r["baseline_only_requests"]),
        }
        if r["paired_requests"]:
            entry.update(
                {
                    "current_mean": float(r["current_mean"]),
                    "baseline_mean": float(r["baseline_mean"]),
                    "mean_difference": float(r["difference_mean"]),
                    "t_statistic": _num(r["t_statistic"]),
                    "degrees_of_freedom": int(r["degrees_of_freedom"]),
                    "t_p_value": t_p[i],
                    "t_p_value_adjusted": t_adj[i],
                    "permutation_p_value": _num(perm_p[i]),
                    "permutation_p_value_adjusted": perm_adj[i],
                    "ci": {
                        "lower": _num(r["ci_lower"]),
                        "upper": _num(r["ci_upper"]),
                        "level": float(r["ci_level"]),
                    },
                }
            )
        entry["significant"] = decisive[i] is not None and decisive[i] < conf["alpha"]
        metrics.append(entry)
    return {
        "baseline_run_id": baseline_run_id,
        "test": conf["test"],
        "correction": conf["correction"],
        "alpha": conf["alpha"],
        "permutations": conf["permutations"],
        "iterations": conf["iterations"],
        "seed": conf["seed"],
        "defaults_used": defaulted,
        "metrics": metrics,
    }


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def warnings_for(sig: dict[str, Any]) -> list[str]:
    """A warning when the runs did not evaluate the same requests (tests use the common ones)."""
    out = []
    for m in sig["metrics"]:
        if m["current_only_requests"] or m["baseline_only_requests"]:
            out.append(
                f"significance_requests_differ: {m['name']}: {m['paired_requests']} requests in "
                f"both runs, {m['current_only_requests']} only in this run, "
                f"{m['baseline_only_requests']} only in the baseline; the tests use the common ones"
            )
            break
    return out


def apply_to_gates(
    results: list[dict[str, Any]], gates: list[dict[str, Any]], sig: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Gates with `require_significance: true` fail only when the drop exceeds max_drop AND the
    paired test (offline.significance.test, corrected across metrics) finds the difference
    significant: a larger drop that is not significant passes, and the gate says so. Other gates
    keep their rule (delta >= -max_drop; a metric missing from either report fails)."""
    by_metric = {m["name"]: m for m in (sig or {}).get("metrics", [])}
    key = (
        "t_p_value_adjusted"
        if (sig or {}).get("test", "t") == "t"
        else ("permutation_p_value_adjusted")
    )
    out = []
    for result, gate in zip(results, gates, strict=True):
        result = dict(result)
        if gate.get("require_significance", False):
            entry = by_metric.get(str(gate["metric"]).strip().lower(), {})
            significant = bool(entry.get("significant", False))
            result["require_significance"] = True
            result["significant"] = significant
            result["p_value_adjusted"] = entry.get(key)
            if not result["passed"] and not significant and entry:
                result["passed"] = True
                result["note"] = "the drop exceeds max_drop but is not significant"
        out.append(result)
    return out


# --- the per-request file --------------------------------------------------------------------


def sidecar_path(report: Path) -> Path:
    return report.with_name(report.name + SIDECAR_SUFFIX)


def export_request_metrics(database: Path, folder: Path, run_id: str) -> Path:
    """This run's per-request values into a temporary Parquet file in `folder` (renamed beside
    the report once it is written: `publish`)."""
    from recsys_eval.warehouse import connect

    fd, tmp = tempfile.mkstemp(prefix=".request_metrics.", suffix=".parquet.tmp", dir=folder)
    os.close(fd)
    atexit.register(Path(tmp).unlink, missing_ok=True)  # left behind only when the run fails
    os.chmod(tmp, 0o600)
    con = connect(database, read_only=True)
    try:
        con.execute(
            f"""
            copy (
                select distinct ? as run_id, request_id, metric_name, metric_value
                from recsys_eval_marts.fct_offline_request_metrics
                order by request_id, metric_name
            ) to '{_sql_path(tmp)}' (format parquet)
            """,
            [run_id],
        )
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.chmod(tmp, 0o600)
    return Path(tmp)


def publish(tmp: Path, report: Path) -> None:
    os.replace(tmp, sidecar_path(report))


def _sql_path(path: str | Path) -> str:
    text = str(path)
    if "'" in text:
        raise RecsysEvalError(f"cannot use {text}: a path with a quote")
    return text


def check_baseline_file(baseline_report: Path, baseline: dict[str, Any]) -> Path:
    """The baseline's per-request file, before any work: present and from that report."""
    import duckdb

    path = sidecar_path(baseline_report)
    if not path.is_file():
        raise RecsysEvalError(
            f"offline.significance: the baseline's per-request values {path} are missing; "
            "run the baseline with offline.significance.enabled: true (it writes them beside "
            "its report)"
        )
    try:
        with duckdb.connect(":memory:") as con:
            found = con.execute(
                f"select distinct run_id from read_parquet('{_sql_path(path)}')"
            ).fetchall()
    except duckdb.Error as exc:
        raise RecsysEvalError(f"{path}: not a request-metrics file: {exc}") from None
    expected = baseline.get("run_id", "")
    if [r[0] for r in found] not in ([expected], []):
        raise RecsysEvalError(
            f"{path}: holds run {', '.join(str(r[0]) for r in found)}, but the baseline report "
            f"{baseline_report} is run {expected!r}: the file belongs to another run"
        )
    return path


def load_baseline(database: Path, path: Path) -> None:
    """raw.baseline_request_metrics from the baseline's per-request file."""
    from recsys_eval.warehouse import connect

    con = connect(database)
    try:
        con.execute("create schema if not exists raw")
        con.execute(
            f"""
            create or replace table {BASELINE_TABLE} as
            select
                cast(request_id as varchar) as request_id,
                cast(metric_name as varchar) as metric_name,
                cast(metric_value as double) as metric_value
            from read_parquet('{_sql_path(path)}')
            """
        )
    finally:
        con.close()


def read_mart(database: Path) -> list[dict[str, Any]]:
    from recsys_eval.warehouse import connect

    con = connect(database, read_only=True)
    try:
        cur = con.execute(f"select * from recsys_eval_marts.{MART} order by metric_position")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
