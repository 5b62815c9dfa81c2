"""The IETF ``RateLimit-Policy`` and ``RateLimit`` fields, in structured-field syntax."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.ratelimit.limiter import Decision


def ratelimit_headers(decisions: Sequence[Decision]) -> list[tuple[bytes, bytes]]:
    """One list member per policy that applied to this request, e.g.
    ``RateLimit-Policy: "ip";q=600;w=60, "principal";q=1200;w=60``."""
    if not decisions:
        return []
    policy = ", ".join(d.policy.policy_field for d in decisions)
    limit = ", ".join(d.limit_field for d in decisions)
    return [(b"ratelimit-policy", policy.encode()), (b"ratelimit", limit.encode())]
