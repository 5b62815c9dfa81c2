"""Brute-force lockout per account name (SPEC §5): ``threshold`` failures within ``window``
seconds lock the name; each further lock lasts twice as long as the one before.

The answer while locked is the same 429 whether the name exists or not and whether the password
was right or not: the lock is checked *before* the password, so a locked account reveals nothing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bastion.errors import RateLimited
from bastion.storage.db import Database
from bastion.storage.repositories.login_failures import LoginFailureRepository

LOCKED_DETAIL = "Too many failed logins for this account; try again later."
PRUNE_AFTER = timedelta(days=1)


class AccountLocked(RateLimited):
    """429 for a locked account name; its own event (``login_locked``) is already recorded."""


class Lockout:
    def __init__(
        self,
        db: Database,
        *,
        threshold: int = 5,
        window_seconds: int = 900,
        base_lock_seconds: int = 60,
        max_lock_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._threshold = threshold
        self._window = timedelta(seconds=window_seconds)
        self._base = base_lock_seconds
        self._max = max_lock_seconds
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def check(self, username: str) -> bool:
        """Raise :class:`RateLimited` (429 + ``Retry-After``) while ``username`` is locked;
        otherwise say whether it has recent failures (which a success must then clear)."""
        async with self._db.transaction() as session:
            row = await LoginFailureRepository(session).get(username)
            locked_until = row.locked_until if row else None
        now = self._now()
        if locked_until is not None and locked_until > now:
            retry_after = math.ceil((locked_until - now).total_seconds())
            raise AccountLocked(retry_after, LOCKED_DETAIL)
        return row is not None

    async def record_failure(self, username: str) -> bool:
        """Count one failure; True when this failure locked the name."""
        now = self._now()
        async with self._db.transaction() as session:
            repo = LoginFailureRepository(session)
            if random.random() < 0.01:  # noqa: S311 - housekeeping, not security
                await repo.prune(now - PRUNE_AFTER)
            row = await repo.lock_row(username, now)
            if now - row.window_started_at > self._window:
                row.failures, row.window_started_at = 0, now
            row.failures += 1
            row.updated_at = now
            if row.failures < self._threshold:
                return False
            duration = min(self._max, self._base * 2**row.lock_count)
            row.locked_until = now + timedelta(seconds=duration)
            row.lock_count += 1
            row.failures, row.window_started_at = 0, now
            return True

    async def record_success(self, username: str) -> None:
        """A successful login resets the counter and the back-off."""
        async with self._db.transaction() as session:
            await LoginFailureRepository(session).remove(username)

    async def unlock(self, username: str) -> bool:
        """Lift a lock (``bastion unlock``, the admin API); True when there was anything to lift."""
        async with self._db.transaction() as session:
            return await LoginFailureRepository(session).remove(username)
