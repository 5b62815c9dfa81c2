"""Request body size limit (SPEC §3 413, §5 ``BASTION_MAX_BODY_BYTES``)."""

from __future__ import annotations

import pytest
from starlette.types import Message, Receive, Scope, Send

from bastion.edge.body_limit import CountingReceive, body_too_large, declared_length_exceeds
from bastion.errors import PayloadTooLarge
from tests.unit.edge.asgi_apps import (
    Recorder,
    assert_edge_headers,
    assert_problem,
    call,
    chunks_of,
    edge,
    http_scope,
    run_raw,
)

MIB = 1024 * 1024
LIMIT = 4096


def receiving(*messages: Message) -> tuple[CountingReceive, list[Message]]:
    """A counting receive over ``messages``; the list shows what is left unread."""
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0)

    return CountingReceive(receive, LIMIT), pending


def chunk(size: int, *, more: bool = True) -> Message:
    return {"type": "http.request", "body": b"x" * size, "more_body": more}


# ----------------------------------------------------------------------------- declared length


@pytest.mark.parametrize(
    ("lines", "exceeds"),
    [
        ([], False),
        ([b"0"], False),
        ([b"4096"], False),
        ([b"4097"], True),
        ([b" 4097 "], True),
        ([b"9" * 5000], True),
        ([b"10", b"999999"], True),
        ([b"-1"], False),
        ([b"12abc"], False),
        ([b"\xd9\xa3"], False),
    ],
)
def test_declared_length_is_compared_with_the_limit(lines: list[bytes], exceeds: bool) -> None:
    assert declared_length_exceeds(lines, LIMIT) is exceeds


# ----------------------------------------------------------------------------- counting


async def test_bodies_up_to_the_limit_pass_unchanged() -> None:
    receive, _ = receiving(chunk(LIMIT - 1), chunk(1, more=False))

    assert (await receive())["body"] == b"x" * (LIMIT - 1)
    assert (await receive())["body"] == b"x"
    assert not receive.is_exceeded


async def test_the_chunk_that_crosses_the_limit_is_never_handed_over() -> None:
    receive, pending = receiving(chunk(LIMIT), chunk(1), chunk(MIB, more=False))

    await receive()
    with pytest.raises(PayloadTooLarge):
        await receive()

    assert receive.is_exceeded
    assert len(pending) == 1


async def test_after_the_limit_every_call_raises_without_reading_further() -> None:
    receive, pending = receiving(chunk(LIMIT + 1), chunk(1, more=False))
    with pytest.raises(PayloadTooLarge):
        await receive()

    with pytest.raises(PayloadTooLarge):
        await receive()

    assert len(pending) == 1


async def test_disconnects_pass_through_uncounted() -> None:
    receive, _ = receiving({"type": "http.disconnect"})

    assert await receive() == {"type": "http.disconnect"}


def test_the_413_closes_the_connection() -> None:
    error = body_too_large(LIMIT)

    assert error.status == 413
    assert error.response_headers()["Connection"] == "close"
    assert str(LIMIT) in error.detail


# ----------------------------------------------------------------------------- in the edge


async def test_an_announced_oversized_body_is_refused_before_the_app_runs() -> None:
    app = Recorder()

    response = await call(edge(app), "POST", content=b"x" * (MIB + 1))

    assert_problem(response, 413)
    assert_edge_headers(response)
    assert response.headers["connection"] == "close"
    assert not app.was_called


async def test_a_body_of_exactly_the_limit_is_accepted_whole() -> None:
    app = Recorder()

    response = await call(edge(app, max_body_bytes=LIMIT), "POST", content=b"x" * LIMIT)

    assert response.status_code == 200
    assert app.bytes_received == LIMIT


async def test_a_chunked_oversized_body_is_cut_off_at_the_limit() -> None:
    app = Recorder()
    yielded: list[int] = []

    response = await call(
        edge(app, max_body_bytes=LIMIT), "POST", content=chunks_of(1024, 64, yielded)
    )

    assert_problem(response, 413)
    assert app.bytes_received <= LIMIT
    assert sum(yielded) <= LIMIT + 1024


async def test_a_lying_content_length_is_caught_by_the_count() -> None:
    app = Recorder()

    response = await call(
        edge(app, max_body_bytes=LIMIT),
        "POST",
        headers={"Content-Length": "10"},
        content=b"x" * (LIMIT * 4),
    )

    assert_problem(response, 413)
    assert app.bytes_received == 0


async def test_the_413_replaces_whatever_the_app_made_of_the_error() -> None:
    """FastAPI turns an exception while reading the body into a 400; the client must see 413."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receive()
        except PayloadTooLarge:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"There was an error parsing"})

    response = await call(edge(app, max_body_bytes=LIMIT), "POST", content=b"x" * (LIMIT + 1))

    assert_problem(response, 413)
    assert b"parsing" not in response.content
    assert_edge_headers(response)


async def test_an_app_that_lets_the_error_escape_gets_a_413_not_a_500() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    response = await call(edge(app, max_body_bytes=LIMIT), "POST", content=b"x" * (LIMIT + 1))

    assert_problem(response, 413)


async def test_an_app_that_swallows_the_error_and_sends_nothing_gets_a_413() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await receive()
        except PayloadTooLarge:
            return

    response = await call(edge(app, max_body_bytes=LIMIT), "POST", content=b"x" * (LIMIT + 1))

    assert_problem(response, 413)


async def test_a_response_already_started_is_cut_off_not_completed() -> None:
    """The status line is gone; leaving the response unfinished makes the server abort."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"streaming", "more_body": True})
        try:
            while (await receive()).get("more_body"):
                pass
        except PayloadTooLarge:
            await send({"type": "http.response.body", "body": b"done", "more_body": False})

    sent = await run_raw(
        edge(app, max_body_bytes=LIMIT), http_scope(method="POST"), [b"x" * LIMIT, b"x", b""]
    )

    starts = [m for m in sent if m["type"] == "http.response.start"]
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert [s["status"] for s in starts] == [200]
    assert bodies == [{"type": "http.response.body", "body": b"streaming", "more_body": True}]


async def test_the_limit_comes_from_the_settings() -> None:
    middleware = edge(Recorder(), max_body_bytes=2048)

    assert (await call(middleware, "POST", content=b"x" * 2048)).status_code == 200
    assert (await call(middleware, "POST", content=b"x" * 2049)).status_code == 413
