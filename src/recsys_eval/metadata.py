"""Run metadata: the input dataset fingerprint and the redacted effective config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from recsys_eval.config import TABULAR_TYPES, RunConfig
from recsys_eval.redaction import REDACTED, redact, redact_text

__all__ = ["REDACTED", "dataset_fingerprint", "effective_config", "redact", "redact_text"]

FINGERPRINT_HASH_LIMIT = 10 * 1024 * 1024  # files up to 10 MiB also contribute their SHA-256


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dataset_fingerprint(cfg: RunConfig) -> str:
    """The reference's fingerprint (§8.6), so the same inputs give the same value.

    Parts: the mode; per configured source its name and type, then for JSONL the file's
    basename, size and (up to 10 MiB) SHA-256, for SQL sources the DSN and query; an outcomes
    source's event_types mapping, when set, adds one part (so mapped data differs from the
    same file read strictly). The parts are sorted, joined with '|' and hashed.
    """
    parts = [cfg.mode.lower()]
    for src in _all_sources(cfg):
        parts += [src.name, src.type]
        if src.type == "jsonl" and src.path is not None:
            size = src.path.stat().st_size
            parts += [src.path.name, str(size)]
            if size <= FINGERPRINT_HASH_LIMIT:
                parts.append(sha256_file(src.path))
        elif src.type in TABULAR_TYPES:  # not in the reference: the block as written
            block = {k: v for k, v in src.options.items() if k != "event_types"}
            parts.append(json.dumps(block, sort_keys=True, default=str))
        else:
            parts += [src.dsn or "", src.query or ""]
        if src.event_types is not None:  # not in the reference: only with outcomes.event_types
            names = ",".join(f"{k}={v}" for k, v in sorted(src.event_types.items()))
            parts.append(f"{src.name}.event_types={names}")
    return hashlib.sha256("|".join(sorted(parts)).encode()).hexdigest()


def _all_sources(cfg: RunConfig):
    # The reference hashes every configured source of the mode, assignments included in offline.
    return cfg.sources()


def effective_config(cfg: RunConfig) -> dict[str, Any]:
    """`{mode, dataset, eval}` after defaults, with YAML key names and every secret redacted
    (`recsys_eval.redaction.redact`)."""
    return redact({"mode": cfg.mode, "dataset": cfg.dataset_as_written, "eval": cfg.eval})
