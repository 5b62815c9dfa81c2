"""The limiter: a `limits` strategy over memory or Redis storage, and what it decided.

The algorithm is the library's (``STRATEGIES`` maps setting names to its classes); this module
only adds what SPEC §3 and §7 need around it: the numbers for the ``RateLimit`` fields, and a
named decision for when the storage itself fails (``open``: let the request through; ``closed``:
answer 503 rather than run unprotected).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog
from limits import RateLimitItem
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string

from bastion.errors import ServiceUnavailable
from bastion.ratelimit.memory import InProcessStorage
from bastion.ratelimit.policies import Policy

logger = structlog.get_logger("bastion.ratelimit")


class CountingFixedWindow(FixedWindowRateLimiter):
    """The library's fixed window, also telling how many hits its window holds after this one.

    ``hit`` answers only yes or no, so the ``RateLimit`` fields took two more storage calls per
    policy (``get`` and ``get_expiry``): two more Redis round trips on every request. The count
    is what ``hit`` itself computes; the window's end is asked once per window and then kept,
    since a fixed window's end does not move."""

    def __init__(self, storage: Storage, *, max_windows: int = 10_000) -> None:
        super().__init__(storage)
        self._ends: dict[str, float] = {}
        self._max_windows = max_windows

    async def hit_counting(
        self, item: RateLimitItem, storage_key: str, expiry: int | None = None
    ) -> tuple[int, float]:
        """``(hits in the window, epoch second the window ends)`` after one more hit;
        ``expiry`` is the item's window in seconds, when the caller knows it already."""
        if expiry is None:
            expiry = item.get_expiry()
        count = await self.storage.incr(storage_key, expiry)
        now = time.time()
        end = self._ends.get(storage_key)
        if count == 1:
            end = now + expiry  # this hit opened the window
        elif end is None or end <= now:
            end = await self.storage.get_expiry(storage_key)
        if storage_key not in self._ends and len(self._ends) >= self._max_windows:
            self._ends = {k: e for k, e in self._ends.items() if e > now}
            if len(self._ends) >= self._max_windows // 2:  # many live windows: start again
                self._ends.clear()
        self._ends[storage_key] = end
        return count, end

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        self._ends.pop(item.key_for(*identifiers), None)
        await super().clear(item, *identifiers)


STRATEGIES: dict[str, type[RateLimiter]] = {
    "fixed-window": CountingFixedWindow,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
}

FailureMode = Literal["open", "closed"]


@dataclass(slots=True)  # not frozen: a frozen dataclass is built field by field, ~1 µs a hit
class Decision:
    policy: Policy
    is_allowed: bool
    remaining: int
    reset_after: int
    """Seconds until the window frees capacity again (``t`` of the ``RateLimit`` field)."""

    @property
    def limit_field(self) -> str:
        return f'"{self.policy.name}";r={self.remaining};t={self.reset_after}'


def storage_for(
    redis_url: str | None,
    *,
    key_prefix: str = "bastion",
    timeout: float = 1.0,
    pool_size: int = 100,
) -> Storage:
    """In-process storage by default; Redis (via `limits`, redis-py) when configured. Every
    Redis call has a timeout: a slow Redis must become a named degraded decision, not a hang."""
    if not redis_url:
        return InProcessStorage()
    uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
    storage = storage_from_string(
        uri,
        implementation="redispy",
        key_prefix=key_prefix,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        max_connections=pool_size,
    )
    assert isinstance(storage, Storage)
    return storage


class Limiter:
    """Counts hits against policies; one instance per process, shared by every route."""

    def __init__(
        self,
        storage: Storage,
        *,
        strategy: str = "fixed-window",
        clock: Callable[[], float] = time.time,
        on_degraded: Callable[[FailureMode], None] | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(
                f"unknown rate-limit strategy {strategy!r}; one of {sorted(STRATEGIES)}"
            )
        self.storage = storage
        self._strategy = STRATEGIES[strategy](storage)
        self._counting = self._strategy if isinstance(self._strategy, CountingFixedWindow) else None
        self._in_process: InProcessStorage | None = None
        if self._counting is not None and isinstance(storage, InProcessStorage):
            self._in_process = storage
        """The fixed window in process: counted in one call that also gives the window's end,
        without the coroutines of the storage, of the library's error wrapper around it and of
        :meth:`CountingFixedWindow.hit_counting`."""
        self._clock = clock
        self._on_degraded = on_degraded
        self._next_warning = 0.0

    async def hit(self, policy: Policy, key: str, *, on_error: FailureMode = "open") -> Decision:
        """Count one request for ``key`` under ``policy``."""
        try:
            if self._in_process is not None:
                count, reset_time = self._in_process.count(
                    policy.storage_key(key), policy.window_seconds
                )
                is_allowed, remaining = count <= policy.quota, policy.quota - count
            elif self._counting is not None:
                count, end = await self._counting.hit_counting(
                    policy.item, policy.storage_key(key), policy.window_seconds
                )
                is_allowed, remaining, reset_time = count <= policy.quota, policy.quota - count, end
            else:
                is_allowed = await self._strategy.hit(policy.item, policy.name, key)
                stats = await self._strategy.get_window_stats(policy.item, policy.name, key)
                remaining, reset_time = int(stats.remaining), stats.reset_time
        except Exception as exc:  # the storage's own errors vary by backend and driver
            return self._degraded(policy, on_error, exc)
        reset_after = max(1, math.ceil(reset_time - self._clock()))
        return Decision(policy, is_allowed, max(0, remaining), reset_after)

    async def is_healthy(self, within: float = 2.0) -> bool:
        """The storage answers a PING within ``within`` seconds (always, in memory)."""
        try:
            return bool(await asyncio.wait_for(self.storage.check(), within))
        except Exception:  # any failure to answer is "down", whatever the driver raised
            return False

    async def clear(self, policy: Policy, key: str) -> None:
        await self._strategy.clear(policy.item, policy.name, key)

    def _degraded(self, policy: Policy, on_error: FailureMode, exc: Exception) -> Decision:
        """Decide without the storage, as configured; counted every time, logged at most once
        every 10 s so an outage does not flood the log."""
        if self._on_degraded is not None:
            self._on_degraded(on_error)
        now = time.monotonic()
        if now >= self._next_warning:
            self._next_warning = now + 10.0
            logger.warning(
                "ratelimit_storage_failed",
                policy=policy.name,
                mode=on_error,
                error=type(exc).__name__,
            )
        if on_error == "closed":
            raise ServiceUnavailable(
                "Rate limiting is unavailable, so this endpoint is closed; try again shortly.",
                retry_after=5,
            ) from exc
        return Decision(policy, True, policy.quota, policy.window_seconds)
