"""experiment.sequential / experiment.over_time: config validation naming the key, the dbt vars, the
report blocks shaped from mart rows (playbook only), and their Markdown table and HTML chart."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFIGS

from recsys_eval.config import load_run_config
from recsys_eval.errors import ConfigError
from recsys_eval.experiment_over_time import over_time_blocks, over_time_warnings, sequential_vars
from recsys_eval.render.chart_over_time import draw_over_time  # noqa: F401 (registered in charts)
from recsys_eval.render.html import render_html
from recsys_eval.render.markdown import render_markdown
from recsys_eval.render.sections import build_document

DATASET = CONFIGS / "dataset.tiny.yaml"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text("mode: experiment\nexperiment:\n  control_variant: A\n" + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("  sequential: {tuning_parameter: 0}\n", r"experiment\.sequential\.tuning_parameter: must be a number > 0"),
        ("  sequential: {srm_concentration: -1}\n", r"experiment\.sequential\.srm_concentration: must be"),
        ("  sequential: {tuning_parameter: .inf}\n", r"experiment\.sequential\.tuning_parameter"),
        ("  sequential: {enabled: maybe}\n", r"experiment\.sequential\.enabled"),
        ("  over_time: {bucket: month}\n", r"experiment\.over_time\.bucket: must be hour, day or week"),
        ("  over_time: {bucket: \"{{ 7 * 7 }}\"}\n", r"experiment\.over_time\.bucket"),
        ("  over_time: {width: day}\n", r"experiment\.over_time\.width: unknown key"),
    ],
)  # fmt: skip
def test_bad_keys_are_named(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_run_config(DATASET, write(tmp_path, body))


def test_vars_and_defaults(tmp_path: Path) -> None:
    cfg = load_run_config(
        DATASET, write(tmp_path, "  sequential: {enabled: true}\n  over_time: {bucket: Week}\n")
    )
    assert sequential_vars(cfg.eval["experiment"]) == {
        "recsys_eval__experiment_sequential_tuning_parameter": 5000.0,
        "recsys_eval__experiment_sequential_srm_concentration": 10000.0,
        "recsys_eval__experiment_over_time_bucket": "week",
    }


def _row(variant: str, index: int, lift: float | None, **extra) -> dict:
    control = variant == "A"
    row = {
        "variant": variant, "metric": "ctr", "metric_position": 1, "bucket": "day",
        "bucket_index": index, "bucket_start_epoch_us": 1735689600000000 + (index - 1) * 86400000000,
        "is_control": control, "control_variant": "A", "units": 10 * index, "exposures": 20 * index,
        "rate": 0.1, "ci_level": 0.95, "alpha": 0.05, "sequential_tuning_parameter": 5000.0,
        "absolute_lift": None if control else lift, "relative_lift": None if control else lift * 10,
        "p_value": None if control else 0.2, "sequential_p_value": None if control else 0.9,
    }  # fmt: skip
    for kind, (fixed_w, seq_w) in {
        "absolute_lift": (0.01, 0.03),
        "relative_lift": (0.1, 0.3),
    }.items():
        value = row[kind]
        for suffix, width in (("ci", fixed_w), ("sequential_ci", seq_w)):
            row[f"{kind}_{suffix}_lower"] = None if value is None else value - width
            row[f"{kind}_{suffix}_upper"] = None if value is None else value + width
    row.update(extra)
    return row


MARTS = {
    "fct_experiment_over_time": [
        _row("A", 1, None),
        _row("B<script>", 1, 0.02),
        _row("A", 2, None),
        _row("B<script>", 2, 0.015),
    ],
    "fct_experiment_sequential_srm": [
        {
            "bucket_index": 1,
            "bucket_start_epoch_us": 1735689600000000,
            "units": 20,
            "sequential_p_value": 0.5,
            "log_bayes_factor": 0.69,
            "is_mismatch": False,
            "srm_alpha": 0.001,
            "dirichlet_concentration": 10000.0,
        },
        {
            "bucket_index": 2,
            "bucket_start_epoch_us": 1735776000000000,
            "units": 40,
            "sequential_p_value": 0.0001,
            "log_bayes_factor": 9.2,
            "is_mismatch": True,
            "srm_alpha": 0.001,
            "dirichlet_concentration": 10000.0,
        },
    ],
}


def test_blocks_warnings_and_rendering() -> None:
    exp = {"sequential": {"enabled": True}, "decision": {"policy": "playbook"}}
    blocks = over_time_blocks(MARTS, exp)
    over, seq = blocks["over_time"], blocks["sequential"]
    assert over["bucket"] == "day" and over["bucket_source"] == "default"
    assert [p["bucket_start"] for p in over["series"]][::2] == [
        "2025-01-01T00:00:00Z",
        "2025-01-02T00:00:00Z",
    ]
    assert seq["tuning_parameter_source"] == "default" and seq["as_of"] == "2025-01-02T00:00:00Z"
    (test,) = seq["tests"]
    assert test["absolute_lift_sequential_ci"] == {
        "lower": 0.015 - 0.03,
        "upper": 0.015 + 0.03,
        "level": 0.95,
    }
    assert test["sequential_significant"] is False
    assert seq["srm"]["mismatch"] is True
    (warning,) = over_time_warnings(blocks)
    assert warning.startswith("sequential_srm_mismatch:")
    # the reference policy gets none of it; without `enabled` no sequential block
    assert over_time_blocks(MARTS, {"decision": {"policy": "reference"}}) == {}
    assert "sequential" not in over_time_blocks(MARTS, {})
    report = {
        "report_version": "1", "mode": "experiment", "summary": {}, "warnings": [warning],
        "experiment": {"experiment_id": "e", "variants": [], **blocks},
    }  # fmt: skip
    doc = build_document(report)
    markdown = render_markdown(doc)
    assert "Lift over time" in markdown and "Safe to peek (sequential)" in markdown
    assert "| 2025-01-02 | ctr | B\\<script\\>" in markdown or "2025-01-02" in markdown
    assert "Always-valid CI" in markdown and "Other experiment fields" not in markdown
    html = render_html(doc)
    assert "Cumulative absolute lift per variant" in html  # the chart's accessible name
    assert "<script>" not in html.split("<body", 1)[1]  # the variant name is escaped everywhere
    assert "B&lt;script&gt;" in html
