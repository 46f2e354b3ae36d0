"""`recsys-eval pseudonymize`: replace identifiers in a JSONL file with keyed hashes.

Each selected field becomes the lowercase hex HMAC-SHA256 of its UTF-8 value under a secret key
read from an environment variable (`--key-env`, default RECSYS_EVAL_PSEUDONYMIZE_KEY). The same
id under the same key always gives the same pseudonym, in every file, so exposures, outcomes and
assignments still join. The key is never printed, logged or written; without it the mapping
cannot be recomputed or reversed (keep it like a credential; rotating it breaks joins with
earlier files).

The file is streamed line by line; blank lines are kept (line numbers stay the same); the output
is written to a temporary file in the output's folder and renamed at the end, so a failure leaves
no partial output. A line that is not a JSON object, or a selected field that is not a string,
stops the command with FILE:LINE and the field name (never the value) and nothing is written.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from recsys_eval import schema_registry
from recsys_eval.errors import EXIT_OK, ConfigError, RecsysEvalError
from recsys_eval.redaction import redact_text
from recsys_eval.report import check_writable
from recsys_eval.validation import BOM, iter_physical_lines

DEFAULT_KEY_ENV = "RECSYS_EVAL_PSEUDONYMIZE_KEY"
MIN_KEY_BYTES = 32  # the HMAC-SHA256 block-size guidance: at least the hash length
DEFAULT_FIELDS = ("user_id",)
CACHE_LIMIT = 1_000_000  # memoised pseudonyms (ids repeat across requests)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pseudonymize",
        help="replace user ids (or other identifiers) with keyed HMAC-SHA256 pseudonyms",
        description="Stream a JSONL file and replace the selected identifier fields with the hex "
        "HMAC-SHA256 of their value, keyed by a secret from an environment variable. Same id "
        "and key give the same pseudonym in every file, so joins still work.",
    )
    parser.add_argument("--input", required=True, type=Path, metavar="FILE", help="JSONL file")
    parser.add_argument("--output", required=True, type=Path, metavar="FILE", help="new file")
    parser.add_argument("--schema", required=True, metavar="NAME|PATH", help="e.g. exposure.v1")
    parser.add_argument(
        "--fields",
        nargs="+",
        default=list(DEFAULT_FIELDS),
        metavar="FIELD",
        help="identifier fields to replace (default: user_id); item_id also covers the ids "
        "inside `items`",
    )
    parser.add_argument(
        "--key-env",
        default=DEFAULT_KEY_ENV,
        metavar="VAR",
        help=f"environment variable holding the secret key, at least {MIN_KEY_BYTES} bytes "
        f"(default {DEFAULT_KEY_ENV})",
    )
    parser.set_defaults(func=run)


def read_key(env_name: str) -> bytes:
    """The key from the environment; refuses a missing or short key (naming only the variable)."""
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(
            f"environment variable {env_name} is not set: it must hold the pseudonymization key "
            f"(at least {MIN_KEY_BYTES} bytes, e.g. from `openssl rand -hex 32`)"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"the key in {env_name} is too short ({len(key)} bytes): use at least "
            f"{MIN_KEY_BYTES} random bytes, e.g. from `openssl rand -hex 32`"
        )
    return key


def pseudonymizer(key: bytes) -> Callable[[str], str]:
    """`value -> hex HMAC-SHA256(key, value)`, memoised."""
    cache: dict[str, str] = {}
    new = hmac.new

    def pseudonym(value: str) -> str:
        out = cache.get(value)
        if out is None:
            out = new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[value] = out
        return out

    return pseudonym


def identifier_fields(schema: dict[str, Any]) -> list[str]:
    """Fields `--fields` may name: top-level string properties ending in `_id`, plus `item_id`
    when records carry an `items` list."""
    props = schema.get("properties", {})
    names = [
        k
        for k, sub in props.items()
        if k.endswith("_id") and isinstance(sub, dict) and sub.get("type") == "string"
    ]
    if "items" in props and "item_id" not in names:
        names.append("item_id")
    return names


def _parse(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:  # integers beyond 64 bits, which orjson refuses
        return json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def _dump(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _replace(doc: dict[str, Any], fields: list[str], pseudonym: Callable[[str], str]) -> str:
    """Replace the fields in place; returns the name of a non-string field ('' when all fine)."""
    for name in fields:
        if name == "item_id" and "item_id" not in doc and isinstance(doc.get("items"), list):
            items = doc["items"]
            for i, item in enumerate(items):
                if isinstance(item, str):
                    items[i] = pseudonym(item)
                elif isinstance(item, dict) and "item_id" in item:
                    if not isinstance(item["item_id"], str):
                        return f"items[{i}].item_id"
                    item["item_id"] = pseudonym(item["item_id"])
                else:
                    return f"items[{i}]"
            continue
        if name in doc:
            if not isinstance(doc[name], str):
                return name
            doc[name] = pseudonym(doc[name])
    return ""


def pseudonymize_file(src: Path, dst: Path, fields: list[str], key: bytes) -> tuple[int, int]:
    """Write `dst` (atomically) from `src`; returns (lines read, records rewritten)."""
    pseudonym = pseudonymizer(key)
    folder = dst.resolve().parent
    if not folder.is_dir():
        raise RecsysEvalError(f"cannot write {dst}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RecsysEvalError(f"cannot write {dst}: {exc.strerror or exc}") from None
    lines = records = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for raw, _ in iter_physical_lines(src):
                lines += 1
                line = raw[len(BOM) :] if lines == 1 and raw.startswith(BOM) else raw
                line = line[:-1] if line.endswith(b"\r") else line
                if not line.strip(b" \t"):
                    out.write(b"\n")
                    continue
                doc = _parse(line)
                if not isinstance(doc, dict):
                    raise RecsysEvalError(
                        f"{src}:{lines}: not a JSON object; run `recsys-eval validate` first. "
                        "Nothing was written."
                    )
                bad = _replace(doc, fields, pseudonym)
                if bad:
                    raise RecsysEvalError(
                        f"{src}:{lines}: field {bad} is not a string, so it cannot be "
                        "pseudonymized. Nothing was written."
                    )
                out.write(_dump(doc))
                out.write(b"\n")
                records += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)  # mkstemp made it 0600; the rename replaces a link, not its target
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise RecsysEvalError(
            f"pseudonymizing {src} to {dst} failed, nothing was written: {exc.strerror or exc}"
        ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return lines, records


def run(args: argparse.Namespace) -> int:
    ref = schema_registry.resolve(args.schema)
    allowed = identifier_fields(ref.schema)
    fields = list(dict.fromkeys(args.fields))
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise ConfigError(
            f"--fields: {', '.join(unknown)} not an identifier field of {ref.name} "
            f"(allowed: {', '.join(allowed)})"
        )
    key = read_key(args.key_env)
    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise RecsysEvalError(f"input file not found: {src}")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ConfigError("--output must not be the input file")
    check_writable(dst)  # never through a symbolic link, onto a device or into a read-only folder
    lines, records = pseudonymize_file(src, dst, fields, key)
    print(
        redact_text(
            f"{src} -> {dst}: {lines:,} lines read, {records:,} records with "
            f"{', '.join(fields)} pseudonymized (HMAC-SHA256, key from ${args.key_env})"
        ),
        file=sys.stderr,
    )
    return EXIT_OK
