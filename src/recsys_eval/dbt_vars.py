"""How the run's configuration reaches dbt: vars that dbt never renders as Jinja.

dbt renders a string var as a Jinja template when a model reads it (`var()`), so a config value
such as `{{ run_query('drop table raw.outcomes') }}` or `{{ env_var('AWS_SECRET') }}` would run
inside the build. SQL quoting does nothing against that. `encode` therefore rewrites every string
of the vars (at any depth, mapping keys included) that could hold template syntax: a string
outside SAFE_TEXT becomes `recsys_eval__text:` followed by its characters, ASCII letters and
digits as they are and every other character as `_` and six lower-case hex digits of its code
point. That form holds no template syntax, cannot be read as a number or boolean by YAML, and is
decoded back to the plain text by the `recsys_eval.config_var` macro the models read their vars
with. The models then only quote (string_literal) or compare the text; nothing renders it again.
(YAML, which parses `--vars`, allows at most 1024 characters in a mapping key: vars with user
names as keys, such as SRM weights per variant, are passed as lists of objects instead.)

Identifiers and numbers pass unchanged, so compiled SQL and the parse cache stay readable for the
usual values. This is the one place where the CLI hands values to dbt (dbt_runner.build).
"""

from __future__ import annotations

import re
from typing import Any

from recsys_eval.errors import ConfigError

PREFIX = "recsys_eval__text:"
MAX_KEY_CHARS = 1000  # YAML's limit for a mapping key is 1024 characters, quotes included
SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:\- ]*")


_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def encode_text(text: str) -> str:
    """`text` as the encoded form (always, whatever it holds)."""
    return PREFIX + "".join(ch if ch in _LITERAL else f"_{ord(ch):06x}" for ch in text)


def encode(value: Any) -> Any:
    """The vars with every string that could template encoded; other values unchanged."""
    if isinstance(value, str):
        if SAFE_TEXT.fullmatch(value) and not value.startswith(PREFIX):
            return value
        return encode_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = encode(str(key))
            if len(name) > MAX_KEY_CHARS:
                raise ConfigError(
                    f"the name {str(key)[:40]!r}... is too long to pass to dbt as a mapping key "
                    f"({len(name)} characters encoded, at most {MAX_KEY_CHARS}); use a shorter name"
                )
            out[name] = encode(item)
        return out
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
        body, out, i = value[len(PREFIX) :], [], 0
        while i < len(body):
            if body[i] == "_":
                out.append(chr(int(body[i + 1 : i + 7], 16)))
                i += 7
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if isinstance(value, dict):
        return {decode(k): decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
