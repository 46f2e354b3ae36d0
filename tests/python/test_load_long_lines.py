"""Long lines: a line over the limit is quarantined as too long (streamed, never held whole),
the rest of the file loads; `validate` says the same and stops on an endless stream.

Small limits (`max_line`) exercise every path fast; two child processes measure peak memory
with the real 64 MiB limit (a 96 MiB line) and on /dev/zero.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recsys_eval import loader, warehouse
from recsys_eval.validation import (
    MAX_LINE_BYTES,
    QUARANTINE_PREFIX_BYTES,
    FileStats,
    RecordValidator,
    validate_file,
)


def outcome(i: int, **changes: Any) -> bytes:
    doc = {
        "request_id": f"r{i}",
        "user_id": "u1",
        "item_id": f"i{i}",
        "event_type": "click",
        "value": 1.0,
        "ts": "2025-01-01T00:00:00Z",
    }
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.fixture
def con(tmp_path: Path) -> Any:
    c = warehouse.connect(tmp_path / "wh.duckdb")
    loader.ensure_raw_schema(c)
    yield c
    c.close()


def quarantine(con: Any) -> dict[int, tuple[Any, ...]]:
    got = con.execute(
        "select line_no, octet_length(encode(raw_text)), line_bytes, line_sha256, raw_truncated, "
        "errors from raw.quarantine"
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4], json.loads(r[5])) for r in got}


def rules(errors: list[dict[str, str]]) -> list[str]:
    return [e["rule"] for e in errors]


def validate_rules(path: Path, max_line: int) -> dict[int, list[str]]:
    validator = RecordValidator(
        json.loads((Path(__file__).parents[2] / "schemas/outcome.v1.json").read_text())
    )
    return {
        r.line_no: [e.rule for e in r.errors]
        for r in validate_file(path, validator, FileStats(), 4096, max_line=max_line)
    }


@pytest.mark.parametrize("workers", [0, 2])
def test_long_lines_are_quarantined_and_the_rest_loads(
    con: Any, tmp_path: Path, workers: int
) -> None:
    limit = 5000
    garbage = bytes(b for b in range(256) if b not in b"\r\n") * 800  # not UTF-8, not JSON
    valid_but_huge = outcome(4, item_id="x" * 20_000)  # valid JSON and schema, too long
    body = [outcome(1), garbage, outcome(3), valid_but_huge, outcome(5), b"z" * 7000]
    src = tmp_path / "outcomes.jsonl"
    src.write_bytes(b"\n".join(body[:-1]) + b"\n" + body[-1])  # the last line unterminated
    res = loader.load_file(
        con, "outcome.v1", src, workers=workers, chunk_bytes=1024, max_line=limit
    )
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined) == (6, 3, 3)
    got = quarantine(con)
    assert sorted(got) == [2, 4, 6]
    for line_no, raw in ((2, garbage), (4, valid_but_huge), (6, body[-1])):
        kept, length, digest, truncated, errors = got[line_no]
        assert (length, digest) == (len(raw), hashlib.sha256(raw).hexdigest())
        assert rules(errors) == ["line_length"]
        assert f"line too long: {len(raw):,} bytes, over the limit" in errors[0]["message"]
        assert "keeps its first 65,536 bytes in raw_text" in errors[0]["message"]
        assert truncated == (len(raw) > QUARANTINE_PREFIX_BYTES)
        assert kept <= 3 * QUARANTINE_PREFIX_BYTES  # U+FFFD replaces an invalid byte
    assert got[2][0] > 0 and got[2][3] is True
    # validate gives the same verdicts.
    assert validate_rules(src, limit) == {
        2: ["line_length"],
        4: ["line_length"],
        6: ["line_length"],
    }


def test_long_line_inside_a_chunk_and_at_the_start(con: Any, tmp_path: Path) -> None:
    # A chunk bigger than the limit (chunk_bytes > max_line) holds a long line: checked per line.
    long = b"\xef\xbb\xbf" + b"{" * 3000
    src = tmp_path / "outcomes.jsonl"
    src.write_bytes(long + b"\n" + outcome(2) + b"\n")
    res = loader.load_file(con, "outcome.v1", src, workers=0, chunk_bytes=1 << 20, max_line=1000)
    assert (res.rows_loaded, res.rows_quarantined, res.bom) == (1, 1, True)
    _, length, digest, truncated, errors = quarantine(con)[1]
    assert (length, digest, truncated) == (3000, hashlib.sha256(b"{" * 3000).hexdigest(), False)
    assert rules(errors) == ["line_length"]


def test_invalid_line_over_64_kib_is_kept_truncated(con: Any, tmp_path: Path) -> None:
    big = outcome(1, value="x" * 200_000)  # invalid (value must be a number), under the limit
    src = tmp_path / "outcomes.jsonl"
    src.write_bytes(big + b"\n" + outcome(2) + b"\n")
    res = loader.load_file(con, "outcome.v1", src)
    assert (res.rows_loaded, res.rows_quarantined) == (1, 1)
    kept, length, digest, truncated, errors = quarantine(con)[1]
    assert (kept, length, truncated) == (QUARANTINE_PREFIX_BYTES, len(big), True)
    assert digest == hashlib.sha256(big).hexdigest()
    assert rules(errors) == ["type"]


CHILD = """
import sys
from pathlib import Path
from recsys_eval import loader
from recsys_eval.cli import main
what, path, db = sys.argv[1:4]
if what == "load":
    res = loader.load_file(db, "outcome.v1", Path(path), workers=0)
    print(res.lines_read, res.rows_loaded, res.rows_quarantined)
else:
    print(main(["validate", "--schema", "outcome.v1", "--input", path]))
# VmHWM is this process's own peak: ru_maxrss keeps the parent's peak across fork+exec on
# Linux, so a big pytest process would be measured instead of the loader.
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:")]
print(int(hwm[0].split()[1]) // 1024)
"""


def child(*args: str) -> tuple[list[str], int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    *out, peak_mib = proc.stdout.split("\n")[:-1]
    return out, int(peak_mib), proc.stderr


def test_a_line_longer_than_64_mib_is_streamed(tmp_path: Path) -> None:
    src = tmp_path / "outcomes.jsonl"
    size = MAX_LINE_BYTES + (4 << 20)  # 68 MiB of garbage between two valid lines
    with src.open("wb") as fh:
        fh.write(outcome(1) + b"\n")
        block = b"#" * (1 << 20)
        for _ in range(size >> 20):
            fh.write(block)
        fh.write(b"\n" + outcome(3) + b"\n")
    out, peak_mib, _ = child("load", str(src), str(tmp_path / "wh.duckdb"))
    assert out == ["3 2 1"]
    # Held whole, the line alone would be 68 MiB (the old loader needed ~8x the line).
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB"
    out, peak_mib, stderr = child("validate", str(src), "-")
    assert out == ["1"]
    assert f"{src}:2: $: line too long: {size:,} bytes" in stderr
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB"


def test_validate_stops_on_an_endless_stream() -> None:
    out, peak_mib, stderr = child("validate", "/dev/zero", "-")
    assert out == ["1"]
    assert "/dev/zero:1: line too long: more than 67,108,864 bytes (64 MiB)" in stderr
    assert "validation stopped here" in stderr
    assert peak_mib < 200, f"peak RSS {peak_mib} MiB"
