"""`recsys-eval run` is never silent and writes every format in one run: its stage lines (plain
when stderr is not a terminal, none with --quiet), the report's `timings`, the quarantine file
and --fail-on-quarantine, and --html / --md beside the JSON (issue 18, items 3 and 4)."""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
from pathlib import Path

import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import plan
from recsys_eval.cli import main
from recsys_eval.errors import EXIT_ERROR, EXIT_OK
from recsys_eval.stages import StageLog

BAD_OUTCOME = '{"request_id":"r1","user_id":"u1","item_id":"i2","event_type":"purchase","ts":"x"}'


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(out: Path, *extra: str, dataset: Path | None = None) -> int:
    return main(["run", "--dataset", str(dataset or CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(CONFIGS / "offline.ci.yaml"), "--output", str(out), *extra])  # fmt: skip


def bad_dataset(tmp_path: Path) -> Path:
    """The tiny data with two invalid outcome lines (lines 3 and 4 of outcomes.jsonl)."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "examples" / "tiny", data)
    outcomes = data / "outcomes.jsonl"
    assert len(outcomes.read_text().splitlines()) == 2
    with outcomes.open("a") as fh:
        fh.write(BAD_OUTCOME + "\nnot json\n")
    ds = tmp_path / "bad.yaml"
    ds.write_text(
        f"exposures: {{type: jsonl, path: {data}/exposures.jsonl}}\n"
        f"outcomes: {{type: jsonl, path: {data}/outcomes.jsonl}}\n"
    )
    return ds


def test_stage_lines_when_stderr_is_not_a_terminal(tmp_path: Path, in_repo, capsys) -> None:
    out = tmp_path / "report.json"
    assert run(out) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert "\r" not in captured.err and "\033" not in captured.err  # no live progress in a log
    patterns = [
        r"config read: offline mode, sources exposures, outcomes(, assignments)?",
        r"loaded exposures: 3 lines \(0 quarantined\) in \d+\.\d s",
        r"loaded outcomes: 2 lines \(0 quarantined\) in \d+\.\d s",
        r"models: (built with dbt \(\d+ nodes\)|\d+/\d+ steps replayed from the cached plan "
        r"\(no dbt\)) in \d+\.\d s",
        r"checks: \d+ data-quality checks \(\d+ with failing rows\), \d+ dbt tests \(\d+ warned\)",
        rf"report written: {re.escape(str(out))} \(\d+\.\d s in all\)",
    ]
    stage_lines = [ln for ln in lines if ln.startswith("recsys-eval: ")]
    assert len(stage_lines) >= len(patterns), captured.err
    found = iter(stage_lines)
    for pattern in patterns:  # in this order, each one line
        assert any(re.fullmatch("recsys-eval: " + pattern, ln) for ln in found), (pattern, lines)
    timings = json.loads(out.read_text())["timings"]
    assert set(timings) == {"load_s", "models_s", "report_s", "total_s"}
    assert all(isinstance(v, int | float) and v >= 0 for v in timings.values())
    assert timings["total_s"] >= timings["load_s"] + timings["models_s"] > 0


def test_quiet_prints_nothing_on_success(tmp_path: Path, in_repo, capsys) -> None:
    out = tmp_path / "report.json"
    assert run(out, "--quiet") == EXIT_OK
    assert capsys.readouterr() == ("", "")
    assert "timings" in json.loads(out.read_text())


def test_quiet_still_prints_errors(tmp_path: Path, in_repo, capsys) -> None:
    assert run(tmp_path / "missing" / "r.json", "--quiet") == EXIT_ERROR
    assert capsys.readouterr().err.startswith("error: cannot write ")


def test_quarantined_lines_are_kept_beside_the_report(tmp_path: Path, in_repo, capsys) -> None:
    out = tmp_path / "report.json"
    assert run(out, dataset=bad_dataset(tmp_path)) == EXIT_OK
    err = capsys.readouterr().err
    assert "recsys-eval: loaded outcomes: 4 lines (2 quarantined)" in err
    kept = tmp_path / "report.json.quarantine.jsonl"
    assert (
        f"warning: 2 input line(s) quarantined (invalid, not evaluated); see them in {kept} "
        "(one JSON object per line)\n"
    ) in err
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    records = [json.loads(line) for line in kept.read_text().splitlines()]
    assert [(Path(r["source_file"]).name, r["line_no"]) for r in records] == [
        ("outcomes.jsonl", 3),
        ("outcomes.jsonl", 4),
    ]
    assert [r["raw_text"] for r in records] == [BAD_OUTCOME, "not json"]
    assert all(set(r) == {"source_file", "line_no", "errors", "raw_text"} for r in records)
    assert all(r["errors"] for r in records)
    assert "quarantined_rows: 2" in json.loads(out.read_text())["warnings"]

    # a clean rerun to the same output removes the file that described the earlier run
    assert run(out, "--quiet") == EXIT_OK
    assert not kept.exists()


def test_a_link_at_the_quarantine_path_is_refused_before_any_work(
    tmp_path: Path, in_repo, capsys
) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "report.json.quarantine.jsonl").symlink_to(target)
    assert run(tmp_path / "report.json", dataset=bad_dataset(tmp_path)) == EXIT_ERROR
    assert "is a symbolic link" in capsys.readouterr().err
    assert not target.exists() and not (tmp_path / "report.json").exists()


def test_fail_on_quarantine_exits_1_after_writing_everything(
    tmp_path: Path, in_repo, capsys
) -> None:
    out = tmp_path / "report.json"
    code = run(out, "--fail-on-quarantine", dataset=bad_dataset(tmp_path))
    assert code == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.endswith(
        "error: 2 input line(s) quarantined and --fail-on-quarantine is set: the report was "
        "written; fix or remove those lines and run again\n"
    )
    assert json.loads(out.read_text())["mode"] == "offline"
    assert len((tmp_path / "report.json.quarantine.jsonl").read_text().splitlines()) == 2
    # clean data passes the same flag
    assert run(tmp_path / "clean.json", "--fail-on-quarantine", "--quiet") == EXIT_OK


def test_kept_database_names_the_quarantine_query(tmp_path: Path, in_repo, capsys) -> None:
    db = tmp_path / "run.duckdb"
    out = tmp_path / "report.json"
    assert run(out, "--database", str(db), "--quiet", dataset=bad_dataset(tmp_path)) == EXIT_OK
    err = capsys.readouterr().err
    found = re.search(
        r"warning: 2 input line\(s\) quarantined \(invalid, not evaluated\); see them in (\S+) "
        r"with: select \* from raw\.quarantine where load_id in \('([^']+)'\)\n",
        err,
    )
    assert found and found[1] == str(db), err
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        sql = "select count(*) from raw.quarantine where load_id = ?"
        assert con.execute(sql, [found[2]]).fetchone() == (2,)
    finally:
        con.close()
    assert not (tmp_path / "report.json.quarantine.jsonl").exists()


def test_html_and_md_beside_the_json_equal_render(tmp_path: Path, in_repo, capsys) -> None:
    out, html, md = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.md"
    assert run(out, "--html", str(html), "--md", str(md)) == EXIT_OK
    assert f"report written: {out}, {html}, {md} (" in capsys.readouterr().err
    for path, fmt in ((html, "html"), (md, "md")):
        again = tmp_path / f"again.{fmt}"
        assert main(["render", "--report", str(out), "--format", fmt, "--output", str(again)]) == 0
        assert path.read_bytes() == again.read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert html.read_text().lstrip().lower().startswith("<!doctype html")


@pytest.mark.parametrize(
    "extra,message",
    [
        (("--output-format", "html"), "--output-format html would write HTML into "),
        (("--output-format", "md"), "--output-format md would write Markdown into "),
        (("--html", "{tmp}/view.json"), "--html {tmp}/view.json: a .json path"),
        (("--md", "{tmp}/report.json"), "a .json path"),
        (("--html", "{tmp}/missing/r.html"), "does not exist"),
    ],
)
def test_views_into_json_or_bad_paths_are_refused_before_any_work(
    tmp_path: Path, in_repo, capsys, monkeypatch, extra: tuple[str, str], message: str
) -> None:
    from recsys_eval.commands import run as run_cmd

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the run started its work before refusing a destination")

    monkeypatch.setattr(run_cmd, "load_sources", forbidden)
    extra = tuple(e.format(tmp=tmp_path) for e in extra)
    assert run(tmp_path / "report.json", *extra) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message.format(tmp=tmp_path) in err
    assert list(tmp_path.iterdir()) == []


def test_html_output_format_to_another_extension_is_fine(tmp_path: Path, in_repo) -> None:
    out = tmp_path / "report.htm"
    assert run(out, "--output-format", "html", "--quiet") == EXIT_OK
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


def test_terminal_mode_draws_and_clears_a_progress_line() -> None:
    stream = io.StringIO()
    log = StageLog("tty", stream)
    log.progress("models", 0, 4, force=True)
    log.progress("models", 4, 4)
    log.line("models: 4/4 steps in 0.1 s")
    text = stream.getvalue()
    assert text.startswith("\rmodels: [" + " " * 30 + "] 0/4")
    assert "\rmodels: [" + "#" * 30 + "] 4/4" in text
    assert text.endswith("\r\033[Krecsys-eval: models: 4/4 steps in 0.1 s\n")
    for mode in ("plain", "quiet"):
        quiet = io.StringIO()
        StageLog(mode, quiet).progress("models", 1, 2, force=True)
        assert quiet.getvalue() == ""


def test_plan_execute_reports_each_step() -> None:
    seen: list[tuple[int, int]] = []
    assert plan.execute(None, [], lambda done, total: seen.append((done, total))) == []
    assert seen == [(0, 0)]


def test_a_terminal_gets_live_progress_that_clears_itself(
    tmp_path: Path, in_repo, capsys, monkeypatch
) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    out = tmp_path / "report.json"
    assert run(out) == EXIT_OK  # the plan replay (models i/N), or dbt (elapsed seconds)
    run(tmp_path / "again.json")  # the second run of a configuration replays its plan
    err = capsys.readouterr().err
    assert "\rmodels: [" in err and "/" in err.split("\rmodels: [", 1)[1].split("\n", 1)[0]
    # every live line is cleared before the next stage line, so the log lines stay whole
    for stage_line in re.findall(r"[^\n]*recsys-eval: models: [^\n]*\n", err):
        assert "\r" not in stage_line or stage_line.rsplit("\r", 1)[1].startswith(
            "\033[Krecsys-eval: models:"
        )
