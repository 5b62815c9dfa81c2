"""What is limited and how much: named policies in the `limits` notation (``600/minute``).

A policy's name is what clients see in the ``RateLimit-Policy`` and ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers): ``"ip"``, ``"principal"``, ``"route"``, ``"login"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from limits import RateLimitItem, parse


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

    def __post_init__(self) -> None:
        """The numbers every hit needs, taken from the item once (each is a computation
        there), and the ``RateLimit-Policy`` member every response carries."""
        quota, window = int(self.item.amount), int(self.item.get_expiry())
        object.__setattr__(self, "quota", quota)
        object.__setattr__(self, "window_seconds", window)
        object.__setattr__(self, "policy_field", f'"{self.name}";q={quota};w={window}')

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
