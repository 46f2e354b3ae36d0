"""Slate OPE (issue 21 item 1): slate_standard_ips, slate_independent_ips and slate_rips.

1. Cross-check against obp 0.5.7: obp's SyntheticSlateBanditDataset (factorizable policies, cascade
   reward; tests/python/obp_slate_reference.py in .venv-obp) is written as exposures (request =
   slate, rank = slot, each slot's logging / target propensity = obp's pscore_item_position for the
   logging / evaluation policy) and click outcomes; `recsys-eval run --mode ope` must give obp's
   estimate_policy_value of SlateStandardIPS (pscore = the joint), SlateIndependentIPS
   (pscore_item_position) and SlateRewardInteractionIPS (pscore_cascade) to 1e-9, the standard error
   of obp's per-slate round rewards, and per segment the same on the segment's slates.
2. Known truth (test_ope_slate_truth.py): bias / variance ordering on a simulated cascade.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
OBP_PYTHON = REPO / ".venv-obp" / "bin" / "python"
N_ROUNDS = 1000
TOL = 1e-9
NAMES = ("slate_standard_ips", "slate_independent_ips", "slate_rips")
# obp's per-slot pscore arrays each estimator reads
OBP_PSCORE = {
    "slate_standard_ips": ("pscore", "evaluation_pscore"),
    "slate_independent_ips": ("pscore_item_position", "evaluation_pscore_item_position"),
    "slate_rips": ("pscore_cascade", "evaluation_pscore_cascade"),
}


def obp_python() -> Path:
    if not OBP_PYTHON.exists():
        pytest.fail(
            f"{OBP_PYTHON} is missing: run scripts/setup_obp to create the obp reference "
            "environment (obp 0.5.7, CPU torch)"
        )
    return OBP_PYTHON


def write_slates(
    folder: Path,
    slate: np.ndarray,
    position: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    logging: np.ndarray,
    target: np.ndarray,
    groups: np.ndarray | None = None,
) -> None:
    """Exposures (one per slate, its slots as ranked items; the item id names slot and action, as a
    factorizable policy can repeat an action) and one click per rewarded slot."""
    exposures, outcomes = [], []
    for s in np.unique(slate):  # writing the test's input files, not a data path
        rows = np.flatnonzero(slate == s)
        items = [
            {
                "item_id": f"p{int(position[i])}a{int(action[i])}",
                "rank": int(position[i]) + 1,
                "logging_propensity": float(logging[i]),
                "target_propensity": float(target[i]),
            }
            for i in rows
        ]
        exposure = {"request_id": f"r{s}", "user_id": f"u{s}", "ts": "2025-01-01T00:00:00Z",
                    "items": items}  # fmt: skip
        if groups is not None:
            exposure["context"] = {"group": f"g{int(groups[s])}"}
        exposures.append(exposure)
        outcomes += [
            {"request_id": f"r{s}", "user_id": f"u{s}", "item_id": items[k]["item_id"],
             "event_type": "click", "value": 1, "ts": "2025-01-01T00:00:05Z"}
            for k, i in enumerate(rows) if reward[i] > 0
        ]  # fmt: skip
    for name, records in (("exposures", exposures), ("outcomes", outcomes)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "dataset.yaml").write_text(
        f"exposures: {{type: jsonl, path: {folder / 'exposures.jsonl'}}}\n"
        f"outcomes: {{type: jsonl, path: {folder / 'outcomes.jsonl'}}}\n"
    )


def run_cli(folder: Path, config: str) -> tuple[dict, Path]:
    (folder / "ope.yaml").write_text(config)
    report_path, db = folder / "report.json", folder / "run.duckdb"
    proc = subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", "run", "--dataset", str(folder / "dataset.yaml"),
         "--config", str(folder / "ope.yaml"), "--output", str(report_path), "--database", str(db)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(report_path.read_text()), db


@pytest.fixture(scope="module")
def slate_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ope_slate_obp")
    npz = folder / "obp_slates.npz"
    proc = subprocess.run(
        [str(obp_python()), str(REPO / "tests" / "python" / "obp_slate_reference.py"), str(npz),
         str(N_ROUNDS), "3"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = dict(np.load(npz))
    assert str(data["obp_version"]) == "0.5.7"
    groups = np.arange(N_ROUNDS) % 3
    write_slates(
        folder, data["slate_id"], data["position"], data["action"], data["reward"],
        data["pscore_item_position"], data["evaluation_pscore_item_position"], groups,
    )  # fmt: skip
    report, db = run_cli(
        folder,
        "mode: ope\n"
        "ope:\n"
        "  reward_event: click\n"
        "  unit: request\n"
        "  estimators: [ips, slate_standard_ips, slate_independent_ips, slate_rips]\n"
        "  slice_keys: [group]\n"
        "  bootstrap: {iterations: 300, seed: 5}\n",
    )
    con = duckdb.connect(str(db), read_only=True)
    try:
        mart = con.execute(
            "select scope, segment_key, estimator, estimate, std_error, bootstrap_ci_lower, "
            "bootstrap_ci_upper from recsys_eval_marts.fct_ope_estimates"
        ).fetchall()
        terms = con.execute(
            "select line_no, standard_term, independent_term, rips_term "
            "from recsys_eval_staging.int_recsys_eval__ope_slates order by line_no"
        ).fetchnumpy()
    finally:
        con.close()
    return {
        "data": data,
        "groups": groups,
        "report": report,
        "mart": mart,
        "terms": terms,
        "folder": folder,
    }


def _entries(report: dict) -> dict[str, dict]:
    return {e["name"]: e for e in report["ope"]["estimators"]}


def _per_slate(data: dict, name: str) -> np.ndarray:
    """obp's round rewards (per slot) summed per slate: the per-slate term."""
    return np.bincount(data["slate_id"], weights=data[f"round_{name}"])


def test_values_equal_obp(slate_run):
    data, ours = slate_run["data"], _entries(slate_run["report"])
    for name in NAMES:
        theirs = float(data[f"value_{name}"])
        assert ours[name]["value"] == pytest.approx(theirs, abs=TOL, rel=TOL), name
    # not vacuous: the three estimators differ, and differ from the logged policy's value
    values = [ours[n]["value"] for n in NAMES]
    assert min(abs(a - b) for a, b in ((values[0], values[1]), (values[1], values[2]))) > 1e-3
    logged = slate_run["report"]["ope"]["slate"]["logged_policy"]
    reward = np.bincount(data["slate_id"], weights=data["reward"])
    assert logged["value"] == pytest.approx(reward.mean(), abs=1e-12)
    assert logged["std_error"] == pytest.approx(reward.std(ddof=1) / np.sqrt(N_ROUNDS), rel=1e-9)


def test_per_slate_terms_and_standard_errors_equal_obp_round_rewards(slate_run):
    data, ours, terms = slate_run["data"], _entries(slate_run["report"]), slate_run["terms"]
    column = {"slate_standard_ips": "standard_term", "slate_independent_ips": "independent_term",
              "slate_rips": "rips_term"}  # fmt: skip
    for name in NAMES:
        per_slate = _per_slate(data, name)
        np.testing.assert_allclose(terms[column[name]], per_slate, rtol=1e-9, atol=1e-12)
        se = per_slate.std(ddof=1) / np.sqrt(N_ROUNDS)
        assert ours[name]["std_error"] == pytest.approx(se, rel=1e-9), name


def test_pscore_mapping_is_obps(slate_run):
    """Our products of the per-position marginals are obp's joint and cascade pscores."""
    d = slate_run["data"]
    k = int(d["len_list"])
    for prefix in ("", "evaluation_"):
        marginal = d[f"{prefix}pscore_item_position"].reshape(-1, k)
        np.testing.assert_allclose(d[f"{prefix}pscore_cascade"].reshape(-1, k),
                                   np.cumprod(marginal, axis=1), rtol=1e-12)  # fmt: skip
        np.testing.assert_allclose(d[f"{prefix}pscore"].reshape(-1, k)[:, 0],
                                   marginal.prod(axis=1), rtol=1e-12)  # fmt: skip


def test_segments_and_mart(slate_run):
    data, groups, report = slate_run["data"], slate_run["groups"], slate_run["report"]
    mart = {(r[0], r[1], r[2]): r[3:] for r in slate_run["mart"]}
    for name in NAMES:
        per_slate = _per_slate(data, name)
        for g in range(3):
            key = f"group=g{g}"
            seg = {e["name"]: e for e in report["ope"]["by_segment"][key]["estimators"]}
            x = per_slate[groups == g]
            assert seg[name]["value"] == pytest.approx(x.mean(), abs=TOL, rel=TOL)
            assert seg[name]["std_error"] == pytest.approx(
                x.std(ddof=1) / np.sqrt(x.size), rel=1e-9
            )
            assert mart[("segment", key, name)][0] == seg[name]["value"]
        entry = _entries(report)[name]
        value, se, lower, upper = mart[("global", "__all__", name)]
        assert (value, se, lower, upper) == (
            entry["value"],
            entry["std_error"],
            entry["ci"]["lower"],
            entry["ci"]["upper"],
        )


def test_bootstrap_interval_is_the_poisson_bootstrap_of_the_terms(slate_run):
    """The interval: percentiles of sum(P t) / sum(P) over 300 replicates of Poisson(1) weights
    P = inverse-CDF(md5('5|<load_seq>:<line_no>|<b>')[:13] / 2^52), recomputed here with hashlib
    and scipy's Poisson quantile (obp's own interval resamples with numpy's RNG: a different draw)."""
    import hashlib

    from scipy.stats import poisson

    data, report, terms = slate_run["data"], slate_run["report"], slate_run["terms"]
    keys = [f"1:{int(line)}" for line in terms["line_no"]]
    uniform = np.array(
        [[int(hashlib.md5(f"5|{k}|{b}".encode()).hexdigest()[:13], 16) / 2**52 for k in keys]
         for b in range(1, 301)]
    )  # fmt: skip
    weights = np.minimum(poisson.ppf(uniform, 1.0), 15)
    for name in NAMES:
        per_slate = _per_slate(data, name)
        values = np.sort((weights @ per_slate) / weights.sum(axis=1))
        ci = _entries(report)[name]["ci"]
        assert ci["method"] == "poisson_bootstrap" and ci["replicates"] == 300
        assert ci["lower"] == pytest.approx(values[int(np.floor(0.025 * 299))], rel=1e-9)
        assert ci["upper"] == pytest.approx(values[int(np.ceil(0.975 * 299))], rel=1e-9)
        assert ci["lower"] < _entries(report)[name]["value"] < ci["upper"]


def test_weight_diagnostics(slate_run):
    d, block = slate_run["data"], slate_run["report"]["ope"]["slate"]
    k = int(d["len_list"])
    ratio = (d["evaluation_pscore_item_position"] / d["pscore_item_position"]).reshape(-1, k)
    weights = {
        "slate_standard_ips": ratio.prod(axis=1),
        "slate_independent_ips": ratio.ravel(),
        "slate_rips": np.cumprod(ratio, axis=1).ravel(),
    }
    assert block["slates"] == N_ROUNDS and block["incomplete_slates"] == 0
    for name, w in weights.items():
        s = block["weight_stats"][name]
        assert s["count"] == w.size
        assert s["mean"] == pytest.approx(w.mean(), rel=1e-12)
        assert s["max"] == pytest.approx(w.max(), rel=1e-12)
        assert s["effective_sample_size"] == pytest.approx(w.sum() ** 2 / (w @ w), rel=1e-12)
        assert s["clipped_fraction"] == 0


# --- a known truth: the bias / variance ordering -------------------------------------------------
# A cascade environment: K = 3 slots, each drawn independently from 4 actions (factorizable logging
# and target policies); the click probability at slot k is base[a_k] x Π_{j<k} (1 - stop[a_j]) (a
# user who liked an item above stops looking), so a slot's reward depends on the items above it and
# on nothing below: RIPS's assumption holds, independent IPS's does not.
K, M = 3, 4
LOGGING_POLICY = np.array([0.25, 0.25, 0.25, 0.25])
TARGET_POLICY = np.array([0.55, 0.25, 0.15, 0.05])
BASE = np.array([0.6, 0.4, 0.3, 0.2])
STOP = np.array([0.5, 0.2, 0.0, 0.0])
REPLICATIONS, SLATES = 2000, 300


def click_probability(actions: np.ndarray) -> np.ndarray:
    """(…, K) actions -> (…, K) click probabilities of the cascade."""
    above = np.cumprod(1 - STOP[actions], axis=-1)
    seen = np.concatenate([np.ones_like(above[..., :1]), above[..., :-1]], axis=-1)
    return BASE[actions] * seen


def true_value() -> float:
    """Σ over all M^K slates of π_e(slate) x Σ_k q_k(slate): exact enumeration."""
    slates = np.array(np.meshgrid(*[np.arange(M)] * K, indexing="ij")).reshape(K, -1).T
    prob = TARGET_POLICY[slates].prod(axis=1)
    return float(prob @ click_probability(slates).sum(axis=1))


def slate_terms(ratio: np.ndarray, reward: np.ndarray) -> dict[str, np.ndarray]:
    """The per-slate terms of docs/ope.md from (…, K) ratios and rewards (checked equal to the SQL
    path's terms on obp's data below)."""
    return {
        "slate_standard_ips": ratio.prod(axis=-1) * reward.sum(axis=-1),
        "slate_independent_ips": (ratio * reward).sum(axis=-1),
        "slate_rips": (np.cumprod(ratio, axis=-1) * reward).sum(axis=-1),
    }


def test_simulation_formulas_are_the_sql_terms(slate_run):
    d, terms = slate_run["data"], slate_run["terms"]
    k = int(d["len_list"])
    ratio = (d["evaluation_pscore_item_position"] / d["pscore_item_position"]).reshape(-1, k)
    ours = slate_terms(ratio, d["reward"].reshape(-1, k))
    column = {"slate_standard_ips": "standard_term", "slate_independent_ips": "independent_term",
              "slate_rips": "rips_term"}  # fmt: skip
    for name, values in ours.items():
        np.testing.assert_allclose(terms[column[name]], values, rtol=1e-9, atol=1e-12)


def test_bias_variance_ordering_on_a_known_truth():
    """2000 replications of 300 logged slates: standard IPS and RIPS unbiased (within 4 Monte Carlo
    standard errors of the truth), independent IPS biased (beyond 20), variance standard > RIPS >
    independent with margins (McInerney et al. 2020; Kiyohara et al. 2022). At seed 2020: bias / MC
    standard error 0.07, 116 and 0.37; variances 0.0186, 0.0049 and 0.0083."""
    rng = np.random.default_rng(2020)
    truth = true_value()
    actions = rng.choice(M, size=(REPLICATIONS, SLATES, K), p=LOGGING_POLICY)
    reward = (rng.random(actions.shape) < click_probability(actions)).astype(float)
    ratio = TARGET_POLICY[actions] / LOGGING_POLICY[actions]
    estimates = {name: t.mean(axis=1) for name, t in slate_terms(ratio, reward).items()}
    bias = {name: e.mean() - truth for name, e in estimates.items()}
    var = {name: e.var(ddof=1) for name, e in estimates.items()}
    mc_se = {name: np.sqrt(var[name] / REPLICATIONS) for name in estimates}
    logged = float(click_probability(actions).sum(axis=2).mean())
    assert abs(truth - logged) > 0.05  # the target policy's value really differs
    assert abs(bias["slate_standard_ips"]) < 4 * mc_se["slate_standard_ips"], (bias, mc_se)
    assert abs(bias["slate_rips"]) < 4 * mc_se["slate_rips"], (bias, mc_se)
    assert abs(bias["slate_independent_ips"]) > 20 * mc_se["slate_independent_ips"], (bias, mc_se)
    assert var["slate_standard_ips"] > 1.5 * var["slate_rips"], var
    assert var["slate_rips"] > 1.4 * var["slate_independent_ips"], var


def test_markdown_shows_the_slate_estimators_and_weights(slate_run):
    folder = slate_run["folder"]
    out = folder / "report.md"
    proc = subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", "render", "--report", str(folder / "report.json"),
         "--format", "md", "--output", str(out)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    value = _entries(slate_run["report"])["slate_rips"]["value"]
    assert f"| slate_rips | {value:.4f} |" in text
    assert "**Slate weights**" in text and "logged policy (mean slate reward)" in text
    assert f"Slate OPE: {N_ROUNDS} complete slates of {N_ROUNDS} (0 left out" in text


def test_config_accepts_the_slate_names_and_rejects_others(tmp_path):
    from recsys_eval.config import load_run_config
    from recsys_eval.errors import ConfigError
    from recsys_eval.ope import plugin

    dataset = REPO / "configs" / "dataset.tiny.yaml"
    cfg = load_run_config(dataset, REPO / "configs" / "ope.slate.yaml")
    ope = cfg.eval["ope"]
    # the item/request estimators run without the slate names; dbt gets the slate switch
    assert plugin.estimator_names(ope) == ("ips",)
    block = plugin.ope_vars_block(ope)
    assert (block["slate"], block["slate_bootstrap_iterations"], block["slate_bootstrap_seed"]) == (
        True, 200, 42,
    )  # fmt: skip
    off = load_run_config(dataset, REPO / "configs" / "ope.demo.yaml").eval["ope"]
    assert plugin.ope_vars_block(off)["slate"] is False
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: ope\nope:\n  estimators: [slate_standard_ips, slate_ips]\n")
    with pytest.raises(ConfigError, match=r"ope\.estimators\[1\]: unknown estimator 'slate_ips'"):
        load_run_config(dataset, bad)


def test_incomplete_slates_warn_and_none_complete_is_an_error():
    from recsys_eval.errors import RecsysEvalError
    from recsys_eval.ope import slate

    ope = {"bootstrap": {"ci_level": 0.95}, "allow_missing_target_propensity": False}
    row = {"scope": "global", "segment_key": "__all__", "estimator": "slate_rips", "slates": 4,
           "term_sum": 2.0, "term_sq_sum": 2.0, "weights": 8, "weight_sum": 8.0,
           "weight_sq_sum": 10.0, "weight_max": 2.0, "clipped_weights": 1, "reward_sum": 3.0,
           "reward_sq_sum": 3.0}  # fmt: skip
    counts = {"slates": 5, "incomplete_slates": 1, "unweighted_slots": 2}
    entries, block, _, warnings = slate.compute(("slate_rips",), [row], [], counts, ope, 1.96)
    # value 2 / 4; s² = (2 - 4 / 4) / 3; ESS 64 / 10; 1 of 8 weights clipped
    assert entries[0]["value"] == 0.5
    assert entries[0]["std_error"] == pytest.approx(np.sqrt((2 - 1) / 3 / 4), rel=1e-15)
    assert "ci" not in entries[0]  # no bootstrap rows
    assert block["weight_stats"]["slate_rips"]["effective_sample_size"] == pytest.approx(6.4)
    assert block["weight_stats"]["slate_rips"]["clipped_fraction"] == 1 / 8
    assert block["incomplete_slates"] == 1 and block["complete_slates"] == 4
    assert any(
        w.startswith("incomplete_slates: 1 of 5 slates have 2 listed item(s)") and "target" in w
        for w in warnings
    )
    with pytest.raises(RecsysEvalError, match="no complete slate"):
        slate.compute(("slate_rips",), [{**row, "slates": 0}], [], counts, ope, 1.96)
