"""The client's address and scheme behind reverse proxies (SPEC §2.1, §5 trusted proxies).

Anyone can send ``X-Forwarded-For``, so forwarding headers are read only when the direct peer is a
configured trusted proxy, and only as far as the chain of trusted proxies reaches. Each proxy
appends the address it received the request from; walking the list from the right, the first
address that is not itself a trusted proxy is therefore the client. Whatever lies to its left was
written by the client: it is never parsed, so a prepended fake address changes nothing and
garbage there cannot spoil the walk. A malformed entry *within* the trusted part makes the header
worthless, and the peer's own address is used.

``X-Forwarded-For`` and ``Forwarded`` (RFC 7239) are both understood. A proxy usually writes one of
them and passes the other through as the client wrote it, so a request carrying both is believed
only when they name the same client.

The result goes to ``scope["state"]`` for the rate limiter and the logs, and (when a trusted proxy
forwarded the request) into ``scope["client"]`` and ``scope["scheme"]``, so that the app's
``request.client`` and the URLs it builds agree with what the edge decided.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

CACHE_SIZE = 4096
"""Addresses parsed and classified per proxy set. ``ipaddress`` takes microseconds per parse and
the same peers and clients come back request after request; the bound keeps a flood of new
addresses from growing memory, it only makes them miss."""

SCHEMES = frozenset({"http", "https"})
"""The only values a forwarded protocol may take; anything else is ignored."""

_Entry: TypeAlias = tuple[IPAddress, str | None] | None
"""One hop of a chain as parsed: its address and, for ``Forwarded``, its ``proto``; ``None`` when
the entry is malformed or names no address (``unknown``, an obfuscated identifier)."""


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Who sent the request, as far as the edge can tell."""

    ip: str | None
    """The client's address; ``None`` only when the server reported no peer (a Unix socket)."""

    scheme: str
    """``http`` or ``https``: how the client reached the outermost trusted hop."""


@dataclass(frozen=True, slots=True)
class Hop:
    """The entry of a forwarding chain taken as the client."""

    address: IPAddress
    offset: int
    """Its position counted from the right, 1 being the entry the peer itself wrote."""

    proto: str | None = None


class TrustedProxies:
    """The networks whose forwarding headers are believed; empty (the default) believes none,
    loopback included, so that a local process cannot claim to be anyone."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._ip = functools.lru_cache(maxsize=CACHE_SIZE)(ip_from_text)
        self._node = functools.lru_cache(maxsize=CACHE_SIZE)(node_address)
        self._is_trusted = functools.lru_cache(maxsize=CACHE_SIZE)(self.is_trusted)

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)

    def resolve(
        self,
        peer: Sequence[Any] | None,
        scheme: str,
        *,
        forwarded: Sequence[bytes] = (),
        x_forwarded_for: Sequence[bytes] = (),
        x_forwarded_proto: Sequence[bytes] = (),
    ) -> ClientAddress:
        """The client behind ``peer`` (the ASGI ``client``), given the request's header lines."""
        peer_host = str(peer[0]) if peer else None
        if not self._networks or peer_host is None:
            return ClientAddress(peer_host, scheme)
        peer_address = self._ip(peer_host)
        if peer_address is None or not self._is_trusted(peer_address):
            return ClientAddress(peer_host, scheme)
        hop = self._client_hop(forwarded, x_forwarded_for)
        if hop is None:
            return ClientAddress(peer_host, aligned_proto(x_forwarded_proto, 1) or scheme)
        proto = hop.proto or aligned_proto(x_forwarded_proto, hop.offset)
        return ClientAddress(str(hop.address), proto or scheme)

    def _client_hop(
        self, forwarded: Sequence[bytes], x_forwarded_for: Sequence[bytes]
    ) -> Hop | None:
        """The client the headers name, or ``None`` when they name none worth believing.

        A header that is present but yields no client is not treated as absent: the client may
        have broken, on purpose, the one its proxy writes in order to have the other believed."""
        standard = legacy = None
        if forwarded:
            standard = walk_to_client(forwarded_entries(forwarded), self._is_trusted)
        if x_forwarded_for:
            entries = x_forwarded_for_entries(x_forwarded_for, self._node)
            legacy = walk_to_client(entries, self._is_trusted)
        if not (forwarded and x_forwarded_for):
            return standard or legacy
        if standard is None or legacy is None or standard.address != legacy.address:
            return None
        return Hop(legacy.address, legacy.offset, standard.proto)


def walk_to_client(
    entries: Iterable[_Entry], is_trusted: Callable[[IPAddress], bool]
) -> Hop | None:
    """The right-most entry that is not a trusted proxy (the left-most one if all are); ``None``
    for an empty chain or when a malformed entry is reached first."""
    found: Hop | None = None
    for offset, entry in enumerate(entries, start=1):
        if entry is None:
            return None
        found = Hop(entry[0], offset, entry[1])
        if not is_trusted(found.address):
            return found
    return found


def x_forwarded_for_entries(
    lines: Sequence[bytes], parse: Callable[[str], IPAddress | None]
) -> Iterator[_Entry]:
    """``X-Forwarded-For`` entries from the right, each parsed by ``parse`` (:func:`node_address`)
    and only as far as the walk goes."""
    for line in reversed(lines):
        for item in reversed(line.decode("latin-1").split(",")):
            address = parse(item.strip())
            yield None if address is None else (address, None)


def forwarded_entries(lines: Sequence[bytes]) -> Iterator[_Entry]:
    """``Forwarded`` elements from the right. Each field line is split on its own, so that an
    unbalanced quote in a line the client wrote cannot swallow the line a proxy added."""
    for line in reversed(lines):
        elements = split_outside_quotes(line.decode("latin-1"), ",")
        if elements is None:
            yield None
            return
        for element in reversed(elements):
            yield forwarded_element(element)


def forwarded_element(element: str) -> _Entry:
    """``for`` (and ``proto``) of one RFC 7239 §4 element; ``None`` when it is malformed, repeats a
    parameter, or its ``for`` is not an address."""
    pairs = split_outside_quotes(element, ";")
    if pairs is None:
        return None
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, raw = pair.strip().partition("=")
        value = unquoted(raw.strip())
        key = name.strip().lower()
        if not sep or not key or value is None or key in params:
            return None
        params[key] = value
    address = node_address(params.get("for", ""))
    if address is None:
        return None
    proto = params.get("proto", "").lower()
    return address, proto if proto in SCHEMES else None


def aligned_proto(lines: Sequence[bytes], offset: int) -> str | None:
    """The ``X-Forwarded-Proto`` entry written by the same hop as the chosen client address.

    Proxies that append keep the two lists aligned from the right; proxies that overwrite leave
    one value, the nearest thing to the client's hop, which is then taken as it is."""
    values = [v.strip().lower() for line in lines for v in line.decode("latin-1").split(",")]
    if not values:
        return None
    value = values[max(len(values) - offset, 0)]
    return value if value in SCHEMES else None


def node_address(text: str) -> IPAddress | None:
    """The address of an RFC 7239 §6 node or an ``X-Forwarded-For`` entry: ``1.2.3.4``,
    ``1.2.3.4:80``, ``::1``, ``[::1]`` or ``[::1]:80``; ``None`` for anything else."""
    if text.startswith("["):
        inside, sep, rest = text[1:].partition("]")
        if not sep or (rest and not _is_port(rest)):
            return None
        address = ip_from_text(inside)
        return address if isinstance(address, ipaddress.IPv6Address) else None
    if text.count(":") == 1:
        text, port = text.split(":")
        if not _is_port(":" + port):
            return None
        address = ip_from_text(text)
        return address if isinstance(address, ipaddress.IPv4Address) else None
    return ip_from_text(text)


def ip_from_text(text: str) -> IPAddress | None:
    """An address, with IPv4-mapped IPv6 (``::ffff:10.0.0.1``) unwrapped so that a dual-stack
    socket cannot slip past an IPv4 network of the trusted list, nor be counted twice."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def split_outside_quotes(text: str, separator: str) -> list[str] | None:
    """``text`` split on ``separator`` where it is not inside a quoted-string (RFC 9110 §5.6.4);
    ``None`` when a quote is left open."""
    parts: list[str] = []
    start = 0
    in_quotes = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif in_quotes and char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == separator and not in_quotes:
            parts.append(text[start:index])
            start = index + 1
    if in_quotes:
        return None
    parts.append(text[start:])
    return parts


def unquoted(value: str) -> str | None:
    """A token as it is, a quoted-string without its quotes and escapes; ``None`` when a quote
    appears anywhere else (text after a closing quote, say)."""
    if not value.startswith('"'):
        return None if '"' in value else value
    if len(value) < 2 or not value.endswith('"'):
        return None
    inner = value[1:-1]
    result: list[str] = []
    escaped = False
    for char in inner:
        if escaped:
            result.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None
        else:
            result.append(char)
    return None if escaped else "".join(result)


def _is_port(text: str) -> bool:
    """``:`` followed by one to five ASCII digits."""
    digits = text[1:]
    return text[:1] == ":" and 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit()
