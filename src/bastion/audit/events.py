"""Security event types and the request context every event carries (SPEC §6)."""

from __future__ import annotations

from contextvars import ContextVar
from enum import StrEnum
from typing import NamedTuple


class EventType(StrEnum):
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED = "login_locked"
    TOKEN_REFRESHED = "token_refreshed"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    TOKEN_REVOKED = "token_revoked"
    LOGOUT = "logout"
    SESSION_CREATED = "session_created"
    SESSION_ENDED = "session_ended"
    CSRF_FAILED = "csrf_failed"
    API_KEY_CREATED = "api_key_created"
    API_KEY_ROTATED = "api_key_rotated"
    API_KEY_REVOKED = "api_key_revoked"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    PASSWORD_CHANGED = "password_changed"
    USER_CREATED = "user_created"
    USER_CHANGED = "user_changed"
    USER_DISABLED = "user_disabled"
    USER_REVOKED = "user_revoked"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class RequestContext(NamedTuple):
    """Where a request came from; set once per request at the edge. A named tuple: made on
    every request, and a frozen dataclass is built one ``object.__setattr__`` at a time."""

    ip: str | None
    user_agent: str | None
    request_id: str | None


current_request: ContextVar[RequestContext | None] = ContextVar("bastion_request", default=None)
"""The request being served, if any: commands such as ``bastion createuser`` have none."""
