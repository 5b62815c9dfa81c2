"""API keys: owner-scoped queries for the owner's API, id lookups for authentication."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.storage.models import ApiKey


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self._session.add(key)
        await self._session.flush()
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        return await self._session.get(ApiKey, key_id)

    async def get_owned(self, user_id: int, key_id: str) -> ApiKey | None:
        result = await self._session.execute(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)
        )
        return result.scalar_one_or_none()

    async def list_owned(self, user_id: int) -> list[ApiKey]:
        result = await self._session.execute(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at, ApiKey.id)
        )
        return list(result.scalars())

    async def list_page(self, *, after_id: str | None, limit: int) -> list[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.id).limit(limit)
        if after_id is not None:
            query = query.where(ApiKey.id > after_id)
        return list((await self._session.execute(query)).scalars())

    async def revoke_user_keys(self, user_id: int, now: datetime) -> list[str]:
        result = await self._session.execute(
            update(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(ApiKey.id)
        )
        return list(result.scalars())

    async def touch(self, last_used: dict[str, datetime]) -> None:
        for key_id, at in last_used.items():
            await self._session.execute(
                update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at)
            )
