"""What is limited and how much: named policies in the `limits` notation (``600/minute``).

A policy's name is what clients see in the ``RateLimit-Policy`` and ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers): ``"ip"``, ``"principal"``, ``"route"``, ``"login"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from limits import RateLimitItem, parse

MAX_REMEMBERED_KEYS = 10_000


class InvalidRateLimit(ValueError):
    """A limit string that the `limits` notation cannot read."""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    item: RateLimitItem
    policy_field: str = field(init=False, compare=False, repr=False)
    """One member of ``RateLimit-Policy``: ``"ip";q=600;w=60``. Made once: every response
    carries it."""

    quota: int = field(init=False, compare=False, repr=False)
    window_seconds: int = field(init=False, compare=False, repr=False)
    _storage_keys: dict[str, str] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        """The numbers every hit needs, taken from the item once (each is a computation
        there), and the ``RateLimit-Policy`` member every response carries."""
        quota, window = int(self.item.amount), int(self.item.get_expiry())
        object.__setattr__(self, "quota", quota)
        object.__setattr__(self, "window_seconds", window)
        object.__setattr__(self, "policy_field", f'"{self.name}";q={quota};w={window}')

    def storage_key(self, key: str) -> str:
        """`limits`' storage key for ``key`` under this policy, remembered: building it costs
        microseconds on every hit, and the same few keys come back all the time. Kept here,
        not in a dict keyed by the policy's item, whose hash is computed in Python."""
        keys = self._storage_keys
        found = keys.get(key)
        if found is None:
            if len(keys) >= MAX_REMEMBERED_KEYS:  # many clients: start again rather than grow
                keys.clear()
            found = keys[key] = self.item.key_for(self.name, key)
        return found

    @classmethod
    def parse(cls, name: str, spec: str) -> Policy:
        if ";" in spec or "," in spec:
            raise InvalidRateLimit(f"{spec!r}: give one limit, such as '600/minute'")
        try:
            item = parse(spec)
        except ValueError as exc:
            raise InvalidRateLimit(f"{spec!r} is not a rate limit such as '600/minute'") from exc
        if item.amount < 1 or item.get_expiry() < 1:
            raise InvalidRateLimit(f"{spec!r} would refuse everything; allow at least 1 per second")
        return cls(name, item)


@lru_cache(maxsize=1024)
def policy_for(name: str, spec: str) -> Policy:
    """One :class:`Policy` per name and limit, for limits that come with each request (an API
    key's own): parsed once, and its remembered storage keys kept from request to request."""
    return Policy.parse(name, spec)
