"""Login failure records, one row per account name, updated under a row lock.

Written against the synchronous ``Session``: every use is inside a login's unit of work
(``Database.run``), or an async session's ``run_sync`` (the admin's unlock)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bastion.storage.models import LoginFailure

_LOCK_STATE = select(LoginFailure.locked_until).where(
    LoginFailure.username == bindparam("username")
)
"""Built once, and only the one column: a login reads it before every password check."""
_REMOVE = (
    delete(LoginFailure)
    .where(LoginFailure.username == bindparam("username"))
    .returning(LoginFailure.username)
    # in an ORM session, "evaluate" would compare loaded rows with the bind's default (None)
    .execution_options(synchronize_session=False)
)


class LoginFailureRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def lock_row(self, username: str, now: datetime) -> LoginFailure:
        """The row for ``username``, created if missing and locked for this transaction, so
        that concurrent failures are all counted."""
        dialect = self._session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        self._session.execute(
            insert(LoginFailure)
            .values(username=username, recent_failures="[]", lock_count=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["username"])
        )
        result = self._session.execute(
            select(LoginFailure)
            .where(LoginFailure.username == username)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one()

    def prune(self, older_than: datetime) -> None:
        """Forget names untouched for a long time (and not locked), so that spraying random
        usernames cannot grow the table without bound."""
        self._session.execute(
            delete(LoginFailure).where(
                LoginFailure.updated_at < older_than,
                (LoginFailure.locked_until.is_(None)) | (LoginFailure.locked_until < older_than),
            )
        )


# A login's reads and writes, for an ORM session or a Core connection (``Database.run_core``).


def lock_state(db: Session | Connection, username: str) -> tuple[bool, datetime | None]:
    """Whether ``username`` has a record (failures or a back-off), and until when it is
    locked, if it is, without loading the record itself."""
    row = db.execute(_LOCK_STATE, {"username": username}).first()
    return (False, None) if row is None else (True, row.locked_until)


def remove(db: Session | Connection, username: str) -> bool:
    """Forget the name's record; True when there was one."""
    result = db.execute(_REMOVE, {"username": username})
    return result.scalar_one_or_none() is not None
