"""Lines ending in a lone CR (classic Mac OS): never split; `validate` and `load` refuse them alike.

A file whose records are separated by lone CRs is one physical line: it does not parse, so both
commands report it with rule `line_ending` ("lines end in a lone CR (classic Mac OS); convert
with `tr '\\r' '\\n'`") instead of a JSON error, and neither counts it as a CRLF line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recsys_eval import loader, warehouse
from recsys_eval.cli import main
from recsys_eval.commands.load import _summary

GOOD = (
    b'{"request_id": "r1", "user_id": "u1", "item_id": "i1", "event_type": "click", '
    b'"value": 1.0, "ts": "2025-01-01T00:00:00Z"}'
)


@pytest.fixture
def con(tmp_path: Path) -> Any:
    c = warehouse.connect(tmp_path / "wh.duckdb")
    yield c
    c.close()


def validate_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    main(["validate", "--schema", "outcome.v1", "--input", str(path), "--format", "json"])
    return json.loads(capsys.readouterr().out)


def test_classic_mac_file_same_verdict_in_validate_and_load(
    con: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "mac.jsonl"
    src.write_bytes(GOOD + b"\r" + GOOD + b"\r" + GOOD + b"\r")
    report = validate_json(src, capsys)
    assert (report["lines_read"], report["invalid_lines"], report["crlf_lines"]) == (1, 1, 0)
    assert report["lone_cr_lines"] == 1
    [bad] = report["invalid"]
    assert [e["rule"] for e in bad["errors"]] == ["line_ending"]
    message = bad["errors"][0]["message"]
    assert "lines end in a lone CR (classic Mac OS)" in message and "tr '\\r' '\\n'" in message

    res = loader.load_file(con, "outcome.v1", src)
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined) == (1, 0, 1)
    assert (res.crlf_lines, res.lone_cr_lines) == (0, 1)
    errors = json.loads(con.execute("select errors from raw.quarantine").fetchone()[0])
    assert [e["rule"] for e in errors] == ["line_ending"]
    assert errors[0]["message"] == message
    summary = _summary(res)
    assert "CRLF" not in summary and "lone CR" in summary and "classic Mac OS" in summary
    # The text report ends with the same hint.
    main(["validate", "--schema", "outcome.v1", "--input", str(src)])
    assert "1 line(s) hold a lone CR" in capsys.readouterr().err


def test_crlf_and_a_lone_cr_at_the_end(
    con: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(GOOD + b"\r\n" + GOOD + b"\r\n")
    report = validate_json(crlf, capsys)
    assert (report["valid_lines"], report["crlf_lines"], report["lone_cr_lines"]) == (2, 2, 0)
    res = loader.load_file(con, "outcome.v1", crlf)
    assert (res.rows_loaded, res.crlf_lines, res.lone_cr_lines) == (2, 2, 0)
    # One record ending in a CR and no newline: valid JSON (a CR is whitespace), but not CRLF.
    one = tmp_path / "one.jsonl"
    one.write_bytes(GOOD + b"\r")
    report = validate_json(one, capsys)
    assert (report["valid_lines"], report["crlf_lines"], report["lone_cr_lines"]) == (1, 0, 1)
    res = loader.load_file(con, "outcome.v1", one)
    assert (res.rows_loaded, res.crlf_lines, res.lone_cr_lines) == (1, 0, 1)
