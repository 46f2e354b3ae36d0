"""What a newcomer reads in the Markdown and HTML reports (issue 22): no label that contradicts
the verdict, no doubled words, counts as integers, fields a mode never reads left out with the
reason, nested blocks as tables instead of JSON, one name for the whole population, and why a
significant test can sit next to an interval that covers 0. Real reports of the bundled tiny data
(through the CLI), edited where a case needs data the tiny set does not have."""

from __future__ import annotations

import copy
import json
import re

import pytest
from render_reports import shared_reports

from recsys_eval.render import render_report
from recsys_eval.render.generic import GLOBAL
from recsys_eval.render.numbers import count


@pytest.fixture(scope="session")
def tiny_reports(tmp_path_factory):
    return shared_reports(tmp_path_factory)


def both(report: dict) -> tuple[str, str]:
    return render_report(report, "md"), render_report(report, "html")


def test_count_formatting():
    assert count(3) == "3" and count(3.0) == "3" and count(12345) == "12,345"
    assert count(1234567.0) == "1,234,567" and count(0.5) == "0.5000" and count(None) == ""


def test_experiment_summary_says_only_the_experiment_decision(tiny_reports):
    report = tiny_reports.load("experiment")
    assert report["summary"]["executive"]["decision"] == "not_configured"
    md, html = both(report)
    assert "not_configured" not in md and "not_configured" not in html
    verdict = report["experiment"]["decision"]["verdict"]
    assert f"- Experiment decision: {verdict} (" in md


def test_offline_summary_without_gates_says_what_it_means(tiny_reports):
    md, html = both(tiny_reports.load("offline"))
    assert "- Decision: none (no regression gates were configured)" in md.splitlines()
    assert "not_configured" not in md and "not_configured" not in html
    gated = render_report(tiny_reports.load("offline_baselined"), "md")
    assert "- Decision: pass (regression gates against the baseline)" in gated.splitlines()


def test_a_variant_named_control_is_named_once(tiny_reports):
    report = tiny_reports.load("experiment")
    decision = report["experiment"]["decision"]
    decision["control_variant"], decision["candidate_variant"] = "control", "treatment"
    md, html = both(report)
    assert "control control" not in md and "control control" not in html
    assert "> **Verdict: HOLD** - Candidate treatment vs control (playbook policy)" in md
    decision["control_variant"], decision["candidate_variant"] = "A", "candidate"
    assert "- Candidate vs control A (playbook policy)" in render_report(report, "md")


def test_guardrail_with_threshold_zero_is_not_configured(tiny_reports):
    report = tiny_reports.load("experiment")
    guard = report["experiment"]["decision"]["guardrails"]
    error = next(g for g in guard if g["metric"] == "error_rate")
    error.update(threshold=0, passed=True)
    md, html = both(report)
    assert "| error_rate | 0.0000 | 0 (not configured) | not configured |" in md
    assert ">not configured<" in html
    configured = next(g for g in guard if g["metric"] == "latency_p95_ms")
    assert f"| latency_p95_ms | {configured['value']:.4f} | " in md  # others keep yes / NO


def test_counts_are_integers_with_thousands_separators(tiny_reports):
    report = tiny_reports.load("experiment")
    md = render_report(report, "md")
    join = report["data_quality"]["join_integrity"]
    assert f"| assignments_count | {join['assignments_count']} |" in md
    assert f"| exposure_count | {join['exposure_count']} |" in md
    assert not re.search(r"\| \w+_count \| \d+\.\d{4} \|", md)
    report["experiment"]["variants"][0]["exposures"] = 1234567
    report["experiment"]["power"]["sample_size_per_variant"] = 14751
    md = render_report(report, "md")
    name = report["experiment"]["variants"][0]["variant"]
    assert f"| {name} | 1,234,567 | " in md
    assert "each variant needs 14,751 units" in md


def test_offline_leaves_out_the_assignment_fields_it_never_reads(tiny_reports):
    report = tiny_reports.load("offline")
    join = report["data_quality"]["join_integrity"]
    assert join["assignments_count"] == 0 and join["assignment_join_rate"] == 0  # in the JSON
    assert "assignments" in report["effective_config"]["dataset"]  # although supplied
    md, html = both(report)
    for text in (md, html):
        assert "assignment_join_rate 0" not in text and "| assignments_count |" not in text
        assert "offline mode does not read assignments" in text
    assert "The dataset lists assignments, but offline mode does not read assignments" in md
    # the experiment reads them: shown
    assert "| assignment_join_rate | 100.0% |" in render_report(
        tiny_reports.load("experiment"), "md"
    )


def test_git_commit_of_the_report_and_its_decision_agree(tiny_reports):
    path = tiny_reports.path("experiment")
    report = json.loads(path.read_text())
    decision = json.loads(path.with_name(path.name + ".decision.json").read_text())
    commit = report.get("git_commit")
    if not commit:
        pytest.skip("not run from a git checkout")
    assert decision["versions"]["git_commit"] == commit
    assert report["experiment"]["decision"]["versions"]["git_commit"] == commit
    md, html = both(report)
    assert f"| versions.git_commit | {commit} |" in md
    assert html.count(commit) == 2  # the decision's versions and the run details


USER_LEVEL = {
    "users": 12345,
    "control_users": 2000,
    "p_value": 0.0123,
    "adjusted_p_value": 0.0246,
    "significant": True,
    "absolute_lift_ci": {"lower": -0.1, "upper": 0.25, "level": 0.95},
    "design_effect": 1.75,
}


def test_user_level_blocks_are_a_table_not_json(tiny_reports):
    report = tiny_reports.load("experiment")
    tests = report["experiment"]["significance"]
    for t in tests:
        t["user_level"] = copy.deepcopy(USER_LEVEL)
    md, html = both(report)
    assert "user_level" not in md and '{"' not in md and "&#34;users&#34;" not in html
    assert "**Per user: the same tests with the variance at the randomization unit**" in md
    first = tests[0]
    row = (
        f"| {GLOBAL} | {first['metric']} | {first['variant']} vs {first['control_variant']} | "
        "12,345 | 2,000 | [-0.1000, +0.2500] (0.95) | 0.0123 | 0.0246 | yes | 1.75 |"
    )
    assert row in md


def test_interleaving_segments_are_tables_not_json(tiny_reports):
    report = tiny_reports.load("interleaving")
    il = report["interleaving"]
    whole = {k: v for k, v in il.items() if k not in ("algorithm", "ranker_a", "ranker_b")}
    il["by_segment"] = {"surface=home": copy.deepcopy(whole), "surface=pdp": copy.deepcopy(whole)}
    md, html = both(report)
    assert "[{" not in md and '{"' not in md and "[{&#34;" not in html
    assert "**Health checks by segment**" in md
    for check in il["health"]["checks"]:
        passed = "yes" if check["passed"] else "NO"
        assert (
            f"| surface=pdp | {check['name']} | {check['value']:.4f} | "
            f"{check['threshold']:.4f} | {passed} |"
        ) in md
    pref = il["preference"]
    row = next(line for line in md.splitlines() if line.startswith("| surface=home | "))
    assert f"| {pref['users_engaged']} | {pref['share_a']:.4f} | [" in row


def test_the_whole_population_has_one_name(tiny_reports):
    assert GLOBAL == "__all__"  # the reference's segment key without slice keys (README)
    for mode in ("experiment", "aa-check"):
        md, html = both(tiny_reports.load(mode))
        assert "| __all__ |" in md and "| all |" not in md
        assert ">__all__<" in html and ">all<" not in html


def test_significance_says_why_a_test_and_an_interval_can_disagree(tiny_reports):
    report = tiny_reports.load("experiment")
    md = render_report(report, "md")
    assert "the reference policy's decision uses (the playbook reads the per-user tests" in md
    assert "the intervals are separate estimates" in md
    test = report["experiment"]["significance"][0]
    test.update(
        significant=True,
        p_value=0.0015,
        adjusted_p_value=0.003,
        relative_lift_ci={"lower": -2.06, "upper": 10.8, "level": 0.95},
    )
    md = render_report(report, "md")
    name = f"{test['metric']} {test['variant']} vs {test['control_variant']} ({GLOBAL})"
    assert f"{name}: relative lift interval covers 0 though the test is significant" in md
