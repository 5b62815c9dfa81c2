"""Audit events: appended in the caller's transaction, read newest first by keyset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.storage.models import AuditEventRow


@dataclass(frozen=True, slots=True)
class AuditFilter:
    type: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def page(
        self, where: AuditFilter, *, before_id: int | None, limit: int
    ) -> list[AuditEventRow]:
        """Newest first; ``before_id`` continues after the last row of the previous page, so
        rows written meanwhile neither repeat nor shift the next page (unlike an offset)."""
        query = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(AuditEventRow.id < before_id)
        if where.type is not None:
            query = query.where(AuditEventRow.type == where.type)
        if where.actor is not None:
            query = query.where(AuditEventRow.actor == where.actor)
        if where.since is not None:
            query = query.where(AuditEventRow.time >= where.since)
        if where.until is not None:
            query = query.where(AuditEventRow.time < where.until)
        return list((await self._session.execute(query)).scalars())

    async def oldest_first(
        self, *, since: datetime | None, after_id: int | None, limit: int
    ) -> list[AuditEventRow]:
        query = select(AuditEventRow).order_by(AuditEventRow.id).limit(limit)
        if after_id is not None:
            query = query.where(AuditEventRow.id > after_id)
        if since is not None:
            query = query.where(AuditEventRow.time >= since)
        return list((await self._session.execute(query)).scalars())

    async def prune(self, before: datetime) -> int:
        result = await self._session.execute(
            delete(AuditEventRow).where(AuditEventRow.time < before).returning(AuditEventRow.id)
        )
        return len(result.all())
