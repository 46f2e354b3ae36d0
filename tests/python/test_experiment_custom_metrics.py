"""Custom experiment metrics (issue 20 item 4, experiment.metrics), checked against independent
computations from the generated rows (numpy, scipy, statsmodels):

- per-user delta method of custom any / count / sum (capped) / mean / ratio metrics, per request and
  per user: arm values, standard errors, p-values (statsmodels cluster-robust OLS for per-request
  ratios, numpy for the ratio-of-sums delta method), BH over the whole family (statsmodels);
- a custom metric identical to a built-in (any click per request = click_share) gives its numbers;
- caps: numpy percentile (linear) / clip of the pooled request or user values;
- CUPED of a custom per-request metric against an independent OLS theta;
- a custom guardrail that fails holds the playbook decision, with its numbers in the reason;
- config validation (errors name the key) and hostile names staying literals.
One generated dataset, built once (module scope).
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import statsmodels.api as sm
from dbt_helpers import run_dbt
from scipy import stats
from statsmodels.stats.multitest import multipletests
from test_experiment_models import load_planted, read_rows

from recsys_eval import dbt_vars, experiment_custom_metrics
from recsys_eval.errors import ConfigError
from recsys_eval.experiment_report import experiment_vars

TENANTS = ["t1", "t2"]
# a label is free text: it must reach SQL as a quoted literal and never run as a template
LABEL = "it's {{ run_query('create table pwn_label as select 1') }} $HOME \\ click value"
# experiment.metrics as a user writes it (YAML form); the dbt vars come from experiment_vars, as the CLI's
CUSTOM = [
    {"name": "any_click", "type": "any", "event_type": "click", "role": "primary"},
    {"name": "clicks_per_user", "type": "count", "event_type": "click", "unit": "user"},
    {"name": "converted_users", "type": "any", "event_type": "conversion", "unit": "user"},
    {"name": "revenue_capped", "type": "sum", "event_type": "conversion", "value": "value",
     "cap": {"percentile": 0.99}},
    {"name": "revenue_user_capped", "type": "sum", "event_type": "conversion", "unit": "user",
     "cap": {"value": 12.0}},
    {"name": "order_value", "type": "mean", "event_type": "conversion"},
    {"name": "engagement", "type": "count", "event_types": ["click", "conversion"]},
    {"name": "conversions_per_click", "type": "ratio", "numerator": "converted_count",
     "denominator": "click_count_custom"},
    {"name": "converted_count", "type": "count", "event_type": "conversion"},
    {"name": "click_count_custom", "type": "count", "event_type": "click"},
    {"name": "click_value_sum", "type": "sum", "event_type": "click", "role": "guardrail",
     "margin": 0.001, "label": LABEL},
]  # fmt: skip
EXP = {
    "experiment_id": "exp_custom",
    "control_variant": "A",
    "slice_keys": ["tenant"],
    "metrics": CUSTOM,
    "cuped": {"enabled": True, "covariate_key": "pre"},
    "multiple_comparisons": {"method": "fdr_bh", "alpha": 0.05},
    "decision": {"enabled": True},
}
VARS = {
    "recsys_eval__source": "raw",
    "recsys_eval__using_assignments": True,
    "recsys_eval__using_rankers": False,
    "recsys_eval__experiment_id": "exp_custom",
    "recsys_eval__experiment_slice_keys": ["tenant"],
    "recsys_eval__min_join_rate": 0.0,
    **experiment_vars(EXP),
}
MODELS = ["+fct_experiment_metric_tests", "+fct_experiment_cuped_tests", "+fct_experiment_decision"]


def generate(seed: int = 3) -> dict:
    """600 users in A / B, 1-8 requests each (some 15-30), clicks with a click value of 0.1 in A and
    0.05 in B (a planted drop of the click_value_sum guardrail) and conversions with heavy-tailed
    values; a pre-period covariate correlated with the user's click propensity."""
    rng = random.Random(seed)
    exposures, outcomes, assignments, cases = [], [], [], []
    number = 0
    for user_index in range(600):
        user_id = f"u{user_index:04d}"
        variant = "A" if rng.random() < 0.5 else "B"
        tenant = TENANTS[user_index % 2]
        propensity = 0.05 + 0.4 * rng.random() ** 2
        requests = rng.randint(15, 30) if rng.random() < 0.08 else rng.randint(1, 8)
        for _ in range(requests):
            request_id = f"r{number:06d}"
            number += 1
            context = {"tenant": tenant, "pre": repr(round(propensity + rng.gauss(0, 0.05), 6))}
            second = number % 3600
            ts = f"2025-03-01 00:{second // 60:02d}:{second % 60:02d}"
            items = [{"item_id": f"i{rng.randrange(20)}", "rank": 1}]
            exposures.append(
                [request_id, user_id, ts, json.dumps(items), json.dumps(context), 100.0, False]
            )
            p = min(1.0, propensity * (1.6 if variant == "B" else 1.0))
            clicks = (2 if rng.random() < 0.25 else 1) if rng.random() < p else 0
            click_values, conversion_values = [], []
            for _ in range(clicks):
                value = 0.1 if variant == "A" else 0.05
                outcomes.append([request_id, "click", value, ts])
                click_values.append(value)
                if rng.random() < 0.3:
                    value = round(rng.lognormvariate(1.5, 1.0), 2)
                    outcomes.append([request_id, "conversion", value, ts])
                    conversion_values.append(value)
            assignments.append(["exp_custom", variant, request_id, tenant])
            cases.append({
                "user_id": user_id, "variant": variant, "tenant": tenant,
                "clicks": clicks, "conversions": len(conversion_values),
                "revenue": sum(conversion_values), "click_value": sum(click_values),
                "pre": float(context["pre"]),
            })  # fmt: skip
    return {
        "exposures": exposures,
        "outcomes": outcomes,
        "assignments": assignments,
        "cases": cases,
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    work_dir = tmp_path_factory.mktemp("experiment_custom_metrics")
    data = generate()
    database = work_dir / "custom.duckdb"
    load_planted(database, data, work_dir)
    with mock.patch.dict(os.environ, {"DBT_INDIRECT_SELECTION": "cautious"}):
        result, _ = run_dbt(
            work_dir,
            "custom",
            "build",
            dbt_vars.encode(VARS),
            database,
            MODELS,
            extra=["--exclude", "test_type:unit"],
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    CASES_ALL[:] = data["cases"]
    return {"database": database, **data}


# -- independent computation from the generated rows ---------------------------------------------


def request_values(cases: list[dict]) -> dict[str, np.ndarray]:
    """Each base metric's per-request value (before a user-level cap), and the request caps."""
    clicks = np.array([c["clicks"] for c in cases], dtype=float)
    conversions = np.array([c["conversions"] for c in cases], dtype=float)
    revenue = np.array([c["revenue"] for c in cases], dtype=float)
    click_value = np.array([c["click_value"] for c in cases], dtype=float)
    revenue_cap = np.percentile(revenue, 99)  # pooled over every request of both arms, zeros in
    return {
        "any_click": (clicks > 0).astype(float),
        "clicks_per_user": clicks,
        "converted_users": conversions,
        "revenue_capped": np.minimum(revenue, revenue_cap),
        "revenue_user_capped": revenue,
        "order_value": revenue,
        "engagement": clicks + conversions,
        "converted_count": conversions,
        "click_count_custom": clicks,
        "click_value_sum": click_value,
    }


def unit_table(cases: list[dict], metric: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(variant, user) -> (numerator, denominator) of `metric` over `cases`, as documented."""
    if metric == "conversions_per_click":
        num, den = unit_table(cases, "converted_count"), unit_table(cases, "click_count_custom")
        return {key: (num[key][0], den[key][0]) for key in num}
    values = request_values(CASES_ALL)  # caps come from the whole population
    index = {id(c): i for i, c in enumerate(CASES_ALL)}
    sums: dict[tuple[str, str], list[float]] = {}
    for case in cases:
        i = index[id(case)]
        entry = sums.setdefault((case["variant"], case["user_id"]), [0.0, 0.0, 0.0])
        entry[0] += values[metric][i]
        entry[1] += 1
        entry[2] += case["conversions"]
    out = {}
    for key, (total, requests, conversions) in sums.items():
        if metric == "clicks_per_user":
            out[key] = (total, 1.0)
        elif metric == "converted_users":
            out[key] = (float(total > 0), 1.0)
        elif metric == "revenue_user_capped":
            out[key] = (min(total, 12.0), 1.0)
        elif metric == "order_value":
            out[key] = (total, conversions)
        else:
            out[key] = (total, requests)
    return out


def arm(units: dict, variant: str) -> tuple[float, float, int]:
    """The ratio of sums and its delta-method variance sum((n - R d)^2) / (sum d)^2, and the units."""
    pairs = np.array([v for (var, _), v in units.items() if var == variant])
    num, den = pairs[:, 0], pairs[:, 1]
    ratio = num.sum() / den.sum()
    return ratio, float(((num - ratio * den) ** 2).sum() / den.sum() ** 2), len(pairs)


CASES_ALL: list[dict] = []


def population(cases: list[dict], scope: str, segment_key: str) -> list[dict]:
    return (
        cases if scope == "global" else [c for c in cases if f"tenant={c['tenant']}" == segment_key]
    )


def metric_tests(built) -> list[dict]:
    return read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_metric_tests order by test_position",
    )


def test_custom_metrics_match_the_delta_method_by_hand(built):
    rows = metric_tests(built)
    custom = [r for r in rows if r["metric"] in {m["name"] for m in CUSTOM}]
    assert len(custom) == len(CUSTOM) * 3  # global and two segments, one variant
    for row in custom:
        units = unit_table(
            population(built["cases"], row["scope"], row["segment_key"]), row["metric"]
        )
        r1, v1, n1 = arm(units, "B")
        r0, v0, n0 = arm(units, "A")
        se = math.sqrt(v1 + v0)
        assert (row["user_count"], row["control_user_count"]) == (n1, n0)
        assert math.isclose(row["variant_value"], r1, rel_tol=1e-12), row["metric"]
        assert math.isclose(row["control_value"], r0, rel_tol=1e-12), row["metric"]
        assert math.isclose(row["absolute_lift_standard_error"], se, rel_tol=1e-9), row["metric"]
        relative_se = math.sqrt(v1 / r0**2 + r1**2 * v0 / r0**4)
        assert math.isclose(row["relative_lift_standard_error"], relative_se, rel_tol=1e-9)
        p = 2 * stats.norm.sf(abs(r1 - r0) / se)
        assert math.isclose(row["p_value"], p, rel_tol=1e-9, abs_tol=1e-300), row["metric"]
    # one family over the built-in and custom tests: BH over every p-value (statsmodels)
    tested = [r for r in rows if r["p_value"] is not None]
    _, adjusted, _, _ = multipletests([r["p_value"] for r in tested], method="fdr_bh")
    for row, expected in zip(tested, adjusted, strict=True):
        assert math.isclose(row["adjusted_p_value"], expected, rel_tol=1e-9)
        assert row["family_size"] == len(tested)
    # the per-request sum against statsmodels' cluster-robust OLS (groups = users, CR0)
    (row,) = [r for r in custom if (r["scope"], r["metric"]) == ("global", "engagement")]
    y = np.array([c["clicks"] + c["conversions"] for c in built["cases"]], dtype=float)
    treated = np.array([c["variant"] == "B" for c in built["cases"]], dtype=float)
    groups = np.unique([c["user_id"] for c in built["cases"]], return_inverse=True)[1]
    fit = sm.OLS(y, sm.add_constant(treated)).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    assert math.isclose(row["absolute_lift"], fit.params[1], rel_tol=1e-9)
    assert math.isclose(row["absolute_lift_standard_error"], fit.bse[1], rel_tol=1e-9)
    assert math.isclose(row["p_value"], fit.pvalues[1], rel_tol=1e-9)


def test_a_custom_copy_of_a_built_in_gives_its_numbers(built):
    rows = metric_tests(built)
    by_key = {(r["scope"], r["segment_key"], r["metric"]): r for r in rows}
    skip = {
        "metric",
        "metric_position",
        "metric_label",
        "metric_kind",
        "test_position",
        "is_primary",
    }
    for custom, builtin in [
        ("any_click", "click_share"),
        ("click_count_custom", "ctr"),
        ("converted_count", "conversion_rate"),
    ]:
        for scope, segment, metric in list(by_key):
            if metric != builtin:
                continue
            mine, theirs = by_key[(scope, segment, custom)], by_key[(scope, segment, builtin)]
            for column in theirs.keys() - skip:
                assert mine[column] == theirs[column], (custom, scope, segment, column)


def test_caps_are_numpy_percentile_and_clip(built):
    revenue = np.array([c["revenue"] for c in built["cases"]])
    (cap,) = read_rows(
        built["database"],
        "select distinct request_cap from recsys_eval_staging.int_recsys_eval__experiment_custom_requests "
        "where metric = 'revenue_capped'",
    )
    assert math.isclose(cap["request_cap"], np.percentile(revenue, 99), rel_tol=1e-12)
    assert (revenue > cap["request_cap"]).sum() > 0  # the cap bites
    # the fixed user cap: the capped per-user mean differs from the uncapped one
    users: dict[tuple[str, str], float] = {}
    for c in built["cases"]:
        users[(c["variant"], c["user_id"])] = (
            users.get((c["variant"], c["user_id"]), 0.0) + c["revenue"]
        )
    (row,) = [
        r
        for r in metric_tests(built)
        if (r["scope"], r["metric"]) == ("global", "revenue_user_capped")
    ]
    control = [v for (variant, _), v in users.items() if variant == "A"]
    assert math.isclose(row["control_value"], np.clip(control, None, 12.0).mean(), rel_tol=1e-12)
    assert max(control) > 12.0


def test_cuped_of_custom_metrics_against_an_ols_theta(built):
    rows = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_cuped_tests",
    )
    values = request_values(built["cases"])
    x = np.array([c["pre"] for c in built["cases"]])
    cuped_metrics = ["any_click", "revenue_capped", "engagement", "converted_count",
                     "click_count_custom", "click_value_sum"]  # fmt: skip
    assert {r["metric"] for r in rows} == {"click_share", "conversion_share", *cuped_metrics}
    for row in rows:
        if row["metric"] not in cuped_metrics:
            continue
        y = values[row["metric"]]
        theta = sm.OLS(y, sm.add_constant(x)).fit().params[1]  # OLS slope = cov(X, Y) / var(X)
        assert math.isclose(row["cuped_theta"], theta, rel_tol=1e-9), row["metric"]
        adjusted = y - theta * (x - x.mean())
        mask = np.array([
            row["scope"] == "global" or f"tenant={c['tenant']}" == row["segment_key"] for c in built["cases"]
        ])  # fmt: skip
        variant = np.array([c["variant"] for c in built["cases"]])
        b, a = adjusted[mask & (variant == "B")], adjusted[mask & (variant == "A")]
        se = math.sqrt(b.var() / len(b) + a.var() / len(a))
        assert math.isclose(
            row["cuped_absolute_lift"], b.mean() - a.mean(), rel_tol=1e-9, abs_tol=1e-12
        )
        assert math.isclose(row["cuped_absolute_lift_standard_error"], se, rel_tol=1e-9)
        p = 2 * stats.norm.sf(abs(b.mean() - a.mean()) / se)
        assert math.isclose(row["cuped_p_value"], p, rel_tol=1e-9, abs_tol=1e-300)
    share = {(r["scope"], r["segment_key"]): r for r in rows if r["metric"] == "click_share"}
    for row in rows:
        if row["metric"] == "any_click":
            twin = share[(row["scope"], row["segment_key"])]
            assert row["cuped_absolute_lift"] == pytest.approx(
                twin["cuped_absolute_lift"], rel=1e-12
            )
            assert row["cuped_theta"] == pytest.approx(twin["cuped_theta"], rel=1e-12)


def test_a_failing_custom_guardrail_holds_the_decision_with_its_numbers(built):
    (test,) = read_rows(
        built["database"],
        "select * from recsys_eval_marts.fct_experiment_guardrail_tests where guardrail = 'click_value_sum'",
    )
    units = unit_table(built["cases"], "click_value_sum")
    m1, v1, _ = arm(units, "B")
    m0, v0, _ = arm(units, "A")
    # higher is better, absolute margin 0.001: H0 m1 <= m0 - 0.001, i.e. m0 - m1 - 0.001 >= 0
    bound = m0 - m1 - 0.001
    p = stats.norm.cdf(bound / math.sqrt(v1 + v0))
    assert math.isclose(test["bound_distance"], bound, rel_tol=1e-9)
    assert math.isclose(test["p_value"], p, rel_tol=1e-9)
    assert test["is_non_inferior"] is False and test["test_status"] == "ok"
    (decision,) = read_rows(
        built["database"], "select * from recsys_eval_marts.fct_experiment_decision"
    )
    assert decision["verdict"] == "hold", decision["reason"]
    assert decision["decision_rule"] == "non_inferiority_not_shown"
    expected = (
        f"guardrail non-inferiority not shown: click_value_sum (control {m0:.4g}, candidate {m1:.4g}; "
        f"margin -0.001 absolute; p={p:.3g} >= alpha 0.05)"
    )
    assert expected in decision["reason"], decision["reason"]
    reasons = json.loads(decision["reasons_json"])
    assert reasons[0] == expected
    assert reasons[1].startswith("primary metric significantly better: any_click (control ")


def test_the_report_carries_the_custom_metrics(built):
    from recsys_eval.experiment_report import EXPERIMENT_MARTS, decide, experiment_section
    from recsys_eval.render import render_report

    marts = {}
    for name in EXPERIMENT_MARTS:
        schema = "recsys_eval_staging" if name.startswith("int_") else "recsys_eval_marts"
        if name in ("fct_experiment_over_time", "fct_experiment_sequential_srm"):
            continue
        marts[name] = read_rows(built["database"], f"select * from {schema}.{name}")
    section = experiment_section(marts, EXP)
    tests = section["readout"]["metric_tests"]
    labels = {t["metric"]: t["label"] for t in tests}
    assert labels["click_value_sum"] == LABEL  # carried as text, never rendered
    assert {t["metric"] for t in tests} >= {m["name"] for m in CUSTOM}
    assert [m["name"] for m in section["custom_metrics"]] == [m["name"] for m in CUSTOM]
    assert section["custom_metrics"][0]["defaults"] == ["unit", "higher_is_better", "label"]
    assert "click_value_sum" in {t["guardrail"] for t in section["guardrails"]["non_inferiority"]}
    decision = decide(
        marts["fct_experiment_decision"][0], EXP, marts["fct_experiment_metric_tests"]
    )
    (primary,) = decision["primary_metrics"]
    (any_click,) = [t for t in tests if t["metric"] == "any_click" and "segment" not in t]
    assert primary["metric"] == "any_click"
    assert math.isclose(primary["delta"], any_click["variant_value"] - any_click["control_value"])
    section["decision"] = decision
    report = {"mode": "experiment", "experiment": section}
    markdown = render_report(report, "md")
    assert "Custom metrics" in markdown and "conversions_per_click" in markdown
    html = render_report(report, "html")
    assert "{{ run_query" in html.replace("&#x27;", "'").replace("&#39;", "'")  # shown as text
    assert "<script" not in html.split("<body", 1)[-1] or "it&#x27;s" in html or "it&#39;s" in html
    with duckdb_connect(built["database"]) as connection:
        tables = {
            t
            for (t,) in connection.execute(
                "select table_name from information_schema.tables"
            ).fetchall()
        }
    assert "pwn_label" not in tables


def duckdb_connect(database: Path):
    import duckdb

    return duckdb.connect(str(database), read_only=True)


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "key", "text"),
    [
        ({"name": "Bad", "type": "any", "event_type": "click"}, "metrics[0].name", "not a valid metric name"),
        ({"name": "x'; drop table t; --", "type": "any", "event_type": "click"}, "metrics[0].name", "valid"),
        ({"name": "{{ run_query('x') }}", "type": "any", "event_type": "click"}, "metrics[0].name", "valid"),
        ({"name": "ctr", "type": "any", "event_type": "click"}, "metrics[0].name", "built-in"),
        ({"name": "error_rate", "type": "any", "event_type": "click"}, "metrics[0].name", "built-in"),
        ({"name": "a" * 64, "type": "any", "event_type": "click"}, "metrics[0].name", "63"),
        ({"name": "m", "type": "median", "event_type": "click"}, "metrics[0].type", "any, count"),
        ({"name": "m", "type": "any", "event_type": "purchase"}, "metrics[0].event_type", "outcomes.event_types"),
        ({"name": "m", "type": "any"}, "metrics[0].event_type", "required"),
        ({"name": "m", "type": "any", "event_type": "click", "cap": {"value": 3.0}}, "metrics[0].cap", "apply"),
        ({"name": "m", "type": "sum", "event_type": "click", "cap": {"percentile": 1.5}},
         "metrics[0].cap.percentile", "(0, 1)"),
        ({"name": "m", "type": "sum", "event_type": "click", "cap": {"percentile": 0.9, "value": 3.0}},
         "metrics[0].cap", "exactly one"),
        ({"name": "m", "type": "count", "event_type": "click", "unit": "session"}, "metrics[0].unit", "request or user"),
        ({"name": "m", "type": "mean", "event_type": "click", "unit": "user"}, "metrics[0].unit", "apply"),
        ({"name": "m", "type": "ratio", "numerator": "x", "denominator": "y"}, "metrics[0].numerator", "custom"),
        ({"name": "m", "type": "any", "event_type": "click", "role": "guardrail"}, "metrics[0].margin", "required"),
        ({"name": "m", "type": "any", "event_type": "click", "margin": 0.1}, "metrics[0].margin", "guardrail"),
        ({"name": "m", "type": "sum", "event_type": "click", "value": "price"}, "metrics[0].value", "value"),
    ],
)  # fmt: skip
def test_bad_custom_metrics_are_refused_naming_the_key(metric, key, text):
    with pytest.raises(ConfigError) as error:
        experiment_custom_metrics.validate({"metrics": [metric]}, "eval.yaml")
    message = str(error.value)
    assert f"eval.yaml: experiment.{key}" in message and text in message, message


def test_a_name_declared_twice_and_a_ratio_of_a_ratio_are_refused():
    twice = [{"name": "m", "type": "any", "event_type": "click"}] * 2
    with pytest.raises(ConfigError, match=r"metrics\[1\].name: 'm' is declared twice"):
        experiment_custom_metrics.validate({"metrics": twice}, "eval.yaml")
    nested = [
        {"name": "a", "type": "count", "event_type": "click"},
        {"name": "r", "type": "ratio", "numerator": "a", "denominator": "a"},
        {"name": "rr", "type": "ratio", "numerator": "r", "denominator": "a"},
    ]
    with pytest.raises(
        ConfigError, match=r"metrics\[2\].numerator: 'r' must name a custom metric of type"
    ):
        experiment_custom_metrics.validate({"metrics": nested}, "eval.yaml")


def test_the_config_file_accepts_the_block_and_the_vars_carry_it(tmp_path):
    from conftest import EXAMPLES

    from recsys_eval.config import load_run_config

    eval_file = tmp_path / "eval.yaml"
    eval_file.write_text(json.dumps({"mode": "experiment", "experiment": {"metrics": CUSTOM[:4]}}))
    loaded = load_run_config(EXAMPLES.parent / "configs" / "dataset.tiny.yaml", eval_file)
    var = experiment_vars(loaded.eval["experiment"])["recsys_eval__experiment_custom_metrics"]
    assert [m["name"] for m in var] == [
        "any_click",
        "clicks_per_user",
        "converted_users",
        "revenue_capped",
    ]
    assert var[3]["cap_percentile"] == 0.99 and var[3]["unit"] == "request"
    assert experiment_vars(loaded.eval["experiment"])[
        "recsys_eval__experiment_decision_primary_metrics"
    ] == ["any_click"]
