"""X-Request-ID (SPEC §3): a client's id is kept only when it is 1–128 of A-Za-z0-9._-."""

from __future__ import annotations

import os
import random
import re

import pytest

from bastion.edge.request_id import _ids, request_id_from_header

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "value",
    [b"abc-123._X", b"a", b"x" * 128, b"0123456789", b"f47ac10b-58cc-4372-a567-0e02b2c3d479"],
    ids=["mixed", "one-char", "128-chars", "digits", "uuid"],
)
def test_a_plain_client_request_id_is_kept(value: bytes) -> None:
    assert request_id_from_header(value) == value.decode()


@pytest.mark.parametrize(
    "value",
    [
        b"x" * 129,
        b"",
        b"has space",
        b"crlf\r\nX-Injected: 1",
        b"newline\n",
        "caf\u00e9".encode(),
        b"\xff\xfe",
        b"semi;colon",
        b'quote"d',
        b"slash/path",
        b"null\x00byte",
    ],
    ids=[
        "129-chars",
        "empty",
        "space",
        "crlf",
        "trailing-newline",
        "non-ascii",
        "invalid-utf8",
        "semicolon",
        "quote",
        "slash",
        "nul",
    ],
)
def test_an_unacceptable_client_request_id_is_replaced(value: bytes) -> None:
    request_id = request_id_from_header(value)

    assert GENERATED.fullmatch(request_id)
    assert request_id.encode() != value


def test_a_missing_header_gets_a_generated_id() -> None:
    assert GENERATED.fullmatch(request_id_from_header(None))


def test_generated_ids_are_unique_across_draws() -> None:
    """Ids are drawn from the OS 256 at a time: 1,000 of them cross three draws."""
    assert len({request_id_from_header(None) for _ in range(1000)}) == 1000


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    """A pre-forking server (gunicorn's workers) forks after import: a child drawing from what
    its parent drew would repeat the parent's ids, and every other child's."""
    request_id_from_header(None)
    if _ids._next >= len(_ids._drawn):  # the draw ran out: start the next one
        request_id_from_header(None)
    assert _ids._next < len(_ids._drawn)  # the parent has ids drawn and not yet used
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, request_id_from_header(None).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert GENERATED.fullmatch(child)
    assert child != request_id_from_header(None)


def test_ids_leave_the_shared_random_generator_alone() -> None:
    """Ids are shown to clients: made from ``random``'s shared generator, enough of them would
    give away what every other user of it in the process draws next."""
    random.seed(7)
    expected = [random.random() for _ in range(3)]
    random.seed(7)
    for _ in range(10):
        request_id_from_header(None)
    assert [random.random() for _ in range(3)] == expected
