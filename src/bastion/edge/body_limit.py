"""Request body size limit (SPEC §3 413; §5 ``BASTION_MAX_BODY_BYTES``, 1 MiB).

A body that announces its size is refused before a byte of it is read. A body that does not
(chunked) or that lies about it is counted as it arrives, and the count is enforced in the
``receive`` the app calls: the chunk that crosses the limit is never handed over, so no handler,
form parser or JSON decoder can be made to hold more than the limit in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Message, Receive

from bastion.errors import PayloadTooLarge

_MAX_DIGITS = 18
"""A ``Content-Length`` this long is over any limit; longer ones are not even converted (Python
refuses to parse integers of more than 4300 digits, and a client should not choose our errors)."""


def declared_length_exceeds(header_lines: Sequence[bytes], limit: int) -> bool:
    """Whether a ``Content-Length`` line announces more than ``limit`` bytes. A malformed value
    is left to the count (and to the server, which refuses it)."""
    for line in header_lines:
        digits = line.strip()
        if digits.isdigit() and (len(digits) > _MAX_DIGITS or int(digits) > limit):
            return True
    return False


def body_too_large(limit: int) -> PayloadTooLarge:
    """The 413; it closes the connection, so that the server stops taking in the unread rest."""
    return PayloadTooLarge(
        f"The request body is larger than the {limit} bytes this server accepts.",
        headers={"Connection": "close"},
    )


class CountingReceive:
    """The ``receive`` an app gets: passes messages through, counting body bytes, and raises
    :class:`~bastion.errors.PayloadTooLarge` instead of returning the chunk that goes over.

    ``is_exceeded`` stays set once the limit is crossed, and every later call raises again
    without reading: an app that catches the error cannot go on pulling the body."""

    __slots__ = ("_receive", "_remaining", "is_exceeded", "limit")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._remaining = limit
        self.limit = limit
        self.is_exceeded = False

    async def __call__(self) -> Message:
        if self.is_exceeded:
            raise body_too_large(self.limit)
        message = await self._receive()
        if message["type"] == "http.request":
            self._remaining -= len(message.get("body", b""))
            if self._remaining < 0:
                self.is_exceeded = True
                raise body_too_large(self.limit)
        return message
