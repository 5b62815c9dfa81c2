"""User accounts: sign-up, password login and password change (SPEC §4.2, §5).

Password checks never hold a database transaction open while Argon2 runs: the user is read in
one short transaction, the hash verified in a worker thread, and any write done in another.

A login's events commit with what they describe (SPEC §6): a refused login's ``login_failed``
(and ``login_locked``) with the failure counter, a successful one's ``login_succeeded`` with the
credential it opens (refresh family or session) through :meth:`Accounts.complete_login`, so a
login refused after the password check (a scope the user does not hold) never looks successful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from bastion.audit.events import EventType, Outcome
from bastion.audit.recorder import AuditRecorder
from bastion.errors import Conflict, PermissionDenied, RateLimited, ValidationFailed
from bastion.lockout import Lockout
from bastion.password_policy import WeakPassword, check_password
from bastion.passwords import PasswordHasher
from bastion.storage.db import Database
from bastion.storage.repositories.refresh_tokens import RefreshTokenRepository
from bastion.storage.repositories.sessions import SessionRepository
from bastion.storage.repositories.users import UsernameTaken, UserRepository, login_columns
from bastion.user_state import UserState, UserStateCache
from bastion.usernames import InvalidUsername, normalize_username


@dataclass(frozen=True, slots=True)
class EndedCredentials:
    """Refresh families and sessions ended by a password change or an admin revoke."""

    families: list[str]
    sessions: list[str]
    api_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class VerifiedLogin:
    """A right password for a usable account, whose ``login_succeeded`` is not written yet."""

    user: UserState
    via: str
    """Where the login came from: ``token`` (password grant) or ``session``."""
    has_failures: bool
    """The name has failed logins or a back-off on record, which the success clears."""


@dataclass(frozen=True, slots=True)
class CreatedUser:
    id: int
    username: str
    roles: frozenset[str]


class Accounts:
    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher,
        users: UserStateCache,
        lockout: Lockout,
        audit: AuditRecorder,
    ) -> None:
        self._db = db
        self._hasher = hasher
        self._users = users
        self._lockout = lockout
        self._audit = audit

    async def create_user(
        self,
        username: str,
        password: str,
        roles: Sequence[str] = ("user",),
        *,
        actor: str | None = None,
    ) -> CreatedUser:
        """Validate name and password (422 naming the field), hash, insert (409 when taken).
        ``actor`` is the admin creating the account; ``None`` for sign-up and the CLI."""
        name = validated_username(username)
        validate_new_password(password, name)
        password_hash = await self._hasher.hash(password)
        try:
            async with self._db.transaction() as session:
                user = await UserRepository(session).create(name, password_hash, roles)
                created = CreatedUser(user.id, user.username, user.role_set)
                self._audit.add(
                    session,
                    EventType.USER_CREATED,
                    actor=actor or name,
                    subject=name,
                    details={"user_id": user.id, "roles": sorted(user.role_set)},
                )
        except UsernameTaken:
            raise Conflict("This username is already taken.") from None
        return created

    async def verify_login(
        self, username: str, password: str, *, via: str = "token"
    ) -> VerifiedLogin | None:
        """The login, if this is the user's password, or ``None``: unknown names, wrong
        passwords and disabled accounts all get ``None`` after the same amount of work, so the
        answer cannot tell them apart. A locked name raises 429 before any password is checked
        (SPEC §5). The caller finishes a login with :meth:`complete_login` or
        :meth:`refuse_login`."""
        try:
            name = normalize_username(username)
        except InvalidUsername:
            await self._hasher.verify_dummy(password[:1024])
            await self._refuse(None, via, "invalid_username", counts=False)
            return None
        has_failures, found = await self._read_login(name, via)
        state = await self._check_password(found, password)
        if state is None:
            await self._refuse(name, via, "bad_credentials")
            return None
        if state.is_disabled:
            # Counted like a wrong password: were it not, a lock that fails to come after five
            # guesses would tell that one of them was right.
            await self._refuse(name, via, "disabled")
            return None
        return VerifiedLogin(state, via, has_failures)

    def complete_login(self, session: Session | Connection, login: VerifiedLogin) -> None:
        """Inside the unit of work (``Database.run`` or ``run_core``) that creates the login's
        credential: clear the name's failed logins (a success resets the back-off, SPEC §5)
        and add ``login_succeeded``."""
        name = login.user.username
        if login.has_failures:
            self._lockout.clear_in(session, name)
        self._audit.add(
            session,
            EventType.LOGIN_SUCCEEDED,
            actor=name,
            subject=name,
            details={"via": login.via},
        )

    async def refuse_login(self, login: VerifiedLogin, reason: str) -> None:
        """The password was right but the login is refused all the same (``invalid_scope``):
        ``login_failed``, without counting toward the lockout."""
        await self._refuse(login.user.username, login.via, reason, counts=False)

    async def _check_lock(self, name: str, via: str) -> bool:
        try:
            return await self._lockout.check(name)
        except RateLimited:
            await self._record_locked(name, via)
            raise

    async def _read_login(self, name: str, via: str) -> tuple[bool, tuple[UserState, str] | None]:
        """The lock check and the user a login needs, read in one transaction: whether the
        name has failures to clear, and the user with its password hash, if it exists. A
        locked name raises here, before any password is looked at."""

        def read(conn: Connection) -> tuple[bool, tuple[UserState, str] | None]:
            has_failures = self._lockout.check_in(conn, name)
            row = login_columns(conn, name)
            if row is None:
                return has_failures, None
            state = UserState.from_columns(
                row.id, row.username, row.roles, row.disabled, row.tokens_valid_after
            )
            return has_failures, (state, row.password_hash)

        try:
            return await self._db.run_core(read, read_only=True)
        except RateLimited:
            await self._record_locked(name, via)
            raise

    async def _record_locked(self, name: str, via: str) -> None:
        await self._audit.record(
            EventType.LOGIN_LOCKED,
            outcome=Outcome.DENIED,
            actor=name,
            subject=name,
            details={"via": via},
        )

    async def _refuse(
        self, name: str | None, via: str, reason: str, *, counts: bool = True
    ) -> None:
        """``login_failed`` for ``name`` (the normalised name tried; ``None`` when it is not a
        valid name at all), in one transaction with the failure it adds to the lockout when
        ``counts``, and ``login_locked`` when that failure locked the name."""

        def record(session: Session) -> None:
            self._audit.add(
                session,
                EventType.LOGIN_FAILED,
                outcome=Outcome.FAILURE,
                actor=name,
                subject=name,
                details={"via": via, "reason": reason},
            )
            if name is None or not counts or not self._lockout.count_failure(session, name):
                return
            self._audit.add(
                session,
                EventType.LOGIN_LOCKED,
                outcome=Outcome.DENIED,
                actor=name,
                subject=name,
                details={"via": via},
            )

        await self._db.run(record)

    async def _check_password(
        self, found: tuple[UserState, str] | None, password: str
    ) -> UserState | None:
        if found is None or len(password) > 1024:
            await self._hasher.verify_dummy(password[:1024])
            return None
        state, password_hash = found
        is_valid, new_hash = await self._hasher.verify(password, password_hash)
        if not is_valid:
            return None
        if new_hash is not None:
            async with self._db.transaction() as session:
                repo = UserRepository(session)
                user = await repo.get(state.id)
                if user is not None:
                    await repo.set_password_hash(user, new_hash)
        return state

    async def change_password(self, user_id: int, current: str, new: str) -> EndedCredentials:
        """Replace the password; every token and session of the user issued before dies, in
        the same transaction. Returns what it ended, for the in-process caches."""
        async with self._db.transaction() as session:
            user = await UserRepository(session).get(user_id)
            if user is None:
                raise PermissionDenied("The current password is incorrect.")
            username, password_hash = user.username, user.password_hash
        await self._check_lock(username, "password_change")
        is_valid, _ = await self._hasher.verify(current, password_hash)
        if not is_valid:
            await self._refuse(username, "password_change", "bad_credentials")
            raise PermissionDenied("The current password is incorrect.")
        validate_new_password(new, username, field="new_password")
        new_hash = await self._hasher.hash(new)
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            users = UserRepository(session)
            user = await users.get(user_id)
            if user is None:
                raise PermissionDenied("The current password is incorrect.")
            await users.set_password_hash(user, new_hash)
            await users.end_credentials(user, now)
            ended = EndedCredentials(
                families=await RefreshTokenRepository(session).revoke_user_families(
                    user_id, now, "password_changed"
                ),
                sessions=await SessionRepository(session).revoke_user_sessions(user_id, now),
            )
            self._audit.add(
                session,
                EventType.PASSWORD_CHANGED,
                actor=username,
                subject=username,
                details={
                    "refresh_families_ended": len(ended.families),
                    "sessions_ended": len(ended.sessions),
                },
            )
        self._users.invalidate(user_id)
        return ended


def validated_username(raw: str, field: str = "username") -> str:
    try:
        return normalize_username(raw)
    except InvalidUsername as exc:
        raise ValidationFailed(
            [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}],
            detail="The username is not acceptable.",
        ) from None


def validate_new_password(password: str, username: str, field: str = "password") -> None:
    try:
        check_password(password, username=username)
    except WeakPassword as exc:
        raise ValidationFailed(
            [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}],
            detail="The password is not acceptable.",
        ) from None
