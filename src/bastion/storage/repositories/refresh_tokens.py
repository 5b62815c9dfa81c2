"""Refresh families and their tokens, stored as SHA-256 digests only (SPEC §4.2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Select, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bastion.storage.models import RefreshFamily, RefreshToken, RevokedAccessToken, table_of

_NEW_FAMILY = insert(table_of(RefreshFamily))
_NEW_TOKEN = insert(table_of(RefreshToken))


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    """What presenting a refresh token found. ``family`` is set whenever the token is known."""

    family: RefreshFamily | None
    is_fresh: bool
    """True only for the one caller whose update marked the token used."""
    was_used: bool
    is_expired: bool


def open_family(
    db: Session | Connection,
    family_id: str,
    user_id: int,
    scopes: str,
    token_hash: str,
    expires_at: datetime,
) -> None:
    """A login's new family with its first token, in a ``Database.run_core`` unit of work.

    Two Core inserts, not two ORM objects: the ORM's flush cost more than half of a login's
    work outside the password hash (~0.7 ms), and nothing here needs the objects afterwards."""
    db.execute(_NEW_FAMILY, {"id": family_id, "user_id": user_id, "scopes": scopes})
    db.execute(
        _NEW_TOKEN, {"family_id": family_id, "token_hash": token_hash, "expires_at": expires_at}
    )


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create_family(self, family_id: str, user_id: int, scopes: str) -> RefreshFamily:
        family = RefreshFamily(id=family_id, user_id=user_id, scopes=scopes)
        self._session.add(family)
        await self._session.flush()
        return family

    async def add_token(self, family_id: str, token_hash: str, expires_at: datetime) -> None:
        self._session.add(
            RefreshToken(family_id=family_id, token_hash=token_hash, expires_at=expires_at)
        )
        await self._session.flush()

    async def consume(self, token_hash: str, now: datetime) -> ConsumeResult:
        """Mark a token used in one conditional UPDATE, so that of two concurrent refreshes with
        the same token exactly one wins, on SQLite and PostgreSQL alike."""
        marked = await self._session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(RefreshToken.family_id)
        )
        family_id = marked.scalar_one_or_none()
        if family_id is not None:
            return ConsumeResult(await self.family(family_id), True, False, False)
        token = (
            await self._session.execute(
                select(RefreshToken).where(RefreshToken.token_hash == token_hash)
            )
        ).scalar_one_or_none()
        if token is None:
            return ConsumeResult(None, False, False, False)
        family = await self.family(token.family_id)
        return ConsumeResult(family, False, token.used_at is not None, token.used_at is None)

    async def family(self, family_id: str) -> RefreshFamily | None:
        return await self._session.get(RefreshFamily, family_id)

    async def family_of_token(self, token_hash: str) -> RefreshFamily | None:
        result = await self._session.execute(
            select(RefreshFamily)
            .join(RefreshToken, RefreshToken.family_id == RefreshFamily.id)
            .where(RefreshToken.token_hash == token_hash)
        )
        return result.scalar_one_or_none()

    async def revoke_family(self, family_id: str, now: datetime, reason: str) -> bool:
        """True when this call revoked it (it was live)."""
        result = await self._session.execute(
            update(RefreshFamily)
            .where(RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
            .returning(RefreshFamily.id)
        )
        return result.scalar_one_or_none() is not None

    async def revoke_user_families(self, user_id: int, now: datetime, reason: str) -> list[str]:
        """Revoke every live family of a user; returns their ids (the ``sid`` to refuse)."""
        result = await self._session.execute(
            update(RefreshFamily)
            .where(RefreshFamily.user_id == user_id, RefreshFamily.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
            .returning(RefreshFamily.id)
        )
        return list(result.scalars())

    async def families_revoked_since(self, since: datetime) -> list[str]:
        result = await self._session.execute(revoked_families_query(since))
        return list(result.scalars())

    async def deny_access_token(self, jti: str, expires_at: datetime) -> None:
        if await self._session.get(RevokedAccessToken, jti) is None:
            self._session.add(
                RevokedAccessToken(jti=jti, expires_at=expires_at, revoked_at=datetime.now(UTC))
            )
            await self._session.flush()

    async def access_tokens_denied_since(
        self, since: datetime, now: datetime
    ) -> list[tuple[str, datetime]]:
        """Denied ``jti``s still in force that were denied at or after ``since`` (rows from
        before ``revoked_at`` was kept count as recent: they are few and expire soon)."""
        result = await self._session.execute(denied_tokens_query(since, now))
        return [(jti, exp) for jti, exp in result.all()]


def revoked_families_query(since: datetime) -> Select[str]:
    return select(RefreshFamily.id).where(RefreshFamily.revoked_at >= since)


def denied_tokens_query(since: datetime, now: datetime) -> Select[str, datetime]:
    return select(RevokedAccessToken.jti, RevokedAccessToken.expires_at).where(
        RevokedAccessToken.expires_at > now,
        or_(RevokedAccessToken.revoked_at >= since, RevokedAccessToken.revoked_at.is_(None)),
    )
