"""Writes security events: into the caller's transaction when there is a change to describe,
into their own when there is not (a refused login still leaves its event). Log lines and
counters follow only once the event's transaction has committed, so the log never tells of a
change that was rolled back.

Every event is stored (SPEC §6), refusals included: 401s, 403s and CSRF failures are bounded by
the per-IP limit already. Only ``rate_limited`` is stored at most once per key a second, since a
429 *is* the flood; each one is still counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bastion.audit.events import EventType, Outcome, current_request
from bastion.audit.metrics import Metrics
from bastion.audit.redact import redact_value
from bastion.storage.db import Database, after_commit
from bastion.storage.models import AuditEventRow, table_of

logger = structlog.get_logger("bastion.audit")

_PENDING = "bastion_audit_pending"
_INSERT_EVENT = insert(table_of(AuditEventRow))

LOGIN_SCHEMES = {"token": "password", "session": "session"}
"""``via`` of a login event -> ``scheme`` of ``bastion_authentications``: a login is an
authentication as much as a credential checked on a protected route (SPEC §6). A login refused
by the lockout before any password was checked is a ``rate_limited`` count, not one of these."""
_LOGIN_OUTCOMES: dict[str, str] = {
    EventType.LOGIN_SUCCEEDED: "success",
    EventType.LOGIN_FAILED: "failure",
}


class AuditRecorder:
    def __init__(self, db: Database, metrics: Metrics) -> None:
        self._db = db
        self._metrics = metrics
        self._last_written: dict[tuple[EventType, str], float] = {}

    def add(
        self,
        session: AsyncSession | Session | Connection,
        type: EventType,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        actor: str | int | None = None,
        subject: str | int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Add an event to ``session``'s transaction: it commits or rolls back with the change.
        ``session`` may also be the synchronous one of a ``Database.run`` unit of work, or the
        connection of a ``Database.run_core`` one."""
        row = self._row(type, outcome, actor, subject, details)
        if isinstance(session, Connection):
            session.execute(_INSERT_EVENT, row)
            after_commit(session, partial(self._committed, [row]))
            return
        if isinstance(session, AsyncSession):
            sync_session = session.sync_session
            sync_session.add(AuditEventRow(**row))
        else:
            # A ``Database.run`` unit of work (logins, refusals): one Core insert, at once,
            # instead of an ORM object for the flush at commit, which cost ~0.2 ms an event.
            sync_session = session
            session.execute(_INSERT_EVENT, row)
        # the events wait for the commit, with the recorder that logs and counts them then
        pending: tuple[AuditRecorder, list[dict[str, Any]]]
        pending = sync_session.info.setdefault(_PENDING, (self, []))
        pending[1].append(row)

    async def record(
        self,
        type: EventType,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        actor: str | int | None = None,
        subject: str | int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Store an event in its own transaction (nothing else changed). Refusals (401s, 403s)
        come through here at the rate an attacker sends them, so it is one ``Database.run``:
        one thread hop on SQLite, not a round trip per cursor call."""

        def store(session: Session) -> None:
            self.add(session, type, outcome=outcome, actor=actor, subject=subject, details=details)

        await self._db.run(store)

    async def record_throttled(
        self,
        type: EventType,
        key: str,
        *,
        outcome: Outcome = Outcome.DENIED,
        actor: str | int | None = None,
        subject: str | int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Store at most one event per ``(type, key)`` a second; count every one.

        For ``rate_limited`` only: a 429 is the flood itself, and a row for each would turn an
        attack on the API into one on the database. Every other refusal goes through
        :meth:`record`, since SPEC §6 wants each in the database."""
        now = time.monotonic()
        slot = (type, key)
        if self._last_written.get(slot, 0.0) > now - 1.0:
            self._metrics.security_events.labels(type.value, outcome.value).inc()
            return
        if len(self._last_written) > 10_000:
            self._last_written.clear()
        self._last_written[slot] = now
        await self.record(type, outcome=outcome, actor=actor, subject=subject, details=details)

    def _row(
        self,
        type: EventType,
        outcome: Outcome,
        actor: str | int | None,
        subject: str | int | None,
        details: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The event's columns, redacted and cut to size: stored as they are, logged after
        the commit from the same values."""
        context = current_request.get()
        safe_details = redact_value(None, dict(details or {}))
        return {
            "time": datetime.now(UTC),
            "type": type.value,
            "actor": None if actor is None else str(actor)[:64],
            "subject": None if subject is None else str(subject)[:200],
            "ip": context.ip if context else None,
            "user_agent": (context.user_agent or "")[:256] or None if context else None,
            "request_id": context.request_id if context else None,
            "outcome": outcome.value,
            "details": json.dumps(safe_details, sort_keys=True, default=str),
        }

    def _committed(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            details = json.loads(row["details"])
            self._count(row, details)
            logger.info(
                "security_event",
                time=row["time"].isoformat(timespec="microseconds").replace("+00:00", "Z"),
                type=row["type"],
                outcome=row["outcome"],
                actor=row["actor"],
                subject=row["subject"],
                ip=row["ip"],
                user_agent=row["user_agent"],
                request_id=row["request_id"],
                details=details,
            )

    def _count(self, row: Mapping[str, Any], details: Mapping[str, Any]) -> None:
        self._metrics.security_events.labels(row["type"], row["outcome"]).inc()
        login_outcome = _LOGIN_OUTCOMES.get(row["type"])
        scheme = LOGIN_SCHEMES.get(str(details.get("via")))
        if login_outcome is not None and scheme is not None:
            self._metrics.count_authentication(scheme, login_outcome)


# Two listeners for every session of the process, registered once: registering them on each
# session that gets an event cost ~0.1 ms per unit of work. Sessions with no pending event
# (the app's own, say) cost a dictionary lookup.


@event.listens_for(Session, "after_commit")
def _after_commit(sync_session: Session) -> None:
    pending = sync_session.info.pop(_PENDING, None)
    if pending is not None:
        recorder, rows = pending
        recorder._committed(rows)


@event.listens_for(Session, "after_rollback")
def _forget_pending(sync_session: Session) -> None:
    sync_session.info.pop(_PENDING, None)
