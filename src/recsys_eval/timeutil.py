"""RFC 3339 timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import rfc3339_validator


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime (nanoseconds are truncated)."""
    if not isinstance(text, str) or not rfc3339_validator.validate_rfc3339(text):
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    norm = text.upper().replace(" ", "T")
    if norm.endswith("Z"):
        norm = norm[:-1] + "+00:00"
    head, dot, rest = norm.partition(".")
    if dot:
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        norm = f"{head}.{digits[:6].ljust(6, '0')}{rest[i:]}"
    return datetime.fromisoformat(norm).astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def format_rfc3339(ts: datetime) -> str:
    """`2025-01-01T00:00:00Z` (seconds resolution, UTC), as the reference writes created_at."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
