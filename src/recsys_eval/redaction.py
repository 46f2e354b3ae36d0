"""Secret redaction for everything recsys-eval writes or prints: one place, used by every writer.

`redact_text(text)` hides the secrets inside one string (an error message, a path, a DSN, SQL);
`redact(tree)` returns a copy of a config tree with the values of secret-named keys hidden and
`redact_text` applied to every other string. The report's `effective_config`, the Markdown and
HTML renderers and the CLI's console output (errors, summaries, `validate` lines) all go through
these two functions.

What is parsed (not matched with one regex), each secret replaced by `***redacted***` while the
rest stays readable:

- URLs (`scheme://...`): the userinfo is everything before the LAST `@` of the authority, so a
  password holding `/`, `@`, `?` or `#` (AWS secret keys hold `/`) is hidden whole;
  `user:password` keeps the user, a bare userinfo (`token@host`) is hidden whole. Query,
  fragment and `;` (JDBC) parameters whose (percent-decoded) name is secret-looking
  (`password`, `token`, `sig`, `key`, `X-Amz-Signature`, `X-Amz-Credential`, `AWSAccessKeyId`,
  `Signature`, `X-Goog-Signature`, ...) keep their name and lose their value:
  `postgres://user:***redacted***@host/db?sslmode=require&password=***redacted***`.
- `name=value` pairs with a secret-looking name: libpq keyword/value DSNs
  (`host=x password='a b' user=y`), `;`-separated ODBC/JDBC strings (`Server=h;Pwd={a;b};`),
  SQL text (`password = 'it''s'`); values may be quoted ('...', "..." with doubled or
  backslash-escaped quotes) or braced ({...}).
- `"name": value` (JSON, Python reprs) and YAML `name: value` lines (as PyYAML error snippets
  echo them).

When in doubt the rules hide more rather than less (an `@` in a URL's path after a `host:port`
may hide the host).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "***redacted***"

# Names are compared lower-cased with everything but letters and digits removed.
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "signature",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "sessionkey",
    "authkey",
)
_SECRET_EXACT = frozenset({"sig", "key", "pass", "pw", "auth", "authorization", "bearer"})


def is_secret_name(name: str) -> bool:
    """True for a key or parameter name that names a secret (`password`, `api_key`,
    `X-Amz-Signature`, `sig`, `PWD`, `access_token`, ...)."""
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    return norm in _SECRET_EXACT or any(part in norm for part in _SECRET_PARTS)


def is_dsn_name(name: str) -> bool:
    return "dsn" in name.lower()


# --- URLs -------------------------------------------------------------------------------------

# A URL runs to the next whitespace, except inside {braces} (JDBC `password={a b}`). One slash
# is enough: `str(Path("s3://k:s@b/x"))` is `s3:/k:s@b/x`. A one-letter scheme is a drive (C:/).
# Braced values are bounded (256 characters) so that hostile text stays linear.
_URL = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]+:/+)((?:\{[^}\n]{0,256}\}|\S)*)")
_URL_PARAM = re.compile(r"(?<=[?&;#])([^=&;#?\s]+)=(\{[^}\n]{0,256}\}|[^&;#\s]*)")


def _userinfo_end(rest: str) -> int | None:
    """The index of the `@` that ends the userinfo of `rest` (the URL after `scheme://`)."""
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, cut)
    if at >= 0:
        candidate = rest[:at]
        if ":" in candidate or "/" not in candidate:
            return at
        # An `@` in the path (`gs://bucket/dir@v2`); a userinfo can only precede the first `/`.
        earlier = rest.rfind("@", 0, candidate.find("/"))
        return earlier if earlier >= 0 else None
    # No `@` before the first `?` / `#`: a password may itself hold `?` or `#`.
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        if colon and not re.search(r"[/?#]", user):
            return at
    return None


def _redact_userinfo(userinfo: str) -> str:
    user, colon, password = userinfo.partition(":")
    if not colon:
        return REDACTED if userinfo else userinfo  # a bare token as user name
    return f"{user}:{REDACTED}" if password else userinfo


def _redact_url_params(rest: str) -> str:
    def param(m: re.Match[str]) -> str:
        if not is_secret_name(unquote_plus(m[1])) or not m[2]:
            return m[0]
        value = f"{{{REDACTED}}}" if m[2].startswith("{") else REDACTED
        return f"{m[1]}={value}"

    return _URL_PARAM.sub(param, rest)


def redact_url(scheme: str, rest: str) -> str:
    """`scheme` (`postgres://`) and the rest of one URL, its credentials hidden."""
    at = _userinfo_end(rest)
    if at is not None:
        return f"{scheme}{_redact_userinfo(rest[:at])}@{_redact_url_params(rest[at + 1 :])}"
    return scheme + _redact_url_params(rest)


# --- name=value pairs -------------------------------------------------------------------------

_PAIR_EQ = re.compile(r"""(?<![\w.%/])(["']?)([A-Za-z_][\w.\-]*)\1[ \t]*=(?![=>])[ \t]*""")
_PAIR_JSON = re.compile(r"""(["'])([A-Za-z_][\w.\-]*)\1[ \t]*:[ \t]*""")
_PAIR_YAML = re.compile(
    r"(?:^|(?<=[{,]))[ \t]*(?:-[ \t]+)?()([A-Za-z_][\w\-]*)[ \t]*:(?=[ \t]|$)[ \t]*", re.M
)
# A `name=` at a word start: two `;`-separated parts holding one make an ODBC / JDBC connection
# string (values may hold spaces and run to the next `;`). Only a pair at the start (or after
# `:`, `(`, ...) is read this way: one preceded by another pair's value (`host=x password=a;b`)
# is libpq, whose bare values end at whitespace.
_PAIR_START = re.compile(r"(?<![\w.\-])[\w.\-]+[ \t]*=")


def _quoted_end(text: str, start: int) -> int:
    """The index after the closing quote of the value quoted at `start` ('' and \\' escapes)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if text.startswith(quote, i + 1):
                i += 2
                continue
            return i + 1
        if text[i] == "\n":
            return i
        i += 1
    return len(text)


def _braced_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "}":
            if text.startswith("}", i + 1):
                i += 2
                continue
            return i + 1
        if text[i] == "\n":
            return i
        i += 1
    return len(text)


def _bare_stop(kind: str, before: str, semicolons: bool) -> str:
    """The characters that end an unquoted value of a pair of `kind` preceded by `before`."""
    if kind == "json" or (kind == "yaml" and before in ("{", ",")):
        return ",}]\n"
    if kind == "yaml":
        return "\n"
    if before in ("?", "&", "#"):
        return "&#\n \t"
    if before == ";" or (semicolons and not _ends_value(before)):
        return ";\n"
    return " \t\n"


def _ends_value(char: str) -> bool:
    """A character that can end the previous pair's value (`host=x password=...`: libpq)."""
    return char.isalnum() or char in "_'\"}.-"


def _value_span(text: str, start: int, stop: str) -> tuple[int, int]:
    """(start, end) of the secret inside the value at `start` (quotes and braces excluded)."""
    if start >= len(text):
        return start, start
    if stop == "\n":  # a YAML block value: the rest of the line, quoted or not
        end = text.find("\n", start)
        return start, len(text) if end < 0 else end
    if text[start] in "'\"":
        end = _quoted_end(text, start)
        close = end - 1 if end - 1 > start and text[end - 1] == text[start] else end
        return start + 1, close
    if text[start] == "{":
        end = _braced_end(text, start)
        return start + 1, end - 1 if text[end - 1 : end] == "}" else end
    end = start
    while end < len(text) and text[end] not in stop:
        end += 1
    while end > start and text[end - 1] in " \t":
        end -= 1
    return start, end


def _semicolon_pairs(text: str) -> bool:
    """True for an ODBC / JDBC style text: two `;`-separated parts that hold a `name=`."""
    if ";" not in text:
        return False
    return sum(1 for part in text.split(";") if _PAIR_START.search(part)) >= 2


def _char_before(text: str, index: int) -> str:
    """The last character before `index` that is not a space or tab ('' at the start)."""
    while index > 0 and text[index - 1] in " \t":
        index -= 1
    return text[index - 1] if index > 0 else ""


def _pair_spans(text: str) -> Iterator[tuple[int, int]]:
    semicolons = _semicolon_pairs(text)
    found = []
    for kind, pattern in (("eq", _PAIR_EQ), ("json", _PAIR_JSON), ("yaml", _PAIR_YAML)):
        for m in pattern.finditer(text):
            if is_secret_name(m[2]):
                before = _char_before(text, m.start(2) - len(m[1]))
                found.append((m.end(), _bare_stop(kind, before, semicolons)))
    last_end = 0
    for start, stop in sorted(found):
        if start < last_end:
            continue
        lo, hi = _value_span(text, start, stop)
        if hi > lo:
            last_end = hi
            yield lo, hi


def redact_pairs(text: str) -> str:
    """`text` with the values of secret-named `name=value` / `"name": value` pairs hidden."""
    out, pos = [], 0
    for lo, hi in _pair_spans(text):
        if text[lo:hi] == REDACTED:
            continue
        out += [text[pos:lo], REDACTED]
        pos = hi
    return "".join(out) + text[pos:] if out else text


def redact_text(text: str) -> str:
    """`text` with every secret it carries hidden: URL credentials and secret parameters, then
    secret `name=value` pairs (DSNs, connection strings, SQL, JSON). Cheap when there is none."""
    if not text:
        return text
    if ":/" in text:
        text = _URL.sub(lambda m: redact_url(m[1], m[2]), text)
    if "=" in text or ":" in text:
        text = redact_pairs(text)
    return text


def redact_dsn(value: str) -> str:
    """A DSN: URLs and key=value strings keep their structure; any other form (`user/pw@tns`)
    is hidden whole."""
    if ":/" in value or "=" in value:
        return redact_text(value)
    return REDACTED


def redact(value: Any, key: str = "", hidden: bool = False) -> Any:
    """A copy of a config tree with secrets hidden: every scalar under a secret-named key
    (`password`, `secret_key`, `token`, `credentials: {...}`), DSNs by `redact_dsn`, and
    `redact_text` on every other string."""
    hidden = hidden or (bool(key) and is_secret_name(key))
    if isinstance(value, dict):
        return {k: redact(v, str(k), hidden) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key, hidden) for v in value]
    if isinstance(value, str):
        if hidden:
            return REDACTED if value else value
        return redact_dsn(value) if key and is_dsn_name(key) else redact_text(value)
    if hidden and value is not None and not isinstance(value, bool):
        return REDACTED
    return value
