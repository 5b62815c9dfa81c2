"""Request and response bodies. Requests forbid unknown fields, so ``owner_id`` or ``id`` in a
body is a 422, not a silent mass assignment (SPEC §4.5, OWASP API3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, StrictBool

from bastion.password_policy import MAX_LENGTH as PASSWORD_MAX

UTCTimestamp = Annotated[
    datetime,
    PlainSerializer(lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
]
"""RFC 3339 in UTC with a ``Z`` (SPEC §3)."""


def _without_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and no name or description needs one."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


Text = Annotated[str, AfterValidator(_without_nul)]


class StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Credentials(StrictRequest):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX * 4)


class PasswordChange(StrictRequest):
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX * 4)
    new_password: str = Field(min_length=1, max_length=PASSWORD_MAX * 4)


class RegisteredUser(BaseModel):
    id: int
    username: str


class Me(BaseModel):
    id: int
    username: str
    roles: list[str]
    scopes: list[str]
    auth: Literal["bearer", "api_key", "session"]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str
    scope: str


class OAuthErrorBody(BaseModel):
    error: str
    error_description: str


class ItemCreate(StrictRequest):
    name: Text = Field(min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=10_000)


class ItemUpdate(StrictRequest):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=10_000)


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    created_at: UTCTimestamp
    updated_at: UTCTimestamp


class ItemPage(BaseModel):
    items: list[ItemOut]
    limit: int
    offset: int
    total: int


class SecureData(BaseModel):
    data: str
    user: str


class Message(BaseModel):
    message: str


class ProblemError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is rendered."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = None


class ApiKeyCreate(StrictRequest):
    name: Text = Field(min_length=1, max_length=100)
    scopes: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=50
    )
    expires_in_days: int | None = Field(default=None, ge=1)
    rate_limit: str | None = Field(
        default=None, max_length=32, description="Optional per-key limit, e.g. `100/minute`."
    )


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: UTCTimestamp
    expires_at: UTCTimestamp
    last_used_at: UTCTimestamp | None
    revoked_at: UTCTimestamp | None


class ApiKeyIssued(BaseModel):
    """Creation and rotation answers: the only time ``key`` is ever shown."""

    id: str
    name: str
    key: str
    prefix: str
    scopes: list[str]
    created_at: UTCTimestamp
    expires_at: UTCTimestamp


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


class SessionCreated(BaseModel):
    csrf_token: str


class StrictAdminRequest(StrictRequest):
    """Admin bodies take JSON types as they are: ``"disabled": "yes"`` or ``1`` is a 422, not a
    guess at what an operator meant when locking someone out (SPEC §4.6)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True)


class AdminUserCreate(StrictAdminRequest):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX * 4)
    roles: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=20
    )


class AdminUserChange(StrictAdminRequest):
    roles: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=20
    )
    disabled: StrictBool | None = None


class AdminUser(BaseModel):
    id: int
    username: str
    roles: list[str]
    disabled: bool
    created_at: UTCTimestamp


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    next_cursor: str | None


class AdminKey(ApiKeyOut):
    user_id: int


class AdminKeyPage(BaseModel):
    items: list[AdminKey]
    next_cursor: str | None


class AuditEventOut(BaseModel):
    id: int
    time: UTCTimestamp
    type: str
    actor: str | None
    subject: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    outcome: str
    details: dict[str, Any]


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
