"""A bounded cache whose entries are re-read at most once per ``ttl`` seconds.

The one mechanism behind "revocation bites within a second without a database read per
request" (SPEC §8): users, API keys and sessions are each looked up through one of these.

Loads are single-flight: when an entry runs out while many requests want it, one of them reads
the database and the others wait for that read. Without this, every request arriving in the
moment of expiry opened its own transaction, and under load on SQLite some of them timed out
waiting for the lock and answered 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

DEFAULT_TTL = 0.5
"""Half the promised second (SPEC §3: a revoked or disabled credential is refused within 1 s):
an entry read just before a change and then kept for ``ttl`` must still be gone in time, with
room for the re-read itself."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class StaleCache(Generic[K, V]):
    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V | None]] = {}
        self._loading: dict[K, asyncio.Future[V | None]] = {}

    async def get(self, key: K, load: Callable[[K], Awaitable[V | None]]) -> V | None:
        """The cached value (``None`` is cached too: "no such thing"), or a fresh ``load``."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._loading.get(key)
        if pending is None:
            return await self._load_once(key, load)
        try:
            # shielded: one waiter going away (its client hung up) must not cancel the read
            # the others wait for
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not pending.cancelled() or (task is not None and task.cancelling()):
                raise
        # the request doing the read was cancelled, not this one: read for ourselves
        return await self.get(key, load)

    async def _load_once(self, key: K, load: Callable[[K], Awaitable[V | None]]) -> V | None:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load(key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            # the waiters share the failure (a 503, say); nothing is cached, the next request
            # tries again
            future.set_exception(exc)
            future.exception()  # marked as retrieved even when nobody waited
            raise
        finally:
            is_current = self._loading.get(key) is future
            if is_current:
                del self._loading[key]
        future.set_result(value)
        if is_current:
            # not when forget() ran meanwhile: the change this worker just made wins over a
            # read that may have started before it committed
            self.put(key, value)
        return value

    def put(self, key: K, value: V | None) -> None:
        """Store a fresh entry; when full, the entry written longest ago makes room. (Emptying
        the whole cache instead would let anyone who can mint well-formed unknown ids, the key
        checksum being public, send every client back to the database at once.)"""
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock() + self._ttl, value)

    def refresh(self, key: K, value: V | None) -> None:
        """Replace a cached value in place, keeping its deadline; nothing when the key is not
        cached. For a change this worker made to what it read (a session's idle time), which
        must not bring back an entry that :meth:`forget` dropped meanwhile (a logout)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], value)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)
