"""What authentication must know about a user on every request, with at most 1 s staleness.

Disabling a user, removing a role or changing a password must bite within a second on every
worker (SPEC §3, §4.7), yet a database read per request would cost most of a request's time
(SPEC §8). So each worker keeps the few fields that matter, re-reads a user at most once per
``ttl`` seconds, and drops its entry at once when it made the change itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bastion.staleness import DEFAULT_TTL, StaleCache
from bastion.storage.db import Database
from bastion.storage.models import User


@dataclass(frozen=True, slots=True)
class UserState:
    id: int
    username: str
    roles: frozenset[str]
    is_disabled: bool
    credentials_valid_after: float
    """Epoch seconds; credentials issued (``iat``) before this second are refused."""

    @classmethod
    def of(cls, user: User) -> UserState:
        return cls.from_columns(
            user.id, user.username, user.roles, user.disabled, user.tokens_valid_after
        )

    @classmethod
    def from_columns(
        cls,
        id: int,
        username: str,
        roles: str,
        disabled: bool,
        tokens_valid_after: datetime | None,
    ) -> UserState:
        """From the stored columns themselves, for a read that builds no ORM object."""
        valid_after = tokens_valid_after.timestamp() if tokens_valid_after else 0.0
        return cls(id, username, frozenset(roles.split()), disabled, valid_after)


class UserStateCache:
    def __init__(
        self,
        db: Database,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache: StaleCache[int, UserState] = StaleCache(
            ttl=ttl, max_entries=max_entries, clock=clock
        )

    async def get(self, user_id: int) -> UserState | None:
        """The user's state, or ``None`` when the account no longer exists."""
        return await self._cache.get(user_id, self._load)

    async def _load(self, user_id: int) -> UserState | None:
        async with self._db.read() as session:
            user = await session.get(User, user_id)
            return UserState.of(user) if user is not None else None

    def invalidate(self, user_id: int) -> None:
        self._cache.forget(user_id)
