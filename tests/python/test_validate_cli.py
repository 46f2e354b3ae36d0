"""`recsys-eval validate`: reference-compatible output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_eval.cli import main

GOOD = b'{"request_id":"r1","user_id":"u1","ts":"2025-01-01T00:00:00Z","items":[]}'
OUTCOME = b'{"request_id":"r1","user_id":"u1","item_id":"i1","event_type":"click","ts":"2025-01-01T00:00:10Z"}'


def write(tmp_path: Path, data: bytes, name: str = "in.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_valid_file_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD + b"\n\n" + GOOD + b"\n")
    assert main(["validate", "--schema", "exposure.v1", "--input", path]) == 0
    assert capsys.readouterr() == ("", "")


def test_empty_file_is_valid_and_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, b"")
    assert main(["validate", "--schema", "outcome.v1", "--input", path]) == 0
    assert capsys.readouterr() == ("", "")


def test_invalid_lines_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = b'{"request_id":"","ts":"2025-13-01T00:00:00Z","items":[{"rank":0}],"x":1}'
    path = write(tmp_path, GOOD + b"\n" + bad + b"\nnope\n" + OUTCOME + b"\n")
    assert main(["validate", "--schema", "exposure.v1", "--input", path]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:2: $: Additional properties are not allowed ('x' was unexpected) [additionalProperties]",
        f"{path}:2: $: 'user_id' is a required property [required]",
        f"{path}:2: $.items[0]: 'item_id' is a required property [required]",
        f"{path}:2: $.items[0].rank: 0 is less than the minimum of 1 [minimum]",
        f"{path}:2: $.request_id: '' should be non-empty [minLength]",
        f"{path}:2: $.ts: '2025-13-01T00:00:00Z' is not a 'date-time' [format]",
        f"{path}:3: $: not valid JSON: Expecting value: line 1 column 1 (char 0) [json]",
        f"{path}:4: $: Additional properties are not allowed ('event_type', 'item_id' were unexpected) [additionalProperties]",
        f"{path}:4: $: 'items' is a required property [required]",
        "validation failed for 3 line(s)",
    ]


def test_outcome_schema_and_schema_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, OUTCOME + b"\n" + OUTCOME.replace(b"click", b"Click") + b"\n")
    schema = Path(__file__).resolve().parents[2] / "schemas" / "outcome.v1.json"
    assert main(["validate", "--schema", str(schema), "--input", path]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{path}:2: $.event_type: 'Click' is not one of ['click', 'conversion'] [enum]",
        "validation failed for 1 line(s)",
    ]


def test_max_errors_limits_detail_not_the_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, b"x\n" * 5)
    assert main(["validate", "--schema", "exposure.v1", "--input", path, "--max-errors", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:1: $: not valid JSON: Expecting value: line 1 column 1 (char 0) [json]",
        f"{path}:2: $: not valid JSON: Expecting value: line 1 column 1 (char 0) [json]",
        "... 3 more invalid line(s) not shown (--max-errors 0 shows all)",
        "validation failed for 5 line(s)",
    ]
    assert main(["validate", "--schema", "exposure.v1", "--input", path, "--max-errors", "0"]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 6


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + GOOD + b"\r\n\n[]\n")
    assert main(["validate", "--schema", "exposure.v1", "--input", path, "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == {
        "file": path,
        "schema": "exposure.v1",
        "valid": False,
        "lines_read": 3,
        "valid_lines": 1,
        "invalid_lines": 1,
        "blank_lines": 1,
        "crlf_lines": 1,
        "lone_cr_lines": 0,
        "bom": True,
        "invalid": [
            {
                "line": 3,
                "errors": [{"path": "$", "rule": "type", "message": "[] is not of type 'object'"}],
            }
        ],
        "invalid_not_shown": 0,
    }


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.jsonl")
    assert main(["validate", "--schema", "exposure.v1", "--input", missing]) == 1
    assert capsys.readouterr().err == f"error: input file not found: {missing}\n"


def test_unknown_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD + b"\n")
    assert main(["validate", "--schema", "exposures", "--input", path]) == 1
    assert capsys.readouterr().err.startswith(
        "error: unknown schema 'exposures'; known schemas: assignment.v1, decision.v1, decision.v2, exposure.v1"
    )


def test_streams_in_blocks(tmp_path: Path) -> None:
    # Lines across several read blocks are numbered correctly.
    from recsys_eval import validation

    lines = [GOOD] * 3000
    lines[2500] = b"{broken"
    path = write(tmp_path, b"\n".join(lines) + b"\n")
    stats = validation.FileStats()
    ref = validation.RecordValidator({"type": "object"})
    found = [r.line_no for r in validation.validate_file(Path(path), ref, stats, 4096)]
    assert found == [2501]
    assert (stats.lines_read, stats.valid) == (3000, 2999)
