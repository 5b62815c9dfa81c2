"""API keys as a service: create, list, revoke, rotate, and authenticate (SPEC §4.4).

Authentication reads a key's record at most once per ``ttl`` seconds per worker, so a revoked
key stops working within a second everywhere without a database read per request. ``last_used``
is collected in memory and written in batches, never on every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.api_keys import (
    hash_api_key,
    is_key_id,
    key_matches,
    key_prefix,
    new_api_key,
    new_key_id,
    parse_api_key,
)
from bastion.audit.events import EventType
from bastion.audit.recorder import AuditRecorder
from bastion.errors import AuthenticationError, NotFound, PermissionDenied
from bastion.staleness import DEFAULT_TTL, StaleCache
from bastion.storage.db import Database
from bastion.storage.models import ApiKey
from bastion.storage.repositories.api_keys import ApiKeyRepository

logger = structlog.get_logger("bastion.api_keys")

KEY_NOT_FOUND = "No API key with this id exists."


class InvalidApiKey(AuthenticationError):
    """401 for a key that was sent and is bad; the challenge lists the route's schemes."""

    problem_type = "urn:bastion:problem:invalid-api-key"
    default_detail = "The API key is invalid, expired or revoked."


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What authentication needs of a key; no secret, only its keyed hash."""

    id: str
    user_id: int
    key_hash: str
    scopes: frozenset[str]
    expires_at: float
    is_revoked: bool
    rate_limit: str | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyRecord:
        return cls(
            key.id,
            key.user_id,
            key.key_hash,
            frozenset(key.scopes.split()),
            key.expires_at.timestamp(),
            key.revoked_at is not None,
            key.rate_limit,
        )


@dataclass(frozen=True, slots=True)
class IssuedKey:
    record: ApiKey
    key: str


class ApiKeyService:
    def __init__(
        self,
        db: Database,
        pepper: bytes,
        audit: AuditRecorder,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
        max_entries: int = 100_000,
    ) -> None:
        self._db = db
        self._pepper = pepper
        self._audit = audit
        self._clock = clock
        self._cache: StaleCache[str, KeyRecord] = StaleCache(ttl=ttl, max_entries=max_entries)
        self._last_used: dict[str, float] = {}
        self._verified: dict[str, tuple[str, str]] = {}
        """Keys whose shape, checksum and HMAC were checked, with the id and stored hash they
        matched: a key seen again is only looked up (the record, re-read at most every
        ``ttl``, still decides revocation and expiry), which spares every request the
        parse and the HMAC. A rotation changes the stored hash, and so ends the entry."""
        self._max_verified = max_entries

    # ------------------------------------------------------------------------ authenticate

    async def authenticate(self, candidate: str) -> KeyRecord:
        """The key's record, or :class:`InvalidApiKey` (401). Malformed keys are refused by
        their shape and checksum alone, before any lookup."""
        verified = self._verified.get(candidate)
        if verified is not None:
            key_id, key_hash = verified
            record = await self._record(key_id)
            if record is None or record.key_hash != key_hash:  # gone, or rotated since
                self._verified.pop(candidate, None)
                raise InvalidApiKey()
        else:
            parsed = parse_api_key(candidate)
            if parsed is None:
                raise InvalidApiKey("The API key is malformed.")
            record = await self._record(parsed.key_id)
            if record is None or not key_matches(parsed.key, record.key_hash, self._pepper):
                raise InvalidApiKey()
            if len(self._verified) >= self._max_verified:
                self._verified.clear()
            self._verified[candidate] = (record.id, record.key_hash)
        now = self._clock()
        if record.is_revoked or record.expires_at <= now:
            raise InvalidApiKey()
        self._last_used[record.id] = now
        return record

    async def _record(self, key_id: str) -> KeyRecord | None:
        return await self._cache.get(key_id, self._load)

    async def _load(self, key_id: str) -> KeyRecord | None:
        async with self._db.read() as session:
            key = await ApiKeyRepository(session).get(key_id)
            return KeyRecord.of(key) if key is not None else None

    def forget(self, key_ids: list[str]) -> None:
        """Drop cached records at once (this worker revoked or rotated them)."""
        for key_id in key_ids:
            self._cache.forget(key_id)

    async def flush_last_used(self) -> None:
        """Write the batched ``last_used_at`` times (called periodically and at shutdown)."""
        if not self._last_used:
            return
        pending = {
            key_id: datetime.fromtimestamp(at, UTC) for key_id, at in self._last_used.items()
        }
        self._last_used = {}
        try:
            async with self._db.transaction() as session:
                await ApiKeyRepository(session).touch(pending)
        except Exception:
            logger.warning("api_key_last_used_flush_failed", keys=len(pending))

    # ------------------------------------------------------------------------------ manage

    async def create(
        self,
        user_id: int,
        actor: str,
        name: str,
        scopes: frozenset[str],
        expires_in_days: int,
        rate_limit: str | None = None,
    ) -> IssuedKey:
        key_id = new_key_id()
        key = new_api_key(key_id)
        now = datetime.fromtimestamp(self._clock(), UTC)
        record = ApiKey(
            id=key_id,
            user_id=user_id,
            name=name,
            key_hash=hash_api_key(key, self._pepper),
            scopes=" ".join(sorted(scopes)),
            rate_limit=rate_limit,
            created_at=now,
            expires_at=now + timedelta(days=expires_in_days),
        )
        async with self._db.transaction() as session:
            await ApiKeyRepository(session).add(record)
            self._audit.add(
                session,
                EventType.API_KEY_CREATED,
                actor=actor,
                subject=key_prefix(key_id),
                details={"key_id": key_id, "name": name, "scopes": sorted(scopes)},
            )
        return IssuedKey(record, key)

    async def list_owned(self, user_id: int) -> list[ApiKey]:
        async with self._db.transaction() as session:
            return await ApiKeyRepository(session).list_owned(user_id)

    async def revoke(self, user_id: int, actor: str, key_id: str) -> ApiKey:
        if not is_key_id(key_id):
            raise NotFound(KEY_NOT_FOUND)
        async with self._db.transaction() as session:
            key = await ApiKeyRepository(session).get_owned(user_id, key_id)
            if key is None:
                raise NotFound(KEY_NOT_FOUND)
            if key.revoked_at is None:
                key.revoked_at = datetime.fromtimestamp(self._clock(), UTC)
                self._audit.add(
                    session,
                    EventType.API_KEY_REVOKED,
                    actor=actor,
                    subject=key_prefix(key_id),
                    details={"key_id": key_id},
                )
        self.forget([key_id])
        return key

    async def rotate(self, user_id: int, actor: str, key_id: str) -> IssuedKey:
        """A new secret for the same id, name, scopes and expiry; the old one dies at once."""
        if not is_key_id(key_id):
            raise NotFound(KEY_NOT_FOUND)
        key = new_api_key(key_id)
        async with self._db.transaction() as session:
            record = await ApiKeyRepository(session).get_owned(user_id, key_id)
            if record is None:
                raise NotFound(KEY_NOT_FOUND)
            if record.revoked_at is not None or record.expires_at.timestamp() <= self._clock():
                raise PermissionDenied("A revoked or expired key cannot be rotated.")
            record.key_hash = hash_api_key(key, self._pepper)
            self._audit.add(
                session,
                EventType.API_KEY_ROTATED,
                actor=actor,
                subject=key_prefix(key_id),
                details={"key_id": key_id},
            )
        self.forget([key_id])
        return IssuedKey(record, key)

    async def revoke_user_keys(self, session: AsyncSession, user_id: int) -> list[str]:
        """Revoke every key of a user inside the caller's transaction (admin revoke); the caller
        calls :meth:`forget` once it has committed."""
        return await ApiKeyRepository(session).revoke_user_keys(
            user_id, datetime.fromtimestamp(self._clock(), UTC)
        )


def prefix_of(key: ApiKey) -> str:
    return key_prefix(key.id)
