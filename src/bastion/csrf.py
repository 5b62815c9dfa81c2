"""CSRF tokens bound to a session (SPEC §4.3).

The token is an HMAC of the session's secret id under a key derived for this purpose only, so it
needs no storage, cannot be guessed without the session cookie (which scripts cannot read), and
a token taken from one session is worthless in another. Browsers send the session cookie on
their own; only a script of our origin can read the CSRF cookie and echo it in a header.
"""

from __future__ import annotations

import hashlib
import hmac

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


def csrf_token_for(session_token: str, key: bytes) -> str:
    return hmac.new(key, session_token.encode("utf-8"), hashlib.sha256).hexdigest()


def is_valid_csrf_token(candidate: str | None, session_token: str, key: bytes) -> bool:
    if not candidate or len(candidate) > 256:
        return False
    expected = csrf_token_for(session_token, key)
    return hmac.compare_digest(candidate.encode("utf-8", "replace"), expected.encode("ascii"))
