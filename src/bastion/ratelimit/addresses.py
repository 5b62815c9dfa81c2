"""Which client addresses share one per-IP limit (SPEC §5: per IP, and the login limit).

An IPv4 address is one client's, as near as a server can tell. An IPv6 one is not: a single
subscriber is routinely given a whole /64 (RFC 6177, and SLAAC needs one), so keying a limit by
the full address hands an attacker 2^64 fresh limits, one per address it picks from its own
prefix, and the limit stops nothing. IPv6 clients are therefore limited per network prefix,
/64 by default (``BASTION_RATELIMIT_IPV6_PREFIX``; 128 keys by the full address again).

An IPv6 address that carries an IPv4 client is that client: IPv4-mapped (``::ffff:192.0.2.1``,
as a dual-stack socket reports IPv4 peers), NAT64's well-known prefix (``64:ff9b::/96``, RFC
6052: every IPv4 client behind the translator would otherwise share one /64, and one attacker
lock the login of all of them), 6to4 (``2002::/16``: one IPv4 address would otherwise own 2^16
/64s) and Teredo (``2001::/32``: the clients of one Teredo server would share a /64). Logs and
the audit trail keep the full address: only the limit's key is grouped.
"""

from __future__ import annotations

import functools
import ipaddress

CACHE_SIZE = 4096
"""Addresses whose key is remembered: parsing an address costs microseconds, and a request's
client is usually one of the last few thousand."""


class LimitKeys:
    """``keys(address)``: the per-IP limit key of a client address."""

    def __init__(self, ipv6_prefix: int = 64) -> None:
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError(f"an IPv6 prefix length is 1 to 128, not {ipv6_prefix}")
        self.ipv6_prefix = ipv6_prefix
        self._ipv6 = functools.lru_cache(maxsize=CACHE_SIZE)(self._ipv6_key)

    def __call__(self, address: str) -> str:
        if ":" not in address:  # IPv4, or no address at all ("unknown"): as it is
            return address
        return self._ipv6(address)

    def _ipv6_key(self, address: str) -> str:
        try:
            parsed = ipaddress.IPv6Address(address.split("%", 1)[0])  # no zone: one host
        except ValueError:
            return address
        if (client := _embedded_ipv4(parsed)) is not None:
            return str(client)
        network = ipaddress.IPv6Network((parsed, self.ipv6_prefix), strict=False)
        return str(network)


NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 client an IPv6 address stands for, if it stands for one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client's public address
    return None
