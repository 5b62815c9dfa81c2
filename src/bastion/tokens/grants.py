"""The OAuth2 grants and revocation of SPEC §4.2 (RFC 6749 §4.3 and §6, RFC 7009).

Errors are :class:`OAuthError` with RFC 6749 codes. A wrong password, an unknown user and a
disabled user all get the same ``invalid_grant`` body after the same work, so the endpoint
cannot be used to find out which accounts exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from bastion.accounts import Accounts
from bastion.audit.events import EventType, Outcome
from bastion.audit.recorder import AuditRecorder
from bastion.authz import narrow_scopes
from bastion.errors import InvalidToken, OAuthError
from bastion.principal import Principal
from bastion.settings import BastionSettings
from bastion.storage.db import Database
from bastion.storage.repositories.refresh_tokens import RefreshTokenRepository, open_family
from bastion.storage.repositories.users import UserRepository
from bastion.tokens.jwt import CLOCK_SKEW_SECONDS, AccessTokenCodec
from bastion.tokens.refresh import new_family_id, new_refresh_token, refresh_token_digest
from bastion.tokens.revocation import RevocationList
from bastion.user_state import UserStateCache

INVALID_CREDENTIALS = "The username or password is incorrect."
INVALID_REFRESH = "The refresh token is invalid, expired or revoked."


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    scope: str

    def as_response(self) -> dict[str, str | int]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        }


@dataclass(frozen=True, slots=True)
class RefreshReuse:
    """Raised inside the grant when a used refresh token came back; carries what was killed."""

    family_id: str
    user_id: int


class TokenService:
    def __init__(
        self,
        settings: BastionSettings,
        db: Database,
        codec: AccessTokenCodec,
        revocations: RevocationList,
        accounts: Accounts,
        users: UserStateCache,
        audit: AuditRecorder,
    ) -> None:
        self._settings = settings
        self._db = db
        self._codec = codec
        self._revocations = revocations
        self._accounts = accounts
        self._users = users
        self._audit = audit

    # ------------------------------------------------------------------------------ grants

    async def password_grant(self, username: str, password: str, scope: str | None) -> TokenPair:
        """RFC 6749 §4.3. ``login_succeeded`` commits with the new refresh family, so a grant
        refused after the password check (``invalid_scope``) leaves ``login_failed`` instead."""
        login = await self._accounts.verify_login(username, password)
        if login is None:
            raise OAuthError("invalid_grant", INVALID_CREDENTIALS)
        user = login.user
        scopes = narrow_scopes(scope, self._settings.scopes_for_roles(user.roles))
        if scopes is None:
            await self._accounts.refuse_login(login, "invalid_scope")
            raise OAuthError(
                "invalid_scope", "The requested scope exceeds what this account holds."
            )
        family_id = new_family_id()
        refresh, digest = new_refresh_token()
        expires_at = self._refresh_expiry()

        def open_login(conn: Connection) -> None:
            open_family(conn, family_id, user.id, " ".join(sorted(scopes)), digest, expires_at)
            self._accounts.complete_login(conn, login)

        await self._db.run_core(open_login)
        return self._pair(str(user.id), scopes, family_id, refresh)

    async def refresh_grant(self, refresh_token: str, scope: str | None) -> TokenPair:
        """Rotate: the presented token dies, a new one of the same family is born. A token
        presented again is reuse and kills the family (SPEC §4.2)."""
        digest = refresh_token_digest(refresh_token)
        now = datetime.now(UTC)
        reused: RefreshReuse | None = None
        async with self._db.transaction() as session:
            repo = RefreshTokenRepository(session)
            found = await repo.consume(digest, now)
            family = found.family
            if family is not None and found.was_used:
                await repo.revoke_family(family.id, now, "refresh_token_reused")
                reused = RefreshReuse(family.id, family.user_id)
                owner = await UserRepository(session).get(family.user_id)
                self._audit.add(
                    session,
                    EventType.REFRESH_TOKEN_REUSED,
                    outcome=Outcome.DENIED,
                    actor=owner.username if owner else None,
                    subject=owner.username if owner else family.user_id,
                    details={"sid": family.id, "family_revoked": True},
                )
            elif found.is_fresh and family is not None and family.revoked_at is None:
                user = await UserRepository(session).get(family.user_id)
                if user is None or user.disabled:
                    raise OAuthError("invalid_grant", INVALID_REFRESH)
                allowed = frozenset(family.scopes.split()) & self._settings.scopes_for_roles(
                    user.role_set
                )
                scopes = narrow_scopes(scope, allowed)
                if scopes is None:
                    raise OAuthError(
                        "invalid_scope", "A refresh may narrow the granted scope, never widen it."
                    )
                refresh, new_digest = new_refresh_token()
                await repo.add_token(family.id, new_digest, self._refresh_expiry())
                self._audit.add(
                    session,
                    EventType.TOKEN_REFRESHED,
                    actor=user.username,
                    subject=user.username,
                    details={"sid": family.id, "scope": " ".join(sorted(scopes))},
                )
                return self._pair(str(user.id), scopes, family.id, refresh)
        if reused is not None:
            await self._revoke_families([reused.family_id])
        raise OAuthError("invalid_grant", INVALID_REFRESH)

    # -------------------------------------------------------------------------- revocation

    async def revoke(self, token: str) -> None:
        """RFC 7009: whatever ``token`` is (access, refresh, garbage), it is dead afterwards,
        and the answer never says which it was."""
        if token.count(".") == 2:
            try:
                claims = self._codec.verify(token)
            except InvalidToken:
                return
            await self._deny_access_token(
                claims.token_id, claims.expires_at, event=(claims.subject, "access_token")
            )
            return
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            repo = RefreshTokenRepository(session)
            family = await repo.family_of_token(refresh_token_digest(token))
            if family is None:
                return
            if await repo.revoke_family(family.id, now, "revoked"):
                owner = await UserRepository(session).get(family.user_id)
                self._audit.add(
                    session,
                    EventType.TOKEN_REVOKED,
                    actor=owner.username if owner else None,
                    subject=owner.username if owner else family.user_id,
                    details={"token_type": "refresh_token", "sid": family.id},
                )
        await self._revoke_families([family.id])

    async def logout(self, principal: Principal) -> None:
        """The current access token and its whole refresh family die (SPEC §4.2)."""
        async with self._db.transaction() as session:
            repo = RefreshTokenRepository(session)
            if principal.expires_at is not None:
                await repo.deny_access_token(
                    principal.credential_id,
                    datetime.fromtimestamp(principal.expires_at + CLOCK_SKEW_SECONDS, UTC),
                )
            if principal.family_id is not None:
                await repo.revoke_family(principal.family_id, datetime.now(UTC), "logout")
            self._audit.add(
                session,
                EventType.LOGOUT,
                actor=principal.username,
                subject=principal.username,
                details={"sid": principal.family_id},
            )
        if principal.expires_at is not None:
            await self._revocations.revoke_token(
                principal.credential_id, principal.expires_at + CLOCK_SKEW_SECONDS
            )
        if principal.family_id is not None:
            await self._revoke_families([principal.family_id])

    async def forget_families(self, family_ids: list[str]) -> None:
        """Refuse the access tokens of families already revoked in the database."""
        await self._revoke_families(family_ids)

    # ----------------------------------------------------------------------------- helpers

    async def _deny_access_token(
        self, jti: str, expires_at: int, *, event: tuple[str, str] | None = None
    ) -> None:
        """Refuse ``jti`` until it would have expired; ``event`` = (user id, token type) records
        a ``token_revoked`` event in the same transaction."""
        until = expires_at + CLOCK_SKEW_SECONDS
        async with self._db.transaction() as session:
            await RefreshTokenRepository(session).deny_access_token(
                jti, datetime.fromtimestamp(until, UTC)
            )
            if event is not None:
                owner = await UserRepository(session).get(int(event[0]))
                self._audit.add(
                    session,
                    EventType.TOKEN_REVOKED,
                    actor=owner.username if owner else None,
                    subject=owner.username if owner else event[0],
                    details={"token_type": event[1], "jti": jti},
                )
        await self._revocations.revoke_token(jti, until)

    async def _revoke_families(self, family_ids: list[str]) -> None:
        await self._revocations.revoke_families(family_ids, self._access_horizon())

    def _access_horizon(self) -> float:
        return time.time() + self._codec.ttl_seconds + CLOCK_SKEW_SECONDS

    def _refresh_expiry(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._settings.refresh_token_ttl)

    def _pair(
        self, subject: str, scopes: frozenset[str], family_id: str, refresh: str
    ) -> TokenPair:
        issued = self._codec.issue(subject, scopes, family_id)
        return TokenPair(
            access_token=issued.token,
            expires_in=self._codec.ttl_seconds,
            refresh_token=refresh,
            scope=" ".join(sorted(scopes)),
        )
