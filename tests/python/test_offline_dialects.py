"""The `trec` dialect against pytrec_eval (trec_eval) and ranx, on generated data.

1,200 generated requests with tied ranks, repeated items in a list, empty lists, repeated
request_ids (the first exposure wins), outcomes on items not shown and requests without any
outcome. The data is loaded with the project's loader and the offline marts are built with
`recsys_eval__offline_dialect: trec`. The qrels and the run for the peers are built here, in
Python, from the generated records with the documented join rules (first exposure per request,
items sorted by rank then array order, a repeated item counted at its first position), and the
peers are fed `score = -position` so trec_eval's docid tie-break never fires. Per-request values
and the means agree to 1e-9, with binary and with graded (per event type) relevance.
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import duckdb
import pytest
from dbt_helpers import run_dbt

from recsys_eval.loader import ensure_raw_schema, load_file

pytrec_eval = pytest.importorskip("pytrec_eval")
ranx = pytest.importorskip("ranx")

TOLERANCE = 1e-9
KS = [1, 3, 5, 10]
FAMILIES = ["precision", "recall", "map", "ndcg", "hitrate", "mrr"]
RAW_VARS = {
    "recsys_eval__source": "raw",
    "recsys_eval__using_assignments": False,
    "recsys_eval__using_rankers": False,
    "recsys_eval__offline_dialect": "trec",
    "recsys_eval__offline_metrics": [{"name": f, "k": k} for k in KS for f in FAMILIES],
}
GAINS = {"click": 1, "conversion": 3}


def generate(folder: Path, n_requests: int = 1200, seed: int = 7) -> tuple[list, list]:
    rng = random.Random(seed)
    pool = [f"i{n}" for n in range(60)]
    exposures, outcomes = [], []
    for n in range(n_requests):
        request_id = f"r{n:05d}"
        length = 0 if rng.random() < 0.05 else rng.randint(1, 14)
        items = []
        for position in range(length):
            item = rng.choice(pool[:25]) if rng.random() < 0.15 else rng.choice(pool)
            # ranks with ties: a tie keeps array order
            rank = position + 1 if rng.random() < 0.6 else rng.randint(1, max(1, length))
            items.append({"item_id": item, "rank": rank})
        exposures.append(
            {
                "request_id": request_id,
                "user_id": f"u{n % 97}",
                "ts": "2025-01-01T00:00:00Z",
                "items": items,
            }
        )
        if rng.random() < 0.03:  # a repeated request_id: the first exposure wins
            exposures.append({**exposures[-1], "items": [{"item_id": "i0", "rank": 1}]})
        if rng.random() < 0.3:  # no outcome at all
            continue
        shown = [i["item_id"] for i in items]
        for _ in range(rng.randint(1, 4)):
            item = rng.choice(shown) if shown and rng.random() < 0.8 else rng.choice(pool)
            event = "conversion" if rng.random() < 0.25 else "click"
            outcomes.append(
                {
                    "request_id": request_id,
                    "user_id": f"u{n % 97}",
                    "item_id": item,
                    "event_type": event,
                    "value": 1.0,
                    "ts": "2025-01-01T00:00:05Z",
                }
            )
    for name, rows in (("exposures", exposures), ("outcomes", outcomes)):
        with (folder / f"{name}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return exposures, outcomes


def peers_inputs(exposures: list, outcomes: list, graded: bool) -> tuple[dict, dict]:
    """qrels {request: {item: gain}} and run {request: {item: -position}}, built independently."""
    first: dict[str, dict] = {}
    for exposure in exposures:
        first.setdefault(exposure["request_id"], exposure)
    run: dict[str, dict[str, float]] = {}
    for request_id, exposure in first.items():
        ordered = sorted(enumerate(exposure["items"]), key=lambda e: (e[1]["rank"], e[0]))
        ranking: dict[str, float] = {}
        for _, item in ordered:
            ranking.setdefault(item["item_id"], -float(len(ranking) + 1))
        if ranking:
            run[request_id] = ranking
    qrels: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        gain = GAINS[outcome["event_type"]] if graded else 1
        judged = qrels.setdefault(outcome["request_id"], {})
        judged[outcome["item_id"]] = max(judged.get(outcome["item_id"], 0), gain)
    return qrels, run


def cut(run: dict, k: int) -> dict:
    return {q: {d: s for d, s in docs.items() if s >= -k} for q, docs in run.items()}


def trec_values(qrels: dict, run: dict, k: int) -> dict[str, dict[str, float]]:
    """pytrec_eval per query: P_k, recall_k, map_cut_k, ndcg_cut_k, success_k, recip_rank@k."""
    measures = {f"P.{k}", f"recall.{k}", f"map_cut.{k}", f"ndcg_cut.{k}", f"success.{k}"}
    full = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    # no cut-off recip_rank in trec_eval: evaluate it on the run cut at k
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut(run, k))
    return {
        q: {
            "precision": v[f"P_{k}"],
            "recall": v[f"recall_{k}"],
            "map": v[f"map_cut_{k}"],
            "ndcg": v[f"ndcg_cut_{k}"],
            "hitrate": v[f"success_{k}"],
            "mrr": rr[q]["recip_rank"],
        }
        for q, v in full.items()
    }


def ranx_values(qrels: dict, run: dict, k: int) -> dict[str, dict[str, float]]:
    common = sorted(set(qrels) & set(run))
    names = {
        "precision": f"precision@{k}",
        "recall": f"recall@{k}",
        "map": f"map@{k}",
        "ndcg": f"ndcg@{k}",
        "hitrate": f"hit_rate@{k}",
        "mrr": f"mrr@{k}",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = ranx.evaluate(
            ranx.Qrels({q: qrels[q] for q in common}),
            ranx.Run({q: run[q] for q in common}),
            list(names.values()),
            return_mean=False,
        )
    # ranx sorts queries by id internally; common is sorted the same way
    return {
        q: {family: float(scores[metric][i]) for family, metric in names.items()}
        for i, q in enumerate(common)
    }


def build(tmp_path: Path, name: str, extra_vars: dict) -> tuple[dict, dict]:
    database = tmp_path / f"{name}.duckdb"
    with duckdb.connect(str(database)) as connection:
        ensure_raw_schema(connection)
        load_file(connection, "exposure.v1", tmp_path / "exposures.jsonl", table="exposures")
        load_file(connection, "outcome.v1", tmp_path / "outcomes.jsonl", table="outcomes")
    result, _ = run_dbt(
        tmp_path,
        name,
        "run",
        {**RAW_VARS, **extra_vars},
        database,
        select=["+fct_offline_metrics", "+fct_offline_request_metrics"],
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    with duckdb.connect(str(database), read_only=True) as connection:
        per_request: dict = {}
        for request_id, family, k, value in connection.execute(
            "select request_id, metric_family, k, metric_value from recsys_eval_marts.fct_offline_request_metrics"
        ).fetchall():
            per_request.setdefault((family, k), {})[request_id] = value
        means = {
            (family, k): (value, cases)
            for family, k, value, cases in connection.execute(
                "select metric_family, k, metric_value, cases from recsys_eval_marts.fct_offline_metrics "
                "where scope = 'global'"
            ).fetchall()
        }
    return per_request, means


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, list, list]:
    folder = tmp_path_factory.mktemp("dialects")
    exposures, outcomes = generate(folder)
    return folder, exposures, outcomes


@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
def test_trec_dialect_matches_pytrec_eval_and_ranx(generated, graded):
    folder, exposures, outcomes = generated
    extra = {"recsys_eval__offline_relevance": {"grade": "event", "gains": GAINS}} if graded else {}
    per_request, means = build(folder, "graded" if graded else "binary", extra)
    qrels, run = peers_inputs(exposures, outcomes, graded)
    evaluated = set(qrels) & set(run)

    # the generated data has what the test is about
    firsts = {e["request_id"]: e for e in reversed(exposures)}
    assert len(firsts) == 1200 and len(exposures) > 1200
    assert any(not e["items"] for e in firsts.values())
    assert any(len({i["item_id"] for i in e["items"]}) < len(e["items"]) for e in firsts.values())
    assert any(len({i["rank"] for i in e["items"]}) < len(e["items"]) for e in firsts.values())
    assert len(set(firsts) - set(qrels)) > 200
    assert 700 < len(evaluated) < 900

    for k in KS:
        trec = trec_values(qrels, run, k)
        rx = ranx_values(qrels, run, k)
        assert set(trec) == evaluated
        for family in FAMILIES:
            ours = per_request[(family, k)]
            assert set(ours) == evaluated, (family, k)
            for request_id in evaluated:
                assert ours[request_id] == pytest.approx(trec[request_id][family], abs=TOLERANCE), (
                    family,
                    k,
                    request_id,
                    "pytrec_eval",
                )
                assert ours[request_id] == pytest.approx(rx[request_id][family], abs=TOLERANCE), (
                    family,
                    k,
                    request_id,
                    "ranx",
                )
            value, cases = means[(family, k)]
            assert cases == len(evaluated)
            trec_mean = sum(v[family] for v in trec.values()) / len(trec)
            assert value == pytest.approx(trec_mean, abs=TOLERANCE), (family, k)
    # the gains matter: graded nDCG differs from binary somewhere
    if graded:
        binary_qrels, _ = peers_inputs(exposures, outcomes, graded=False)
        binary = trec_values(binary_qrels, run, 10)
        assert any(abs(binary[q]["ndcg"] - per_request[("ndcg", 10)][q]) > 1e-6 for q in evaluated)


def test_reference_dialect_differs_where_documented(generated, tmp_path):
    """The same data in the reference dialect: precision over |Lk| and AP over min(|R|, k) with
    duplicates counted and every case averaged, so its means differ from trec's."""
    folder = generated[0]
    _, trec_means = build(folder, "trec_again", {})
    _, ref_means = build(folder, "reference", {"recsys_eval__offline_dialect": "reference"})
    assert ref_means[("precision", 10)][1] == 1200
    assert trec_means[("precision", 10)][1] < 900
    for family in ["precision", "map", "ndcg"]:
        assert abs(ref_means[(family, 10)][0] - trec_means[(family, 10)][0]) > 1e-3
