"""The reference's rules for the offline section, baseline deltas, gates and highlights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_eval.errors import RecsysEvalError
from recsys_eval.offline_report import (
    compare_baseline,
    evaluate_gates,
    highlights,
    key_deltas,
    offline_section,
    read_baseline,
)


def rows(*pairs, segment=None):
    return [
        {"metric_name": n, "metric_value": v, "metric_position": i, "segment_key": segment}
        for i, (n, v) in enumerate(pairs)
    ]


def test_section_matches_the_golden_shape(golden) -> None:
    expected = golden("offline")["offline"]
    section = offline_section(
        rows(("precision@2", 1 / 6), ("recall@2", 1 / 3)),
        rows(("precision@2", 0.25), ("recall@2", 0.5), segment="surface=home|tenant=t1")
        + rows(("precision@2", 0.0), ("recall@2", 0.0), segment="surface=search|tenant=t1"),
    )
    assert section["metrics"] == expected["metrics"]
    assert section["by_segment"] == expected["by_segment"]


def test_self_comparison_gives_the_golden_baseline(golden) -> None:
    expected = golden("offline")
    metrics = expected["offline"]["metrics"]
    baseline = compare_baseline(
        metrics, {"run_id": "offline-20250101T000000Z", "offline": {"metrics": metrics}}
    )
    assert baseline == expected["offline"]["baseline"]
    assert key_deltas(baseline["deltas"]) == expected["summary"]["executive"]["key_deltas"]
    assert highlights(metrics) == expected["summary"]["executive"]["highlights"]


def test_deltas_relative_and_unmatched() -> None:
    current = [
        {"name": "ndcg@10", "value": 0.5},
        {"name": "MAP@10", "value": 0.2},
        {"name": "recall@5", "value": 0.1},
    ]
    base = {
        "run_id": "b",
        "offline": {
            "metrics": [{"name": "ndcg@10", "value": 0.4}, {"name": "map@10", "value": 0.0}]
        },
    }
    out = compare_baseline(current, base)
    assert out["baseline_run_id"] == "b"
    assert out["deltas"] == [
        {
            "name": "ndcg@10",
            "delta": pytest.approx(0.1, abs=1e-15),
            "before": 0.4,
            "after": 0.5,
            "relative_delta": pytest.approx(0.25, abs=1e-15),
        },
        {"name": "MAP@10", "delta": 0.2, "before": 0.0, "after": 0.2},
    ]


def test_gates_example_from_the_reference() -> None:
    """§11.6(b): precision@2 passes with delta 0; mrr@2 is missing, so it fails with delta 0."""
    deltas = [{"name": "precision@2", "delta": 0.0}]
    gates = evaluate_gates(
        [{"metric": "precision@2", "max_drop": 0.001}, {"metric": "mrr@2", "max_drop": 0.1}], deltas
    )
    assert gates == [
        {"metric": "precision@2", "max_drop": 0.001, "delta": 0.0, "passed": True},
        {"metric": "mrr@2", "max_drop": 0.1, "delta": 0.0, "passed": False},
    ]


@pytest.mark.parametrize(
    "delta,max_drop,passed",
    [(-0.01, 0.01, True), (-0.0100001, 0.01, False), (0.0, 0.0, True), (0.01, -0.02, False)],
)
def test_gate_is_an_absolute_drop(delta: float, max_drop: float, passed: bool) -> None:
    assert (
        evaluate_gates(
            [{"metric": "NDCG@10", "max_drop": max_drop}], [{"name": "ndcg@10", "delta": delta}]
        )[0]["passed"]
        is passed
    )


def test_highlight_priority_and_fill() -> None:
    metrics = [
        {"name": n, "value": 0.1}
        for n in ("precision@10", "recall@10", "map@10", "ndcg@10", "hitrate@10")
    ]
    assert [h["name"] for h in highlights(metrics)] == ["ndcg@10", "map@10", "precision@10"]
    metrics = [{"name": n, "value": 0.1} for n in ("novelty@3", "diversity@3", "hitrate@3")]
    assert [h["name"] for h in highlights(metrics)] == ["hitrate@3", "novelty@3", "diversity@3"]


def test_key_deltas_by_size_then_name() -> None:
    deltas = [{"name": n, "delta": d} for n, d in (("b", 0.1), ("a", -0.1), ("c", 0.3), ("d", 0.0))]
    assert [d["name"] for d in key_deltas(deltas)] == ["c", "a", "b"]


def test_baseline_without_offline_section(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"run_id": "x", "mode": "experiment"}))
    with pytest.raises(RecsysEvalError, match="baseline report missing offline section"):
        read_baseline(path)
    with pytest.raises(RecsysEvalError, match="baseline report not found"):
        read_baseline(tmp_path / "nope.json")
