"""Paired significance of an offline run against a baseline (`offline.significance`, issue 21 item 3).

One dbt build on generated data (400 requests, every one judged, the `trec` dialect so that ranx's
per-query values are ours): the candidate moves relevant items from positions 4-10 into the top 3
(precision@3 and mrr@10 clearly better) and swaps position 10 with a random later position half of
the time (precision@10: no real difference). The baseline's per-request values are ranx's, written
into raw.baseline_request_metrics as the CLI writes the baseline's file. Checked:
- the paired t statistic and p-value against scipy.stats.ttest_rel and ranx.compare(stat_test="student");
- the randomization test: the exceedance count against an independent hashlib implementation of the
  documented sign flips (exact), and the p-value against ranx.compare(stat_test="fisher") within the
  Monte Carlo error of both;
- the bootstrap interval against an independent hashlib Poisson bootstrap;
- Holm and Benjamini-Hochberg against statsmodels' multipletests;
- the better metrics significant, the equal one not;
- the per-request file round trip (export, run_id check, load) and the gate rule.
Pure-Python checks: Student's t p-value against scipy to 1e-12, config errors naming the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import warnings
from pathlib import Path

import duckdb
import numpy
import pytest
from dbt_helpers import run_dbt

from recsys_eval import offline_significance as sig
from recsys_eval.config import load_run_config
from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.loader import ensure_raw_schema, load_file

scipy_stats = pytest.importorskip("scipy.stats")
ranx = pytest.importorskip("ranx")
multitest = pytest.importorskip("statsmodels.stats.multitest")

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["precision@3", "precision@10", "ndcg@10", "mrr@10"]
PERMUTATIONS, ITERATIONS, SEED, ALPHA = 1000, 200, 42, 0.05


def generate(folder: Path, n: int = 400, seed: int = 1) -> tuple[dict, dict, dict]:
    rng = random.Random(seed)
    qrels, baseline, candidate = {}, {}, {}
    exposures, outcomes = [], []
    for q in range(n):
        qid = f"q{q:04d}"
        items = rng.sample([f"d{i}" for i in range(200)], 15)
        relevant = {d for d in items if rng.random() < 0.25} | {f"unseen{q}"}
        qrels[qid] = {d: 1 for d in relevant}
        better = list(items)
        if rng.random() < 0.5:  # before the top-3 moves, which keep the top 10's set unchanged
            other = rng.randint(10, 14)
            better[9], better[other] = better[other], better[9]
        top, middle = [0, 1, 2], [i for i in range(3, 10) if better[i] in relevant]
        for slot in [i for i in top if better[i] not in relevant]:
            if middle:
                source = middle.pop(0)
                better[slot], better[source] = better[source], better[slot]
        baseline[qid] = {d: -float(i + 1) for i, d in enumerate(items)}
        candidate[qid] = {d: -float(i + 1) for i, d in enumerate(better)}
        exposures.append(
            {
                "request_id": qid,
                "user_id": qid,
                "ts": "2025-01-01T00:00:00Z",
                "items": [{"item_id": d, "rank": i + 1} for i, d in enumerate(better)],
            }
        )
        outcomes += [
            {
                "request_id": qid,
                "user_id": qid,
                "item_id": d,
                "event_type": "click",
                "ts": "2025-01-01T00:00:01Z",
            }
            for d in sorted(relevant)
        ]
    for name, rows in (("exposures", exposures), ("outcomes", outcomes)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return qrels, baseline, candidate


def ranx_scores(qrels: dict, run: dict) -> dict[str, dict[str, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), METRICS, return_mean=False)
    ids = sorted(qrels)  # ranx keeps the queries sorted
    return {m: {q: float(scores[m][i]) for i, q in enumerate(ids)} for m in METRICS}


def uniform(key: str) -> float:
    return int(hashlib.md5(key.encode()).hexdigest()[:13], 16) / 2**52


def poisson_weight(u: float) -> int:
    term, cumulative = math.exp(-1.0), 0.0
    for w in range(15):
        cumulative += term
        if u < cumulative:
            return w
        term /= w + 1
    return 15


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("significance")
    qrels, baseline_run, candidate_run = generate(folder)
    baseline_values = ranx_scores(qrels, baseline_run)
    database = folder / "paired.duckdb"
    with duckdb.connect(str(database)) as con:
        ensure_raw_schema(con)
        load_file(con, "exposure.v1", folder / "exposures.jsonl", table="exposures")
        load_file(con, "outcome.v1", folder / "outcomes.jsonl", table="outcomes")
        con.execute(
            "create table raw.baseline_request_metrics "
            "(request_id varchar, metric_name varchar, metric_value double)"
        )
        con.executemany(
            "insert into raw.baseline_request_metrics values (?, ?, ?)",
            [(q, m, v) for m, values in baseline_values.items() for q, v in values.items()],
        )
    dbt_vars = {
        "recsys_eval__source": "raw",
        "recsys_eval__using_assignments": False,
        "recsys_eval__using_rankers": False,
        "recsys_eval__offline_dialect": "trec",
        "recsys_eval__offline_metrics": [
            {"name": m.split("@")[0], "k": int(m.split("@")[1])} for m in METRICS
        ],
        "recsys_eval__offline_significance": {
            "enabled": True,
            "permutations": PERMUTATIONS,
            "iterations": ITERATIONS,
            "seed": SEED,
            "ci_level": 1 - ALPHA,
        },
    }
    result, _ = run_dbt(
        folder, "paired", "run", dbt_vars, database, select=["+fct_offline_paired_tests"]
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    with duckdb.connect(str(database), read_only=True) as con:
        pairs = con.execute(
            "select metric_name, request_id, current_value, baseline_value "
            "from recsys_eval_staging.int_recsys_eval__offline_paired_requests "
            "where pair_status = 'paired' order by request_id"
        ).fetchall()
    rows = sig.read_mart(database)
    per_metric: dict[str, dict[str, tuple[float, float]]] = {}
    for metric, request_id, current, base in pairs:
        per_metric.setdefault(metric, {})[request_id] = (current, base)
    return {
        "folder": folder,
        "database": database,
        "qrels": qrels,
        "runs": (baseline_run, candidate_run),
        "rows": {r["metric_name"]: r for r in rows},
        "pairs": per_metric,
    }


def conf(**overrides) -> dict:
    return {**sig.DEFAULTS, "enabled": True, "permutations": PERMUTATIONS, **overrides}


def test_t_test_matches_scipy_and_ranx_student(built):
    qrels, (baseline_run, candidate_run) = built["qrels"], built["runs"]
    report = sig.section(list(built["rows"].values()), conf(), [], "base")
    ours = {m["name"]: m for m in report["metrics"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compared = ranx.compare(
            ranx.Qrels(qrels),
            [ranx.Run(baseline_run, name="baseline"), ranx.Run(candidate_run, name="candidate")],
            METRICS,
            stat_test="student",
        )
    for metric in METRICS:
        pairs = built["pairs"][metric]
        assert len(pairs) == 400 and built["rows"][metric]["current_only_requests"] == 0
        current = [pairs[q][0] for q in sorted(pairs)]
        base = [pairs[q][1] for q in sorted(pairs)]
        reference = scipy_stats.ttest_rel(current, base)
        assert ours[metric]["t_statistic"] == pytest.approx(reference.statistic, rel=1e-9)
        assert ours[metric]["t_p_value"] == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-15)
        ranx_p = compared.comparisons[("baseline", "candidate")][metric]["p_value"]
        assert ours[metric]["t_p_value"] == pytest.approx(ranx_p, rel=1e-9, abs=1e-15), metric
        diffs = [c - b for c, b in zip(current, base, strict=True)]
        assert ours[metric]["mean_difference"] == pytest.approx(sum(diffs) / 400, abs=1e-12)
    # the scenario: clearly better where the candidate moved relevant items up, equal where not
    assert ours["precision@3"]["t_p_value"] < 1e-6 and ours["mrr@10"]["t_p_value"] < 1e-6
    assert ours["precision@10"]["t_p_value"] > 0.05
    assert ours["precision@3"]["significant"] and not ours["precision@10"]["significant"]


def test_randomization_test_is_the_documented_sign_flip_and_agrees_with_ranx_fisher(built):
    qrels, (baseline_run, candidate_run) = built["qrels"], built["runs"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compared = ranx.compare(
            ranx.Qrels(qrels),
            [ranx.Run(baseline_run, name="baseline"), ranx.Run(candidate_run, name="candidate")],
            METRICS,
            stat_test="fisher",
            n_permutations=PERMUTATIONS,
        )
    requests = sorted(built["pairs"]["precision@3"])
    signs = numpy.array(
        [
            [-1.0 if uniform(f"flip|{SEED}|{q}|{r}") < 0.5 else 1.0 for q in requests]
            for r in range(1, PERMUTATIONS + 1)
        ]
    )
    for metric in METRICS:
        pairs = built["pairs"][metric]
        diffs = numpy.array([pairs[q][0] - pairs[q][1] for q in requests])
        observed, scale = abs(math.fsum(diffs)), math.fsum(abs(diffs))
        exceed = int((numpy.abs(signs @ diffs) >= observed - 1e-9 * scale).sum())
        row = built["rows"][metric]
        assert row["permutation_exceedances"] == exceed, metric
        assert row["permutation_p_value"] == pytest.approx((1 + exceed) / (1 + PERMUTATIONS))
        ranx_p = compared.comparisons[("baseline", "candidate")][metric]["p_value"]
        p = row["permutation_p_value"]
        error = 4 * math.sqrt(2 * max(p, 1 / PERMUTATIONS) / PERMUTATIONS) + 2 / PERMUTATIONS
        assert abs(p - ranx_p) <= error, (metric, p, ranx_p)


def test_bootstrap_interval_matches_an_independent_poisson_bootstrap(built):
    requests = sorted(built["pairs"]["ndcg@10"])
    weights = {
        r: [poisson_weight(uniform(f"{SEED}|{q}|{r}")) for q in requests]
        for r in range(1, ITERATIONS + 1)
    }
    alpha = ALPHA / 2
    for metric in METRICS:
        pairs = built["pairs"][metric]
        diffs = [pairs[q][0] - pairs[q][1] for q in requests]
        means = sorted(
            sum(w * d for w, d in zip(ws, diffs, strict=True)) / sum(ws)
            for ws in weights.values()
            if sum(ws) > 0
        )
        lower = means[math.floor(alpha * (len(means) - 1))]
        upper = means[math.ceil((1 - alpha) * (len(means) - 1))]
        row = built["rows"][metric]
        assert row["ci_lower"] == pytest.approx(lower, abs=1e-12), metric
        assert row["ci_upper"] == pytest.approx(upper, abs=1e-12), metric
        assert row["ci_level"] == pytest.approx(1 - ALPHA)


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_corrections_match_statsmodels(built, method):
    report = sig.section(list(built["rows"].values()), conf(correction=method), [], "base")
    for key in ("t_p_value", "permutation_p_value"):
        raw = [m[key] for m in report["metrics"]]
        expected = multitest.multipletests(raw, method=method)[1]
        got = [m[f"{key}_adjusted"] for m in report["metrics"]]
        assert got == pytest.approx(list(expected), rel=1e-12)
    rng = random.Random(3)
    for _ in range(50):
        p = [rng.random() ** 3 for _ in range(rng.randint(1, 9))]
        expected = multitest.multipletests(p, method=method)[1]
        assert sig.adjust(p, method) == pytest.approx(list(expected), rel=1e-12)


def test_request_file_round_trip_and_run_id_check(built, tmp_path):
    tmp = sig.export_request_metrics(built["database"], tmp_path, "offline-base")
    report = tmp_path / "base.json"
    sig.publish(tmp, report)
    path = sig.sidecar_path(report)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert sig.check_baseline_file(report, {"run_id": "offline-base"}) == path
    with pytest.raises(RecsysEvalError, match="belongs to another run"):
        sig.check_baseline_file(report, {"run_id": "offline-other"})
    with pytest.raises(RecsysEvalError, match="run the baseline with offline.significance"):
        sig.check_baseline_file(tmp_path / "missing.json", {"run_id": "x"})
    fresh = tmp_path / "fresh.duckdb"
    sig.load_baseline(fresh, path)
    with duckdb.connect(str(fresh), read_only=True) as con:
        loaded = con.execute(
            "select metric_name, request_id, metric_value from raw.baseline_request_metrics"
        ).fetchall()
    expected = {(m, q, v[0]) for m, values in built["pairs"].items() for q, v in values.items()}
    assert set(loaded) == expected


def test_t_p_value_matches_scipy():
    # scipy's own t.sf and betainc disagree by ~1e-9 at df 1e7: the tolerance follows scipy's
    for df in [1, 2, 3, 7, 30, 99, 100, 101, 199, 1000, 4_999, 123_456, 10_000_000]:
        rel = 1e-12 if df <= 5000 else 1e-8
        for t in [0.0, 1e-3, 0.3, 1.0, 1.96, 2.5, 4.0, 9.0, 40.0]:
            expected = 2 * scipy_stats.t.sf(abs(t), df)
            assert sig.t_two_sided_p(t, df) == pytest.approx(expected, rel=rel, abs=1e-300)
            assert sig.t_two_sided_p(-t, df) == pytest.approx(expected, rel=rel, abs=1e-300)
    assert sig.t_two_sided_p(None, 5) is None and sig.t_two_sided_p(1.0, 0) is None


def test_gate_with_require_significance():
    significance = {
        "test": "t",
        "metrics": [
            {"name": "ndcg@3", "significant": True, "t_p_value_adjusted": 0.001},
            {"name": "mrr@3", "significant": False, "t_p_value_adjusted": 0.4},
        ],
    }
    gates = [
        {"metric": "ndcg@3", "max_drop": 0.01, "require_significance": True},
        {"metric": "mrr@3", "max_drop": 0.01, "require_significance": True},
        {"metric": "map@3", "max_drop": 0.01},
    ]
    results = [
        {"metric": g["metric"], "max_drop": 0.01, "delta": -0.05, "passed": False} for g in gates
    ]
    out = sig.apply_to_gates(results, gates, significance)
    assert [g["passed"] for g in out] == [False, True, False]
    assert out[1]["note"] == "the drop exceeds max_drop but is not significant"
    assert out[0]["p_value_adjusted"] == 0.001 and "require_significance" not in out[2]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("significance: {enabled: true, test: wilcoxon}", "offline.significance.test"),
        (
            "significance: {enabled: true, correction: bonferroni}",
            "offline.significance.correction",
        ),
        ("significance: {enabled: true, alpha: 1.5}", "offline.significance.alpha"),
        ("significance: {enabled: true, permutations: 0}", "offline.significance.permutations"),
        ("significance: {enabled: true, iterations: 1000001}", "offline.significance.iterations"),
        (
            "gates: [{metric: ndcg@3, max_drop: 0.1, require_significance: true}]",
            "offline.gates[0].require_significance: needs offline.significance.enabled",
        ),
        (
            "significance: {enabled: true}\n  gates: [{metric: coverage@3, max_drop: 0.1, "
            "require_significance: true}]",
            "offline.gates[0].require_significance: 'coverage@3' has no per-request values",
        ),
    ],
)
def test_config_errors_name_the_key(tmp_path, block, message):
    config = tmp_path / "eval.yaml"
    config.write_text(f"mode: offline\noffline:\n  metrics: [{{name: ndcg, k: 3}}]\n  {block}\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_run_config(ROOT / "configs" / "dataset.tiny.yaml", config)
