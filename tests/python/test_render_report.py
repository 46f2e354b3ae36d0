"""Markdown and HTML reports (recsys_eval.render) and the report JSON they read.

Real reports of the bundled tiny data (every mode, through the CLI) are rendered and the numbers
in the output are checked against hand-derived values (two-proportion z test, chi-square SRM, the
reference's offline metrics of §11) and the reference's golden OPE / interleaving reports. Also:
byte-identical renders, byte-identical JSON across two runs (apart from run_id / created_at),
schema validity of report.v1 and decision.v1/v2, escaping of hostile strings, unknown fields
kept, the `recsys-eval render` sub-command and `run --output-format`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import stat
import subprocess
import sys

import jsonschema
import pytest
from render_reports import REPO, TinyReports, cli, shared_reports

from recsys_eval.commands import render as render_cmd
from recsys_eval.errors import RecsysEvalError
from recsys_eval.render import render_report
from recsys_eval.render.numbers import fixed, interval, p_value, signed

SCHEMAS = REPO / "schemas"


@pytest.fixture(scope="session")
def tiny_reports(tmp_path_factory) -> TinyReports:
    return shared_reports(tmp_path_factory)


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def phi_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


# -- number formatting ---------------------------------------------------------------------------


def test_number_formatting_is_fixed_and_never_negative_zero():
    assert fixed(0.5, 4) == "0.5000"
    assert fixed(1, 6) == "1.000000"  # the report writes 1.0 as 1: still a metric
    assert fixed(-0.00001, 4) == "0.0000"
    assert signed(0.25) == "+0.2500" and signed(-0.25) == "-0.2500" and signed(0.0) == "0.0000"
    assert p_value(2.15e-17) == "2.15e-17" and p_value(0.38647) == "0.3865"
    assert interval({"lower": 0, "upper": 0.3333333, "level": 0.95}) == "[0.0000, 0.3333] (0.95)"
    assert (
        interval({"lower": 0, "upper": 1, "level": 0.95, "method": "bootstrap", "replicates": 200})
        == "[0.0000, 1.0000] (0.95) bootstrap, 200 replicates"
    )


# -- experiment ---------------------------------------------------------------------------------


def test_experiment_markdown_shows_verdict_first_then_evidence(tiny_reports):
    report = tiny_reports.load("experiment")
    md = render_report(report, "md")
    lines = md.splitlines()
    # the reference's header (§8.3)
    assert lines[0] == "# Recsys Eval Report"
    assert f"- Run ID: {report['run_id']}" in lines
    assert "- Mode: experiment" in lines and "- Cases Evaluated: 3" in lines
    # the verdict and why before any section
    verdict = lines.index("> **Verdict: HOLD** - Candidate B vs control A (playbook policy)")
    assert verdict < lines.index("## Executive Summary")
    assert "> - primary metrics not significantly better beyond the minimum effect" in lines
    # healthy joins (outcome and assignment join rates 1): no join warning in the banner; the
    # exposure join rate 2/3 is a click-through-like rate, not a data problem
    assert not [line for line in lines if line.startswith("> - ") and "join_rate" in line]
    # the reference's tables with its decimals: A has 2 exposures, 1 click -> ctr 0.5; B 1 exposure,
    # 1 conversion of value 10; A's throughput 2 requests / 120 s
    assert "| A | 2 | 0.5000 | 0.0000 | 0.0000 | 0.0167 |" in lines
    assert "| B | 1 | 0.0000 | 1.0000 | 10.0000 | 0.0000 |" in lines
    assert "| B | 220.00 | 0.0000 | 0.0000 | yes |" in lines  # guardrails, latency 2 decimals
    # significance: two-proportion z test of ctr B (0/1) vs A (1/2), pooled 1/3
    p_ctr = phi_two_sided((0 - 0.5) / math.sqrt(1 / 3 * 2 / 3 * (1 / 2 + 1 / 1)))
    assert abs(p_ctr - 0.3864762307712327) < 1e-12
    row = next(line for line in lines if line.startswith("| __all__ | ctr (primary) | B vs A |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "-0.5000" and cells[7] == f"{p_ctr:.4f}"
    assert cells[8] == f"{min(1.0, 2 * p_ctr):.4f} (holm)"  # Holm over the 2 global tests
    # SRM: observed A 2, B 1 against 1.5 each: chi-square 1/3, df 1
    chi2 = (2 - 1.5) ** 2 / 1.5 + (1 - 1.5) ** 2 / 1.5
    p_srm = math.erfc(math.sqrt(chi2 / 2))
    assert f"| __all__ | A | 2 | 1.50 | 66.7% | 50.0% | {p_srm:.4f} | no |" in lines
    # power (Fleiss): n = (z_a sqrt(2 pbar qbar) + z_b sqrt(p0 q0 + p1 q1))^2 / mde^2, 0.10 -> 0.11
    z_a, z_b, pbar = 1.959963984540054, 0.8416212335729143, 0.105
    root = z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(0.1 * 0.9 + 0.11 * 0.89)
    n = math.ceil(root**2 / 0.01**2)
    assert n == 14751
    assert f"each variant needs {n:,} units" in md  # a count: thousands separators
    for title in (
        "## Decision",
        "## Significance and Lifts",
        "## Metrics by Segment",
        "## Sample Ratio Mismatch",
        "## CUPED Variance Reduction",
        "## Power Analysis",
        "## Data Quality and Join Health",
        "### Guardrails",
    ):
        assert title in lines, title
    assert "| exposure | 3 | 1 | 33.3% |" in lines  # completeness: 1 of 3 exposures incomplete


def test_experiment_html_has_verdict_charts_and_no_external_resources(tiny_reports):
    report = tiny_reports.load("experiment")
    html = render_report(report, "html")
    assert html.startswith("<!DOCTYPE html>")
    verdict = html.index('id="verdict"')
    assert html.index(">HOLD<") > verdict and html.index(">HOLD<") < html.index("<main>")
    # forest plots (ctr, conversion_rate), metrics by segment, SRM observed vs expected, and the
    # lifts over time (fixed-horizon inside always-valid bands)
    kinds = re.findall(r'<figure class="chart" data-kind="(\w+)">', html)
    assert kinds == ["forest", "forest", "grouped_bars", "grouped_bars", "over_time"]
    assert html.count("<svg ") == 5
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched


def test_experiment_decision_and_report_validate(tiny_reports):
    path = tiny_reports.path("experiment")
    report = json.loads(path.read_text())
    jsonschema.Draft7Validator(schema("report.v1")).validate(report)
    decision = json.loads(path.with_name(path.name + ".decision.json").read_text())
    jsonschema.Draft7Validator(schema("decision.v1")).validate(decision)
    jsonschema.Draft7Validator(schema("decision.v2")).validate(decision)


def test_two_runs_give_byte_identical_json_apart_from_run_id_and_created_at(tiny_reports):
    first = tiny_reports.path("experiment").read_text()
    second = tiny_reports.path("experiment_again").read_text()

    def strip(text: str) -> str:
        text = re.sub(r'^  "timings": \{\n(?:    .*\n)*  \},?\n', "", text, flags=re.M)
        return re.sub(r'^  "(run_id|created_at)": .*$', "", text, flags=re.M)

    assert '"timings"' in first and '"timings"' not in strip(first)

    assert strip(first) == strip(second)
    assert first.endswith("}\n") and '"binary_version"' in first
    # decision artifacts too
    dec = tiny_reports.path("experiment")
    again = tiny_reports.path("experiment_again")
    assert (
        dec.with_name(dec.name + ".decision.json").read_bytes()
        == again.with_name(again.name + ".decision.json").read_bytes()
    )


def test_renders_are_byte_identical_in_process_and_across_processes(tiny_reports):
    path = tiny_reports.path("experiment")
    report = json.loads(path.read_text())
    assert render_report(report, "html") == render_report(copy.deepcopy(report), "html")
    assert render_report(report, "md") == render_report(report, "markdown")
    code = (
        "import json, sys; from recsys_eval.render import render_report; "
        "sys.stdout.write(render_report(json.load(open(sys.argv[1])), 'html'))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert other.stdout == render_report(report, "html")


# -- offline ------------------------------------------------------------------------------------

# reference §11 (tiny data, k = 3): hand-derived offline metrics
OFFLINE_AT_3 = {
    "precision@3": 2 / 9,
    "recall@3": 2 / 3,
    "map@3": 4 / 9,
    "ndcg@3": 0.5,
    "hitrate@3": 2 / 3,
    "mrr@3": 4 / 9,
    "coverage@3": 1.0,
    "novelty@3": 1.9182958340544893,
    "diversity@3": 0.9591479170272447,
}


def test_offline_markdown_metrics_segments_baseline_and_gates(tiny_reports):
    report = tiny_reports.load("offline_baselined")
    md = render_report(report, "md")
    lines = md.splitlines()
    assert "> **Verdict: PASS** - All 1 regression gate(s) against the baseline passed." in lines
    for name, value in OFFLINE_AT_3.items():
        assert any(line.startswith(f"| {name} | {value:.6f} |") for line in lines), name
    # bootstrap interval cell: [lower, upper] (level) with 4/4/2 decimals
    assert "| precision@3 | 0.222222 | [0.0000, 0.3333] (0.95) |" in lines
    assert "| ndcg@3 | 0.010000 | 0.000000 | yes |" in lines  # the gate: same data, delta 0
    assert "- ndcg@3: 0.500000" in lines  # highlights with 6 decimals
    assert "- coverage@3: 0.000000 (before 1.000000, after 1.000000)" in lines
    # segment keys contain '|': escaped so the table keeps its columns
    seg_row = next(line for line in lines if line.startswith("| surface=home\\|tenant=t1 |"))
    assert seg_row.count(" | ") == len(OFFLINE_AT_3)
    assert "0.7500" in seg_row  # ndcg@3 of the home segment


def test_offline_html_charts(tiny_reports):
    html = render_report(tiny_reports.load("offline_baselined"), "html")
    kinds = re.findall(r'<figure class="chart" data-kind="(\w+)">', html)
    assert kinds == ["forest", "grouped_bars"]
    assert ">PASS<" in html
    # segment names reach the chart as escaped SVG text
    assert "surface=home|tenant=t1" in html


# -- aa-check, OPE, interleaving -----------------------------------------------------------------


def test_aa_check_markdown(tiny_reports):
    md = render_report(tiny_reports.load("aa-check"), "md")
    lines = md.splitlines()
    assert "> **Verdict: A/A CHECK PASSED** - " in md
    assert "> - 0 of 4 p-values below 0.050 (about 0.200 expected by chance)" in lines
    assert "| Metric | Scope | p &lt; 0.05 | p &lt; 0.01 | p &lt; 0.001 |" in lines  # '<' escaped
    assert "| ctr | __all__ | 0 | 0 | 0 |" in lines


def test_ope_golden_report_renders_reference_numbers(golden):
    report = golden("ope")
    md = render_report(report, "md")
    lines = md.splitlines()
    # reference §11: snips 11.111/(0.95556 + 1.11111), variance 61.7926...; ESS 2.06667^2/(...)
    snips = 11.11111111111111 / (0.9555555555555556 + 1.1111111111111112)
    assert f"| snips | {snips:.4f} | 61.7926 |  |  |" in lines
    ess = (0.9555555555555556 + 1.1111111111111112) ** 2 / (
        0.9555555555555556**2 + 1.1111111111111112**2
    )
    assert f"| effective_sample_size | {ess:.6f} |" in lines
    assert "| total_items | 2 |" in lines
    html = render_report(report, "html")
    assert re.findall(r'data-kind="(\w+)"', html) == ["weights"]  # no intervals in the reference


def test_ope_real_report(tiny_reports):
    report = tiny_reports.load("ope")
    md = render_report(report, "md")
    ips = next(e for e in report["ope"]["estimators"] if e["name"] == "ips")
    assert f"| ips | {ips['value']:.4f} |" in md
    assert "## OPE Weights and Diagnostics" in md
    html = render_report(report, "html")
    kinds = re.findall(r'data-kind="(\w+)"', html)
    assert kinds.count("weights") == 1
    assert kinds.count("forest") == (
        1 if any("ci" in e for e in report["ope"]["estimators"]) else 0
    )


def test_interleaving_golden_report(golden):
    report = golden("interleaving")
    md = render_report(report, "md")
    lines = md.splitlines()
    # reference §11: A 0 wins, B 1, 1 tie; z = (0 - 1/2)/sqrt(1/4) = -1 -> p = 0.3173
    p = phi_two_sided((0 - 0.5) / math.sqrt(0.25))
    assert f"| 2 | 0 | 1 | 1 | 0.0000 | 1.0000 | {p:.4f} |" in lines
    assert (
        "> **Verdict: NO CLEAR WINNER** - No significant preference between A and B at 0.05."
        in lines
    )


def test_interleaving_real_report(tiny_reports):
    report = tiny_reports.load("interleaving")
    md = render_report(report, "md")
    il = report["interleaving"]
    assert f"| {il['requests']} | {il['wins_a']} | {il['wins_b']} | {il['ties']} |" in md
    if "health" in il:
        assert "**Health checks**" in md
    assert re.findall(r'data-kind="(\w+)"', render_report(report, "html")) == ["grouped_bars"]


# -- robustness ---------------------------------------------------------------------------------

HOSTILE = "<script>alert('x')</script> & | *bold* [link](http://evil)"


def test_hostile_strings_are_escaped_in_html_and_markdown(tiny_reports):
    report = tiny_reports.load("experiment")
    exp = report["experiment"]
    exp["by_segment"] = {HOSTILE: exp["by_segment"]["tenant=t1"]}
    for t in exp["significance"]:
        if "segment" in t:
            t["segment"] = HOSTILE
    exp["experiment_id"] = HOSTILE
    report["warnings"] = [HOSTILE]
    html = render_report(report, "html")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html  # the text is shown, escaped (tables and SVG text alike)
    assert html.count("&lt;script&gt;alert(") >= 5
    md = render_report(report, "md")
    assert "<script" not in md
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp;" not in md  # '&' is left as is
    assert "&lt;script&gt;alert('x')&lt;/script&gt; & \\| \\*bold\\* [link\\](http://evil)" in md


def test_unknown_fields_are_rendered_not_dropped(golden):
    report = golden("ope")
    report["ope"]["brand_new_metric"] = 0.123456789
    report["ope"]["new_block"] = {"alpha": 1, "beta": [1, 2]}
    report["ope"]["new_rows"] = [{"name": "x", "score": 0.5}, {"name": "y", "score": 0.25}]
    report["interleaving_extra"] = {"note": "kept"}
    md = render_report(report, "md")
    assert "| brand_new_metric | 0.123457 |" in md
    assert "| new_block.alpha | 1 |" in md and "| new_block.beta | [1, 2] |" in md
    assert "| x | 0.500000 |" in md and "| y | 0.250000 |" in md
    assert "| interleaving_extra.note | kept |" in md
    html = render_report(report, "html")
    assert "brand_new_metric" in html and "new_block.alpha" in html


def test_missing_optional_sections_still_render(golden):
    report = golden("interleaving")
    report["interleaving"] = {
        k: report["interleaving"][k] for k in ("algorithm", "requests", "wins_a", "wins_b", "ties")
    }
    del report["summary"]
    md = render_report(report, "md")
    assert "Decision: none (no regression gates were configured)" in md
    assert "## Interleaving" in md


def test_unknown_format_is_refused(golden):
    with pytest.raises(RecsysEvalError, match="unknown render format 'pdf'"):
        render_report(golden("ope"), "pdf")


# -- the CLI ------------------------------------------------------------------------------------


def _render_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    render_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["render", *argv])
    return args.func(args)


def test_render_subcommand_writes_0600_file_equal_to_render_report(tiny_reports, tmp_path):
    path = tiny_reports.path("experiment")
    out = tmp_path / "experiment.html"
    assert _render_cli("--report", str(path), "--format", "HTML ", "--output", str(out)) == 0
    assert out.read_text() == render_report(json.loads(path.read_text()), "html")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_render_subcommand_refuses_bad_reports_naming_the_file(tmp_path, golden):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    out = tmp_path / "out.md"
    with pytest.raises(RecsysEvalError, match=r"bad\.json: not a JSON report"):
        _render_cli("--report", str(bad_json), "--format", "md", "--output", str(out))
    invalid = tmp_path / "invalid.json"
    report = golden("interleaving")
    del report["interleaving"]["wins_a"]
    invalid.write_text(json.dumps(report))
    with pytest.raises(RecsysEvalError, match=r"invalid\.json: not a valid report\.v1.*wins_a"):
        _render_cli("--report", str(invalid), "--format", "md", "--output", str(out))
    with pytest.raises(RecsysEvalError, match="unknown format 'pdf'"):
        _render_cli("--report", str(invalid), "--format", "pdf", "--output", str(out))
    assert not out.exists()  # nothing half-written


def test_run_output_format_markdown_writes_0600_markdown(tmp_path):
    config = REPO / "configs" / "aa-check.demo.yaml"
    out = tmp_path / "aa.md"
    proc = cli(
        "run",
        "--mode",
        "aa-check",
        "--dataset",
        str(REPO / "configs" / "dataset.tiny.yaml"),
        "--config",
        str(config),
        "--output",
        str(out),
        "--output-format",
        " Markdown ",
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("# Recsys Eval Report\n") and "A/A CHECK PASSED" in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
