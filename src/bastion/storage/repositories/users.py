"""Users: parameterised queries only, one class per aggregate (STYLE §2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Row, Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bastion.storage.models import User


class UsernameTaken(Exception):
    """Another account already has this (normalised) name."""


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: int) -> User | None:
        return await self._session.get(User, user_id)

    async def get_by_username(self, username: str) -> User | None:
        result = await self._session.execute(by_username(username))
        return result.scalar_one_or_none()

    async def create(self, username: str, password_hash: str, roles: Sequence[str]) -> User:
        """Insert a user; :class:`UsernameTaken` when the name exists, even under a race."""
        user = User(username=username, password_hash=password_hash, roles=" ".join(roles))
        try:
            async with self._session.begin_nested():
                self._session.add(user)
                await self._session.flush()
        except IntegrityError:
            raise UsernameTaken(username) from None
        return user

    async def set_password_hash(self, user: User, password_hash: str) -> None:
        user.password_hash = password_hash
        await self._session.flush()

    async def end_credentials(self, user: User, at: datetime) -> None:
        """Credentials issued before ``at`` stop working (SPEC §4.2 password change)."""
        user.tokens_valid_after = at
        await self._session.flush()

    async def list_page(self, *, after_id: int | None, limit: int) -> list[User]:
        query = select(User).order_by(User.id).limit(limit)
        if after_id is not None:
            query = query.where(User.id > after_id)
        return list((await self._session.execute(query)).scalars())


def by_username(username: str) -> Select[User]:
    """The user of a (normalised) name, for an async session or a ``Database.run`` one."""
    return select(User).where(User.username == username)


_LOGIN_COLUMNS = select(
    User.id,
    User.username,
    User.roles,
    User.disabled,
    User.tokens_valid_after,
    User.password_hash,
).where(User.username == bindparam("username"))
"""Built once: making the statement per call cost more than running it (SPEC §8)."""


def login_columns(
    db: Session | Connection, username: str
) -> Row[int, str, str, bool, datetime | None, str] | None:
    """What a password login needs of the user of a (normalised) name, as one row of plain
    columns (``Database.run_core``): no ORM object is built, none tracked."""
    return db.execute(_LOGIN_COLUMNS, {"username": username}).first()
