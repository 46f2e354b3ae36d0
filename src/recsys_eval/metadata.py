"""Run metadata: the input dataset fingerprint and the redacted effective config."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

from recsys_eval.config import RunConfig

FINGERPRINT_HASH_LIMIT = 10 * 1024 * 1024  # files up to 10 MiB also contribute their SHA-256
REDACTED = "***redacted***"
_SECRET_KEY = re.compile(r"(dsn|password|passwd|secret|token|access_key|api_key|credential)", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<cred>[^/@\s]+)@", re.I)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dataset_fingerprint(cfg: RunConfig) -> str:
    """The reference's fingerprint (§8.6), so the same inputs give the same value.

    Parts: the mode; per configured source its name and type, then for JSONL the file's
    basename, size and (up to 10 MiB) SHA-256, for SQL sources the DSN and query. The parts are
    sorted, joined with '|' and hashed.
    """
    parts = [cfg.mode.lower()]
    for src in _all_sources(cfg):
        parts += [src.name, src.type]
        if src.type == "jsonl" and src.path is not None:
            size = src.path.stat().st_size
            parts += [src.path.name, str(size)]
            if size <= FINGERPRINT_HASH_LIMIT:
                parts.append(sha256_file(src.path))
        else:
            parts += [src.dsn or "", src.query or ""]
    return hashlib.sha256("|".join(sorted(parts)).encode()).hexdigest()


def _all_sources(cfg: RunConfig):
    # The reference hashes every configured source of the mode, assignments included in offline.
    return cfg.sources()


def redact(value: Any, key: str = "") -> Any:
    """A deep copy of `value` with secrets replaced: values of secret-looking keys (DSNs,
    passwords, keys, tokens) and credentials embedded in URLs."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key) and value:
            return REDACTED
        return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{REDACTED}@", value)
    return copy.deepcopy(value)


def effective_config(cfg: RunConfig) -> dict[str, Any]:
    """`{mode, dataset, eval}` after defaults, with YAML key names and every secret redacted."""
    return redact({"mode": cfg.mode, "dataset": cfg.dataset_as_written, "eval": cfg.eval})
