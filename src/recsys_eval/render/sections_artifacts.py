"""Artifact provenance (the report's optional `artifacts` block, §8.6): the manifest, then one row
per artifact (type, version, built at, source hash, SHA-256, URI) and the fetch/parse warnings.
Values are plain strings here; the Markdown and HTML writers escape them."""

from __future__ import annotations

from typing import Any

from recsys_eval.redaction import redact
from recsys_eval.render.document import Bullets, Section, Table
from recsys_eval.render.generic import cell, leftover_blocks

ARTIFACT_COLUMNS = (
    ("type", "Type"),
    ("version", "Version"),
    ("built_at", "Built At"),
    ("source_hash", "Source Hash"),
    ("checksum", "SHA-256"),
    ("uri", "URI"),
)
KNOWN = {"manifest_uri", "tenant", "surface", "updated_at", "artifacts", "warnings"}


def artifacts_section(block: dict[str, Any]) -> Section:
    # Redacted again: a report from elsewhere (or an old version) may hold a URI with a secret.
    block = redact(block)
    sec = Section("Artifact Provenance", "artifacts")
    sec.add(
        Table(
            ["Manifest", "Value"],
            [
                [label, cell(block[key])]
                for key, label in (
                    ("manifest_uri", "Manifest URI"),
                    ("tenant", "Tenant"),
                    ("surface", "Surface"),
                    ("updated_at", "Updated At"),
                )
                if block.get(key) not in (None, "")
            ],
        )
    )
    entries = [a for a in block.get("artifacts") or [] if isinstance(a, dict)]
    if entries:
        sec.add(
            Table(
                [label for _, label in ARTIFACT_COLUMNS],
                [[_value(a, key) for key, _ in ARTIFACT_COLUMNS] for a in entries],
                "Artifacts",
            )
        )
    else:
        sec.add(Bullets(["The manifest lists no artifact."]))
    if block.get("warnings"):
        sec.add(Bullets([str(w) for w in block["warnings"]], "Artifact warnings"))
    sec.add(*leftover_blocks(block, KNOWN, "Other provenance fields"))
    return sec


def _value(entry: dict[str, Any], key: str) -> str:
    return cell(entry[key]) if entry.get(key) not in (None, "") else "-"
