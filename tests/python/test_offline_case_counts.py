"""The offline report counts the cases its metrics average over (issue 16, item 14).

In the `trec` dialect the per-case metrics average only the requests with a judged and a ranked
item (trec_eval's num_q), but `summary.cases_evaluated` used to be every kept request (exposures
minus duplicates) whatever the dialect, and the "Increase sample size" advice read that number.
Now `cases_evaluated` is the averaged count and `cases_total` the kept requests when they differ;
the reference dialect's report is unchanged (every kept request is averaged there).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from recsys_eval.cli import main
from recsys_eval.commands.show import render as show_render
from recsys_eval.errors import EXIT_OK, RecsysEvalError
from recsys_eval.offline_report import case_counts
from recsys_eval.render.markdown import render_markdown
from recsys_eval.render.sections import build_document
from recsys_eval.report import NEXT_STEP_SAMPLE, validate_against

KEPT = 60  # distinct request ids (one more exposure row repeats r0)
JUDGED = 10  # r0..r9: one click each, on the first item for even ids, on an unshown item for odd


def metric_row(kind: str, cases: int) -> dict:
    return {"scope": "global", "metric_kind": kind, "cases": cases}


def test_case_counts_are_the_averaged_cases_and_the_kept_ones_when_they_differ() -> None:
    reference = [metric_row("per_case", 301), metric_row("dataset", 301)]
    assert case_counts(reference, 301) == {"cases_evaluated": 301}
    trec = [metric_row("per_case", 31), metric_row("per_case", 31), metric_row("dataset", 301)]
    assert case_counts(trec, 301) == {"cases_evaluated": 31, "cases_total": 301}
    assert case_counts([metric_row("dataset", 301)], 301) == {"cases_evaluated": 301}
    with pytest.raises(RecsysEvalError, match="average"):
        case_counts([metric_row("per_case", 3), metric_row("per_case", 4)], 9)


def write_dataset(folder: Path) -> Path:
    exposures, outcomes = [], []
    for n in range(KEPT):
        items = [] if n == JUDGED else [{"item_id": "i1", "rank": 1}, {"item_id": "i2", "rank": 2}]
        exposures.append(
            {
                "request_id": f"r{n}",
                "user_id": f"u{n}",
                "ts": "2025-01-01T00:00:00Z",
                "items": items,
            }
        )
        if n <= JUDGED:  # r10's list is empty: judged, but nothing ranked, so not evaluated
            item = "i1" if n % 2 == 0 else "i9"
            outcomes.append(
                {
                    "request_id": f"r{n}",
                    "user_id": f"u{n}",
                    "item_id": item,
                    "event_type": "click",
                    "ts": "2025-01-01T00:00:01Z",
                }
            )
    exposures.append({**exposures[0], "items": [{"item_id": "i2", "rank": 1}]})  # a duplicate
    (folder / "exposures.jsonl").write_text("".join(json.dumps(e) + "\n" for e in exposures))
    (folder / "outcomes.jsonl").write_text("".join(json.dumps(o) + "\n" for o in outcomes))
    dataset = folder / "dataset.yaml"
    dataset.write_text(
        f"exposures: {{type: jsonl, path: {folder}/exposures.jsonl}}\n"
        f"outcomes: {{type: jsonl, path: {folder}/outcomes.jsonl}}\n"
    )
    return dataset


def test_trec_report_counts_the_cases_its_metrics_average(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    config = tmp_path / "eval.yaml"
    config.write_text(
        "mode: offline\noffline:\n  dialect: trec\n"
        "  metrics: [{name: hitrate, k: 1}, {name: coverage, k: 1}]\n"
    )
    out = tmp_path / "report.json"
    args = ["run", "--dataset", str(write_dataset(tmp_path)), "--config", str(config)]
    assert main([*args, "--output", str(out), "--database", str(tmp_path / "r.duckdb")]) == EXIT_OK
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert (summary["cases_evaluated"], summary["cases_total"]) == (JUDGED, KEPT)
    assert report["data_quality"]["join_integrity"]["exposure_count"] == KEPT + 1
    # the metric averages over exactly those cases: 5 hits at rank 1 among the 10 judged requests
    assert report["offline"]["metrics"][0] == {"name": "hitrate@1", "value": 0.5}
    assert NEXT_STEP_SAMPLE in summary["executive"]["next_steps"]  # 10 < 50, though 60 were kept
    validate_against(report, "report.v1")
    validate_against(report, "report.v2")
    markdown = render_markdown(build_document(report))
    assert f"- Cases Evaluated: {JUDGED} (the per-case metrics average over these)" in markdown
    assert f"- Cases Total: {KEPT} (every kept request" in markdown
    assert f"cases evaluated: {JUDGED} (of {KEPT} kept)" in show_render(report)
