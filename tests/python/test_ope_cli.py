"""`recsys-eval run --mode ope` against the reference: the golden report (§11.4) to 1e-12, the
reference-run variants of §11.6 (h) and (i), the deliberate fixes, bad input, and `show`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dbt_helpers import run_dbt
from report_compare import assert_report_close as close

from recsys_eval.config import apply_defaults
from recsys_eval.modes import MARTS_SCHEMA, STAGING_SCHEMA
from recsys_eval.ope import plugin as ope_plugin
from recsys_eval.ope.aggregates import read_aggregates

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-12


def run_cli(tmp_path: Path, config: str | Path, dataset: Path | None = None, *extra: str):
    if isinstance(config, str):
        path = tmp_path / "ope.yaml"
        path.write_text(config)
        config = path
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", "run", "--mode", "ope",
         "--dataset", str(dataset or REPO / "configs" / "dataset.tiny.yaml"),
         "--config", str(config), "--output", str(out), *extra],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    return proc, out


def by_name(section: dict) -> dict[str, dict]:
    return {e["name"]: e for e in section["estimators"]}


def test_golden_ope_report(tmp_path, golden):
    proc, out = run_cli(tmp_path, REPO / "configs" / "ope.golden.yaml")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    expected = golden("ope")
    ope = report["ope"]
    # the reference's fields, with its list of estimators (ips, snips), to 1e-12
    reference_fields = {k: ope[k] for k in expected["ope"]}
    reference_fields["estimators"] = [
        {k: e[k] for k in ("name", "value", "variance") if k in e} for e in ope["estimators"]
    ]
    reference_fields["diagnostics"] = {
        k: ope["diagnostics"][k] for k in expected["ope"]["diagnostics"]
    }
    reference_fields["weight_stats"] = {
        k: ope["weight_stats"][k] for k in expected["ope"]["weight_stats"]
    }
    close(reference_fields, expected["ope"])
    close(report["data_quality"], expected["data_quality"])
    close(report["summary"], expected["summary"])
    assert report["mode"] == "ope" and report["run_id"].startswith("ope-")
    # the reference's warnings: none (ESS 1.99 >= 0.4, nothing clipped), and the joins are healthy
    assert not report.get("warnings")
    # new fields: standard errors and deterministic bootstrap intervals
    ips = by_name(ope)["ips"]
    assert ips["std_error"] == pytest.approx(math.sqrt(61.72839506172837 / 2), abs=TOL)
    assert ips["ci"]["lower"] <= ips["value"] <= ips["ci"]["upper"]
    (tmp_path / "again").mkdir()
    proc2, out2 = run_cli(tmp_path / "again", REPO / "configs" / "ope.golden.yaml")
    assert proc2.returncode == 0, proc2.stderr
    assert by_name(json.loads(out2.read_text())["ope"])["ips"]["ci"] == ips["ci"]
    # `show` prints the OPE section
    shown = subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", "show", str(out)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "off-policy evaluation" in shown.stdout
    assert "snips" in shown.stdout and "5.376344" in shown.stdout


def test_ecommerce_mini_default_config_reference_model(tmp_path):
    """§11.6 (i): ope.default.yaml on ecommerce-mini with the reference's reward model."""
    ex = REPO / "examples" / "ecommerce-mini"
    dataset = tmp_path / "dataset.yaml"
    dataset.write_text(
        f"exposures: {{type: jsonl, path: {ex / 'exposures.jsonl'}}}\n"
        f"outcomes: {{type: jsonl, path: {ex / 'outcomes.jsonl'}}}\n"
    )
    config = (REPO / "configs" / "ope.default.yaml").read_text()
    config += '  reward_model: "reference"\n'
    proc, out = run_cli(tmp_path, config, dataset, "--database", str(tmp_path / "run.duckdb"))
    assert proc.returncode == 0, proc.stderr
    ope = json.loads(out.read_text())["ope"]
    est = by_name(ope)
    assert est["ips"]["value"] == pytest.approx(0.6040422080404432, abs=TOL)
    assert est["snips"]["value"] == pytest.approx(0.600864236419649, abs=TOL)
    assert est["dr"]["value"] == pytest.approx(0.5979835054801677, abs=TOL)
    assert ope["weight_stats"]["count"] == 6
    assert ope["weight_stats"]["effective_sample_size"] == pytest.approx(5.997735346072542, abs=TOL)
    # the marts were written back into the kept run database
    con = duckdb.connect(str(tmp_path / "run.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select estimator, estimate from recsys_eval_marts.fct_ope_estimates where scope = 'global' "
            "order by estimator_position"
        ).fetchall()
        diag = con.execute(
            "select count, effective_sample_size from recsys_eval_marts.fct_ope_diagnostics"
        ).fetchall()
    finally:
        con.close()
    assert [r[0] for r in rows] == ["ips", "snips", "dr", "dm", "sndr", "switch_dr"]
    assert rows[0][1] == pytest.approx(0.6040422080404432, abs=TOL)
    assert diag == [(6, pytest.approx(5.997735346072542, abs=TOL))]


# §11.6 (h): reference runs on the tiny dataset (the bundled seeds are that dataset).
VARIANTS = [
    (
        {"unit": "item", "reward_event": "click", "enable_snips": True, "enable_dr": True},
        {"ips": (0.19999999999999998, 0.24000000000000005),
         "snips": (0.1935483870967742, 0.2400499479708637),
         "dr": (0.16666666666666666, 0.16666666666666669)},
        {"count": 6, "mean": 1.0333333333333334, "max": 1.4999999999999998,
         "effective_sample_size": 5.629027009437033},
        [],
    ),
    (
        {"unit": "request", "reward_event": "click", "position_discount": "log2", "clipping": 10.0,
         "top_k": 10, "enable_snips": True, "enable_dr": True},
        {"ips": (0.4777777777777778, 0.45654320987654323),
         "snips": (0.46236559139784955, 0.45701828085456253), "dr": (0.5, 0.5)},
        {"count": 2, "effective_sample_size": 1.9887330420786387},
        [],
    ),
    (
        {"unit": "request", "reward_event": "conversion", "reward_aggregation": "max",
         "clipping": 1.1, "enable_snips": True, "enable_dr": True},
        {"ips": (4.888888888888889, 47.802469135802475),
         "snips": (5.146198830409357, 47.93488594781301), "dr": (5.0, 50.0)},
        {"mean": 0.95, "max": 0.9777777777777779, "clipped_fraction": 1.0},
        ["high_clipping_fraction"],
    ),
    (
        {"unit": "item", "reward_event": "conversion", "clipping": 1.2, "top_k": 2,
         "enable_snips": True, "enable_dr": True},
        {"ips": (0.0, 0.0), "snips": (0.0, 0.0), "dr": (0.0, 0.0)},
        {"count": 4, "mean": 0.925, "max": 1.2},
        [],
    ),
]  # fmt: skip


@pytest.mark.parametrize("ope_cfg, estimates, stats, warnings", VARIANTS)
def test_reference_run_variants(tmp_path, ope_cfg, estimates, stats, warnings):
    ope = apply_defaults({"ope": {**ope_cfg, "reward_model": "reference"}})["ope"]
    dbt_vars = {"recsys_eval__ope": {**ope_plugin.ope_vars_block(ope), "slice_keys": []}}
    result, database = run_dbt(
        tmp_path, "ope", command="build", dbt_vars=dbt_vars, select=list(ope_plugin.SELECTORS),
        extra=["--exclude", "test_type:unit"],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    con = duckdb.connect(str(database))
    try:
        agg, counts = read_aggregates(con, STAGING_SCHEMA)
    finally:
        con.close()
    section, warns, _, _ = ope_plugin.compute(agg, counts, ope)
    est = by_name(section)
    for name, (value, variance) in estimates.items():
        assert est[name]["value"] == pytest.approx(value, abs=TOL), name
        assert est[name].get("variance", 0.0) == pytest.approx(variance, abs=TOL), name
        if variance == 0.0:
            assert "variance" not in est[name]  # omitempty, as the reference
    for key, value in stats.items():
        assert section["weight_stats"][key] == pytest.approx(value, abs=TOL), key
    assert [w.split(":")[0] for w in warns if w.split(":")[0] in ("high_clipping_fraction",
            "low_effective_sample_size", "missing_target_propensity")] == warnings  # fmt: skip


def test_fixed_reward_model_differs_from_the_reference_where_it_should(tmp_path):
    """The default reward model (per exposure) on the tiny data, item unit, click reward: q̂(i1) =
    1 (shown once, clicked), q̂(i2) = q̂(i3) = q̂(i4) = 0, so DM = Σ target x q̂ / n = 0.6 / 6 and
    DR = DM + Σ w (r - q̂) / n = 0.1; the reference's DR (direct term q̂ of the logged item) is 1/6."""
    proc, out = run_cli(
        tmp_path,
        "mode: ope\nope: {unit: item, reward_event: click, enable_snips: true, enable_dr: true}\n",
    )
    assert proc.returncode == 0, proc.stderr
    ope = json.loads(out.read_text())["ope"]
    assert ope["reward_model"] == "exposure"
    est = by_name(ope)
    # samples: r1 i1 (w 1.2, r 1, target 0.6), i2, i3; r2 i2, i3, i4; q̂(i1) = 1 (shown once, clicked)
    assert est["ips"]["value"] == pytest.approx(1.2 / 6, abs=TOL)
    assert est["dm"]["value"] == pytest.approx(0.6 / 6, abs=TOL)
    assert est["dr"]["value"] == pytest.approx((0.6 + 1.2 * (1 - 1)) / 6, abs=TOL)


def test_no_valid_samples_fails_before_any_report(tmp_path):
    exposures = tmp_path / "exposures.jsonl"
    exposures.write_text(
        '{"request_id": "r1", "user_id": "u1", "ts": "2025-01-01T00:00:00Z", '
        '"items": [{"item_id": "i1", "rank": 1}]}\n'
    )
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text("")
    dataset = tmp_path / "dataset.yaml"
    dataset.write_text(
        f"exposures: {{type: jsonl, path: {exposures}}}\noutcomes: {{type: jsonl, path: {outcomes}}}\n"
    )
    proc, out = run_cli(tmp_path, "mode: ope\n", dataset)
    assert proc.returncode == 1
    assert "no valid samples for OPE" in proc.stderr
    assert not out.exists()


def test_rank_zero_with_log2_discount_names_the_line(tmp_path):
    """The loader quarantines rank 0 (exposure.v1 says rank >= 1); tables filled another way (the
    dbt package on its own tables) reach the plug-in, which names the file and line."""
    from dbt_helpers import RAW_DDL

    from recsys_eval.config import RunConfig
    from recsys_eval.errors import RecsysEvalError
    from recsys_eval.modes import ModeContext

    database = tmp_path / "ranks.duckdb"
    con = duckdb.connect(str(database))
    con.execute(RAW_DDL)
    con.execute(
        """
        insert into raw.exposures values
        ('l1', 1, '/logs/exposures.jsonl', 1, 'r1', 'u1', null,
         [{'item_id': 'i1', 'rank': 1, 'propensity': null, 'logging_propensity': 0.5,
           'target_propensity': 0.5}], null, null, false),
        ('l1', 1, '/logs/exposures.jsonl', 2, 'r2', 'u1', null,
         [{'item_id': 'i1', 'rank': 0, 'propensity': null, 'logging_propensity': 0.5,
           'target_propensity': 0.5}], null, null, false)
        """
    )
    con.close()
    ope = apply_defaults({"ope": {"position_discount": "log2"}})
    result, _ = run_dbt(
        tmp_path, "rank", command="run", database=database, select=list(ope_plugin.SELECTORS),
        dbt_vars={"recsys_eval__source": "raw", "recsys_eval__using_assignments": False,
                  "recsys_eval__using_rankers": False,
                  "recsys_eval__ope": ope_plugin.ope_vars_block(ope["ope"])},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    cfg = RunConfig(
        mode="ope", dataset={}, eval=ope, dataset_file=Path("d.yaml"), eval_file=Path("e.yaml")
    )
    with pytest.raises(RecsysEvalError, match=r"/logs/exposures.jsonl:2: items\[\]\.rank"):
        ope_plugin.collect(ModeContext(cfg=cfg, database=database, schema=MARTS_SCHEMA))
