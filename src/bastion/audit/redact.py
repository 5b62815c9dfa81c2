"""Secret redaction for logs and stored event details (SPEC §6).

Two nets: by name (a field called ``password``, ``authorization``, ``cookie``, ``token``… is
replaced whatever it holds) and by shape (anything that looks like a Bastion API key, a JWT or
a bearer credential is replaced wherever it appears, in any string). A structlog processor is a
callable ``(logger, method_name, event_dict) -> event_dict``; :data:`redact_secrets` is one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "[REDACTED]"

SECRET_NAMES = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-csrf-token",
        "api_key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "csrf_token",
        "secret",
        "secret_key",
        "key",
        "session",
    }
)
SECRET_QUERY_PARAMS = (
    "password",
    "token",
    "refresh_token",
    "access_token",
    "api_key",
    "client_secret",
)

_SHAPES = re.compile(
    r"bst_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}"  # a Bastion API key
    r"|eyJ[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]{5,}\.[0-9A-Za-z_-]*"  # a JWS/JWT
    r"|(?i:bearer|basic)\s+[0-9A-Za-z._~+/=-]{8,}"  # a credential after its scheme
    r"|(?i:__Host-)?bastion_(?:session|csrf)=[^;\s]+"  # our cookies, in a raw header
)
_QUERY = re.compile(r"(?i)([?&](?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)[^&#\s]*")


def redact_text(text: str) -> str:
    """Replace every secret-shaped substring and every secret query parameter's value."""
    return _QUERY.sub(lambda m: m.group(1) + REDACTED, _SHAPES.sub(REDACTED, text))


def redact_value(name: str | None, value: Any) -> Any:
    if name is not None and name.lower() in SECRET_NAMES:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(None, v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    """structlog processor: the event dict with every secret replaced."""
    return {key: redact_value(key, value) for key, value in event_dict.items()}
