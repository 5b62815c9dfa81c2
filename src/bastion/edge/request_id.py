"""``X-Request-ID`` (SPEC §3): keep a client's id only when it is short and plain, so that it
cannot inject anything into logs or headers; otherwise make one.

A made id comes from the OS's random bytes, as ``secrets`` would give them, but drawn 256 ids at
a time: ``secrets.token_hex`` makes a ``getrandom`` system call for each (strace: one per
request without an id of its own), and on this VM a system call costs the code after it more
than its own time. Ids from a seeded generator would avoid that too, but enough of them give
its state away, and with it the ids other requests are about to get. A forked child starts with
none of its parent's (it would repeat them).
"""

from __future__ import annotations

import os
import re
import threading

_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._-]{1,128}")
ID_HEX = 32
"""128 random bits a made id, as 32 hex digits."""
_IDS_A_DRAW = 256


class _RandomIds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drawn = ""
        self._next = 0

    def take(self) -> str:
        with self._lock:
            if self._next >= len(self._drawn):
                self._drawn = os.urandom(ID_HEX // 2 * _IDS_A_DRAW).hex()
                self._next = 0
            start = self._next
            self._next = start + ID_HEX
            return self._drawn[start : start + ID_HEX]

    def forget(self) -> None:
        self._lock = threading.Lock()  # a lock held in the parent at the fork stays held here
        self._drawn, self._next = "", 0


_ids = _RandomIds()
os.register_at_fork(after_in_child=_ids.forget)


def request_id_from_header(value: bytes | None) -> str:
    if value is not None and _ACCEPTABLE.fullmatch(value):
        return value.decode("ascii")
    return _ids.take()
