"""``X-Request-ID`` (SPEC §3): keep a client's id only when it is short and plain, so that it
cannot inject anything into logs or headers; otherwise make one.

A made id only has to be unique, not secret: it is shown to the client that got it and names
nothing it could use. So it comes from a generator of its own, seeded from the OS once (and
again in a forked child, which would otherwise repeat its parent's ids), instead of from
``secrets``, which makes a ``getrandom`` system call for each (strace: one per request without
an id of its own; on this VM a system call costs the code after it more than its own time). A
generator of its own, not ``random``'s shared one: ids reveal the generator's state to whoever
collects enough of them, and nothing else in the process must become predictable through them.
"""

from __future__ import annotations

import os
import random
import re

_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_ids = random.Random()  # noqa: S311 - unique, not secret (above); seeded from os.urandom
os.register_at_fork(after_in_child=_ids.seed)


def request_id_from_header(value: bytes | None) -> str:
    if value is not None and _ACCEPTABLE.fullmatch(value):
        return value.decode("ascii")
    return f"{_ids.getrandbits(128):032x}"
