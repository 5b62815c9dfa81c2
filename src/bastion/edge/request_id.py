"""``X-Request-ID`` (SPEC §3): keep a client's id only when it is short and plain, so that it
cannot inject anything into logs or headers; otherwise make one."""

from __future__ import annotations

import re
import secrets

_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def request_id_from_header(value: bytes | None) -> str:
    if value is not None and _ACCEPTABLE.fullmatch(value):
        return value.decode("ascii")
    return secrets.token_hex(16)
