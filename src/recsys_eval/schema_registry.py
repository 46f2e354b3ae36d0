"""Resolve `--schema NAME|PATH` to a loaded JSON Schema.

A NAME such as `exposure.v1` (or `exposure.v1.json`) is looked up only inside
`paths.schemas_dir()` and can never escape it. A PATH (it contains a `/`, or ends with `.json` and
exists) is read as given, but only when it names a regular `.json` file of at most 8 MiB: a value
such as `../../etc/passwd` or `/dev/zero` is refused before anything is read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from recsys_eval import paths
from recsys_eval.errors import RecsysEvalError

NAME_RE = re.compile(r"^[a-z_]+\.v[0-9]+$")
MAX_SCHEMA_BYTES = 8 << 20


@dataclass(frozen=True)
class SchemaRef:
    """A resolved schema: its name (`exposure.v1`), file and parsed document."""

    name: str
    path: Path
    schema: dict[str, Any]


def known_schema_names() -> list[str]:
    """Names of the schemas shipped in `schemas/`, sorted."""
    directory = paths.schemas_dir()
    if not directory.is_dir():
        return []
    names = [p.name[: -len(".json")] for p in directory.glob("*.json")]
    return sorted(n for n in names if NAME_RE.match(n))


def _unknown(name: str) -> RecsysEvalError:
    known = ", ".join(known_schema_names()) or "(none found in " + str(paths.schemas_dir()) + ")"
    return RecsysEvalError(f"unknown schema {name!r}; known schemas: {known}")


def _looks_like_path(value: str) -> bool:
    if "/" in value or "\\" in value:
        return True
    return value.endswith(".json") and Path(value).is_file()


@lru_cache(maxsize=64)
def _read_schema(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecsysEvalError(f"cannot read schema file {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RecsysEvalError(f"schema file {path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RecsysEvalError(f"schema file {path} is not a JSON object")
    return doc


def load_schema_file(path: Path) -> dict[str, Any]:
    """Read and parse a schema file (cached per path and modification time)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise RecsysEvalError(f"schema file not found: {path}") from exc
    return _read_schema(path, mtime)


def resolve(value: str) -> SchemaRef:
    """Resolve `--schema NAME|PATH`.

    Raises RecsysEvalError for an unknown name (listing the known ones), a name that is not of the
    form `word.vN`, or a path that does not exist or is not a JSON object.
    """
    value = value.strip()
    if not value:
        raise _unknown(value)
    if _looks_like_path(value):
        path = Path(value).expanduser()
        if not path.exists():
            raise RecsysEvalError(f"schema file not found: {value}")
        if not path.name.endswith(".json") or not path.is_file():
            raise RecsysEvalError(
                f"refusing schema path {value!r}: a schema path must name a regular .json file "
                f"(or use a schema name: {', '.join(known_schema_names())})"
            )
        if path.stat().st_size > MAX_SCHEMA_BYTES:
            raise RecsysEvalError(
                f"refusing schema path {value!r}: larger than {MAX_SCHEMA_BYTES >> 20} MiB"
            )
        path = path.resolve()
        stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
        return SchemaRef(name=stem, path=path, schema=load_schema_file(path))

    name = value[: -len(".json")] if value.endswith(".json") else value
    if not NAME_RE.match(name):
        raise _unknown(value)
    directory = paths.schemas_dir().resolve()
    path = (directory / f"{name}.json").resolve()
    # NAME_RE already forbids '/' and '..'; keep a belt-and-braces containment check.
    if path.parent != directory or not path.is_file():
        raise _unknown(value)
    return SchemaRef(name=name, path=path, schema=load_schema_file(path))
