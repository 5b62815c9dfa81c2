"""The request log (SPEC §6): a line and a count for every request, written once the turn of the
event loop it ended in is over, each line in the context of its own request."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from bastion.audit.metrics import Metrics
from bastion.audit.requests import RequestLog
from bastion.edge.middleware import EdgeMiddleware
from bastion.logs import configure_logging
from bastion.settings import BastionSettings
from tests.conftest import TEST_SECRET, json_lines, one_turn

pytestmark = pytest.mark.usefixtures("restore_logging")


def tenant_app(log: RequestLog) -> FastAPI:
    """A route that binds a structlog context variable, as an app tags its requests, and
    yields to the loop halfway, so that concurrent requests interleave."""
    app = FastAPI()

    @app.get("/tenants/{tenant}")
    async def tenant(tenant: str) -> dict[str, str]:
        structlog.contextvars.bind_contextvars(tenant=tenant)
        await asyncio.sleep(0)
        return {"tenant": tenant}

    settings = BastionSettings(secret_key=TEST_SECRET)
    app.add_middleware(EdgeMiddleware, settings=settings, observer=log)
    return app


def request_lines(err: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(err) if line["event"] == "request"]


def a_request(request_id: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": [],
        "state": {"request_id": request_id, "client_ip": "198.51.100.4"},
    }


async def test_requests_ending_together_each_get_their_line_with_their_own_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(BastionSettings(log_format="json"))
    metrics = Metrics()
    app = tenant_app(RequestLog(metrics))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        tenants = ("acme", "globex", "initech")
        responses = await asyncio.gather(
            *(
                client.get(f"/tenants/{name}", headers={"X-Request-ID": f"req-{name}"})
                for name in tenants
            )
        )
        assert [r.status_code for r in responses] == [200, 200, 200]
        await one_turn()
    lines = {line["request_id"]: line for line in request_lines(capsys.readouterr().err)}
    assert sorted(lines) == sorted(f"req-{name}" for name in tenants)
    for name in tenants:
        assert lines[f"req-{name}"]["tenant"] == name  # its own, not the first request's
        assert lines[f"req-{name}"]["route"] == "/tenants/{tenant}"
    counted = metrics.registry.get_sample_value(
        "bastion_requests_total", {"method": "GET", "route": "/tenants/{tenant}", "status": "200"}
    )
    assert counted == 3


def test_lines_left_by_a_loop_that_closed_are_written_by_the_next(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A test client's portal, or any loop, may close with a flush still scheduled on it: the
    next loop's requests must not wait forever behind it, and the stranded lines come out."""
    configure_logging(BastionSettings(log_format="json"))
    log = RequestLog(Metrics())
    first = asyncio.new_event_loop()

    def end_and_stop() -> None:
        scope = a_request("r-stranded")
        log.end(scope, log.begin(scope), 200, 0.001)
        first.stop()  # the flush this end() scheduled never runs

    first.call_soon(end_and_stop)
    first.run_forever()
    first.close()
    assert request_lines(capsys.readouterr().err) == []

    async def next_loop() -> None:
        scope = a_request("r-next")
        log.end(scope, log.begin(scope), 200, 0.001)
        await one_turn()

    asyncio.run(next_loop())
    ids = [line["request_id"] for line in request_lines(capsys.readouterr().err)]
    assert ids == ["r-stranded", "r-next"]


def test_lines_wait_for_the_end_of_the_turn(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(BastionSettings(log_format="json"))
    log = RequestLog(Metrics())

    async def three_requests_in_one_turn() -> list[dict[str, Any]]:
        for request_id in ("r-1", "r-2", "r-3"):
            scope = a_request(request_id)
            log.end(scope, log.begin(scope), 200, 0.001)
        during = request_lines(capsys.readouterr().err)
        await one_turn()
        return during

    assert asyncio.run(three_requests_in_one_turn()) == []
    ids = [line["request_id"] for line in request_lines(capsys.readouterr().err)]
    assert ids == ["r-1", "r-2", "r-3"]


def test_a_count_that_fails_loses_neither_its_line_nor_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(BastionSettings(log_format="json"))
    metrics = Metrics()
    log = RequestLog(metrics)
    calls = 0
    observe = metrics.observe_request

    def fails_once(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a broken counter")
        observe(*args)

    metrics.observe_request = fails_once  # type: ignore[method-assign]

    async def two_requests() -> None:
        for request_id in ("r-1", "r-2"):
            scope = a_request(request_id)
            log.end(scope, log.begin(scope), 200, 0.001)
        await one_turn()

    asyncio.run(two_requests())
    logged = json_lines(capsys.readouterr().err)
    assert [line["request_id"] for line in logged if line["event"] == "request"] == ["r-1", "r-2"]
    [failure] = [line for line in logged if line["event"] == "request_count_failed"]
    assert failure["request_id"] == "r-1"
    counted = metrics.registry.get_sample_value(
        "bastion_requests_total", {"method": "GET", "route": "<unmatched>", "status": "200"}
    )
    assert counted == 1


def test_a_failing_stream_does_not_fail_the_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """``/metrics`` flushes before it answers: with the log's stream broken (a closed pipe), the
    counts are still made and the scrape still answers."""

    class BrokenPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("the log's reader went away")

    monkeypatch.setattr(sys, "stderr", BrokenPipe())
    configure_logging(BastionSettings(log_format="json"), forward_stdlib=False)
    metrics = Metrics()
    log = RequestLog(metrics)

    async def a_request_then_a_flush() -> None:
        scope = a_request("r-1")
        log.end(scope, log.begin(scope), 200, 0.001)
        log.flush()  # as /metrics does: must not raise

    asyncio.run(a_request_then_a_flush())
    counted = metrics.registry.get_sample_value(
        "bastion_requests_total", {"method": "GET", "route": "<unmatched>", "status": "200"}
    )
    assert counted == 1


def test_requests_ending_on_several_threads_loops_are_all_counted() -> None:
    """Two loops in two threads (two test clients' portals, an app serving on a second loop)
    end requests into one log: a flush on one must not lose what the other appends."""
    structlog.configure(processors=[], logger_factory=structlog.ReturnLoggerFactory())
    metrics = Metrics()
    log = RequestLog(metrics)
    per_thread = 5000

    def serve() -> None:
        async def requests() -> None:
            for n in range(per_thread):
                scope = a_request(f"r-{n}")
                log.end(scope, log.begin(scope), 200, 0.001)
                if n % 7 == 0:
                    await one_turn()
            await one_turn()

        asyncio.run(requests())

    threads = [threading.Thread(target=serve) for _ in range(4)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often: a lost record has its chance
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    log.flush()
    counted = metrics.registry.get_sample_value(
        "bastion_requests_total", {"method": "GET", "route": "<unmatched>", "status": "200"}
    )
    assert counted == 4 * per_thread


def test_a_forked_child_writes_its_own_requests_not_its_parents() -> None:
    """A pre-forking server forks with requests pending: the child must neither write the
    parent's (they would be counted twice) nor wait for the parent's loop, which never turns
    in the child."""
    read, write = os.pipe()
    metrics = Metrics()
    log = RequestLog(metrics)

    async def fork_with_a_request_pending() -> int:
        scope = a_request("r-parent")
        log.end(scope, log.begin(scope), 200, 0.001)
        pid = os.fork()
        if pid == 0:  # the child: a worker serving on its main thread, as forked servers do
            try:
                signal.alarm(20)  # a child stuck on its parent's loop must not hang the suite

                async def childs_request() -> None:
                    scope = a_request("r-child")
                    log.end(scope, log.begin(scope), 200, 0.001)
                    await one_turn()

                asyncio.run(childs_request())
                counted = metrics.registry.get_sample_value(
                    "bastion_requests_total",
                    {"method": "GET", "route": "<unmatched>", "status": "200"},
                )
                os.write(write, f"{counted}".encode())
            finally:
                os._exit(0)
        await one_turn()
        return pid

    pid = asyncio.run(fork_with_a_request_pending())
    os.close(write)
    os.waitpid(pid, 0)
    child_counted = os.read(read, 64).decode()
    os.close(read)
    assert child_counted == "1.0"  # its own request, and not the parent's


def test_a_line_written_after_its_turn_tells_when_the_request_ended(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A handler that blocks the loop delays the flush, not the time the line gives."""
    configure_logging(BastionSettings(log_format="json"))
    log = RequestLog(Metrics())

    async def a_request_then_a_blocked_loop() -> datetime:
        scope = a_request("r-1")
        log.end(scope, log.begin(scope), 200, 0.001)
        ended = datetime.now(UTC)
        time.sleep(0.3)  # noqa: ASYNC251 - the blocking handler this test is about
        await one_turn()
        return ended

    ended = asyncio.run(a_request_then_a_blocked_loop())
    [line] = request_lines(capsys.readouterr().err)
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert abs((stamped - ended).total_seconds()) < 0.1
