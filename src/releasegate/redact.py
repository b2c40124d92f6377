"""Keep secrets out of every output: records, reports, terminal, logs, JUnit XML, hooks.

One policy for all of them. A secret is: the value of a secret-looking ``${VAR}`` of the spec,
of a secret-named header the spec sends, or a password in a database or target URL (each
registered with ``register_secret``, and masked in every encoding it may be echoed back in:
raw, percent-encoded, base64, JSON-escaped); a password in any URL; a bearer or basic
credential; the value of a secret-named key (``Authorization``, ``Cookie``, ``X-Api-Key``,
``X-Auth-*``, ``*token*``, ``*secret*``, ``*password*``, ``session``, ...) in a mapping; and the
value of such a key or query parameter (``?key=``, ``&auth=``, ``&session=``, ``&sig=``) in text.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

_SECRET_KEY = re.compile(
    r"(?i)^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[-_]?key"
    r"|x-auth.*|auth|key|sig|signature|session|session[-_]?id|sid|access[-_]?key"
    r"|private[-_]?key|pass|pwd|.*(password|passwd|passphrase|secret|token|credential).*)$"
)
# ``?key=...`` and the like in a URL or a query string (the values of secret-named parameters).
_QUERY = re.compile(
    r"(?i)([?&;](?:key|auth|session|session[-_]?id|sid|sig|signature|access[-_]?key"
    r"|x-auth[\w-]*)=)([^&#\s\"']+)"
)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}")
# A key that ends in a secret word (``access_token=``, ``"db_password": "..."``), then its value:
# quoted (possibly cut short by an excerpt, possibly with escaped quotes) or bare.
_INLINE = re.compile(
    r"(?i)\b([\w-]*?(?:password|passwd|secret|token|api[_-]?key))"
    r"([\"']?\s*[=:]\s*)(\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|[^\s&,;\"']+)"
)
_INLINE_WORDS = ("passw", "secret", "token", "api")

# Cheap test that a string may hold something the patterns above mask; most strings in a
# record (names, statuses, numbers as text) do not, and skip the regular expressions.
# ("passw", not "pass": every record says "passed" many times over.)
_SUSPECT = re.compile(
    r"(?i)@|bearer|basic|token|passw|secret|api|[?&;](?:key|auth|sess|sid|sig|access|x-auth)"
)

_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret to mask wherever it shows, in every encoding a target or a tool may
    echo it back in: raw, percent-encoded, base64 (of the value alone and of ``user:value``
    forms is not knowable, so of the value), JSON-escaped."""
    if len(value) < 4:
        return
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        base64.b64encode(value.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
    }
    _secrets.update(f for f in forms if len(f) >= 4)
    _redact_text.cache_clear()


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.match(key))


def redact_text(text: str) -> str:
    """Mask URL passwords, bearer tokens, ``password=...`` pairs and registered secrets."""
    # Records repeat the same short strings (statuses, categories, check names) thousands of
    # times; long ones (response bodies) are rarely seen twice and would only fill the cache.
    return _redact_text(text) if len(text) <= 256 else _redact_uncached(text)


@functools.lru_cache(maxsize=16384)
def _redact_text(text: str) -> str:
    return _redact_uncached(text)


def _redact_uncached(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if not _SUSPECT.search(text):
        return text
    # The patterns cost tens of microseconds on a response body and most texts contain none
    # of their words: look for those first, folded as ``(?i)`` folds (it also takes a dotless
    # i for an i).
    if "@" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    folded = text.casefold().replace("\u0131", "i")
    if "bearer" in folded or "basic" in folded or "token" in folded:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    if any(word in folded for word in _INLINE_WORDS):
        text = _INLINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    if "=" in text:
        text = _QUERY.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return text


def redact_value(value: Any) -> Any:
    """Redact a JSON-like value: secret-named keys are masked whole, strings are scrubbed."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                else redact_value(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
