"""The HTML reports of the tiny data in a real browser: Debian's headless Chromium driven by
Playwright (installed by scripts/setup_browser; never `playwright install`).

Each page is opened from file:// and must load without console or page errors and without any
network request; the verdict must be visible in the first viewport; the expected charts must be
drawn (non-empty inline SVG). Screenshots are kept in out/test-artifacts/ for people to look at.
Set RECSYS_EVAL_SKIP_BROWSER=1 to skip on a machine without Chromium (CI must not)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from render_reports import REPO, TinyReports, shared_reports

from recsys_eval.render import render_report

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def tiny_reports(tmp_path_factory) -> TinyReports:
    return shared_reports(tmp_path_factory)


ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
ARTIFACTS = REPO / "out" / "test-artifacts"

# report -> (verdict label, chart kinds in page order or None when they depend on the mode's
# optional fields)
CASES = {
    "experiment": ("HOLD", ["forest", "forest", "grouped_bars", "grouped_bars", "over_time"]),
    "offline_baselined": ("PASS", ["forest", "grouped_bars"]),
    "aa-check": ("A/A CHECK PASSED", []),
    "ope": (None, None),
    "interleaving": (None, ["grouped_bars"]),
}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("RECSYS_EVAL_SKIP_BROWSER") == "1":
            pytest.skip(f"{CHROMIUM} is missing (RECSYS_EVAL_SKIP_BROWSER=1)")
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup_browser (as root) first")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def _expected(name: str, report: dict) -> tuple[str, list[str]]:
    label, kinds = CASES[name]
    if name == "ope":
        with_ci = any("ci" in e for e in report["ope"]["estimators"])
        kinds = (["forest"] if with_ci else []) + ["weights"]
        label = "CHECK WARNINGS" if report.get("warnings") else "ESTIMATES READY"
    if name == "interleaving":
        label = "NO CLEAR WINNER"  # 0 vs 1 wins: no test can be significant
    assert label is not None and kinds is not None
    return label, kinds


@pytest.mark.parametrize("name", list(CASES))
def test_html_report_in_headless_chromium(browser, tiny_reports, tmp_path, name):
    report = tiny_reports.load(name)
    label, kinds = _expected(name, report)
    page_path = tmp_path / f"{name}.html"
    page_path.write_text(render_report(report, "html"), encoding="utf-8")
    url = page_path.as_uri()

    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.route(
        "**/*", lambda route: route.continue_() if route.request.url == url else route.abort()
    )
    response = page.goto(url, wait_until="load")
    assert response is None or response.ok
    page.wait_for_load_state("networkidle")

    assert errors == []
    assert requests == [url]  # the page itself and nothing else: no fonts, scripts, images
    # the verdict, in the first screen
    verdict = page.locator("#verdict .label")
    assert verdict.inner_text() == label
    box = page.locator("#verdict").bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"]
    assert page.locator("#verdict").is_visible()
    # the charts: the expected kinds, each a drawn, non-empty SVG
    figures = page.locator("figure.chart")
    assert [figures.nth(i).get_attribute("data-kind") for i in range(figures.count())] == kinds
    svgs = page.locator("figure.chart svg")
    assert svgs.count() == len(kinds)
    for i in range(svgs.count()):
        svg_box = svgs.nth(i).bounding_box()
        assert svg_box is not None and svg_box["width"] > 300 and svg_box["height"] > 80
        drawn = svgs.nth(i).evaluate("s => s.querySelectorAll('path, text, use, rect').length")
        assert drawn > 10, f"chart {i} of {name} is empty"
        assert "none" not in (svgs.nth(i).evaluate("s => getComputedStyle(s).display"))
    # pictures for people: the first screen and the whole page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"report-{name}.png"))
    page.screenshot(path=str(ARTIFACTS / f"report-{name}-full.png"), full_page=True)
    assert (ARTIFACTS / f"report-{name}.png").stat().st_size > 10_000
    page.close()
