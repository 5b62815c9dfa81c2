"""Brute-force lockout per account name (SPEC §5): ``threshold`` failures within any
``window`` seconds lock the name; each further lock lasts twice as long as the one before.

The window rolls: the times of the last ``threshold`` failures are kept, so a burst that
straddles the boundary of a fixed window (one failure, then the rest just after it would have
reset) locks as surely as one inside it.

The answer while locked is the same 429 whether the name exists or not and whether the password
was right or not: the lock is checked *before* the password, so a locked account reveals nothing.
Counting and clearing run inside the caller's transaction, so the ``login_failed`` and
``login_locked`` events commit with the counter they describe (SPEC §6).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bastion.errors import RateLimited
from bastion.storage.db import Database
from bastion.storage.models import LoginFailure
from bastion.storage.repositories import login_failures
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
        self._window = window_seconds
        self._base = base_lock_seconds
        self._max = max_lock_seconds
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def check(self, username: str) -> bool:
        """Raise :class:`AccountLocked` (429 + ``Retry-After``) while ``username`` is locked;
        otherwise say whether it has a record (failures or back-off) that a success must clear."""
        return await self._db.run(lambda session: self.check_in(session, username), read_only=True)

    def check_in(self, session: Session | Connection, username: str) -> bool:
        """:meth:`check`, read in the caller's unit of work (``Database.run``): a login reads
        the lock and the user in one transaction, not two (SPEC §8)."""
        has_record, locked_until = login_failures.lock_state(session, username)
        now = self._now()
        if locked_until is not None and locked_until > now:
            retry_after = math.ceil((locked_until - now).total_seconds())
            raise AccountLocked(retry_after, LOCKED_DETAIL)
        return has_record

    def count_failure(self, session: Session, username: str) -> bool:
        """Count one failure inside the caller's unit of work (``Database.run``); True when it
        locked the name.

        The failures that lock are used up by the lock: once it has expired, the name gets
        ``threshold`` more attempts before a lock twice as long."""
        now = self._now()
        repo = LoginFailureRepository(session)
        if random.random() < 0.01:  # noqa: S311 - housekeeping, not security
            repo.prune(now - PRUNE_AFTER)
        row = repo.lock_row(username, now)
        times = recent_failure_times(row, since=now.timestamp() - self._window)
        times.append(round(now.timestamp(), 3))
        row.updated_at = now
        if len(times) < self._threshold:
            row.recent_failures = json.dumps(times)
            return False
        duration = min(self._max, self._base * 2**row.lock_count)
        row.locked_until = now + timedelta(seconds=duration)
        row.lock_count += 1
        row.recent_failures = "[]"
        return True

    async def clear(self, session: AsyncSession, username: str) -> bool:
        """Forget the name's failures, lock and back-off inside ``session``'s transaction (a
        successful login, ``bastion unlock``, the admin API); True when there was anything."""
        return await session.run_sync(self.clear_in, username)

    def clear_in(self, session: Session | Connection, username: str) -> bool:
        """:meth:`clear` in a unit of work of ``Database.run`` or ``run_core`` (a login's)."""
        return login_failures.remove(session, username)


def recent_failure_times(row: LoginFailure, *, since: float) -> list[float]:
    """The stored failure times (epoch seconds) at or after ``since``, oldest first."""
    try:
        stored = json.loads(row.recent_failures or "[]")
    except ValueError:
        return []
    if not isinstance(stored, list):
        return []
    return sorted(float(t) for t in stored if isinstance(t, int | float) and t >= since)
