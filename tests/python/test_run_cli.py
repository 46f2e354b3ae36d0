"""End to end: `recsys-eval run` on the bundled tiny data reproduces the golden data quality."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import CONFIGS, ROOT

from recsys_eval.cli import main
from recsys_eval.errors import EXIT_ERROR, EXIT_GATE, EXIT_OK


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def run(
    tmp_path: Path, *extra: str, config: str = "offline.ci.yaml", dataset: Path | None = None
) -> tuple[int, Path]:
    out = tmp_path / "report.json"
    code = main(
        [
            "run",
            "--dataset",
            str(dataset or CONFIGS / "dataset.tiny.yaml"),
            "--config",
            str(CONFIGS / config),
            "--output",
            str(out),
            *extra,
        ]
    )
    return code, out


def test_offline_run_reproduces_the_golden_data_quality(tmp_path: Path, in_repo, golden) -> None:
    db = tmp_path / "run.duckdb"
    code, out = run(tmp_path, "--database", str(db))
    assert code == EXIT_OK
    report = json.loads(out.read_text())
    expected = golden("offline")
    checks = report["data_quality"].pop("checks")
    assert report["data_quality"] == expected["data_quality"]
    assert [c["check_name"] for c in checks] == [
        "duplicate_exposure_request_ids",
        "duplicate_items_in_list",
        "duplicate_outcome_rows",
        "orphan_outcomes",
        "outcome_before_exposure",
        "outcome_item_not_shown",
        "propensity_out_of_range",
        "rank_gaps",
    ]
    assert all(c["failing_rows"] == 0 for c in checks)
    # exposure_join_rate 2/3 is a click-through-like rate on healthy data: reported, no warning
    assert report["data_quality"]["join_integrity"]["exposure_join_rate"] == pytest.approx(2 / 3)
    assert not [w for w in report.get("warnings", []) if "join_rate" in w]
    assert report["summary"]["cases_evaluated"] == expected["summary"]["cases_evaluated"] == 3
    assert report["mode"] == "offline"
    assert report["run_id"].startswith("offline-")
    assert report["summary"]["executive"]["decision"] == "not_configured"
    assert report["summary"]["executive"]["next_steps"] == [
        "Add a baseline report to measure deltas over time.",
        "Increase sample size to stabilize metrics.",
    ]
    assert report["offline"]["metrics"] == expected["offline"]["metrics"]
    assert report["offline"]["by_segment"] == expected["offline"]["by_segment"]
    assert "gates_not_evaluated: offline gates need --baseline" in report["warnings"]
    assert report["effective_config"]["eval"]["offline"]["slice_keys"] == ["tenant", "surface"]
    # The marts stay queryable in the kept database.
    con = duckdb.connect(str(db), read_only=True)
    try:
        loaded = con.execute("select count(*) from raw.exposures").fetchone()[0]
        ledger = con.execute("select count(*) from raw.load_ledger").fetchone()[0]
    finally:
        con.close()
    assert (loaded, ledger) == (3, 3)


def test_two_runs_give_identical_reports_but_for_run_id_and_time(tmp_path: Path, in_repo) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    _, a = run(a_dir)
    _, b = run(b_dir)
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    for r in (ra, rb):
        r.pop("run_id")
        r.pop("created_at")
        assert set(r.pop("timings")) == {"load_s", "models_s", "report_s", "total_s"}
    assert ra == rb


def test_rerun_on_the_same_database_loads_nothing_new(tmp_path: Path, in_repo, golden) -> None:
    db = tmp_path / "run.duckdb"
    assert run(tmp_path, "--database", str(db))[0] == EXIT_OK
    code, out = run(tmp_path, "--database", str(db))
    assert code == EXIT_OK
    dq = json.loads(out.read_text())["data_quality"]
    dq.pop("checks")
    assert dq == golden("offline")["data_quality"]


def test_time_split_filters_both_sides(tmp_path: Path, in_repo) -> None:
    """§11.6(d): test window 00:00:00-00:01:00 keeps r1 and r2 and drops r2's conversion."""
    cfg = tmp_path / "split.yaml"
    cfg.write_text(
        "mode: offline\noffline:\n  metrics: [{name: precision, k: 2}]\n  time_split:\n"
        "    train: {start: '2024-12-01T00:00:00Z', end: '2024-12-31T23:59:59Z'}\n"
        "    test: {start: '2025-01-01T00:00:00Z', end: '2025-01-01T00:01:00Z'}\n"
    )
    code = main(
        [
            "run",
            "--dataset",
            str(CONFIGS / "dataset.tiny.yaml"),
            "--config",
            str(cfg),
            "--output",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == EXIT_OK
    report = json.loads((tmp_path / "r.json").read_text())
    dq = report["data_quality"]
    assert dq["exposure_completeness"] == {"total": 2, "missing": 0, "missing_rate": 0}
    assert dq["outcome_completeness"] == {"total": 1, "missing": 0, "missing_rate": 0}
    assert dq["join_integrity"]["exposure_join_rate"] == 0.5
    assert dq["join_integrity"]["outcome_join_rate"] == 1
    assert report["summary"]["cases_evaluated"] == 2


def test_bad_lines_are_quarantined_and_reported(tmp_path: Path, in_repo) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "examples" / "tiny", data)
    with (data / "outcomes.jsonl").open("a") as fh:
        fh.write(
            '{"request_id":"r1","user_id":"u1","item_id":"i2","event_type":"purchase","ts":"2025-01-01T00:00:11Z"}\n'
        )
        fh.write("not json\n")
    ds = tmp_path / "d.yaml"
    ds.write_text(
        f"exposures: {{type: jsonl, path: {data}/exposures.jsonl}}\noutcomes: {{type: jsonl, path: {data}/outcomes.jsonl}}\n"
    )
    code, out = run(tmp_path, dataset=ds)
    assert code == EXIT_OK
    report = json.loads(out.read_text())
    assert "quarantined_rows: 2" in report["warnings"]
    assert report["data_quality"]["outcome_completeness"]["total"] == 2


def test_findings_of_the_extra_checks_reach_the_report(tmp_path: Path, in_repo) -> None:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "examples" / "tiny", data)
    with (data / "outcomes.jsonl").open("a") as fh:
        # an orphan (no exposure r9), an item not shown (i9 on r1), a click before r2 was shown
        fh.write(
            '{"request_id":"r9","user_id":"u9","item_id":"i1","event_type":"click","ts":"2025-01-01T00:05:00Z"}\n'
        )
        fh.write(
            '{"request_id":"r1","user_id":"u1","item_id":"i9","event_type":"click","ts":"2025-01-01T00:00:30Z"}\n'
        )
        fh.write(
            '{"request_id":"r2","user_id":"u2","item_id":"i2","event_type":"click","ts":"2025-01-01T00:00:30Z"}\n'
        )
    with (data / "exposures.jsonl").open("a") as fh:
        fh.write(
            '{"request_id":"r1","user_id":"u1","ts":"2025-01-01T00:03:00Z","items":[{"item_id":"i1","rank":1},{"item_id":"i1","rank":3}]}\n'
        )
    ds = tmp_path / "d.yaml"
    ds.write_text(
        f"exposures: {{type: jsonl, path: {data}/exposures.jsonl}}\noutcomes: {{type: jsonl, path: {data}/outcomes.jsonl}}\n"
    )
    code, out = run(tmp_path, dataset=ds)
    assert code == EXIT_OK
    report = json.loads(out.read_text())
    found = {
        c["check_name"]: (c["failing_rows"], c["total_rows"])
        for c in report["data_quality"]["checks"]
    }
    assert found["orphan_outcomes"] == (1, 5)
    assert found["outcome_item_not_shown"] == (1, 4)
    assert found["outcome_before_exposure"] == (1, 4)
    # the duplicate r1 row has a duplicated item and a rank gap (1, 3)
    assert found["duplicate_exposure_request_ids"] == (1, 4)
    assert found["duplicate_items_in_list"] == (1, 4)
    assert found["rank_gaps"] == (1, 4)
    assert report["data_quality"]["join_integrity"]["duplicate_exposure_request_ids"] == 1
    assert "data_quality_orphan_outcomes: 1 of 5" in report["warnings"]


ENVELOPE = (
    "run_id",
    "created_at",
    "binary_version",
    "git_commit",
    "effective_config",
    "input_dataset_fingerprint",
    "version",
    "timings",  # seconds per stage: differ from run to run
)


def approx_tree(value):
    if isinstance(value, dict):
        return {k: approx_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx_tree(v) for v in value]
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return pytest.approx(value, abs=1e-12)
    return value


def test_offline_self_comparison_reproduces_the_golden_report(
    tmp_path: Path, in_repo, golden
) -> None:
    """§11.2: precision@2 and recall@2 by tenant and surface, run once, then again with the
    first report as --baseline. Everything but the injected envelope constants matches."""
    cfg = tmp_path / "golden.yaml"
    cfg.write_text(
        "mode: offline\noffline:\n  metrics:\n    - {name: precision, k: 2}\n    - {name: recall, k: 2}\n  slice_keys: [tenant, surface]\n"
    )
    first = tmp_path / "first.json"
    args = ["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config", str(cfg)]
    assert main([*args, "--output", str(first)]) == EXIT_OK
    second = tmp_path / "second.json"
    assert main([*args, "--output", str(second), "--baseline", str(first)]) == EXIT_OK
    report = json.loads(second.read_text())
    expected = golden("offline")
    assert (
        report["offline"]["baseline"]["baseline_run_id"] == json.loads(first.read_text())["run_id"]
    )
    report["offline"]["baseline"]["baseline_run_id"] = expected["offline"]["baseline"][
        "baseline_run_id"
    ]
    for key in ENVELOPE:
        report.pop(key, None)
        expected.pop(key, None)
    report["data_quality"].pop("checks")
    assert "warnings" not in report  # the tiny data's joins are healthy
    assert report == approx_tree(expected)


def test_ci_gate_against_the_golden_baseline_passes(tmp_path: Path, in_repo, golden) -> None:
    """The reference's CI: offline.ci.yaml with golden/offline.json as baseline passes (exit 0)."""
    golden("offline")
    from conftest import REFERENCE

    code, out = run(tmp_path, "--baseline", str(REFERENCE / "golden" / "offline.json"))
    assert code == EXIT_OK
    report = json.loads(out.read_text())
    assert report["gates"] == [
        {"metric": "precision@2", "max_drop": 0.001, "delta": 0, "passed": True}
    ]
    assert report["summary"]["executive"]["decision"] == "pass"


def test_a_failed_gate_exits_4_and_still_writes_the_report(
    tmp_path: Path, in_repo, golden, capsys
) -> None:
    baseline = golden("offline")
    baseline["offline"]["metrics"][0]["value"] = 0.2  # precision@2 was higher before
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    history = tmp_path / "history"
    cfg = tmp_path / "gate.yaml"
    cfg.write_text(
        f"mode: offline\noffline:\n  metrics: [{{name: precision, k: 2}}, {{name: ndcg, k: 2}}]\n  gates:\n    - {{metric: precision@2, max_drop: 0.01}}\n    - {{metric: ndcg@2, max_drop: 0.5}}\n  history_dir: {history}\n"
    )
    out = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--dataset",
            str(CONFIGS / "dataset.tiny.yaml"),
            "--config",
            str(cfg),
            "--output",
            str(out),
            "--baseline",
            str(path),
        ]
    )
    assert code == EXIT_GATE
    assert "ERROR: gate failed: precision@2 delta=-0.033333" in capsys.readouterr().err
    report = json.loads(out.read_text())
    executive = report["summary"]["executive"]
    assert executive["decision"] == "fail"
    assert [g["metric"] for g in executive["gate_failures"]] == [
        "precision@2",
        "ndcg@2",
    ]  # ndcg@2 has no baseline
    assert executive["next_steps"][0] == "Investigate failing gates and re-run after fixes."
    assert report["gates"][0]["delta"] == pytest.approx(1 / 6 - 0.2, abs=1e-12)
    assert executive["highlights"][0]["name"] == "ndcg@2"
    assert [p.name for p in history.iterdir()] == [f"{report['run_id']}.json"]


def test_unknown_metric_is_refused_before_any_work(tmp_path: Path, in_repo, capsys) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("mode: offline\noffline:\n  metrics: [{name: auc, k: 2}]\n")
    code = main(
        [
            "run",
            "--dataset",
            str(CONFIGS / "dataset.tiny.yaml"),
            "--config",
            str(cfg),
            "--output",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == EXIT_ERROR
    assert "unknown metric: auc" in capsys.readouterr().err


def test_baseline_must_be_an_offline_report(tmp_path: Path, in_repo, capsys) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"run_id": "x"}')
    code, _ = run(tmp_path, "--baseline", str(path))
    assert code == EXIT_ERROR
    assert "baseline report missing offline section" in capsys.readouterr().err


def test_a_mode_whose_plugin_is_missing_says_so_and_writes_nothing(
    tmp_path: Path, in_repo, capsys, monkeypatch
) -> None:
    """A mode plug-in that is not in this version (recsys_eval.modes) stops before any work."""
    from recsys_eval import modes

    monkeypatch.setitem(modes.PLUGINS, "ope", "recsys_eval.not_in_this_version.plugin:PLUGIN")
    code, _ = run(tmp_path, "--mode", "ope", config="ope.default.yaml")
    assert code == EXIT_ERROR
    assert "mode 'ope' is not built in this version" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_experiment_default_config_runs(tmp_path: Path, in_repo, capsys) -> None:
    """The reference's experiment.default.yaml runs on the tiny data (no decision: exit 0)."""
    code, out = run(tmp_path, "--mode", "experiment", config="experiment.default.yaml")
    assert code == EXIT_OK, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["experiment"]["power"]["sample_size_per_variant"] == 14751
    assert [v["variant"] for v in report["experiment"]["variants"]] == ["A", "B"]


def test_required_flags_and_formats(tmp_path: Path, in_repo, capsys) -> None:
    assert main(["run", "--config", str(CONFIGS / "offline.ci.yaml")]) == EXIT_ERROR
    assert "--dataset, --config, and --output are required" in capsys.readouterr().err
    code, _ = run(tmp_path, "--output-format", "pdf")
    assert code == EXIT_ERROR
    assert "unknown output format 'pdf'" in capsys.readouterr().err


def test_unwritable_output_fails_before_any_work(tmp_path: Path, in_repo, capsys) -> None:
    code = main(
        [
            "run",
            "--dataset",
            str(CONFIGS / "dataset.tiny.yaml"),
            "--config",
            str(CONFIGS / "offline.ci.yaml"),
            "--output",
            str(tmp_path / "missing" / "r.json"),
        ]
    )
    assert code == EXIT_ERROR
    assert "does not exist" in capsys.readouterr().err


def test_show_prints_the_data_quality(tmp_path: Path, in_repo, capsys) -> None:
    code, out = run(tmp_path)
    assert code == EXIT_OK
    capsys.readouterr()
    assert main(["show", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "exposures           3 rows       1 missing (33.3%)" in text
    assert "exposure join rate 66.7%, outcome join rate 100.0%" in text
