"""Administration of users and their credentials (SPEC §4.6). Every action is an audit event,
written in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.accounts import EndedCredentials
from bastion.audit.events import EventType
from bastion.audit.recorder import AuditRecorder
from bastion.errors import NotFound, ValidationFailed
from bastion.key_service import ApiKeyService
from bastion.lockout import Lockout
from bastion.sessions import SessionService
from bastion.settings import BastionSettings
from bastion.storage.db import Database
from bastion.storage.models import User
from bastion.storage.repositories.refresh_tokens import RefreshTokenRepository
from bastion.storage.repositories.sessions import SessionRepository
from bastion.storage.repositories.users import UserRepository
from bastion.tokens.grants import TokenService
from bastion.user_state import UserStateCache

USER_NOT_FOUND = "No user with this id exists."


@dataclass(frozen=True, slots=True)
class UserChange:
    roles: list[str] | None = None
    disabled: bool | None = None


class Administration:
    def __init__(
        self,
        settings: BastionSettings,
        db: Database,
        audit: AuditRecorder,
        users: UserStateCache,
        tokens: TokenService,
        api_keys: ApiKeyService,
        sessions: SessionService,
        lockout: Lockout,
    ) -> None:
        self._settings = settings
        self._db = db
        self._audit = audit
        self._users = users
        self._tokens = tokens
        self._api_keys = api_keys
        self._sessions = sessions
        self._lockout = lockout

    def check_roles(self, roles: list[str], field: str = "roles") -> None:
        unknown = sorted(set(roles) - set(self._settings.roles))
        if unknown:
            known = ", ".join(self._settings.roles)
            message = f"Unknown role(s): {', '.join(unknown)}. Known roles: {known}."
            raise ValidationFailed(
                [{"loc": ["body", field], "msg": message, "type": "value_error"}], detail=message
            )

    async def change_user(self, actor: str, user_id: int, change: UserChange) -> User:
        """Change roles and/or disable. Disabling ends every credential of the user at once,
        so re-enabling later does not bring old tokens, sessions or keys back to life."""
        if change.roles is not None:
            self.check_roles(change.roles)
        ended: EndedCredentials | None = None
        async with self._db.transaction() as session:
            user = await UserRepository(session).get(user_id)
            if user is None:
                raise NotFound(USER_NOT_FOUND)
            if change.roles is not None and set(change.roles) != user.role_set:
                before = sorted(user.role_set)
                user.roles = " ".join(sorted(set(change.roles)))
                self._audit.add(
                    session,
                    EventType.USER_CHANGED,
                    actor=actor,
                    subject=user.username,
                    details={"roles_before": before, "roles_after": sorted(set(change.roles))},
                )
            if change.disabled is not None and change.disabled != user.disabled:
                user.disabled = change.disabled
                if change.disabled:
                    ended = await self._end_credentials(session, user, actor, "user_disabled")
                else:
                    self._audit.add(
                        session,
                        EventType.USER_CHANGED,
                        actor=actor,
                        subject=user.username,
                        details={"disabled": False},
                    )
            await session.flush()
        await self._forget(user_id, ended)
        return user

    async def unlock(self, actor: str, user_id: int) -> None:
        """Lift a lockout through the admin API (SPEC §5); the event commits with the unlock."""
        async with self._db.transaction() as session:
            user = await UserRepository(session).get(user_id)
            if user is None:
                raise NotFound(USER_NOT_FOUND)
            await self._unlock(session, actor, user.username, {})

    async def unlock_name(self, username: str) -> bool:
        """``bastion unlock NAME``: any name, since unknown names are locked too; no actor, as
        the command runs with no signed-in user. True when there was anything to lift."""
        async with self._db.transaction() as session:
            return await self._unlock(session, None, username, {"via": "cli"})

    async def _unlock(
        self, session: AsyncSession, actor: str | None, username: str, details: dict[str, str]
    ) -> bool:
        lifted = await self._lockout.clear(session, username)
        self._audit.add(
            session,
            EventType.USER_CHANGED,
            actor=actor,
            subject=username,
            details={"unlocked": True, **details},
        )
        return lifted

    async def revoke_user(self, actor: str, user_id: int) -> EndedCredentials:
        """End every refresh family, access token, session and API key of the user."""
        async with self._db.transaction() as session:
            user = await UserRepository(session).get(user_id)
            if user is None:
                raise NotFound(USER_NOT_FOUND)
            ended = await self._end_credentials(session, user, actor, "user_revoked")
        await self._forget(user_id, ended)
        return ended

    async def _end_credentials(
        self, session: AsyncSession, user: User, actor: str, reason: str
    ) -> EndedCredentials:
        now = datetime.now(UTC)
        await UserRepository(session).end_credentials(user, now)
        ended = EndedCredentials(
            families=await RefreshTokenRepository(session).revoke_user_families(
                user.id, now, reason
            ),
            sessions=await SessionRepository(session).revoke_user_sessions(user.id, now),
            api_keys=await self._api_keys.revoke_user_keys(session, user.id),
        )
        event = EventType.USER_DISABLED if reason == "user_disabled" else EventType.USER_REVOKED
        self._audit.add(
            session,
            event,
            actor=actor,
            subject=user.username,
            details={
                "refresh_families_ended": len(ended.families),
                "sessions_ended": len(ended.sessions),
                "api_keys_revoked": len(ended.api_keys),
            },
        )
        return ended

    async def _forget(self, user_id: int, ended: EndedCredentials | None) -> None:
        self._users.invalidate(user_id)
        if ended is None:
            return
        await self._tokens.forget_families(ended.families)
        await self._sessions.ended(ended.sessions)
        self._api_keys.forget(ended.api_keys)
