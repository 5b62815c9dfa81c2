"""``/admin``: users, keys and the audit trail, for the ``admin`` role only (SPEC §4.6).

Lists page by keyset with an opaque ``cursor`` (``next_cursor`` is ``null`` at the end), so a
page never repeats or skips rows that were written while a client was paging.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response

from bastion.admin import UserChange
from bastion.api.dependencies import JSONBody, bastion_of, require
from bastion.api.guarded import GuardedRoute
from bastion.api.keys import api_key_out
from bastion.api.schemas import (
    AdminKey,
    AdminKeyPage,
    AdminUser,
    AdminUserChange,
    AdminUserCreate,
    AdminUserPage,
    AuditEventOut,
    AuditEventPage,
)
from bastion.audit.events import EventType
from bastion.errors import ValidationFailed
from bastion.principal import Principal
from bastion.storage.models import AuditEventRow, User
from bastion.storage.repositories.api_keys import ApiKeyRepository
from bastion.storage.repositories.audit import AuditFilter, AuditRepository
from bastion.storage.repositories.users import UserRepository

router = APIRouter(prefix="/admin", tags=["admin"], route_class=GuardedRoute)
T = TypeVar("T")

Admin = Annotated[Principal, require("admin", roles=["admin"])]
"""The ``admin`` role *and* the ``admin`` scope: an admin's credential narrowed to fewer scopes
(a key for a cron job, say) cannot administer."""
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=200)]


def encode_cursor(position: int | str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": position}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type[int] | type[str]) -> int | str | None:
    """The position a cursor names; 422 for one we did not make."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        position = None
    if not isinstance(position, kind) or isinstance(position, bool):
        raise ValidationFailed(
            [{"loc": ["query", "cursor"], "msg": "Invalid cursor.", "type": "value_error"}],
            detail="The cursor is not one this server issued.",
        )
    return position


def split_page(
    rows: list[T], limit: int, position: Callable[[T], int | str]
) -> tuple[list[T], str | None]:
    """A page of at most ``limit`` rows out of ``limit + 1`` fetched, and the cursor after it
    (``None`` when the extra row shows there is nothing more)."""
    page = rows[:limit]
    return page, encode_cursor(position(page[-1])) if len(rows) > limit else None


def _user_out(user: User) -> AdminUser:
    return AdminUser(
        id=user.id,
        username=user.username,
        roles=sorted(user.role_set),
        disabled=user.disabled,
        created_at=user.created_at,
    )


@router.get("/users", response_model=AdminUserPage)
async def list_users(
    request: Request, _admin: Admin, limit: Limit = 50, cursor: Cursor = None
) -> AdminUserPage:
    after = decode_cursor(cursor, int)
    async with bastion_of(request).db.transaction() as session:
        users = await UserRepository(session).list_page(
            after_id=after if isinstance(after, int) else None, limit=limit + 1
        )
    page, next_cursor = split_page(users, limit, lambda u: u.id)
    return AdminUserPage(items=[_user_out(u) for u in page], next_cursor=next_cursor)


@router.post("/users", status_code=201, response_model=AdminUser)
async def create_user(
    request: Request, admin: Admin, _json: Annotated[None, JSONBody], body: AdminUserCreate
) -> AdminUser:
    bastion = bastion_of(request)
    roles = body.roles if body.roles is not None else ["user"]
    bastion.admin.check_roles(roles)
    created = await bastion.accounts.create_user(
        body.username, body.password, sorted(set(roles)), actor=admin.username
    )
    async with bastion.db.transaction() as session:
        user = await UserRepository(session).get(created.id)
    assert user is not None
    return _user_out(user)


@router.patch("/users/{user_id}", response_model=AdminUser)
async def change_user(
    request: Request,
    user_id: int,
    admin: Admin,
    _json: Annotated[None, JSONBody],
    body: AdminUserChange,
) -> AdminUser:
    user = await bastion_of(request).admin.change_user(
        admin.username, user_id, UserChange(roles=body.roles, disabled=body.disabled)
    )
    return _user_out(user)


@router.post("/users/{user_id}/revoke", status_code=204)
async def revoke_user(request: Request, user_id: int, admin: Admin) -> Response:
    await bastion_of(request).admin.revoke_user(admin.username, user_id)
    return Response(status_code=204)


@router.post("/users/{user_id}/unlock", status_code=204)
async def unlock_user(request: Request, user_id: int, admin: Admin) -> Response:
    """Lift a brute-force lockout (SPEC §5), as ``bastion unlock`` does."""
    await bastion_of(request).admin.unlock(admin.username, user_id)
    return Response(status_code=204)


@router.get("/keys", response_model=AdminKeyPage)
async def list_keys(
    request: Request, _admin: Admin, limit: Limit = 50, cursor: Cursor = None
) -> AdminKeyPage:
    after = decode_cursor(cursor, str)
    async with bastion_of(request).db.transaction() as session:
        keys = await ApiKeyRepository(session).list_page(
            after_id=after if isinstance(after, str) else None, limit=limit + 1
        )
    page, next_cursor = split_page(keys, limit, lambda k: k.id)
    items = [AdminKey(**api_key_out(k).model_dump(), user_id=k.user_id) for k in page]
    return AdminKeyPage(items=items, next_cursor=next_cursor)


@router.get("/audit", response_model=AuditEventPage)
async def audit_events(
    request: Request,
    _admin: Admin,
    type: Annotated[EventType | None, Query()] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AuditEventPage:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(
                [
                    {
                        "loc": ["query", name],
                        "msg": "Give a time zone (RFC 3339).",
                        "type": "value_error",
                    }
                ]
            )
    before = decode_cursor(cursor, int)
    where = AuditFilter(type=type.value if type else None, actor=actor, since=since, until=until)
    async with bastion_of(request).db.transaction() as session:
        rows = await AuditRepository(session).page(
            where, before_id=before if isinstance(before, int) else None, limit=limit + 1
        )
    page, next_cursor = split_page(rows, limit, lambda r: r.id)
    return AuditEventPage(items=[audit_event_out(r) for r in page], next_cursor=next_cursor)


def audit_event_out(row: AuditEventRow) -> AuditEventOut:
    return AuditEventOut(
        id=row.id,
        time=row.time,
        type=row.type,
        actor=row.actor,
        subject=row.subject,
        ip=row.ip,
        user_agent=row.user_agent,
        request_id=row.request_id,
        outcome=row.outcome,
        details=json.loads(row.details or "{}"),
    )
