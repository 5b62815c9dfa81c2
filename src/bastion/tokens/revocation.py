"""Refused credentials that are otherwise still valid: revoked access tokens (``jti``) and
revoked refresh families (``sid``), each kept only until its access tokens would expire.

Checked on every authenticated request, so it is a protocol with an in-process implementation
here and a shared one (Redis) for several workers; the database stays the record, loaded at start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol


class RevocationList(Protocol):
    async def revoke_token(self, jti: str, until: float) -> None: ...

    async def revoke_families(self, family_ids: Iterable[str], until: float) -> None: ...

    async def is_revoked(self, jti: str, family_id: str) -> bool: ...


class MemoryRevocationList:
    """A process-local revocation list; right for one worker (SPEC §7)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._tokens: dict[str, float] = {}
        self._families: dict[str, float] = {}
        self._clock = clock
        self._next_prune = 0.0

    async def revoke_token(self, jti: str, until: float) -> None:
        self._tokens[jti] = max(until, self._tokens.get(jti, 0.0))
        self._prune()

    async def revoke_families(self, family_ids: Iterable[str], until: float) -> None:
        for family_id in family_ids:
            self._families[family_id] = max(until, self._families.get(family_id, 0.0))
        self._prune()

    async def is_revoked(self, jti: str, family_id: str) -> bool:
        return jti in self._tokens or family_id in self._families

    def _prune(self) -> None:
        """Drop entries whose tokens have expired anyway; at most once a minute."""
        now = self._clock()
        if now < self._next_prune:
            return
        self._next_prune = now + 60
        for table in (self._tokens, self._families):
            for key in [k for k, until in table.items() if until <= now]:
                del table[key]
