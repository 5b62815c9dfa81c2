"""Writes security events: into the caller's transaction when there is a change to describe,
into their own when there is not (a refused login still leaves its event). Log lines and
counters follow only once the event's transaction has committed, so the log never tells of a
change that was rolled back."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bastion.audit.events import EventType, Outcome, current_request
from bastion.audit.metrics import Metrics
from bastion.audit.redact import redact_value
from bastion.storage.db import Database
from bastion.storage.models import AuditEventRow
from bastion.storage.repositories.audit import AuditRepository

logger = structlog.get_logger("bastion.audit")

_PENDING = "bastion_audit_pending"


class AuditRecorder:
    def __init__(self, db: Database, metrics: Metrics) -> None:
        self._db = db
        self._metrics = metrics
        self._last_written: dict[tuple[EventType, str], float] = {}

    def add(
        self,
        session: AsyncSession,
        type: EventType,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        actor: str | int | None = None,
        subject: str | int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Add an event to ``session``'s transaction: it commits or rolls back with the change."""
        row = self._row(type, outcome, actor, subject, details)
        AuditRepository(session).add(row)
        sync_session = session.sync_session
        pending: list[AuditEventRow] = sync_session.info.setdefault(_PENDING, [])
        if not pending:
            event.listen(sync_session, "after_commit", self._after_commit, once=True)
            event.listen(sync_session, "after_rollback", _forget_pending, once=True)
        pending.append(row)

    async def record(
        self,
        type: EventType,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        actor: str | int | None = None,
        subject: str | int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Store an event in its own transaction (nothing else changed)."""
        async with self._db.transaction() as session:
            self.add(session, type, outcome=outcome, actor=actor, subject=subject, details=details)

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

        401s and 429s are what a flood is made of: writing a row for each would turn an attack
        on the API into one on the database."""
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
    ) -> AuditEventRow:
        context = current_request.get()
        safe_details = redact_value(None, dict(details or {}))
        return AuditEventRow(
            time=datetime.now(UTC),
            type=type.value,
            actor=None if actor is None else str(actor)[:64],
            subject=None if subject is None else str(subject)[:200],
            ip=context.ip if context else None,
            user_agent=(context.user_agent or "")[:256] or None if context else None,
            request_id=context.request_id if context else None,
            outcome=outcome.value,
            details=json.dumps(safe_details, sort_keys=True, default=str),
        )

    def _after_commit(self, sync_session: Session) -> None:
        for row in sync_session.info.pop(_PENDING, []):
            self._metrics.security_events.labels(row.type, row.outcome).inc()
            if row.type == EventType.SESSION_CREATED:
                self._metrics.active_sessions.inc()
            elif row.type == EventType.SESSION_ENDED:
                self._metrics.active_sessions.dec()
            logger.info(
                "security_event",
                type=row.type,
                outcome=row.outcome,
                actor=row.actor,
                subject=row.subject,
                ip=row.ip,
                request_id=row.request_id,
                details=json.loads(row.details),
            )


def _forget_pending(sync_session: Session) -> None:
    sync_session.info.pop(_PENDING, None)
