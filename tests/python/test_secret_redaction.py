"""Secret redaction (issue 16, item 2): URLs parsed (userinfo up to the last `@`, secret query
parameters), key=value strings (libpq, ODBC/JDBC, SQL, JSON, YAML), in the report's
effective_config, in the Markdown and HTML renders and in everything the CLI prints."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import CONFIGS, ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_eval.cli import main
from recsys_eval.config import load_run_config
from recsys_eval.errors import EXIT_ERROR
from recsys_eval.metadata import REDACTED, effective_config, redact, redact_text
from recsys_eval.render import render_report

R = REDACTED

# (input, expected output): one row per form.
TABLE = [
    # URL userinfo: the user stays, the password goes, whatever it holds (/ @ ? # :).
    ("postgres://user:hunter2@host/db", f"postgres://user:{R}@host/db"),
    (
        "postgres://user:pw@host/db?sslmode=require&password=s3cr3t",
        f"postgres://user:{R}@host/db?sslmode=require&password={R}",
    ),
    (
        "s3://AKIAEXAMPLE:wJalr/XUtnF+EMI/K7MDENG@bucket/k.json",
        f"s3://AKIAEXAMPLE:{R}@bucket/k.json",
    ),
    ("postgres://bob:p@ss@w0rd@db:5432/x", f"postgres://bob:{R}@db:5432/x"),
    ("mysql://u:pa?ss#w@host/db", f"mysql://u:{R}@host/db"),
    ("s3:/AKIA:se/cret@bucket/x.jsonl", f"s3:/AKIA:{R}@bucket/x.jsonl"),  # str(Path(url))
    ("https://ghp_t0ken@github.com/o/r.git", f"https://{R}@github.com/o/r.git"),
    # Not credentials: an @ in the path or in a query value.
    ("gs://bucket/dir@v2/file.jsonl", "gs://bucket/dir@v2/file.jsonl"),
    ("https://host/p?notify=a@b.com", "https://host/p?notify=a@b.com"),
    # Query and fragment parameters by name.
    (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2024"
        "&X-Amz-Date=20240101T000000Z&X-Amz-Signature=ab12&X-Amz-Security-Token=tok",
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
        f"{R}&X-Amz-Date=20240101T000000Z&X-Amz-Signature={R}&X-Amz-Security-Token={R}",
    ),
    (
        "https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Signature=zz%3D&Expires=1",
        f"https://b.s3.amazonaws.com/k?AWSAccessKeyId={R}&Signature={R}&Expires=1",
    ),
    (
        "https://storage.googleapis.com/b/o?X-Goog-Credential=c&X-Goog-Signature=9f&x=1",
        f"https://storage.googleapis.com/b/o?X-Goog-Credential={R}&X-Goog-Signature={R}&x=1",
    ),
    (
        "https://a.blob.core.windows.net/c?sv=2022&sig=abc%2B&se=2",
        f"https://a.blob.core.windows.net/c?sv=2022&sig={R}&se=2",
    ),
    (
        "https://api.x/v1?key=AIza&apikey=1&api_key=2&token=3&access_token=4&secret=5&password=6&q=ok",
        f"https://api.x/v1?key={R}&apikey={R}&api_key={R}&token={R}&access_token={R}&secret={R}"
        f"&password={R}&q=ok",
    ),
    ("https://x/cb#access_token=frag&state=1", f"https://x/cb#access_token={R}&state=1"),
    (
        "jdbc:sqlserver://h:1433;databaseName=d;password={a b;c};user=u",
        f"jdbc:sqlserver://h:1433;databaseName=d;password={{{R}}};user=u",
    ),
    # libpq keyword/value DSNs.
    ("host=x password=secret user=y", f"host=x password={R} user=y"),
    ("host=x password='a b\\' c' user=y", f"host=x password='{R}' user=y"),
    ("host=x password = 'a b' dbname=d", f"host=x password = '{R}' dbname=d"),
    # ODBC connection strings.
    (
        "Driver={PG};Server=h;Uid=u;Pwd=p w;Database=d",
        f"Driver={{PG}};Server=h;Uid=u;Pwd={R};Database=d",
    ),
    ("Server=h;PWD={a;b}}c};Database=d", f"Server=h;PWD={{{R}}};Database=d"),
    # SQL text.
    (
        "select * from users where password = 'it''s' and id = 1",
        f"select * from users where password = '{R}' and id = 1",
    ),
    ('create user u with PASSWORD "dq x"', 'create user u with PASSWORD "dq x"'),  # no `=`
    ("alter role r set password='x y'", f"alter role r set password='{R}'"),
    # JSON, Python reprs, YAML (as PyYAML's error snippets echo it).
    ('{"token": "abc", "n": 1}', f'{{"token": "{R}", "n": 1}}'),
    ("{'password': 'hunter2', 'user': 'bob'}", f"{{'password': '{R}', 'user': 'bob'}}"),
    ('    password: hun"ter2\n    ^', f"    password: {R}\n    ^"),
    (
        "s3: {endpoint: e, secret_key: s3cr3t, bucket: b}",
        f"s3: {{endpoint: e, secret_key: {R}, bucket: b}}",
    ),
    # Untouched: no secret, or a name merely mentioned.
    (
        "eval.yaml: artifacts.s3.secret_key: expected a string",
        "eval.yaml: artifacts.s3.secret_key: expected a string",
    ),
    ("/data/dt=2024-01-01/token=x/e.jsonl", "/data/dt=2024-01-01/token=x/e.jsonl"),
    ("C:/data/e.jsonl", "C:/data/e.jsonl"),
    ("a=b c:d", "a=b c:d"),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_redact_text_table(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent


def test_redact_config_tree_keys_dsns_and_nested_credentials() -> None:
    cfg = {
        "dataset": {
            "exposures": {
                "type": "postgres",
                "dsn": "postgres://bob:hun/ter2@db/x?sslmode=require&password=pw2",
                "query": "select data from t where password = 'pw3'",
            },
            "outcomes": {"type": "oracle", "dsn": "scott/tiger@orcl"},  # neither URL nor k=v
        },
        "eval": {
            "artifacts": {
                "manifest_uri": "s3://ak:s/k@bucket/m.json",
                "object_store": {
                    "s3": {"access_key": "AKIA123", "secret_key": 12345, "bucket": "b"}
                },
                "credentials": {"user": "u", "value": "nested-secret"},
            }
        },
    }
    red = redact(cfg)
    out = json.dumps(red)
    for secret in ("hun/ter2", "pw2", "pw3", "tiger", "AKIA123", "12345", "s/k", "nested-secret"):
        assert secret not in out
    ex = red["dataset"]["exposures"]
    assert ex["dsn"] == f"postgres://bob:{R}@db/x?sslmode=require&password={R}"
    assert ex["query"] == f"select data from t where password = '{R}'"
    assert red["dataset"]["outcomes"]["dsn"] == R
    art = red["eval"]["artifacts"]
    assert art["manifest_uri"] == f"s3://ak:{R}@bucket/m.json"
    assert art["object_store"]["s3"] == {"access_key": R, "secret_key": R, "bucket": "b"}
    assert cfg["eval"]["artifacts"]["object_store"]["s3"]["secret_key"] == 12345  # a copy


# --- property: the secret never survives ---------------------------------------------------------

# Secrets are wrapped in markers, so "not in the output" cannot pass by accident.
_URL_CHARS = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S")), min_size=1, max_size=24
)
_NO_SPACE = st.text(
    alphabet=st.characters(
        codec="ascii", categories=("L", "N", "P", "S"), exclude_characters="'\"\\"
    ),
    min_size=1,
    max_size=24,
)
_ANY_LINE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
    min_size=1,
    max_size=24,
)
_NAMES = st.sampled_from(
    ["password", "PWD", "token", "sig", "key", "apikey", "api_key", "access_token", "secret",
     "X-Amz-Signature", "X-Amz-Credential", "AWSAccessKeyId", "Signature", "X-Goog-Signature",
     "client_secret", "sslpassword"]
)  # fmt: skip


def _marked(body: str) -> str:
    return f"QZX{body}XZQ"


def _forms(secret: str, name: str) -> list[tuple[str, str]]:
    """(text carrying `secret`, the substring that must not survive)."""
    sql = secret.replace("'", "''")
    libpq = secret.replace("\\", "\\\\").replace("'", "\\'")
    odbc = secret.replace("}", "}}")
    return [
        (f"postgres://user:{secret}@host:5432/db?sslmode=require", secret),
        (f"error: input file not found: s3://AKIA:{secret}@bucket/k.jsonl", secret),
        (f"https://h/p?a=1&{name}={quote(secret, safe='')}&b=2", quote(secret, safe="")),
        (f"host=db {name}='{libpq}' user=u", libpq),
        (f"Driver={{X}};Server=h;{name}={{{odbc}}};Database=d", odbc),
        (f"select 1 from t where {name} = '{sql}'", sql),
        (json.dumps({name: secret, "n": 1}), json.dumps(secret)[1:-1]),
        (repr({name: secret}), repr(secret)[1:-1]),
    ]


@settings(max_examples=300, deadline=None)
@given(body=_URL_CHARS, name=_NAMES)
def test_property_secret_never_survives_any_form(body: str, name: str) -> None:
    for text, secret in _forms(_marked(body), name):
        assert secret not in redact_text(text), text


@settings(max_examples=200, deadline=None)
@given(body=_NO_SPACE, name=_NAMES)
def test_property_bare_values_never_survive(body: str, name: str) -> None:
    secret = _marked(body)
    for text in (
        f"host=db {name}={secret} user=u",
        f"?x=1&{name}={quote(secret, safe='')}",
        f"    {name}: {secret}",
    ):
        out = redact_text(text)
        assert secret not in out and quote(secret, safe="") not in out, text
    odbc = secret.replace(";", "")
    assert odbc not in redact_text(f"Server=h;{name}={odbc};Database=d")


@settings(max_examples=200, deadline=None)
@given(body=_ANY_LINE, keys=st.lists(_NAMES, min_size=1, max_size=3))
def test_property_config_tree_never_keeps_a_secret(body: str, keys: list[str]) -> None:
    secret = _marked(body)
    tree: object = secret
    for key in keys:
        tree = {key: tree, "other": [1, "x"]}
    assert secret not in json.dumps(redact({"eval": tree}), ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_property_any_text_is_handled(text: str) -> None:
    out = redact_text(text)
    assert isinstance(out, str)
    if R not in out:
        assert out == text  # nothing is changed unless something is hidden


# --- the report: JSON effective_config, Markdown, HTML -------------------------------------------

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PRESIGNED_SIG = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _eval_with_secrets(tmp_path: Path) -> Path:
    cfg = (CONFIGS / "offline.ci.yaml").read_text() + (
        "artifacts:\n"
        f"  manifest_uri: 's3://AKIAEXAMPLE:{AWS_SECRET}@bucket/m.json'\n"
        "  object_store:\n    type: s3\n    s3:\n"
        f"      endpoint: 'https://b.s3.amazonaws.com/r?X-Amz-Signature={PRESIGNED_SIG}"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20240101&X-Amz-Expires=60'\n"
    )
    path = tmp_path / "eval.yaml"
    path.write_text(cfg)
    return path


def test_report_effective_config_markdown_and_html_hold_no_secret(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(ROOT)
    cfg = load_run_config(CONFIGS / "dataset.tiny.yaml", _eval_with_secrets(tmp_path))
    eff = effective_config(cfg)
    art = eff["eval"]["artifacts"]
    assert art["manifest_uri"] == f"s3://AKIAEXAMPLE:{R}@bucket/m.json"
    assert art["object_store"]["s3"]["endpoint"] == (
        f"https://b.s3.amazonaws.com/r?X-Amz-Signature={R}&X-Amz-Credential={R}&X-Amz-Expires=60"
    )
    report = {"run_id": "r1", "mode": "offline", "created_at": "2024-01-01T00:00:00Z",
              "effective_config": eff}  # fmt: skip
    texts = [json.dumps(report), render_report(report, "md"), render_report(report, "html")]
    for text in texts:
        for secret in (AWS_SECRET, "K7MDENG", PRESIGNED_SIG, "20240101"):
            assert secret not in text


def test_render_redacts_a_report_written_with_secrets_in_clear() -> None:
    """A report from the reference (or an old version) carries the DSN in clear."""
    report = {
        "run_id": "r1",
        "mode": "offline",
        "effective_config": {
            "dataset": {
                "exposures": {
                    "type": "postgres",
                    "dsn": f"postgres://bob:{AWS_SECRET}@db/x?sslmode=require&password=pw-2",
                    "query": "select data from t where password = 'pw 3'",
                }
            },
            "eval": {"artifacts": {"object_store": {"s3": {"secret_key": "sk-4", "bucket": "b"}}}},
        },
    }
    md, html = render_report(report, "md"), render_report(report, "html")
    for text in (md, html):
        for secret in (AWS_SECRET, "pw-2", "pw 3", "sk-4"):
            assert secret not in text
    assert "postgres://bob:\\*\\*\\*redacted\\*\\*\\*@db/x?sslmode=require" in md
    assert f"postgres://bob:{R}@db/x?sslmode=require&amp;password={R}" in html


# --- the console: run, load, validate ------------------------------------------------------------

CRED_URL = f"s3://AKIAEXAMPLE:{AWS_SECRET}@bucket/exposures.jsonl?token=tk-5&X-Amz-Signature={PRESIGNED_SIG}"
CONSOLE_SECRETS = (AWS_SECRET, "K7MDENG", "tk-5", PRESIGNED_SIG)


def _console(capsys) -> str:
    out = capsys.readouterr()
    return out.out + out.err


def test_validate_and_load_never_print_a_credential_from_their_arguments(
    tmp_path: Path, capsys
) -> None:
    assert main(["validate", "--schema", "exposure.v1", "--input", CRED_URL]) == EXIT_ERROR
    text = _console(capsys)
    assert "input file not found: s3://AKIAEXAMPLE:***redacted***@bucket/exposures.jsonl" in text
    db = tmp_path / "w.duckdb"
    code = main(["load", "--schema", "exposure.v1", "--input", CRED_URL, "--database", str(db)])
    assert code == EXIT_ERROR
    text += _console(capsys)
    assert "input file not found" in text
    for secret in CONSOLE_SECRETS:
        assert secret not in text


def test_run_never_prints_a_credential_from_its_config(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    dataset = tmp_path / "dataset.yaml"
    dataset.write_text(
        f"exposures: {{type: jsonl, path: '{CRED_URL}'}}\n"
        f"outcomes: {{type: jsonl, path: {ROOT / 'examples/tiny/outcomes.jsonl'}}}\n"
    )
    code = main(["run", "--dataset", str(dataset), "--config", str(CONFIGS / "offline.ci.yaml"),
                 "--output", str(tmp_path / "r.json")])  # fmt: skip
    assert code == EXIT_ERROR
    text = _console(capsys)
    assert "exposures.path" in text and "s3:" in text
    for secret in CONSOLE_SECRETS:
        assert secret not in text


def test_config_errors_do_not_echo_a_secret_value(tmp_path: Path, capsys, monkeypatch) -> None:
    """A secret of the wrong type (`secret_key: 123456789`) and a YAML syntax error on the line
    of a password: the message names file, key and rule, not the value."""
    monkeypatch.chdir(ROOT)
    base = (CONFIGS / "offline.ci.yaml").read_text()
    bad_type = tmp_path / "bad_type.yaml"
    bad_type.write_text(base + "artifacts:\n  object_store:\n    s3: {secret_key: 987654321}\n")
    bad_yaml = tmp_path / "bad_yaml.yaml"
    bad_yaml.write_text(
        base + 'artifacts:\n  object_store:\n    s3:\n      secret_key: "sk"9f8e7\n'
    )
    for path in (bad_type, bad_yaml):
        code = main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                     str(path), "--output", str(tmp_path / "r.json")])  # fmt: skip
        assert code == EXIT_ERROR
        text = _console(capsys)
        assert str(path) in text
        assert "987654321" not in text and "9f8e7" not in text
    # the message still says what is wrong
    assert main(["run", "--dataset", str(CONFIGS / "dataset.tiny.yaml"), "--config",
                 str(bad_type), "--output", str(tmp_path / "r.json")]) == EXIT_ERROR  # fmt: skip
    assert "secret_key: expected a string, got int (value not shown" in _console(capsys)


HOSTILE = [
    "password=" * 20_000,
    "'password': '" * 20_000,
    "k=v;" * 20_000 + "password=" + "x" * 50_000,
    "s3://" + "{" * 20_000 + " x",
    "s3://u:" + "@" * 20_000,
    "a.b-c" * 40_000,
    "password={" * 20_000,
]


def test_hostile_text_is_redacted_in_linear_time() -> None:
    """Console messages and configs can be long and adversarial: no quadratic blow-up (a first
    version took 300 s on 180 kB of `password=`)."""
    start = time.perf_counter()
    for text in HOSTILE:
        redact_text(text)
    assert time.perf_counter() - start < 10
