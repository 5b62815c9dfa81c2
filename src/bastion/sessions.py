"""Cookie sessions: opaque ids stored as digests, with idle and absolute lifetimes (SPEC §4.3).

Like API keys, a session's record is read at most twice a second per worker, so ending a session
(logout, password change, admin revoke) bites within a second without a read per request. Idle
time is tracked with at most one write per session per ``touch_every`` seconds.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.audit.events import EventType
from bastion.audit.recorder import AuditRecorder
from bastion.errors import AuthenticationError
from bastion.staleness import DEFAULT_TTL, StaleCache
from bastion.storage.db import Database
from bastion.storage.models import Session
from bastion.storage.repositories.sessions import SessionRepository

SESSION_COOKIE = "bastion_session"
CSRF_COOKIE = "bastion_csrf"
SECURE_PREFIX = "__Host-"


class InvalidSession(AuthenticationError):
    problem_type = "urn:bastion:problem:invalid-session"
    default_detail = "The session is invalid or has expired; log in again."


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: int
    created_at: float
    last_seen_at: float
    expires_at: float
    is_revoked: bool

    @classmethod
    def of(cls, row: Session) -> SessionRecord:
        return cls(
            row.id,
            row.user_id,
            row.created_at.timestamp(),
            row.last_seen_at.timestamp(),
            row.expires_at.timestamp(),
            row.revoked_at is not None,
        )


def session_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class SessionService:
    def __init__(
        self,
        db: Database,
        audit: AuditRecorder,
        *,
        idle_seconds: int,
        absolute_seconds: int,
        touch_every: float = 60.0,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._audit = audit
        self._idle = idle_seconds
        self._absolute = absolute_seconds
        self._touch_every = touch_every
        self._clock = clock
        self._cache: StaleCache[str, SessionRecord] = StaleCache(ttl=ttl)
        self._touching: set[str] = set()

    @property
    def absolute_seconds(self) -> int:
        return self._absolute

    async def create(self, user_id: int, actor: str) -> str:
        """A new session for ``user_id``; returns the secret token for the cookie."""
        token = secrets.token_urlsafe(32)
        now = datetime.fromtimestamp(self._clock(), UTC)
        row = Session(
            id=session_digest(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=self._absolute),
        )
        async with self._db.transaction() as session:
            await SessionRepository(session).add(row)
            self._audit.add(
                session,
                EventType.SESSION_CREATED,
                actor=actor,
                subject=actor,
                details={"session": row.id[:12]},
            )
        return token

    async def authenticate(self, token: str) -> SessionRecord:
        if not token or len(token) > 128:
            raise InvalidSession()
        digest = session_digest(token)
        record = await self._record(digest)
        now = self._clock()
        if (
            record is None
            or record.is_revoked
            or record.expires_at <= now
            or now - record.last_seen_at > self._idle
        ):
            raise InvalidSession()
        if now - record.last_seen_at > self._touch_every and record.id not in self._touching:
            await self._touch(record, now)
        return record

    async def revoke(self, token: str, actor: str) -> bool:
        return await self.revoke_by_id(session_digest(token), actor)

    async def revoke_by_id(self, session_id: str, actor: str) -> bool:
        async with self._db.transaction() as session:
            revoked = await SessionRepository(session).revoke(
                session_id, datetime.fromtimestamp(self._clock(), UTC)
            )
            if revoked:
                self._audit.add(
                    session,
                    EventType.SESSION_ENDED,
                    actor=actor,
                    subject=actor,
                    details={"session": session_id[:12], "reason": "logout"},
                )
        self._cache.forget(session_id)
        return revoked

    async def revoke_user_sessions(self, session: AsyncSession, user_id: int) -> list[str]:
        """End every session of a user inside the caller's transaction; the caller calls
        :meth:`forget` once it has committed."""
        return await SessionRepository(session).revoke_user_sessions(
            user_id, datetime.fromtimestamp(self._clock(), UTC)
        )

    def forget(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            self._cache.forget(session_id)

    async def _record(self, digest: str) -> SessionRecord | None:
        return await self._cache.get(digest, self._load)

    async def _load(self, digest: str) -> SessionRecord | None:
        async with self._db.read() as session:
            row = await SessionRepository(session).get(digest)
            return SessionRecord.of(row) if row is not None else None

    async def _touch(self, record: SessionRecord, now: float) -> None:
        """Move the idle deadline; one write at a time per session, the other requests of the
        same moment go on without waiting for it."""
        self._touching.add(record.id)
        try:
            async with self._db.transaction() as session:
                await SessionRepository(session).touch(record.id, datetime.fromtimestamp(now, UTC))
        finally:
            self._touching.discard(record.id)
        fresh = SessionRecord(
            record.id, record.user_id, record.created_at, now, record.expires_at, record.is_revoked
        )
        self._cache.put(record.id, fresh)


def cookie_names(*, secure: bool) -> tuple[str, str]:
    """``(session, csrf)`` cookie names: ``__Host-`` binds them to this exact origin over HTTPS
    (no Domain, Path=/, Secure), so a sibling subdomain cannot plant or overwrite them."""
    if secure:
        return SECURE_PREFIX + SESSION_COOKIE, SECURE_PREFIX + CSRF_COOKIE
    return SESSION_COOKIE, CSRF_COOKIE
