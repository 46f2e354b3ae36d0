"""OPE cross-checked against obp 0.5.7 (the Open Bandit Pipeline) on generated logs.

A contextual bandit with known policies: 3 user groups (exposure context `group`), 5 actions, a
softmax logging policy and a different softmax target policy, Bernoulli clicks with known
probabilities q(x, a). Each round is one exposure whose list holds the chosen action (rank 1, its
logging and target propensities) followed by the other actions as candidates without a logging
propensity (the target policy's mass on them feeds the direct term of DM / DR). `recsys-eval run
--mode ope` (item unit, click reward, no clipping) computes the estimates; obp gets the same rounds
and the same reward-model predictions (int_recsys_eval__ope_reward_model) in .venv-obp
(scripts/setup_obp) and must agree to 1e-9. Then the estimates' intervals must cover the true
policy value Σ_x p(x) Σ_a πe(a|x) q(x, a).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
OBP_PYTHON = REPO / ".venv-obp" / "bin" / "python"
N_ROUNDS = 4000
N_ACTIONS = 5
SWITCH = 2.5
TOL = 1e-9

LOGGING = np.array([[0.40, 0.25, 0.15, 0.12, 0.08], [0.10, 0.30, 0.30, 0.20, 0.10],
                    [0.20, 0.20, 0.20, 0.20, 0.20]])  # fmt: skip
TARGET = np.array([[0.10, 0.20, 0.30, 0.25, 0.15], [0.30, 0.10, 0.20, 0.30, 0.10],
                   [0.05, 0.15, 0.40, 0.30, 0.10]])  # fmt: skip
CLICK = np.array([[0.05, 0.10, 0.30, 0.20, 0.08], [0.25, 0.05, 0.10, 0.35, 0.02],
                  [0.10, 0.15, 0.20, 0.05, 0.30]])  # fmt: skip
GROUP_P = np.array([0.5, 0.3, 0.2])
TRUE_VALUE = float(GROUP_P @ (TARGET * CLICK).sum(axis=1))


def _obp_python() -> Path:
    if not OBP_PYTHON.exists():
        pytest.fail(
            f"{OBP_PYTHON} is missing: run scripts/setup_obp to create the obp reference "
            "environment (obp 0.5.7, CPU torch)"
        )
    return OBP_PYTHON


def generate(folder: Path, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = rng.choice(3, size=N_ROUNDS, p=GROUP_P)
    u = rng.random(N_ROUNDS)[:, None]
    action = (u > np.cumsum(LOGGING[group], axis=1)).sum(axis=1)
    clicked = rng.random(N_ROUNDS) < CLICK[group, action]
    exposures, outcomes = [], []
    for i in range(N_ROUNDS):  # writing the test's input files, not a data path
        g, a = int(group[i]), int(action[i])
        others = [b for b in range(N_ACTIONS) if b != a]
        items = [
            {
                "item_id": f"a{a}",
                "rank": 1,
                "logging_propensity": float(LOGGING[g, a]),
                "target_propensity": float(TARGET[g, a]),
            }
        ] + [
            {"item_id": f"a{b}", "rank": k + 2, "target_propensity": float(TARGET[g, b])}
            for k, b in enumerate(others)
        ]
        exposures.append(
            {
                "request_id": f"r{i}",
                "user_id": f"u{i}",
                "ts": "2025-01-01T00:00:00Z",
                "items": items,
                "context": {"group": f"g{g}"},
            }
        )
        if clicked[i]:
            outcomes.append(
                {
                    "request_id": f"r{i}",
                    "user_id": f"u{i}",
                    "item_id": f"a{a}",
                    "event_type": "click",
                    "value": 1,
                    "ts": "2025-01-01T00:00:05Z",
                }
            )
    for name, rows in (("exposures", exposures), ("outcomes", outcomes)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"group": group, "action": action, "reward": clicked.astype(float)}


@pytest.fixture(scope="module")
def ope_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ope_obp")
    truth = generate(folder)
    (folder / "dataset.yaml").write_text(
        f"exposures: {{type: jsonl, path: {folder / 'exposures.jsonl'}}}\n"
        f"outcomes: {{type: jsonl, path: {folder / 'outcomes.jsonl'}}}\n"
    )
    (folder / "ope.yaml").write_text(
        "mode: ope\n"
        "ope:\n"
        "  reward_event: click\n"
        "  unit: item\n"
        "  enable_snips: true\n"
        "  enable_dr: true\n"
        f"  switch_threshold: {SWITCH}\n"
        "  slice_keys: [group]\n"
        "  bootstrap: {iterations: 400, seed: 11}\n"
    )
    report_path, db = folder / "report.json", folder / "run.duckdb"
    proc = subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", "run", "--dataset", str(folder / "dataset.yaml"),
         "--config", str(folder / "ope.yaml"), "--output", str(report_path), "--database", str(db)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    con = duckdb.connect(str(db), read_only=True)
    try:
        model = dict(
            con.execute(
                "select item_id, predicted_reward from recsys_eval_staging.int_recsys_eval__ope_reward_model"
            ).fetchall()
        )
        fallback = con.execute(
            "select avg(reward) from recsys_eval_staging.int_recsys_eval__ope_items where item_status = 'sample'"
        ).fetchone()[0]
        estimates_mart = con.execute(
            "select estimator, estimate from recsys_eval_marts.fct_ope_estimates where scope = 'global'"
        ).fetchall()
    finally:
        con.close()
    q_hat = np.array([model.get(f"a{b}", fallback) for b in range(N_ACTIONS)], dtype=float)
    return {
        "folder": folder,
        "truth": truth,
        "report": report,
        "q_hat": q_hat,
        "estimates_mart": dict(estimates_mart),
    }


def _ours(report: dict) -> dict[str, dict]:
    return {e["name"]: e for e in report["ope"]["estimators"]}


def test_obp_agrees_on_every_estimator(ope_run):
    python = _obp_python()
    truth, q_hat = ope_run["truth"], ope_run["q_hat"]
    group, action = truth["group"], truth["action"]
    npz = ope_run["folder"] / "logs.npz"
    np.savez(
        npz,
        reward=truth["reward"],
        action=action,
        pscore=LOGGING[group, action],
        action_dist=TARGET[group][:, :, None],
        q_hat=np.broadcast_to(q_hat, (N_ROUNDS, N_ACTIONS))[:, :, None].copy(),
        switch_lambda=SWITCH,
    )
    proc = subprocess.run(
        [str(python), str(REPO / "tests" / "python" / "obp_reference.py"), str(npz)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    assert theirs["obp_version"] == "0.5.7"
    ours = _ours(ope_run["report"])
    assert set(ours) == {"ips", "snips", "dr", "dm", "sndr", "switch_dr"}
    for name, entry in ours.items():
        assert entry["value"] == pytest.approx(theirs[name], abs=TOL), name
        # the mart written back holds the same numbers
        assert ope_run["estimates_mart"][name] == pytest.approx(entry["value"], abs=1e-15)
    # the check is not vacuous: the estimators differ from each other
    assert abs(ours["ips"]["value"] - ours["dm"]["value"]) > 1e-3


def test_hand_formulas_from_the_generated_rounds(ope_run):
    """Independent of obp and of the warehouse: the formulas on the generator's own arrays."""
    truth, q_hat = ope_run["truth"], ope_run["q_hat"]
    group, action, r = truth["group"], truth["action"], truth["reward"]
    w = TARGET[group, action] / LOGGING[group, action]
    d = (TARGET[group] * q_hat).sum(axis=1)
    m = q_hat[action]
    ours = _ours(ope_run["report"])
    assert ours["ips"]["value"] == pytest.approx(np.mean(w * r), abs=1e-12)
    assert ours["snips"]["value"] == pytest.approx(np.sum(w * r) / np.sum(w), abs=1e-12)
    assert ours["dr"]["value"] == pytest.approx(np.mean(d + w * (r - m)), abs=1e-12)
    assert ours["ips"]["std_error"] == pytest.approx(np.std(w * r, ddof=1) / np.sqrt(N_ROUNDS))
    # per segment: the same formulas on the group's rounds
    for g in range(3):
        mask = group == g
        seg = {
            e["name"]: e["value"]
            for e in ope_run["report"]["ope"]["by_segment"][f"group=g{g}"]["estimators"]
        }
        assert seg["ips"] == pytest.approx(np.mean(w[mask] * r[mask]), abs=1e-12)
        assert seg["dr"] == pytest.approx(
            np.mean(d[mask] + w[mask] * (r[mask] - m[mask])), abs=1e-12
        )


def test_intervals_cover_the_true_policy_value(ope_run):
    ours = _ours(ope_run["report"])
    logging_value = float(GROUP_P @ (LOGGING * CLICK).sum(axis=1))
    assert abs(TRUE_VALUE - logging_value) > 0.02  # the target policy really differs
    for name in ("ips", "snips", "dr", "sndr"):
        e = ours[name]
        assert e["ci"]["lower"] <= TRUE_VALUE <= e["ci"]["upper"], (name, e, TRUE_VALUE)
        assert abs(e["value"] - TRUE_VALUE) <= 3 * e["std_error"], (name, e, TRUE_VALUE)
        # the logging policy's value lies outside the interval: the test can fail
        assert not e["ci"]["lower"] <= logging_value <= e["ci"]["upper"], name


def test_engine_aggregates_equal_numpy_on_the_samples(ope_run):
    """What the CLI reads instead of the samples (int_recsys_eval__ope_group_sums, _block_sums) equals
    recsys_eval.ope.aggregates.from_samples on the samples pulled from the same run (fct_ope_samples
    in file order), and the report's numbers equal the per-sample numpy estimators on them."""
    from recsys_eval.modes import MARTS_SCHEMA, STAGING_SCHEMA
    from recsys_eval.ope import aggregates, plugin
    from recsys_eval.ope.estimators import bootstrap, estimate, grouped_estimates

    con = duckdb.connect(str(ope_run["folder"] / "run.duckdb"), read_only=True)
    try:
        engine, _ = aggregates.read_aggregates(con, STAGING_SCHEMA)
        s, codes, keys, clipped = plugin.read_samples(
            con, MARTS_SCHEMA, "item", True, STAGING_SCHEMA
        )
    finally:
        con.close()
    ref = aggregates.from_samples(s, codes, keys, clipped, SWITCH)
    assert list(engine.segments) == keys == ["group=g0", "group=g1", "group=g2"]
    for scope, ours, theirs in [("global", engine.overall, ref.overall)] + [
        (k, engine.segments[k], ref.segments[k]) for k in keys
    ]:
        for name in aggregates.GROUP_FIELDS:
            a, b = getattr(ours, name), getattr(theirs, name)
            # sum_sndr_shifted is 0 up to rounding: compare on the scale of its squares; squared
            # deviations of a constant term (DM per group) are 0 up to the centre's rounding²
            scale = (
                math.sqrt(ours.ss_sndr_shifted * ours.samples) if name == "sum_sndr_shifted" else 0
            )
            scale = max(scale, 1e-8 if name.startswith("ss_") else 0)
            assert abs(a - b) <= 1e-12 * max(abs(a), abs(b), scale), (scope, name, a, b)
    assert engine.block_sums.shape == ref.block_sums.shape == (N_ROUNDS, 6)
    np.testing.assert_allclose(engine.block_sums, ref.block_sums, rtol=1e-12, atol=1e-15)
    # the report (from the aggregates) against the per-sample numpy estimators
    ours = _ours(ope_run["report"])
    names = tuple(ours)
    for e in estimate(s, names, SWITCH):
        assert ours[e.name]["value"] == pytest.approx(e.value, rel=1e-12, abs=1e-15)
        assert ours[e.name]["std_error"] == pytest.approx(e.std_error, rel=1e-12)
    intervals = bootstrap(s, names, SWITCH, iterations=400, seed=11, ci_level=0.95)
    for name, ci in intervals.items():
        assert ours[name]["ci"]["lower"] == pytest.approx(ci.lower, rel=1e-12)
        assert ours[name]["ci"]["upper"] == pytest.approx(ci.upper, rel=1e-12)
    grouped = grouped_estimates(s, codes, len(keys), SWITCH)
    for code, key in enumerate(keys):
        seg = {e["name"]: e for e in ope_run["report"]["ope"]["by_segment"][key]["estimators"]}
        for name in names:
            assert seg[name]["value"] == pytest.approx(grouped[f"value_{name}"][code], rel=1e-12)
            assert seg[name]["std_error"] == pytest.approx(
                grouped[f"se_{name}"][code], rel=1e-12, abs=1e-15
            )
