"""The whole population has one name, `__all__` (issue 22, item 6), checked on a real run with
slice keys (the demo experiment, `slice_keys: [tenant]`, through the CLI): the marts' segment_key
of every `scope = 'global'` row, the Markdown and the HTML segment tables say `__all__`, and no other
name (`__global__`, `all`, `global`) stands for it. The report JSON keeps the reference's shape:
the whole population is its unnamed top level (`experiment.variants`, tests without `segment`) and
the reference's `srm.global`; with slice keys every segment there is a `key=value` key, never
`__all__` (test_segment_keys checks the macro)."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import pytest
from render_reports import shared_reports

from recsys_eval.render import render_report

NAME = "__all__"
OTHER_NAMES = ("__global__", "all", "global")


@pytest.fixture(scope="session")
def tiny_reports(tmp_path_factory):
    return shared_reports(tmp_path_factory)


def population_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """mart -> its distinct (scope, segment_key), for every mart with both columns."""
    marts = [
        row[0]
        for row in con.execute(
            "select table_name from information_schema.columns where table_schema = 'recsys_eval_marts' "
            "and column_name in ('scope', 'segment_key') group by table_name having count(*) = 2 order by 1"
        ).fetchall()
    ]
    return {
        mart: con.execute(
            f"select distinct scope, segment_key from recsys_eval_marts.{mart} order by all"
        ).fetchall()
        for mart in marts
    }


def test_the_marts_name_the_whole_population_all(tiny_reports):
    report = tiny_reports.load("experiment")
    segments = sorted(report["experiment"]["by_segment"])
    assert segments == ["tenant=t1"]  # a run with slice keys
    with duckdb.connect(str(tiny_reports.database("experiment")), read_only=True) as con:
        marts = population_rows(con)
        for mart in (
            "fct_experiment_variant_metrics",
            "fct_experiment_significance",
            "fct_experiment_srm",
        ):
            assert (("global", NAME)) in marts[mart], mart
        for mart, rows in marts.items():
            assert {key for scope, key in rows if scope == "global"} <= {NAME}, mart
            segment_keys = {key for scope, key in rows if scope == "segment"}
            assert segment_keys <= set(segments), mart  # with slice keys, never __all__
            assert {scope for scope, _ in rows} <= {"global", "segment"}, mart
        # the global rows are the report's top level
        ctr = dict(
            con.execute(
                "select variant, ctr from recsys_eval_marts.fct_experiment_variant_metrics "
                f"where scope = 'global' and segment_key = '{NAME}'"
            ).fetchall()
        )
    assert ctr == {v["variant"]: v["ctr"] for v in report["experiment"]["variants"]}


def walk(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, key or string value) for every key and string value of a JSON tree."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((f"{path}.{key}", key))
            out.extend(walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(walk(value, f"{path}[{index}]"))
    elif isinstance(node, str):
        out.append((path, node))
    return out


def test_the_report_json_has_no_other_name(tiny_reports):
    report = tiny_reports.load("experiment")
    names = [(path, text) for path, text in walk(report) if text.lower() in (NAME, *OTHER_NAMES)]
    assert names == [(".experiment.srm.global", "global")]  # the reference's field, nothing else
    tests = report["experiment"]["significance"]
    assert [
        t for t in tests if "segment" not in t
    ]  # the whole population: no segment, as the reference
    assert {t["segment"] for t in tests if "segment" in t} == {"tenant=t1"}


def test_markdown_and_html_say_all_and_nothing_else(tiny_reports):
    report = tiny_reports.load("experiment")
    md, html = render_report(report, "md"), render_report(report, "html")
    cells = [
        cell.strip() for line in md.splitlines() if line.startswith("|") for cell in line.split("|")
    ]
    assert NAME in cells and "tenant=t1" in cells
    assert not {cell.lower() for cell in cells} & set(OTHER_NAMES)
    html_cells = [cell.strip() for cell in re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", html)]
    assert NAME in html_cells and "tenant=t1" in html_cells
    assert not {cell.lower() for cell in html_cells} & set(OTHER_NAMES)
    for text in (md, html):
        assert "__global__" not in text
