"""Items, the owned resource: every query is scoped by owner, so another user's item cannot be
read, changed or deleted even by a handler that forgets to check (SPEC §4.5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.storage.models import Item


class ItemRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def list_owned(self, owner_id: int, *, limit: int, offset: int) -> tuple[list[Item], int]:
        page = await self._session.execute(
            select(Item)
            .where(Item.owner_id == owner_id)
            .order_by(Item.id)
            .limit(limit)
            .offset(offset)
        )
        total = await self._session.scalar(
            select(func.count()).select_from(Item).where(Item.owner_id == owner_id)
        )
        return list(page.scalars()), int(total or 0)

    async def create(self, owner_id: int, name: str, description: str | None) -> Item:
        item = Item(owner_id=owner_id, name=name, description=description)
        self._session.add(item)
        await self._session.flush()
        return item

    async def get_owned(self, owner_id: int, item_id: int) -> Item | None:
        result = await self._session.execute(
            select(Item).where(Item.id == item_id, Item.owner_id == owner_id)
        )
        return result.scalar_one_or_none()

    async def update_owned(
        self, owner_id: int, item_id: int, changes: dict[str, Any]
    ) -> Item | None:
        item = await self.get_owned(owner_id, item_id)
        if item is None:
            return None
        for field, value in changes.items():
            setattr(item, field, value)
        await self._session.flush()
        return item

    async def delete_owned(self, owner_id: int, item_id: int) -> bool:
        result = await self._session.execute(
            delete(Item).where(Item.id == item_id, Item.owner_id == owner_id).returning(Item.id)
        )
        return result.scalar_one_or_none() is not None
