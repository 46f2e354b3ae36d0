"""Privacy (issue 8, item 4): the PII guard, `pseudonymize`, and what reports and logs contain."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
from pathlib import Path

import duckdb
import pytest
from conftest import CONFIGS, ROOT

from recsys_eval import loader, privacy
from recsys_eval.cli import main
from recsys_eval.commands import pseudonymize
from recsys_eval.errors import EXIT_ERROR, EXIT_OK, ConfigError, RecsysEvalError

KEY = "k3y-0123456789abcdef0123456789abcdef"


def exposure(request_id: str, user_id: str, item_id: str = "i1", **extra) -> str:
    doc = {"request_id": request_id, "user_id": user_id, "ts": "2024-01-01T00:00:00Z",
           "items": [{"item_id": item_id, "rank": 1}], **extra}  # fmt: skip
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("alice@example.com", "email"),
        ("user:Bob.Smith+tag@mail.example.co.uk", "email"),
        ("+44 20 7946 0958", "phone"),
        ("+14155550123", "phone"),
        ("0049 30 1234567", "phone"),
        ("(415) 555-0123", "phone"),
        ("415.555.0123", "phone"),
        ("u_123", None),
        ("4155550123", None),  # a bare number is an id, not a phone number
        ("2024-01-01", None),
        ("2024-01-01T00:00:00Z", None),
        ("req-000123-4567", None),
        ("a@b", None),
        ("@handle", None),
        ("550e8400-e29b-41d4-a716-446655440000", None),
    ],
)
def test_detectors(value: str, kind: str | None) -> None:
    assert privacy.pii_kind(value) == kind


def test_scan_names_fields_never_values() -> None:
    line = exposure(
        "r1", "alice@example.com", "+44 20 7946 0958",
        context={"phone": "(415) 555-0123", "bob@example.com": "x", "tenant": "t1"},
    ).encode()  # fmt: skip
    found = privacy.scan_line(line)
    assert found == [
        ("user_id", "email"),
        ("items[].item_id", "phone"),
        ("context.phone", "phone"),
    ]
    text = json.dumps([e.as_dict() for e in privacy.line_errors(found)])
    assert "alice" not in text and "7946" not in text and "555" not in text


def test_loader_flag_and_reject_modes(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(
        "\n".join(
            [
                exposure("r1", "alice@example.com"),
                exposure("r2", "u2"),
                exposure("r3", "u3", context={"phone": "+1 415 555 0123"}),
            ]
        )
        + "\n"
    )
    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", path, workers=0, pii_guard="flag")
    assert (res.rows_loaded, res.rows_quarantined) == (3, 0)
    assert res.pii_findings == {"user_id|email": 1, "context.phone|phone": 1}

    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", path, workers=0, pii_guard="reject")
    assert (res.lines_read, res.rows_loaded, res.rows_quarantined) == (3, 1, 2)
    assert con.execute("select request_id from raw.exposures").fetchall() == [("r2",)]
    rows = con.execute("select line_no, errors from raw.quarantine order by line_no").fetchall()
    assert [(n, [e["rule"] for e in json.loads(e)]) for n, e in rows] == [
        (1, ["pii"]),
        (3, ["pii"]),
    ]
    assert "alice" not in rows[0][1]

    con = duckdb.connect()
    res = loader.load_file(con, "exposure.v1", path, workers=0)  # default: off
    assert (res.rows_loaded, res.pii_findings) == (3, {})
    with pytest.raises(ConfigError, match="--pii-guard: must be one of off, flag, reject"):
        loader.load_file(con, "exposure.v1", path, pii_guard="strict")


def test_reject_mode_in_the_worker_pool(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    lines = [exposure(f"r{i}", "x@example.org" if i % 7 == 0 else f"u{i}") for i in range(700)]
    path.write_text("\n".join(lines) + "\n")
    con = duckdb.connect()
    res = loader.load_file(
        con, "exposure.v1", path, workers=2, chunk_bytes=4096, pii_guard="reject"
    )
    assert (res.rows_loaded, res.rows_quarantined) == (600, 100)
    assert res.pii_findings == {"user_id|email": 100}


def test_validate_and_load_cli_warn_without_values(tmp_path: Path, capsys) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(exposure("r1", "alice@example.com") + "\n" + exposure("r2", "u2") + "\n")
    args = ["validate", "--schema", "exposure.v1", "--input", str(path)]
    assert main([*args, "--pii-guard", "flag"]) == EXIT_OK
    err = capsys.readouterr().err
    assert err == "warning: PII guard flagged 1 value(s): email address(es) in user_id (1)\n"
    assert main([*args, "--pii-guard", "reject"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"{path}:1: $.user_id: looks like an email address" in err and "alice" not in err
    db = tmp_path / "w.duckdb"
    code = main(["load", "--schema", "exposure.v1", "--input", str(path), "--database", str(db),
                 "--pii-guard", "flag"])  # fmt: skip
    assert code == EXIT_OK
    err = capsys.readouterr().err
    assert "warning: PII guard flagged 1 value(s): email address(es) in user_id (1)" in err
    assert "alice" not in err


# --- pseudonymize --------------------------------------------------------------------------------


def test_hmac_matches_rfc_4231_test_case_2() -> None:
    """The independent reference: RFC 4231 §4.3 (key "Jefe")."""
    assert pseudonymize.pseudonymizer(b"Jefe")("what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def pseudo(tmp_path: Path, src: Path, dst: Path, *extra: str, key_env: str = "PSEUDO_KEY") -> int:
    """The command as cli.py registers it (`pseudonymize.register`), errors printed to stdout."""
    parser = argparse.ArgumentParser(prog="recsys-eval")
    pseudonymize.register(parser.add_subparsers())
    args = parser.parse_args(["pseudonymize", "--input", str(src), "--output", str(dst),
                              "--schema", "exposure.v1", "--key-env", key_env, *extra])  # fmt: skip
    try:
        return args.func(args)
    except RecsysEvalError as exc:
        print(f"error: {exc}")
        return exc.exit_code


def test_pseudonymize_is_keyed_stable_across_files_and_keeps_the_rest(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("PSEUDO_KEY", KEY)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(exposure("r1", "alice", "i1") + "\n\n" + exposure("r2", "bob", "i2") + "\n")
    b.write_text(exposure("r9", "alice", "i9", context={"tenant": "t"}) + "\n")
    assert pseudo(tmp_path, a, tmp_path / "a.out", "--fields", "user_id", "item_id") == EXIT_OK
    assert pseudo(tmp_path, b, tmp_path / "b.out", "--fields", "user_id", "item_id") == EXIT_OK
    out_a = (tmp_path / "a.out").read_text().split("\n")
    out_b = json.loads((tmp_path / "b.out").read_text())
    first, blank, second = json.loads(out_a[0]), out_a[1], json.loads(out_a[2])
    expected = hmac.new(KEY.encode(), b"alice", hashlib.sha256).hexdigest()
    assert first["user_id"] == out_b["user_id"] == expected
    assert second["user_id"] == hmac.new(KEY.encode(), b"bob", hashlib.sha256).hexdigest()
    assert first["items"][0] == {
        "item_id": hmac.new(KEY.encode(), b"i1", hashlib.sha256).hexdigest(),
        "rank": 1,
    }
    assert blank == "" and first["request_id"] == "r1" and out_b["context"] == {"tenant": "t"}
    logged = capsys.readouterr()
    assert KEY not in logged.err + logged.out and "alice" not in logged.err
    assert (tmp_path / "a.out").stat().st_mode & 0o777 == 0o600
    # A different key gives different pseudonyms.
    monkeypatch.setenv("PSEUDO_KEY", KEY[::-1])
    assert pseudo(tmp_path, b, tmp_path / "c.out") == EXIT_OK
    assert json.loads((tmp_path / "c.out").read_text())["user_id"] != expected


@pytest.mark.parametrize(("value", "message"), [(None, "is not set"), ("short", "too short")])
def test_pseudonymize_refuses_a_missing_or_short_key(
    tmp_path: Path, monkeypatch, capsys, value, message
) -> None:
    if value is None:
        monkeypatch.delenv("PSEUDO_KEY", raising=False)
    else:
        monkeypatch.setenv("PSEUDO_KEY", value)
    src = tmp_path / "a.jsonl"
    src.write_text(exposure("r1", "alice") + "\n")
    assert pseudo(tmp_path, src, tmp_path / "out.jsonl") == EXIT_ERROR
    out = capsys.readouterr().out
    assert message in out and "PSEUDO_KEY" in out and "short" not in out.replace("too short", "")
    assert not (tmp_path / "out.jsonl").exists()


def test_pseudonymize_bad_line_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PSEUDO_KEY", KEY)
    src = tmp_path / "a.jsonl"
    src.write_text(exposure("r1", "alice") + "\n" + '{"user_id": 12345}\n' + "not json\n")
    dst = tmp_path / "out.jsonl"
    dst.write_text("previous\n")
    assert pseudo(tmp_path, src, dst) == EXIT_ERROR
    out = capsys.readouterr().out
    assert f"{src}:2: field user_id is not a string" in out and "12345" not in out
    assert dst.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "out.jsonl"]
    assert pseudo(tmp_path, src, tmp_path / "x.jsonl", "--fields", "ts") == EXIT_ERROR
    assert "--fields: ts not an identifier field of exposure.v1" in capsys.readouterr().out


# --- reports and logs ----------------------------------------------------------------------------


@pytest.mark.slow
def test_reports_hold_no_secrets_and_no_unrequested_raw_values(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """An eval config with S3 credentials and a dataset with an email in a context value that is
    not a slice key: the report and the console output contain neither."""
    monkeypatch.chdir(ROOT)
    src = (ROOT / "examples/tiny/exposures.jsonl").read_text().splitlines()
    doc = json.loads(src[0])
    doc["context"] = {**doc.get("context", {}), "contact": "carol@example.com"}
    exposures = tmp_path / "exposures.jsonl"
    exposures.write_text("\n".join([json.dumps(doc), *src[1:]]) + "\n")
    dataset = tmp_path / "dataset.yaml"
    dataset.write_text(
        f"exposures: {{type: jsonl, path: {exposures}}}\n"
        f"outcomes: {{type: jsonl, path: {ROOT / 'examples/tiny/outcomes.jsonl'}}}\n"
    )
    secret = "AKIA-SUPER-SECRET-9f8e7d"
    store = (
        "  object_store:\n"
        f"    type: s3\n    s3: {{endpoint: e, bucket: b, access_key: {secret}, "
        f"secret_key: {secret}}}\n"
    )
    eval_file = tmp_path / "eval.yaml"
    out = tmp_path / "report.json"
    args = ["run", "--dataset", str(dataset), "--config", str(eval_file), "--output", str(out),
            "--pii-guard", "flag"]  # fmt: skip
    # a manifest URI with credentials: refused before any work, the message redacted
    eval_file.write_text(
        (CONFIGS / "offline.ci.yaml").read_text()
        + "artifacts:\n  manifest_uri: s3://user:pa55word@bucket/m.json\n"
        + store
    )
    assert main(args) == EXIT_ERROR
    console = capsys.readouterr()
    assert "manifest" in console.err
    for leaked in (secret, "pa55word"):
        assert leaked not in console.err + console.out
    # a manifest on disk beside S3 credentials: the report and console hold no secret
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "v": 1,
                "tenant": "t",
                "surface": "s",
                "current": {},
                "updated_at": "2025-01-04T00:00:00Z",
            }
        )
    )
    eval_file.write_text(
        (CONFIGS / "offline.ci.yaml").read_text()
        + f"artifacts:\n  manifest_uri: {manifest}\n"
        + store
    )
    code = main(args)
    assert code == EXIT_OK
    text = out.read_text()
    console = capsys.readouterr()
    for leaked in (secret, "pa55word", "carol@example.com", "carol"):
        assert leaked not in text and leaked not in console.err + console.out
    report = json.loads(text)
    s3 = report["effective_config"]["eval"]["artifacts"]["object_store"]["s3"]
    assert s3["access_key"] == s3["secret_key"] == "***redacted***"
    assert (
        "pii_guard: PII guard flagged 1 value(s): email address(es) in context.contact (1)"
        in (report["warnings"])
    )
