"""CORS with exact origins only (SPEC §2.1; §5 ``BASTION_CORS_ORIGINS``, off by default).

The browser's same-origin policy is what keeps another site's scripts from reading this API's
answers with the user's cookies. CORS is a hole in it, so it is punched only for origins listed one
by one: no patterns, no reflecting whatever ``Origin`` arrives, never ``null``. An origin not on
the list simply gets no ``Access-Control-Allow-Origin`` and its preflight goes on to the app like
any other ``OPTIONS`` request. Credentials (cookies) are allowed only together with an explicit
list; ``*`` with credentials is refused at start (SPEC §5).

Every response says ``Vary: Origin`` while CORS is on, since the grant depends on it and a shared
cache must not hand one origin's answer to another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

ANY_ORIGIN = "*"

ALLOWED_METHODS = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
ALLOWED_HEADERS = (
    b"Accept, Accept-Language, Authorization, Content-Language, Content-Type, "
    b"X-API-Key, X-CSRF-Token, X-Request-ID"
)
"""The request headers this API reads (SPEC §3, §4.3, §4.4); a preflight asking for another is
answered with this list, and the browser refuses the request itself."""

EXPOSED_HEADERS = (
    b"Location, RateLimit, RateLimit-Policy, Retry-After, WWW-Authenticate, X-Request-ID"
)
"""The response headers a cross-origin script may read: those a client needs to act on an answer."""

PREFLIGHT_MAX_AGE = b"600"
_RESPONSE = ((b"access-control-expose-headers", EXPOSED_HEADERS),)
_PREFLIGHT = (
    (b"access-control-allow-methods", ALLOWED_METHODS),
    (b"access-control-allow-headers", ALLOWED_HEADERS),
    (b"access-control-max-age", PREFLIGHT_MAX_AGE),
)
_HOST = re.compile(r"[a-z0-9_.:-]+")
VARY_ORIGIN = (b"vary", b"Origin")


class CorsPolicy:
    """The origins granted cross-origin access, checked once at start (a malformed one raises)."""

    def __init__(self, origins: Iterable[str], *, allow_credentials: bool = False) -> None:
        listed = list(origins)
        self.is_enabled = bool(listed)
        self.allows_any = ANY_ORIGIN in listed
        if self.allows_any and allow_credentials:
            raise ValueError("CORS credentials need exact origins: '*' would grant every site")
        self.allow_credentials = allow_credentials
        self._origins = frozenset(canonical_origin(o) for o in listed if o != ANY_ORIGIN)
        grants = [b"*"] if self.allows_any else [o.encode("ascii") for o in self._origins]
        self._response_headers = {g: self._headers(g, _RESPONSE) for g in grants}
        self._preflight_headers = {g: self._headers(g, _PREFLIGHT) for g in grants}

    def granted_origin(self, origin: bytes | None) -> bytes | None:
        """The ``Access-Control-Allow-Origin`` for a request's ``Origin``, or ``None``: no grant."""
        if origin is None or not self.is_enabled:
            return None
        if self.allows_any:
            return b"*"
        text = origin.decode("latin-1").strip().lower()
        return text.encode("latin-1") if text in self._origins else None

    def response_headers(self, granted: bytes) -> list[tuple[bytes, bytes]]:
        """Headers of an actual (non-preflight) response to a granted origin."""
        return self._response_headers[granted]

    def preflight_headers(self, granted: bytes) -> list[tuple[bytes, bytes]]:
        """Headers of the answer to a granted preflight (Fetch standard, CORS protocol)."""
        return self._preflight_headers[granted]

    def _headers(
        self, granted: bytes, headers: tuple[tuple[bytes, bytes], ...]
    ) -> list[tuple[bytes, bytes]]:
        """Built once per origin at start; the request path only looks them up."""
        result = [(b"access-control-allow-origin", granted), *headers]
        if self.allow_credentials:
            result.append((b"access-control-allow-credentials", b"true"))
        return result


def is_preflight(method: str, request_method_lines: Sequence[bytes]) -> bool:
    """An ``OPTIONS`` carrying ``Access-Control-Request-Method`` is the browser asking first."""
    return method == "OPTIONS" and bool(request_method_lines)


def canonical_origin(origin: str) -> str:
    """An origin as browsers serialise it (``https://app.example.com``, ``http://[::1]:8080``):
    lower-case, default port dropped, a trailing ``/`` forgiven. ``ValueError`` for anything that
    is not exactly one origin: a path, credentials, a wildcard, ``null``."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{origin!r} is not an origin: {exc}") from None
    host = parts.hostname
    if host and "*" in host:
        raise ValueError(f"{origin!r}: CORS origins are exact, without wildcards")
    if parts.scheme not in ("http", "https") or not host or not _HOST.fullmatch(host):
        raise ValueError(f"{origin!r} is not an origin such as 'https://app.example.com'")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{origin!r} has more than scheme, host and port: list the origin alone")
    default_port = 443 if parts.scheme == "https" else 80
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != default_port:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"
