"""Trusted hosts (SPEC §2.1; §5 ``BASTION_ALLOWED_HOSTS``).

The ``Host`` header is the client's word. Whatever is built from it (the HTTPS redirect, absolute
links, a password-reset mail) points wherever the client chose, and a shared cache may store the
result for everyone (host header poisoning). So a request naming a host not on the list is refused
with 400 before anything can use it, and the redirect that follows this check only ever names a
host that passed it.

Comparison is on the host alone: lower-cased, without its port or a trailing dot, IPv6 addresses in
their canonical bracketed form. ``*.example.com`` admits every subdomain of ``example.com`` (not
``example.com`` itself, which is listed on its own); a bare ``*`` admits anything and is refused in
production (SPEC §5).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence

_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9_.-]+))(?P<port>:[0-9]{1,5})?")
"""RFC 9110 §7.2 ``Host = uri-host [ ":" port ]``, narrowed to what a real host name or address
looks like: no user info, percent-escapes, paths or non-ASCII (whose lower-casing could alias)."""

ANY_HOST = "*"

CACHE_SIZE = 256
"""``Host`` values decided per host list. A server sees a handful of them over and over; the bound
keeps a client inventing new ones from growing memory, it only makes them miss."""


class AllowedHosts:
    """The hosts this server answers for, checked once at start (a malformed entry raises)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        canonical = [host_pattern(p) for p in patterns]
        self._allows_any = ANY_HOST in canonical
        self._exact = frozenset(p for p in canonical if not p.startswith("*"))
        self._suffixes = tuple(p[1:] for p in canonical if p.startswith("*."))
        self._validated = functools.lru_cache(maxsize=CACHE_SIZE)(self._validate)

    def allows(self, host: str) -> bool:
        """Whether ``host`` (as :func:`host_from_header` gives it) is one of ours."""
        return self._allows_any or host in self._exact or host.endswith(self._suffixes)

    def host_of(self, header_lines: Sequence[bytes]) -> str | None:
        """The validated host of a request's ``Host`` lines, or ``None`` to refuse it: none, more
        than one (RFC 9112 §3.2 wants a 400 for both), malformed, or not on the list."""
        if len(header_lines) != 1:
            return None
        return self._validated(header_lines[0])

    def _validate(self, value: bytes) -> str | None:
        host = host_from_header(value)
        return host if host is not None and self.allows(host) else None


def host_from_header(value: bytes) -> str | None:
    """The host a ``Host`` value names, in the form :class:`AllowedHosts` compares; ``None`` when
    it is not a plain host name or address."""
    match = _HOST.fullmatch(value.decode("latin-1").strip().lower())
    if match is None:
        return None
    if match["ipv6"] is not None:
        return _bracketed_ipv6(match["ipv6"])
    return _host_name(match["name"])


def host_pattern(pattern: str) -> str:
    """One ``BASTION_ALLOWED_HOSTS`` entry in canonical form; ``ValueError`` saying what is wrong
    with it, so that a typo refuses to start instead of refusing every request."""
    text = pattern.strip().lower()
    if text == ANY_HOST:
        return text
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    if "*" in name:
        raise ValueError(
            f"{pattern!r}: a wildcard may only be '*' or a first label ('*.example.com')"
        )
    if name.count(":") > 1 and not name.startswith("["):
        name = f"[{name}]"
    match = _HOST.fullmatch(name)
    if match is None:
        raise ValueError(f"{pattern!r} is not a host name or IP address")
    if match["port"]:
        raise ValueError(f"{pattern!r} names a port: list the host alone, ports are not compared")
    canonical = host_from_header(name.encode("latin-1"))
    if canonical is None:
        raise ValueError(f"{pattern!r} is not a host name or IP address")
    if wildcard and canonical.startswith("["):
        raise ValueError(f"{pattern!r}: an IP address has no subdomains")
    return "*." + canonical if wildcard else canonical


def _host_name(name: str) -> str | None:
    """A DNS name or IPv4 address without its trailing dot; no empty labels (``a..b``, ``.a``)."""
    name = name.removesuffix(".")
    if not name or "" in name.split("."):
        return None
    return name


def _bracketed_ipv6(text: str) -> str | None:
    """``[::1]`` for every spelling of ::1, so that ``[0:0::1]`` matches a listed ``::1``."""
    try:
        return f"[{ipaddress.IPv6Address(text)}]"
    except ValueError:
        return None
