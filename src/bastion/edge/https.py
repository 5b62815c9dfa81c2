"""HTTPS redirect and HSTS (SPEC §2.1; §5 ``BASTION_HTTPS_REDIRECT``, on in production).

A plain-HTTP request is answered with 308 to the same path and query over HTTPS: 308, not 301,
because it keeps the method and body (RFC 9110 §15.4.9), so a misdirected POST is not silently
turned into a GET. The redirect is built from the host the trusted-host check has already
validated, never from the raw header, so it cannot send anyone to a host the client chose. The
port is dropped: the one the client used belongs to plain HTTP, and HTTPS lives on 443.

``Strict-Transport-Security`` then tells the browser to skip the plain-HTTP round trip (and the
window it leaves to an active attacker) for two years.
"""

from __future__ import annotations

from urllib.parse import quote

HSTS_HEADER = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
"""Sent on HTTPS responses only (RFC 6797 §7.2: it means nothing over HTTP) and only while the
redirect is on, so that a development server never leaves a two-year promise in a browser."""

_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
"""RFC 3986 ``pchar`` and ``/``: kept as they are; anything else (controls, spaces, quotes,
backslashes, non-ASCII) is percent-encoded, so nothing in the path can break out of the URL."""

_QUERY_SAFE = _PATH_SAFE + "?"


def https_location(host: str, raw_path: bytes, query_string: bytes) -> bytes:
    """The ``Location`` of the redirect: ``https://<host><path>[?<query>]``.

    ``host`` must come from :class:`~bastion.edge.hosts.AllowedHosts`; a path that does not start
    with ``/`` (``OPTIONS *``) becomes ``/``, so it can never run into the authority."""
    path = quote(raw_path, safe=_PATH_SAFE) if raw_path.startswith(b"/") else "/"
    location = f"https://{host}{path}"
    if query_string:
        location += "?" + quote(query_string, safe=_QUERY_SAFE)
    return location.encode("ascii")
