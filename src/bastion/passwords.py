"""Password hashing: Argon2id via pwdlib, off the event loop, with bounded concurrency.

Argon2 is deliberately slow (SPEC §8: 34 ms per verify at OWASP's parameters), so it runs in
worker threads; at most ``concurrency`` hashes run at once and at most ``queue_size`` callers
wait. A login flood therefore fills a bounded queue and gets 503 + ``Retry-After`` instead of
stalling every other route or growing memory without bound.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import structlog
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from bastion.errors import ServiceUnavailable

T = TypeVar("T")
logger = structlog.get_logger("bastion.passwords")


class PasswordHasher:
    """Hash and verify passwords; every call may raise :class:`ServiceUnavailable` when full."""

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 19_456,
        parallelism: int = 1,
        concurrency: int = 1,
        queue_size: int = 64,
    ) -> None:
        self._hash = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism),)
        )
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._max_pending = concurrency + queue_size
        self._pending = 0
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """``(is_valid, new_hash)``; ``new_hash`` is set when the stored hash used other
        parameters and should be replaced (re-hash on login, SPEC §8). A stored hash that no
        hasher recognises verifies nothing: it is logged, never a 500."""
        try:
            return await self._run(self._hash.verify_and_update, password, password_hash)
        except UnknownHashError:
            logger.error("password_hash_unrecognised")
            return False, None

    async def verify_dummy(self, password: str) -> None:
        """Spend the time a real verify would, for an unknown user, so that the response time
        does not tell an attacker which usernames exist (SPEC §4.2)."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self._run(self._hash.verify, password, self._dummy_hash)

    async def _run(self, func: Callable[..., T], *args: str) -> T:
        if self._pending >= self._max_pending:
            raise ServiceUnavailable(
                "The server is busy verifying passwords; try again shortly.", retry_after=1
            )
        self._pending += 1
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)
        finally:
            self._pending -= 1
