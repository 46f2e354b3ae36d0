"""The OPE readout (issue 21 item 2): the logged policy's value beside the estimates, checked against
numpy / scipy on the samples read back from the run database; the `estimators_disagree` and
`ess_too_small_for_estimator` warnings on constructed cases (and not on the golden scenario); the
"which estimate to trust" guidance; the Markdown / HTML readout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import jsonschema
import numpy as np
import pytest
from scipy import stats as sps

from recsys_eval.config import apply_defaults
from recsys_eval.ope import plugin as ope_plugin
from recsys_eval.ope import readout
from recsys_eval.ope.aggregates import from_samples
from recsys_eval.ope.diagnostics import ItemCounts
from recsys_eval.ope.estimators import Samples
from recsys_eval.render import render_report

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-12


def numpy_logged(reward: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """mean, sd / √n (n - 1 denominator) and the scipy normal interval."""
    mean = float(np.mean(reward))
    se = float(np.std(reward, ddof=1) / np.sqrt(reward.size)) if reward.size > 1 else 0.0
    z = sps.norm.ppf(0.5 + level / 2)
    return mean, se, mean - z * se, mean + z * se


def assert_logged(block: dict, reward: np.ndarray, level: float) -> None:
    mean, se, lo, hi = numpy_logged(reward, level)
    assert block["samples"] == reward.size
    assert block["value"] == pytest.approx(mean, abs=TOL)
    assert block["std_error"] == pytest.approx(se, abs=TOL)
    assert block["ci"]["lower"] == pytest.approx(lo, abs=1e-9)
    assert block["ci"]["upper"] == pytest.approx(hi, abs=1e-9)
    assert block["ci"]["level"] == level and block["ci"]["method"] == "normal"


def test_golden_scenario_logged_value_from_the_run_database(tmp_path, golden):
    """The golden OPE config (+ a segment key): the logged value and its standard error equal
    numpy's over fct_ope_samples read back from the run database, globally and per segment; the
    estimators agree (no new warning), the reference's fields are the golden ones, and the
    Markdown / HTML show the logged policy and the guidance."""
    config = tmp_path / "ope.yaml"
    config.write_text(
        (REPO / "configs" / "ope.golden.yaml").read_text() + "  slice_keys: [device]\n"
    )
    out, db = tmp_path / "report.json", tmp_path / "run.duckdb"
    proc = subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", "run", "--mode", "ope",
         "--dataset", str(REPO / "configs" / "dataset.tiny.yaml"), "--config", str(config),
         "--output", str(out), "--database", str(db)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    ope = report["ope"]
    assert not report.get("warnings")  # no estimators_disagree / ess warning on the golden data
    expected = golden("ope")["ope"]
    assert [(e["name"], e["value"]) for e in ope["estimators"]] == [
        (e["name"], pytest.approx(e["value"], abs=TOL)) for e in expected["estimators"]
    ]
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "select segment_key, reward from recsys_eval_marts.fct_ope_samples"
        ).fetchall()
    finally:
        con.close()
    level = ope["estimators"][0]["ci"]["level"]
    assert_logged(ope["logged_policy"], np.array([r for _, r in rows]), level)
    assert set(ope["by_segment"]) == {k for k, _ in rows}
    for key, block in ope["by_segment"].items():
        assert_logged(block["logged_policy"], np.array([r for k, r in rows if k == key]), level)
    # guidance: healthy weights (ESS 1.99 of 2) and no reward model -> snips
    assert ope["guidance"]["trust"] == "snips" and ope["guidance"]["rule"] == "no_usable_model"
    jsonschema.Draft7Validator(
        json.loads((REPO / "schemas" / "report.v2.json").read_text())
    ).validate(report)
    for fmt in ("markdown", "html"):
        text = render_report(report, fmt)
        assert "logged policy (on-policy mean)" in text, fmt
        assert "Which estimate to trust: snips" in text, fmt


def test_logged_value_by_segment_matches_numpy():
    rng = np.random.default_rng(7)
    reward = rng.exponential(2.0, 5000) * (rng.random(5000) < 0.3)
    codes = rng.integers(0, 4, 5000)
    blocks = readout.logged_by_segment(reward, codes, 4, sps.norm.ppf(0.95), 0.9)
    for g, block in enumerate(blocks):
        assert_logged(block, reward[codes == g], 0.9)
    assert_logged(readout.logged_policy(reward, sps.norm.ppf(0.975), 0.95), reward, 0.95)


def _counts(n: int, weights: np.ndarray) -> ItemCounts:
    return ItemCounts(
        listed_items=n, sample_items=n, missing_logging_propensity=0, missing_target_propensity=0,
        near_zero_propensity=0, clipped_items=0, target_mass=float(n),
        target_mass_without_logging=0.0, unclipped_weight_sum=float(weights.sum()),
        unclipped_weight_sq_sum=float(np.dot(weights, weights)),
    )  # fmt: skip


def _run(samples: Samples, estimators: list[str], bootstrap: bool = True):
    ope = apply_defaults({"ope": {"estimators": estimators, "bootstrap": {"enabled": bootstrap}}})[
        "ope"
    ]
    n = len(samples)
    agg = from_samples(
        samples, np.zeros(n, dtype=np.int64), ["__all__"], 0, ope["switch_threshold"]
    )
    section, warnings, _, _ = ope_plugin.compute(agg, _counts(n, samples.weight), ope)
    return section, warnings, {w.split(":")[0] for w in warnings}


def _samples(n: int, seed: int, model_target: float | None = None) -> Samples:
    """Two kinds of sample (click rate 0.05 or 0.5); a sound reward model predicts each one's
    rate, a broken direct term is a constant far from them."""
    rng = np.random.default_rng(seed)
    weight = rng.uniform(0.5, 1.5, n)
    rate = np.where(rng.random(n) < 0.5, 0.05, 0.5)
    reward = (rng.random(n) < rate).astype(np.float64)
    target = rate.copy() if model_target is None else np.full(n, model_target)
    return Samples(weight, reward, rate, target)


def test_disagreement_fires_on_a_constructed_case_only():
    """A direct term of 0.9 while the rewards' rate is ~0.275: DR (0.9 + the weighted residuals)
    lies far above IPS and SNIPS, so estimators_disagree names those pairs
    and the guidance trusts none; with the model at the true rate nothing disagrees and DR is
    trusted. DM is not compared (its interval is conditional on the model: a point here)."""
    section, warnings, codes = _run(
        _samples(2000, 1, model_target=0.9), ["ips", "snips", "dm", "dr"]
    )
    assert "estimators_disagree" in codes
    (text,) = [w for w in warnings if w.startswith("estimators_disagree")]
    est = {e["name"]: e for e in section["estimators"]}
    assert "vs dm" not in text and not text.split(":")[1].lstrip().startswith("dm")
    for a, b in (("ips", "dr"), ("snips", "dr")):
        assert f"{a} {est[a]['value']:.4g}" in text and f"vs {b}" in text
        assert est[a]["ci"]["upper"] < est[b]["ci"]["lower"]  # the report's own intervals
    assert section["guidance"]["trust"] is None and section["guidance"]["rule"] == "disagreement"

    section, warnings, codes = _run(_samples(2000, 1), ["ips", "snips", "dm", "dr"])
    assert "estimators_disagree" not in codes and not warnings
    assert section["guidance"]["trust"] == "dr" and section["guidance"]["rule"] == "model_ok"
    assert section["guidance"]["reward_model_r2"] > 0
    assert section["logged_policy"]["value"] == pytest.approx(
        float(_samples(2000, 1).reward.mean())
    )


def test_disagreement_uses_normal_intervals_without_the_bootstrap():
    entries = [
        {"name": "ips", "value": 0.83, "std_error": 0.05},
        {"name": "dr", "value": 0.23, "std_error": 0.05},
        {"name": "snips", "value": 0.75, "std_error": 0.05},
    ]
    z = sps.norm.ppf(0.975)
    # 0.83 - 1.96·0.05 = 0.732 > 0.23 + 0.098; ips and snips overlap (0.732 < 0.848)
    assert readout.disagreements(entries, z) == [("ips", "dr"), ("dr", "snips")]


def test_ess_warning_fires_when_weights_are_concentrated():
    rng = np.random.default_rng(3)
    n = 1000
    weight = np.full(n, 0.01)
    weight[:10] = 100.0  # ten samples carry almost all the weight
    reward = (rng.random(n) < 0.3).astype(np.float64)
    zeros = np.zeros(n)
    ess = weight.sum() ** 2 / np.dot(weight, weight)
    assert ess < 11
    section, warnings, codes = _run(Samples(weight, reward, zeros, zeros), ["ips", "snips"], False)
    assert {"ess_too_small_for_estimator", "low_effective_sample_size"} <= codes
    (text,) = [w for w in warnings if w.startswith("ess_too_small_for_estimator")]
    assert f"{ess:.4g} of {n}" in text and "ips, snips" in text and "prefer snips" in text
    assert (
        section["guidance"]["trust"] == "snips"
        and section["guidance"]["rule"] == "unstable_weights"
    )
    # DM alone does not use the weights: no ESS warning for it
    _, _, codes = _run(Samples(weight, reward, zeros, zeros), ["dm"], False)
    assert "ess_too_small_for_estimator" not in codes
    # even weights: ESS = n, nothing fires
    even = np.ones(n)
    _, warnings, _ = _run(Samples(even, reward, zeros, zeros), ["ips", "snips"], False)
    assert not warnings


def test_ess_rule_between_the_relative_and_absolute_thresholds():
    """n = 400 and ESS 90: the reference's relative rule (ESS < 20 % of n = 80) stays silent, the
    absolute floor of 100 fires; below 100 samples the floor does not apply (the golden case)."""
    stats = {"effective_sample_size": 90.0, "count": 400}
    entries = [{"name": "ips", "value": 0.1, "std_error": 0.01}]
    _, _, fired = readout.readout_warnings(entries, stats, 1.96, 0.95)
    assert fired
    _, _, fired = readout.readout_warnings(
        entries, {"effective_sample_size": 1.99, "count": 2}, 1.96, 0.95
    )
    assert not fired


def test_guidance_prefers_snips_when_the_reward_model_explains_nothing():
    """R² = 1 - Σ(r - m)² / Σ(r - r̄)² <= 0 (the model predicts 1 for every logged item) -> snips."""
    s = _samples(500, 5)
    bad = Samples(s.weight, s.reward, np.ones(500), np.ones(500))  # dr = ips + 1 - mean w: agrees
    r2 = 1 - np.sum((bad.reward - 1) ** 2) / np.sum((bad.reward - bad.reward.mean()) ** 2)
    assert readout.reward_model_r2(bad) == pytest.approx(r2, abs=TOL) and r2 < 0
    section, _, _ = _run(bad, ["ips", "snips", "dr"], False)
    assert (
        section["guidance"]["trust"] == "snips" and section["guidance"]["rule"] == "no_usable_model"
    )
    assert section["guidance"]["reward_model_r2"] == pytest.approx(r2, abs=TOL)


def test_guidance_with_constant_rewards_and_every_rule_fallback():
    """Constant rewards (R² undefined: None) keep the model usable; a rule's first choice missing
    falls to the next one; only model-based estimators with a poor model are named "with care"."""
    assert readout.guidance(("ips", "dr"), set(), [], None)["trust"] == "dr"
    unstable = {"high_clipping_fraction"}
    assert readout.guidance(("ips", "dr"), unstable, [], 0.3)["trust"] == "dr"
    assert readout.guidance(("ips", "dr", "sndr"), unstable, [], 0.3)["trust"] == "sndr"
    ips_only = readout.guidance(("ips",), unstable, [], None)
    assert ips_only["trust"] == "ips" and "riskiest" in ips_only["text"]
    poor = readout.guidance(("dr",), set(), [], -0.5)
    assert (
        poor["trust"] == "dr" and "with care" in poor["text"] and poor["rule"] == "no_usable_model"
    )
    assert readout.guidance(("dm",), unstable, [], 0.5)["rule"] == "model_only"
