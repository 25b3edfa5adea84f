"""Redaction of secrets before anything is stored or shown: header values, query values, URL passwords."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# A header or query key is secret when it is one of these names or contains one of these words.
SECRET_NAMES: frozenset[str] = frozenset({"cookie", "set-cookie", "sig", "code", "pass", "pwd", "jwt"})
SECRET_WORDS: tuple[str, ...] = (
    "auth",  # authorization, authentication, x-auth, proxy-authorization, oauth_token
    "token",
    "secret",
    "key",  # x-api-key, api-key, api_key, apikey, key
    "password",
    "passwd",
    "credential",
    "signature",
)

# scheme://user:password@host: the password goes, the user stays; a lone user name (often a token) goes.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s/?#@:]*)(?::(?P<pw>[^\s/?#@]*))?@"
)
# key=value inside a query string or any text that carries one (error messages, paths).
_QUERY_PAIR = re.compile(r"(?P<lead>[?&;])(?P<key>[^=&;#\s?]+)=(?P<value>[^&;#\s]*)")


def is_secret_name(name: str) -> bool:
    """Whether a header name or query key names a secret (case-insensitive)."""
    lower = name.lower().strip()
    return lower in SECRET_NAMES or any(word in lower for word in SECRET_WORDS)


def redact(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict (repeats joined with ", ") with secret values replaced by "[redacted]"."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        shown = REDACTED if is_secret_name(key) else value
        out[key] = f"{out[key]}, {shown}" if key in out and shown != REDACTED else shown
    return out


def redact_query(target: str) -> str:
    """A request target (path?query) with the values of secret query keys replaced by "[redacted]"."""
    if "?" not in target:
        return target
    path, _, query = target.partition("?")
    return path + _QUERY_PAIR.sub(_pair, "?" + query)


def redact_url(url: str) -> str:
    """A URL with its password (user:password@) and secret query values replaced."""
    return redact_query(_USERINFO.sub(_userinfo, url))


def redact_text(text: str) -> str:
    """Free text (an error message) with every URL password and secret query value in it replaced."""
    text = _USERINFO.sub(_userinfo, text)
    return _QUERY_PAIR.sub(_pair, text) if "?" in text else text


def _userinfo(match: re.Match[str]) -> str:
    if match["pw"] is None:
        return f"{match['scheme']}{REDACTED}@"
    return f"{match['scheme']}{match['user']}:{REDACTED}@"


def _pair(match: re.Match[str]) -> str:
    from urllib.parse import unquote

    key = match["key"]
    if not is_secret_name(unquote(key)):
        return match.group(0)
    return f"{match['lead']}{key}={REDACTED}"
