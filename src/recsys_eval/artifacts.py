"""Artifact provenance (the reference's §8.6, `artifacts.manifest_uri`): which model artifacts
were live for the run, read from the pipelines' artifact manifest.

The manifest (`{v, tenant, surface, current: {type: uri}, updated_at}`) and each artifact blob it
points at are fetched from

- a local path (`/abs/path`, or a relative path, against the working directory) or `file://`;
- `s3://bucket/key` through the configured object store (`artifacts.object_store: {type: s3 |
  minio, s3: {endpoint, bucket, access_key, secret_key, region, use_ssl}}`; an `s3:///key`
  without a bucket uses the configured one), by a plain HTTP GET signed with AWS Signature V4
  (path-style addressing, so MinIO, Ceph, moto and AWS all work; no credentials: unsigned);
- any other form without a scheme goes to the configured store (a key in its bucket for s3).

For each non-empty entry of `current` the report records `type`, `uri`, the blob's
`build.{version, source_hash, built_at}` and `checksum` (SHA-256 of the blob), sorted by type
(the reference follows Go's random map order). A blob that cannot be fetched or parsed adds the
reference's warning (`artifact fetch failed: TYPE (...)` / `artifact parse failed: TYPE (...)`)
and keeps its entry; a manifest that cannot be fetched or parsed stops the run, as in the
reference, but before any data is loaded. Nothing here prints or stores a key, a secret or a
signature: every message is scrubbed of the configured credentials and passed through
`recsys_eval.redaction`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson

from recsys_eval.errors import ConfigError, RecsysEvalError
from recsys_eval.redaction import REDACTED, redact, redact_text

STORE_TYPES = ("file", "fs", "s3", "minio")
MAX_PARSE_BYTES = 256 * 1024 * 1024  # a larger blob is hashed whole but not parsed
TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class FetchError(Exception):
    """A manifest or blob could not be read; the message names the URI and what failed."""


class ParseError(Exception):
    """A manifest or blob was read but is not the expected JSON."""


@dataclass(frozen=True)
class S3Store:
    scheme: str  # http | https
    host: str  # host[:port], as sent in the Host header
    bucket: str
    access_key: str
    secret_key: str
    region: str


@dataclass(frozen=True)
class Blob:
    checksum: str
    data: bytes | None  # None when larger than MAX_PARSE_BYTES
    size: int


# --- configuration ----------------------------------------------------------------------------


def store_from_config(block: dict[str, Any], where: str) -> S3Store | None:
    """The configured object store: None for the file store, an S3Store for s3/minio. Raises
    ConfigError for an unknown type or a missing endpoint/bucket (the reference's rules)."""
    store = block.get("object_store") or {}
    typ = (store.get("type") or "file").strip().lower()
    if typ not in STORE_TYPES:
        raise ConfigError(
            f"{where}: artifacts.object_store.type: must be one of {', '.join(STORE_TYPES)}, "
            f"got {store.get('type')!r}"
        )
    if typ in ("file", "fs"):
        return None
    s3 = store.get("s3") or {}
    if not s3.get("endpoint") or not s3.get("bucket"):
        raise ConfigError(
            f"{where}: artifacts.object_store.s3: endpoint and bucket are required for type {typ}"
        )
    access, secret = s3.get("access_key") or "", s3.get("secret_key") or ""
    if bool(access) != bool(secret):
        raise ConfigError(
            f"{where}: artifacts.object_store.s3: access_key and secret_key must be given "
            "together (or neither, for anonymous access)"
        )
    endpoint = s3["endpoint"].strip()
    if "://" not in endpoint:
        endpoint = ("https://" if s3.get("use_ssl") else "http://") + endpoint
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(
            f"{where}: artifacts.object_store.s3.endpoint: expected host[:port] or "
            f"http(s)://host[:port], got {redact_text(s3['endpoint'])!r}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            f"{where}: artifacts.object_store.s3.endpoint: give credentials in access_key and "
            "secret_key, not in the endpoint"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: artifacts.object_store.s3.endpoint: bad port") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default_port = 443 if parts.scheme == "https" else 80
    if port is not None and port != default_port:
        host = f"{host}:{port}"
    return S3Store(
        scheme=parts.scheme,
        host=host,
        bucket=s3["bucket"],
        access_key=access,
        secret_key=secret,
        region=(s3.get("region") or "").strip() or "us-east-1",
    )


# --- fetching ---------------------------------------------------------------------------------


class Fetcher:
    def __init__(self, store: S3Store | None) -> None:
        self.store = store
        keys = (store.access_key, store.secret_key) if store else ()
        self._secrets = [k for k in keys if len(k) >= 4]

    def scrub(self, text: str) -> str:
        """`text` with the configured key and secret (raw and URL-quoted) and every other
        secret-looking value hidden."""
        for secret in self._secrets:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, REDACTED)
        return redact_text(text)

    def fetch(self, uri: str) -> Blob:
        """The blob at `uri` with its SHA-256; FetchError naming the URI otherwise."""
        if uri.startswith("file://"):
            return _read_file(_file_uri_path(uri), uri)
        if uri.startswith("/"):
            return _read_file(Path(uri), uri)
        if uri.startswith("s3://"):
            parts = urlsplit(uri)
            if self.store is None:
                raise FetchError(
                    f"{uri}: s3:// needs artifacts.object_store.type s3 or minio with an endpoint"
                )
            if parts.query or parts.fragment or "@" in parts.netloc:
                raise FetchError(f"{uri}: an s3:// URI is s3://bucket/key (no credentials, query)")
            bucket = parts.netloc or self.store.bucket
            key = parts.path.lstrip("/")
            return self._get(bucket, key, uri)
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):", uri)
        if scheme and len(scheme[1]) > 1:  # a one-letter scheme is a drive letter
            raise FetchError(
                f"{uri}: unsupported URI scheme {scheme[1]}: (use a path, file:// or s3://)"
            )
        if self.store is None:
            return _read_file(Path(uri), uri)
        return self._get(self.store.bucket, uri.lstrip("/"), uri)

    def _get(self, bucket: str, key: str, uri: str) -> Blob:
        assert self.store is not None
        if not key:
            raise FetchError(f"{uri}: no object key")
        store = self.store
        path = "/" + quote(bucket, safe="") + "/" + quote(key, safe="/")
        headers = {"Host": store.host, "x-amz-content-sha256": _EMPTY_SHA256}
        if store.access_key:
            headers.update(sign_v4(store, "GET", path, headers, dt.datetime.now(dt.UTC)))
        conn_cls = (
            http.client.HTTPSConnection if store.scheme == "https" else http.client.HTTPConnection
        )
        where = f"{store.scheme}://{store.host}"
        try:
            conn = conn_cls(store.host, timeout=TIMEOUT_S)
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    raise FetchError(f"{uri}: {_s3_error(resp)}")
                return _hash_stream(resp.read, uri)
            finally:
                conn.close()
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(f"{uri}: no answer from {where} within {TIMEOUT_S:.0f} s") from None
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise FetchError(f"{uri}: cannot reach {where}: {reason}") from None


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{uri}: a file:// URI must name a local path (file:///abs/path)")
    return Path(unquote(parts.path))


def _read_file(path: Path, uri: str) -> Blob:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise FetchError(f"{uri}: no such file") from None
    except OSError as exc:
        raise FetchError(f"{uri}: cannot open: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise FetchError(f"{uri}: is a directory, not a file")
        raise FetchError(f"{uri}: not a regular file (pipes and devices are never read)")
    with os.fdopen(fd, "rb") as fh:
        try:
            return _hash_stream(fh.read, uri)
        except OSError as exc:
            raise FetchError(f"{uri}: cannot read: {exc.strerror or exc}") from None


def _hash_stream(read: Any, uri: str) -> Blob:
    digest = hashlib.sha256()
    kept: list[bytes] | None = []
    size = 0
    while block := read(_CHUNK):
        digest.update(block)
        size += len(block)
        if kept is not None:
            kept.append(block)
            if size > MAX_PARSE_BYTES:
                kept = None
    return Blob(digest.hexdigest(), b"".join(kept) if kept is not None else None, size)


_XML_FIELD = re.compile(r"<(Code|Message)>([^<]{0,300})</\1>")


def _s3_error(resp: http.client.HTTPResponse) -> str:
    """`HTTP 403 SignatureDoesNotMatch: The request signature ...`: the status and the error's
    Code and Message only (an S3 error body also echoes the string to sign and the key id)."""
    body = resp.read(64 * 1024).decode("utf-8", "replace")
    fields = dict(_XML_FIELD.findall(body))
    text = f"HTTP {resp.status}"
    if fields.get("Code"):
        text += f" {fields['Code']}"
    if fields.get("Message"):
        text += f": {fields['Message'].strip()}"
    elif resp.reason:
        text += f" {resp.reason}"
    return text


def sign_v4(
    store: S3Store, method: str, path: str, headers: dict[str, str], now: dt.datetime
) -> dict[str, str]:
    """AWS Signature Version 4 for an S3 request without a query or body: the `x-amz-date` and
    `Authorization` headers to add (`path` is already URI-encoded, as S3 wants it)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["x-amz-date"] = amz_date
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            path,
            "",  # no query string
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            signed.get("x-amz-content-sha256", _EMPTY_SHA256),
        ]
    )
    scope = f"{day}/{store.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + store.secret_key).encode()
    for part in (day, store.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={store.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }


# --- parsing ----------------------------------------------------------------------------------


def _json_object(blob: Blob, what: str) -> dict[str, Any]:
    if blob.data is None:
        raise ParseError(
            f"{blob.size} bytes, over the {MAX_PARSE_BYTES >> 20} MiB that are parsed "
            "(the checksum covers the whole blob)"
        )
    try:
        value = orjson.loads(blob.data)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ParseError(f"{what} must be a JSON object, got {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    """obj[key] as a string ('' when absent or null, as Go's decoder leaves it)."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ParseError(f"{where}{key}: expected a string, got {_json_kind(value)}")
    return value


def parse_manifest(blob: Blob) -> dict[str, Any]:
    """`{tenant, surface, updated_at, current}` of a pipelines ManifestV1 (unknown keys are
    ignored, as the reference does; the known ones must have their types)."""
    doc = _json_object(blob, "the manifest")
    v = doc.get("v")
    if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
        raise ParseError(f"v: expected an integer, got {_json_kind(v)}")
    current = doc.get("current")
    if current is None:
        current = {}
    if not isinstance(current, dict):
        raise ParseError(f"current: expected an object (type -> uri), got {_json_kind(current)}")
    entries = {str(k): _string(current, k, "current.") for k in current}
    return {
        "tenant": _string(doc, "tenant", ""),
        "surface": _string(doc, "surface", ""),
        "updated_at": _string(doc, "updated_at", ""),
        "current": entries,
    }


def parse_artifact(blob: Blob) -> dict[str, str]:
    """`build.{version, source_hash, built_at}` of an artifact blob."""
    doc = _json_object(blob, "an artifact")
    _string(doc, "artifact_type", "")
    build = doc.get("build")
    if build is None:
        return {}
    if not isinstance(build, dict):
        raise ParseError(f"build: expected an object, got {_json_kind(build)}")
    return {k: _string(build, k, "build.") for k in ("version", "source_hash", "built_at")}


# --- the report block -------------------------------------------------------------------------


def provenance(eval_cfg: dict[str, Any], where: str = "config") -> dict[str, Any] | None:
    """The report's `artifacts` block, or None when `artifacts.manifest_uri` is not set.

    Raises RecsysEvalError when the manifest cannot be fetched or parsed (the reference aborts
    the run); artifact failures become the block's `warnings`."""
    block = eval_cfg.get("artifacts") or {}
    manifest_uri = (block.get("manifest_uri") or "").strip()
    if not manifest_uri:
        return None
    fetcher = Fetcher(store_from_config(block, where))
    try:
        manifest = parse_manifest(fetcher.fetch(manifest_uri))
    except FetchError as exc:
        raise RecsysEvalError(
            fetcher.scrub(f"{where}: artifacts.manifest_uri: cannot fetch the manifest: {exc}")
        ) from None
    except ParseError as exc:
        raise RecsysEvalError(
            fetcher.scrub(
                f"{where}: artifacts.manifest_uri: {manifest_uri}: not a usable artifact "
                f"manifest: {exc}"
            )
        ) from None
    out: dict[str, Any] = {"manifest_uri": manifest_uri}
    for key in ("tenant", "surface", "updated_at"):
        if manifest[key]:
            out[key] = manifest[key]
    entries, warnings = [], []
    for typ, uri in sorted(manifest["current"].items()):
        if not uri:
            continue
        entry: dict[str, Any] = {"type": typ, "uri": uri}
        try:
            blob = fetcher.fetch(uri)
        except FetchError as exc:
            warnings.append(fetcher.scrub(f"artifact fetch failed: {typ} ({exc})"))
            entries.append(entry)
            continue
        try:
            build = parse_artifact(blob)
        except ParseError as exc:
            warnings.append(fetcher.scrub(f"artifact parse failed: {typ} ({uri}: {exc})"))
            build = {}
        entry.update({k: v for k, v in build.items() if v})
        entry["checksum"] = blob.checksum
        entries.append(entry)
    if entries:
        out["artifacts"] = entries
    if warnings:
        out["warnings"] = warnings
    # URIs and manifest fields are data from elsewhere: the one redaction for everything written.
    return redact(out)
