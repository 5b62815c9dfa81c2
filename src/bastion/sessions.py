"""Cookie sessions: opaque ids stored as digests, with idle and absolute lifetimes (SPEC §4.3).

Like API keys, a session's record is read at most twice a second per worker, so ending a session
(logout, password change, admin revoke) bites within a second without a read per request. Idle
time is tracked with at most one write per session per ``touch_every`` seconds.

How many sessions are live is counted in the database, not by adding and subtracting events in
one process: sessions also end by password change, admin revoke or expiry, other workers create
and end theirs, and a restart must not start the count at zero (SPEC §6).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession

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

logger = structlog.get_logger("bastion.sessions")

InTransaction = Callable[[OrmSession], None]
"""Work that must commit or roll back with another (the login that opens a session), in the
same ``Database.run`` unit of work."""


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
        report_live: Callable[[int], None] | None = None,
    ) -> None:
        """``report_live`` receives the number of live sessions each time it is counted (the
        ``bastion_active_sessions`` gauge)."""
        self._db = db
        self._audit = audit
        self._idle = idle_seconds
        self._absolute = absolute_seconds
        self._touch_every = touch_every
        self._clock = clock
        self._cache: StaleCache[str, SessionRecord] = StaleCache(ttl=ttl)
        self._touching: set[str] = set()
        self._report_live = report_live
        self._counts_started = 0
        self._count_reported = 0

    @property
    def absolute_seconds(self) -> int:
        return self._absolute

    async def create(self, user_id: int, actor: str, *, also: InTransaction | None = None) -> str:
        """A new session for ``user_id``; returns the secret token for the cookie. ``also``
        runs first in the same transaction: the login that opens the session commits with it,
        and its event comes before ``session_created``."""
        token = secrets.token_urlsafe(32)
        now = datetime.fromtimestamp(self._clock(), UTC)
        row = Session(
            id=session_digest(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=self._absolute),
        )

        def open_session(session: OrmSession) -> None:
            session.add(row)
            if also is not None:
                also(session)
            self._audit.add(
                session,
                EventType.SESSION_CREATED,
                actor=actor,
                subject=actor,
                details={"session": row.id[:12]},
            )

        await self._db.run(open_session)
        await self.count_live()
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
        if revoked:
            await self.count_live()
        return revoked

    async def revoke_user_sessions(self, session: AsyncSession, user_id: int) -> list[str]:
        """End every session of a user inside the caller's transaction; the caller calls
        :meth:`ended` once it has committed."""
        return await SessionRepository(session).revoke_user_sessions(
            user_id, datetime.fromtimestamp(self._clock(), UTC)
        )

    def forget(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            self._cache.forget(session_id)

    async def ended(self, session_ids: list[str]) -> None:
        """Sessions ended in a transaction that has committed (password change, admin revoke
        or disable): drop them from the cache and count the live ones again."""
        self.forget(session_ids)
        if session_ids:
            await self.count_live()

    async def count_live(self) -> None:
        """Report how many sessions are live, from one COUNT query. Called at start, after
        this worker creates or ends sessions, and periodically (which also catches expiry and
        other workers' changes). A failure is logged, never raised: the gauge must not turn a
        login that has committed into an error.

        A count that started before the last reported one is dropped, so two concurrent
        logins cannot leave the older, smaller number on the gauge."""
        if self._report_live is None:
            return
        self._counts_started += 1
        ticket = self._counts_started
        now = datetime.fromtimestamp(self._clock(), UTC)
        try:
            async with self._db.read() as session:
                live = await SessionRepository(session).count_live(
                    now, now - timedelta(seconds=self._idle)
                )
        except Exception:
            logger.warning("active_sessions_count_failed")
            return
        if ticket > self._count_reported:
            self._count_reported = ticket
            self._report_live(live)

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
        self._cache.refresh(record.id, fresh)


def cookie_names(*, secure: bool) -> tuple[str, str]:
    """``(session, csrf)`` cookie names: ``__Host-`` binds them to this exact origin over HTTPS
    (no Domain, Path=/, Secure), so a sibling subdomain cannot plant or overwrite them."""
    if secure:
        return SECURE_PREFIX + SESSION_COOKIE, SECURE_PREFIX + CSRF_COOKIE
    return SESSION_COOKIE, CSRF_COOKIE
