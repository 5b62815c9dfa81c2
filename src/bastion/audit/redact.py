"""Secret redaction for logs and stored event details (SPEC §3, §4.4, §6).

Two nets. By name: a field whose name holds a sensitive word (``password``, ``user_password``,
``X-API-Key``, ``cookies``, ``__Host-bastion_session``…) has its text replaced, and so has all
the text nested under it; its numbers and booleans stay (``sessions_ended: 1`` tells an operator
something and gives an attacker nothing). By shape: anything that looks like a Bastion API key,
a JWT or a credential after its scheme, and the value of any ``name=value`` or ``name: value``
with a sensitive name (``bastion_session=…`` in a raw ``Cookie`` header, ``?api_key=…`` in a
request line), is replaced wherever it appears, in any string. A structlog processor is a
callable ``(logger, method_name, event_dict) -> event_dict``; :data:`redact_secrets` is one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"

SECRET_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "session",
    "jwt",
    "csrf",
    "pepper",
    "credential",
)
"""A name holding one of these words anywhere names a secret: matching parts rather than a list
of exact names catches the spellings nobody listed (``access-token``, ``proxy-authorization``,
``session_id``, ``bastion_session``)."""

SECRET_NAMES = frozenset({"key", "pwd", "passphrase", "private_key"})
"""Whole names (normalised) that are secrets but hold none of :data:`SECRET_PARTS`."""

PUBLIC_NAMES = frozenset({"token_type", "token_type_hint"})
"""Names (normalised) that hold a sensitive word but only OAuth vocabulary as values
(``Bearer``, ``refresh_token``): events record them on purpose (RFC 6749 §7.1, RFC 7009 §2.1)."""

SECRET_QUERY_PARAMS = (
    "password",
    "token",
    "refresh_token",
    "access_token",
    "api_key",
    "client_secret",
)
"""SPEC §3: request logs never show these parameters' values; each holds a secret part."""

_HEADER_PARTS = ("authorization", "cookie")
"""Parts naming whole header values (``Cookie: a=1; b=2``, ``Authorization: Basic …``), which
hold spaces and semicolons: their text value runs to the end of the line."""

_COOKIE_PREFIXES = ("__host_", "__secure_")
_NAME_TAIL = 64
"""Characters of a name around its sensitive part that text redaction looks at."""


def _alternatives(parts: tuple[str, ...]) -> str:
    return "|".join(re.escape(part).replace("_", "[_-]") for part in parts)


# The match starts at the sensitive part, not at the start of the name: scanning for a dozen
# words is several times faster than trying every word of the text as a possible name. The rest
# of the name is bounded and possessive, so that ``tokentoken…`` (16 KiB of a client's path)
# costs linear time, not quadratic.
_NAMED_VALUE = (
    r"(?P<keep>(?P<name>(?i:(?P<header>"
    + _alternatives(_HEADER_PARTS)
    + r")|"
    + _alternatives(SECRET_PARTS)
    + rf")[\w-]{{0,{_NAME_TAIL}}}+)"
    r"[\"']?(?::[ \t]*|=)(?P<quote>[\"'])?)"
    # A quoted value runs to its closing quote; a header's to the end of the line; any other
    # to the next delimiter of a query string, a header or a repr. A scheme is part of it.
    r"(?(quote)(?:(?!(?P=quote))[^\r\n])+"
    r"|(?(header)[^\r\n]+|(?i:(?:bearer|basic)[ \t]+)?[^\s&#;,\"'<>()\[\]{}]+))"
)
_SHAPES = (
    r"bst_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}"  # a Bastion API key
    # a JWS/JWT, starting where base64url does (so ``eyJeyJ…`` is scanned once, not per eyJ)
    r"|(?<![0-9A-Za-z_-])eyJ[0-9A-Za-z_-]{5,}+\.[0-9A-Za-z_-]{5,}+\.[0-9A-Za-z_-]*+"
    r"|(?i:bearer|basic)\s+[0-9A-Za-z._~+/=-]{8,}"  # a credential after its scheme
)
_FIRST_LETTERS = "".join(sorted({w[0] for w in (*SECRET_PARTS, "bst_", "eyJ", "bearer", "basic")}))
# One pattern, compiled once: redact_text runs on every string of every log line. The lookahead
# on the letters a match can start with lets the scanner skip, at C speed, every position that
# cannot start one; case-insensitive alternatives alone would make it try each (3x slower).
_SECRET_TEXT = re.compile(
    f"(?=[{_FIRST_LETTERS}{_FIRST_LETTERS.upper()}])(?:{_NAMED_VALUE}|{_SHAPES})"
)


def normalise_name(name: str) -> str:
    """``__Host-Bastion-Session`` and ``bastion_session`` are one name (RFC 6265bis §4.1.3)."""
    normal = name.lower().replace("-", "_")
    for prefix in _COOKIE_PREFIXES:
        normal = normal.removeprefix(prefix)
    return normal


@lru_cache(maxsize=1024)
def is_secret_name(name: str) -> bool:
    """Whether a field, header, parameter or cookie of this name holds a secret. Cached: log
    lines repeat the same few names."""
    normal = normalise_name(name)
    if normal in PUBLIC_NAMES:
        return False
    return normal in SECRET_NAMES or any(part in normal for part in SECRET_PARTS)


def _replace(match: re.Match[str]) -> str:
    keep = match.group("keep")
    if keep is None:
        return REDACTED
    if normalise_name(_whole_name(match)) in PUBLIC_NAMES:
        return keep + redact_text(match.group(0)[len(keep) :])  # still judged by its shape
    return keep + REDACTED


def _whole_name(match: re.Match[str]) -> str:
    """The name a match starts inside of (``my_token`` for a match at ``token``)."""
    text, start = match.string, match.start()
    first = max(0, start - _NAME_TAIL)
    while start > first and (text[start - 1].isalnum() or text[start - 1] in "_-"):
        start -= 1
    return text[start : match.start()] + match.group("name")


def redact_text(text: str) -> str:
    """Replace every secret-shaped substring and the value of every ``name=value`` or
    ``name: value`` whose name is a secret's (query strings, headers, reprs, JSON)."""
    return _SECRET_TEXT.sub(_replace, text)


def redact_value(name: str | None, value: Any) -> Any:
    """``value`` as it may be logged or stored, ``name`` being the field that holds it."""
    return _redact(value, is_secret=name is not None and is_secret_name(name))


def _redact(value: Any, *, is_secret: bool) -> Any:
    if isinstance(value, str):
        return REDACTED if is_secret else redact_text(value)
    if isinstance(value, bytes | bytearray):
        # Raw ASGI headers and query strings; latin-1 decodes any byte (RFC 9110 §5.5).
        return REDACTED if is_secret else redact_text(bytes(value).decode("latin-1"))
    if isinstance(value, Mapping):
        return {
            key: _redact(item, is_secret=is_secret or is_secret_name(str(key)))
            for key, item in value.items()
        }
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str | bytes):
        return _redact_pair(value[0], value[1], is_secret=is_secret)
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(item, is_secret=is_secret) for item in value]
    return value


def _redact_pair(name: str | bytes, value: Any, *, is_secret: bool) -> list[Any]:
    """A ``(name, value)`` tuple, as raw ASGI headers (``(b"cookie", b"sid=…")``) and
    ``dict.items()`` give them: the value is judged by the name beside it."""
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    return [
        _redact(name, is_secret=is_secret),
        _redact(value, is_secret=is_secret or is_secret_name(text)),
    ]


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    """structlog processor: the event dict with every secret replaced. ``event`` is no secret's
    name, so an event such as ``session_created`` is kept; only secrets inside its text go.

    It runs on every log line (one per request), so the common values take a short path:
    numbers, booleans and ``None`` stay as they are under any name (as in :func:`_redact`), and
    a string is scanned once and kept as it is when nothing in it can be a secret."""
    redacted: dict[str, Any] = {}
    for key, value in event_dict.items():
        kind = type(value)
        if value is None or kind is int or kind is float or kind is bool:
            redacted[key] = value
        elif kind is str and not is_secret_name(key):
            redacted[key] = value if _is_clean(value) else redact_text(value)
        else:
            redacted[key] = redact_value(key, value)
    return redacted


def _cannot_match(text: str) -> bool:
    """A shortcut past :data:`_SECRET_TEXT` for text it cannot match, such as a request id,
    new on every line, which the set below never holds: a named value needs ``:`` or ``=``
    after its name, and each shape starts with ``bst_``, ``eyJ`` or a scheme's name. Plain
    substring tests are a tenth of the scan (``tests/unit/audit/test_redact.py`` holds it
    to the pattern). ASCII only: the pattern's case-insensitive words also match letters that
    ``lower()`` keeps apart (``ſ`` for ``s``)."""
    if not text.isascii() or ":" in text or "=" in text or "bst_" in text or "eyJ" in text:
        return False
    folded = text.lower()
    return "bearer" not in folded and "basic" not in folded


_CLEAN: set[str] = set()
_CLEAN_MAX = 4096
_CLEAN_LONGEST = 128


def _is_clean(text: str) -> bool:
    """Whether nothing in ``text`` can be a secret. Most values of a log line come back line
    after line (the method, the route, the event, the client's address), and a set lookup is
    several times cheaper than a scan; so short strings found clean are remembered. Only clean
    strings are kept, never one that held a secret, and the set is emptied when full."""
    if text in _CLEAN:
        return True
    if _cannot_match(text):
        return True
    if _SECRET_TEXT.search(text) is not None:
        return False
    if len(text) <= _CLEAN_LONGEST:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(text)
    return True
