"""How the run's configuration reaches dbt: vars that dbt never renders as Jinja.

dbt renders a string var as a Jinja template when a model reads it (`var()`), so a config value
such as `{{ run_query('drop table raw.outcomes') }}` or `{{ env_var('AWS_SECRET') }}` would run
inside the build. SQL quoting does nothing against that. `encode` therefore rewrites every string
of the vars (at any depth, mapping keys included) that could hold template syntax: a string
outside SAFE_TEXT becomes `recsys_eval__text:` followed by six lower-case hex digits per code
point, which contains no template syntax, cannot be read as a number by YAML, and is decoded back
to the plain text by the `recsys_eval.config_var` macro the models read their vars with. The
models then only quote (string_literal) or compare the text; nothing renders it again.

Identifiers and numbers pass unchanged, so compiled SQL and the parse cache stay readable for the
usual values. This is the one place where the CLI hands values to dbt (dbt_runner.build).
"""

from __future__ import annotations

import re
from typing import Any

PREFIX = "recsys_eval__text:"
SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:\- ]*")


def encode_text(text: str) -> str:
    """`text` as the encoded form (always, whatever it holds)."""
    return PREFIX + "".join(f"{ord(ch):06x}" for ch in text)


def encode(value: Any) -> Any:
    """The vars with every string that could template encoded; other values unchanged."""
    if isinstance(value, str):
        if SAFE_TEXT.fullmatch(value) and not value.startswith(PREFIX):
            return value
        return encode_text(value)
    if isinstance(value, dict):
        return {encode(str(k)): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise TypeError(f"dbt var value of type {type(value).__name__} is not supported")


def decode(value: Any) -> Any:
    """The inverse of `encode` (what `recsys_eval.config_var` does in the models)."""
    if isinstance(value, str):
        if not value.startswith(PREFIX):
            return value
        digits = value[len(PREFIX) :]
        if len(digits) % 6:
            raise ValueError(f"malformed encoded var text ({len(digits)} hex digits)")
        return "".join(chr(int(digits[i : i + 6], 16)) for i in range(0, len(digits), 6))
    if isinstance(value, dict):
        return {decode(k): decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
