"""Artifact provenance (`artifacts.manifest_uri`, reference §8.6; recsys_eval.artifacts).

The manifest and its artifact blobs are read from a path, `file://` and `s3://`; S3 goes to a
local S3-compatible server (moto's server mode on 127.0.0.1, with IAM authentication switched on
so that a wrong secret is refused by the server's own SigV4 check). Checked: the recorded type,
uri, build fields and SHA-256 (computed here with hashlib from the bytes written), the order,
the reference's warnings (`artifact fetch failed: ...` / `artifact parse failed: ...`), the
reference's abort on a manifest that cannot be fetched or parsed (before any data is loaded),
that no key, secret or signature reaches a report, a render or the console, and the Markdown and
HTML sections (escaped). A known-answer test pins the SigV4 signer to AWS's published example.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from moto import settings as moto_settings
from moto.server import ThreadedMotoServer

from recsys_eval.artifacts import S3Store, provenance, sign_v4
from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.render import render_report

REPO = Path(__file__).resolve().parents[2]
BUCKET = "models"
WRONG_SECRET = "wRoNgSeCrEt/with+plus=Zq9"

POP = {
    "artifact_type": "popularity",
    "build": {"version": "pop-v7", "source_hash": "src-aaa111", "built_at": "2025-01-02T03:04:05Z"},
    "items": ["i1", "i2"],
}
COOC = {
    "artifact_type": "cooc",
    "build": {
        "version": "cooc-v2",
        "source_hash": "src-bbb222",
        "built_at": "2025-01-03T00:00:00Z",
    },
}


def blob(doc: object) -> bytes:
    return json.dumps(doc).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(current: dict[str, str]) -> bytes:
    return blob(
        {
            "v": 1,
            "tenant": "acme",
            "surface": "home",
            "current": current,
            "updated_at": "2025-01-04T00:00:00Z",
        }
    )


def eval_cfg(uri: str, store: dict | None = None) -> dict:
    block: dict = {"manifest_uri": uri}
    if store is not None:
        block["object_store"] = store
    return {"artifacts": block}


# -- local files -------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Path:
    (tmp_path / "pop.json").write_bytes(blob(POP))
    (tmp_path / "cooc.json").write_bytes(blob(COOC))
    return tmp_path


def test_manifest_on_disk_records_each_artifact_sorted_with_sha256(local: Path):
    # the manifest lists popularity before cooc: the report sorts by type (the reference's order
    # follows Go's random map iteration)
    current = {"popularity": str(local / "pop.json"), "cooc": (local / "cooc.json").as_uri()}
    (local / "manifest.json").write_bytes(manifest(current))
    for uri in (str(local / "manifest.json"), (local / "manifest.json").as_uri()):
        got = provenance(eval_cfg(uri), "eval.yaml")
        assert got == {
            "manifest_uri": uri,
            "tenant": "acme",
            "surface": "home",
            "updated_at": "2025-01-04T00:00:00Z",
            "artifacts": [
                {
                    "type": "cooc",
                    "uri": (local / "cooc.json").as_uri(),
                    "version": "cooc-v2",
                    "source_hash": "src-bbb222",
                    "built_at": "2025-01-03T00:00:00Z",
                    "checksum": sha(blob(COOC)),
                },
                {
                    "type": "popularity",
                    "uri": str(local / "pop.json"),
                    "version": "pop-v7",
                    "source_hash": "src-aaa111",
                    "built_at": "2025-01-02T03:04:05Z",
                    "checksum": sha(blob(POP)),
                },
            ],
        }
        assert list(got) == ["manifest_uri", "tenant", "surface", "updated_at", "artifacts"]


def test_no_manifest_uri_means_no_block(local: Path):
    assert provenance({}) is None
    assert provenance({"artifacts": {"manifest_uri": ""}}) is None
    # as in the reference, the store is not checked when there is no manifest to read
    assert provenance(eval_cfg("", {"type": "s3"})) is None


def test_bad_and_missing_blobs_warn_and_keep_their_entry(local: Path):
    (local / "bad.json").write_bytes(b"{not json")
    (local / "list.json").write_bytes(b"[1, 2]")
    (local / "typed.json").write_bytes(b'{"build": {"version": 3}}')
    current = {
        "pop": str(local / "pop.json"),
        "bad": str(local / "bad.json"),
        "list": str(local / "list.json"),
        "typed": str(local / "typed.json"),
        "gone": str(local / "gone.json"),
        "skipped": "",  # empty entries are skipped, as in the reference
    }
    (local / "m.json").write_bytes(manifest(current))
    got = provenance(eval_cfg(str(local / "m.json")))
    by_type = {a["type"]: a for a in got["artifacts"]}
    assert sorted(by_type) == ["bad", "gone", "list", "pop", "typed"]
    # a blob that was read keeps its checksum; one that could not be read has none
    assert by_type["bad"] == {
        "type": "bad",
        "uri": str(local / "bad.json"),
        "checksum": sha(b"{not json"),
    }
    assert by_type["gone"] == {"type": "gone", "uri": str(local / "gone.json")}
    assert by_type["pop"]["version"] == "pop-v7"
    warnings = got["warnings"]
    assert [w.split(" (")[0] for w in warnings] == [
        "artifact parse failed: bad",
        "artifact fetch failed: gone",
        "artifact parse failed: list",
        "artifact parse failed: typed",
    ]
    assert f"{local / 'gone.json'}: no such file" in warnings[1]
    assert "not valid JSON" in warnings[0] and str(local / "bad.json") in warnings[0]
    assert "must be a JSON object, got an array" in warnings[2]
    assert "build.version: expected a string, got a number" in warnings[3]


def test_missing_or_malformed_manifest_stops_with_one_line_naming_it(local: Path):
    uri = str(local / "absent.json")
    with pytest.raises(RecsysEvalError) as exc:
        provenance(eval_cfg(uri), "eval.yaml")
    assert str(exc.value) == (
        f"eval.yaml: artifacts.manifest_uri: cannot fetch the manifest: {uri}: no such file"
    )
    (local / "broken.json").write_bytes(b'{"v": 1, "current": {"a": 5}}')
    with pytest.raises(RecsysEvalError, match=r"broken\.json: not a usable artifact manifest: "
                       r"current\.a: expected a string, got a number"):  # fmt: skip
        provenance(eval_cfg(str(local / "broken.json")))
    with pytest.raises(RecsysEvalError, match="is a directory"):
        provenance(eval_cfg(str(local)))
    with pytest.raises(RecsysEvalError, match=r"s3:// needs artifacts\.object_store\.type s3"):
        provenance(eval_cfg("s3://models/manifest.json"))
    with pytest.raises(RecsysEvalError, match="unsupported URI scheme http"):
        provenance(eval_cfg("http://example.invalid/manifest.json"))


def test_object_store_config_is_checked_when_a_manifest_is_set():
    with pytest.raises(ConfigError, match=r"object_store\.type: must be one of .* got 'gcs'"):
        provenance(eval_cfg("/m.json", {"type": "gcs"}), "e.yaml")
    with pytest.raises(ConfigError, match="endpoint and bucket are required for type minio"):
        provenance(eval_cfg("/m.json", {"type": "minio", "s3": {"endpoint": "h:9000"}}))
    with pytest.raises(ConfigError, match="access_key and secret_key must be given together"):
        store = {"type": "s3", "s3": {"endpoint": "h", "bucket": "b", "secret_key": "s3cr3tXYZ"}}
        provenance(eval_cfg("/m.json", store))


def test_sigv4_matches_the_aws_documented_example():
    # "Example: GET Object" of the AWS Signature Version 4 documentation for S3
    store = S3Store(
        scheme="https",
        host="examplebucket.s3.amazonaws.com",
        bucket="examplebucket",
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
    )
    headers = {
        "Host": "examplebucket.s3.amazonaws.com",
        "Range": "bytes=0-9",
        "x-amz-content-sha256": sha(b""),
    }
    signed = sign_v4(store, "GET", "/test.txt", headers, dt.datetime(2013, 5, 24, tzinfo=dt.UTC))
    assert signed["x-amz-date"] == "20130524T000000Z"
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


# -- a local S3-compatible server --------------------------------------------------------------


class S3Server:
    def __init__(self, host: str, port: int, access_key: str, secret_key: str) -> None:
        self.host, self.port = host, port
        self.access_key, self.secret_key = access_key, secret_key

    def store(self, secret: str | None = None, **extra: object) -> dict:
        s3 = {
            "endpoint": f"{self.host}:{self.port}",
            "bucket": BUCKET,
            "access_key": self.access_key,
            "secret_key": secret or self.secret_key,
            "region": "us-east-1",
            "use_ssl": False,
        }
        return {"type": "s3", "s3": {**s3, **extra}}


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    setup = {
        "endpoint_url": f"http://{host}:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": "setup",
        "aws_secret_access_key": "setup",
    }
    iam, s3 = boto3.client("iam", **setup), boto3.client("s3", **setup)
    iam.create_user(UserName="eval")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="eval", PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="eval")["AccessKey"]
    s3.create_bucket(Bucket=BUCKET)
    objects = {
        "artifacts/popularity v7.json": blob(POP),  # a space: the key is URI-encoded and signed
        "artifacts/cooc.json": blob(COOC),
        "artifacts/broken.json": b"\x00\x01 not json",
        "manifests/home.json": manifest(
            {
                "popularity": f"s3://{BUCKET}/artifacts/popularity v7.json",
                "cooc": "artifacts/cooc.json",  # no scheme: a key in the configured bucket
            }
        ),
        "manifests/with-broken.json": manifest(
            {"cooc": "s3:///artifacts/cooc.json", "broken": "artifacts/broken.json"}
        ),
    }
    for name, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=name, Body=body)
    # From here on the server checks every request's signature against IAM (as S3 does).
    before = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    try:
        yield S3Server(host, port, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = before
        server.stop()


def no_secret(server: S3Server, *texts: str) -> None:
    for text in texts:
        for secret in (server.secret_key, WRONG_SECRET, server.access_key):
            assert secret not in text
        assert "AWS4-HMAC-SHA256" not in text and "Signature=" not in text


def test_s3_manifest_and_artifacts_with_credentials(s3_server: S3Server):
    got = provenance(eval_cfg(f"s3://{BUCKET}/manifests/home.json", s3_server.store()))
    assert got["tenant"] == "acme" and "warnings" not in got
    assert got["artifacts"] == [
        {
            "type": "cooc",
            "uri": "artifacts/cooc.json",
            "version": "cooc-v2",
            "source_hash": "src-bbb222",
            "built_at": "2025-01-03T00:00:00Z",
            "checksum": sha(blob(COOC)),
        },
        {
            "type": "popularity",
            "uri": f"s3://{BUCKET}/artifacts/popularity v7.json",
            "version": "pop-v7",
            "source_hash": "src-aaa111",
            "built_at": "2025-01-02T03:04:05Z",
            "checksum": sha(blob(POP)),
        },
    ]
    # the bucket-less s3:/// form uses the configured bucket; a malformed blob is a warning
    got = provenance(eval_cfg(f"s3://{BUCKET}/manifests/with-broken.json", s3_server.store()))
    assert got["artifacts"][0] == {
        "type": "broken",
        "uri": "artifacts/broken.json",
        "checksum": sha(b"\x00\x01 not json"),
    }
    assert got["artifacts"][1]["checksum"] == sha(blob(COOC))
    assert got["warnings"] == [
        "artifact parse failed: broken (artifacts/broken.json: not valid JSON: "
        + got["warnings"][0].split("not valid JSON: ", 1)[1]
    ]
    # the endpoint may also be given as a URL
    endpoint = f"http://{s3_server.host}:{s3_server.port}"
    again = provenance(
        eval_cfg("s3://models/manifests/home.json", s3_server.store(endpoint=endpoint))
    )
    assert [a["checksum"] for a in again["artifacts"]] == [sha(blob(COOC)), sha(blob(POP))]


def test_s3_wrong_secret_is_a_warning_per_artifact_and_never_shown(s3_server: S3Server, local):
    # the manifest on disk, the artifacts on S3 read with a wrong secret: the run goes on
    current = {
        "popularity": f"s3://{BUCKET}/artifacts/popularity v7.json",
        "local": str(local / "cooc.json"),
    }
    (local / "m.json").write_bytes(manifest(current))
    got = provenance(eval_cfg(str(local / "m.json"), s3_server.store(WRONG_SECRET)))
    assert got["artifacts"][0]["checksum"] == sha(blob(COOC))
    assert got["artifacts"][1] == {"type": "popularity", "uri": current["popularity"]}
    assert got["warnings"] == [
        f"artifact fetch failed: popularity ({current['popularity']}: HTTP 403 "
        "SignatureDoesNotMatch: The request signature we calculated does not match the "
        "signature you provided. Check your key and signing method.)"
    ]
    no_secret(s3_server, json.dumps(got))


def test_s3_manifest_not_readable_stops_the_run_without_secrets(s3_server: S3Server):
    cfg = eval_cfg(f"s3://{BUCKET}/manifests/home.json", s3_server.store(WRONG_SECRET))
    with pytest.raises(RecsysEvalError, match="HTTP 403 SignatureDoesNotMatch") as exc:
        provenance(cfg, "eval.yaml")
    no_secret(s3_server, str(exc.value))
    with pytest.raises(RecsysEvalError, match=r"manifests/none\.json: HTTP 404 NoSuchKey"):
        provenance(eval_cfg(f"s3://{BUCKET}/manifests/none.json", s3_server.store()))
    closed = s3_server.store(endpoint="127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(RecsysEvalError, match=r"cannot reach http://127\.0\.0\.1:1: "):
        provenance(eval_cfg(f"s3://{BUCKET}/manifests/home.json", closed))


# -- the CLI and the renders -------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def write_eval(folder: Path, uri: str, store: dict) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "offline.demo.yaml").read_text())
    cfg["artifacts"] = {"manifest_uri": uri, "object_store": store}
    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_records_provenance_and_renders_it_without_secrets(s3_server, tmp_path):
    config = write_eval(tmp_path, f"s3://{BUCKET}/manifests/with-broken.json", s3_server.store())
    out = tmp_path / "report.json"
    dataset = str(REPO / "configs" / "dataset.tiny.yaml")
    proc = cli("run", "--mode", "offline", "--dataset", dataset, "--config", str(config),
               "--output", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    block = report["artifacts"]
    assert [a["type"] for a in block["artifacts"]] == ["broken", "cooc"]
    assert block["artifacts"][1]["checksum"] == sha(blob(COOC))
    assert block["warnings"][0].startswith("artifact parse failed: broken (")
    assert f"warning: {block['warnings'][0]}" in proc.stderr
    s3_cfg = report["effective_config"]["eval"]["artifacts"]["object_store"]["s3"]
    assert s3_cfg["secret_key"] == s3_cfg["access_key"] == "***redacted***"
    texts = [out.read_text(), proc.stdout, proc.stderr]
    for fmt in ("md", "html"):
        rendered = tmp_path / f"report.{fmt}"
        done = cli("render", "--report", str(out), "--format", fmt, "--output", str(rendered))
        assert done.returncode == 0, done.stderr
        texts += [rendered.read_text(), done.stdout, done.stderr]
        assert "Artifact Provenance" in rendered.read_text()
        assert sha(blob(COOC)) in rendered.read_text()
    no_secret(s3_server, *texts)


def test_run_with_an_unreadable_manifest_fails_before_loading(tmp_path):
    config = write_eval(tmp_path, str(tmp_path / "missing.json"), {"type": "file"})
    out, db = tmp_path / "report.json", tmp_path / "run.duckdb"
    dataset = str(REPO / "configs" / "dataset.tiny.yaml")
    proc = cli("run", "--mode", "offline", "--dataset", dataset, "--config", str(config),
               "--output", str(out), "--database", str(db))  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {config}: artifacts.manifest_uri: cannot fetch the manifest: "
        f"{tmp_path / 'missing.json'}: no such file"
    ]
    assert not out.exists() and not db.exists()  # nothing loaded, nothing written


def test_render_escapes_every_provenance_value():
    hostile = "<script>alert(1)</script>|*x*"
    report = {
        "run_id": "offline-20250101T000000Z",
        "mode": "offline",
        "created_at": "2025-01-01T00:00:00Z",
        "summary": {"cases_evaluated": 0, "executive": {"decision": "not_configured"}},
        "artifacts": {
            "manifest_uri": "s3://ak:sEcReT123@bucket/m.json",
            "tenant": hostile,
            "artifacts": [{"type": hostile, "uri": "/a", "version": hostile, "checksum": "ab"}],
            "warnings": [f"artifact parse failed: {hostile}"],
        },
    }
    md = render_report(report, "md")
    html = render_report(report, "html")
    for text in (md, html):
        assert "<script>" not in text and "sEcReT123" not in text
        assert "Artifact Provenance" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|\\*x\\*" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;|*x*" in html
