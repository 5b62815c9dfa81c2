"""Cookie sessions, looked up by the digest of their id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.storage.models import Session


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, session_id: str) -> Session | None:
        return await self._session.get(Session, session_id)

    async def touch(self, session_id: str, at: datetime) -> None:
        await self._session.execute(
            update(Session).where(Session.id == session_id).values(last_seen_at=at)
        )

    async def revoke(self, session_id: str, at: datetime) -> bool:
        result = await self._session.execute(
            update(Session)
            .where(Session.id == session_id, Session.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(Session.id)
        )
        return result.scalar_one_or_none() is not None

    async def revoke_user_sessions(self, user_id: int, at: datetime) -> list[str]:
        result = await self._session.execute(
            update(Session)
            .where(Session.user_id == user_id, Session.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(Session.id)
        )
        return list(result.scalars())

    async def count_live(self, now: datetime, seen_since: datetime) -> int:
        """Sessions neither revoked nor past their absolute expiry, and used since
        ``seen_since`` (the idle limit): the ones a cookie could still authenticate."""
        result = await self._session.execute(
            select(func.count())
            .select_from(Session)
            .where(
                Session.expires_at > now,
                Session.revoked_at.is_(None),
                Session.last_seen_at >= seen_since,
            )
        )
        return int(result.scalar_one())
