"""The dbt seeds are the bundled tiny JSONL files, line for line (one dataset, two shapes)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import ROOT

SEEDS = ROOT / "seeds"
TINY = ROOT / "examples" / "tiny"
NESTED = {"items_json": "items", "context_json": "context"}
LINEAGE = {"load_id", "load_seq", "source_file", "line_no"}


def typed(column: str, text: str):
    if column in ("latency_ms", "value"):
        return float(text)
    if column == "error":
        return {"true": True, "false": False}[text]
    return text


@pytest.mark.parametrize(
    "stem",
    ["exposures", "outcomes", "assignments", "ranker_a", "ranker_b", "outcomes_interleaving"],
)
def test_seed_equals_jsonl(stem: str) -> None:
    with (SEEDS / f"recsys_eval_tiny_{stem}.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = [json.loads(x) for x in (TINY / f"{stem}.jsonl").read_text().splitlines()]
    assert len(rows) == len(lines)
    for row, record in zip(rows, lines, strict=True):
        rebuilt = {}
        for column, text in row.items():
            if column in LINEAGE or text == "":
                continue
            if column in NESTED:
                rebuilt[NESTED[column]] = json.loads(text)
            else:
                rebuilt[column] = typed(column, text)
        expected = {k: (float(v) if k in ("latency_ms", "value") else v) for k, v in record.items()}
        assert rebuilt == expected
    assert [int(r["line_no"]) for r in rows] == list(range(1, len(rows) + 1))
