"""Security headers of every response (SPEC §3, §5), errors and 429s included."""

from __future__ import annotations

API_CSP = b"default-src 'none'; frame-ancestors 'none'"
"""An API answers JSON: nothing in it may load, run, or be framed."""

BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    *BASE_HEADERS,
    (b"content-security-policy", API_CSP),
)
"""Added to a response that lacks them; the docs page sets its own, wider CSP (``api/docs.py``)."""
