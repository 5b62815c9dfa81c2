"""``configure_logging`` (SPEC §6): Python ``logging`` records (uvicorn's, a library's) come out
through Bastion's pipeline, as JSON in production and redacted, never raw through ``logging``'s
last-resort handler."""

from __future__ import annotations

import asyncio
import io
import logging
import select
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from bastion.api_keys import new_api_key, new_key_id
from bastion.audit.redact import REDACTED
from bastion.logs import LineWriterFactory, StructlogHandler, configure_logging, write_together
from bastion.settings import BastionSettings
from tests.conftest import json_lines

API_KEY = new_api_key(new_key_id())


@pytest.mark.usefixtures("restore_logging")
def test_a_stdlib_record_is_logged_as_redacted_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(BastionSettings(log_format="json"))
    logging.getLogger("uvicorn.error").warning(
        "Invalid HTTP request received: %s", f"GET /x?api_key={API_KEY}&password=hunter2"
    )
    err = capsys.readouterr().err
    assert API_KEY not in err
    assert "hunter2" not in err
    [line] = [entry for entry in json_lines(err) if entry.get("logger") == "uvicorn.error"]
    assert line["event"] == (
        f"Invalid HTTP request received: GET /x?api_key={REDACTED}&password={REDACTED}"
    )
    assert line["level"] == "warning"


@pytest.mark.usefixtures("restore_logging")
def test_a_stdlib_traceback_is_logged_without_its_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(BastionSettings(log_format="json"))
    try:
        raise RuntimeError(f"the key {API_KEY} was refused")
    except RuntimeError:
        logging.getLogger("some.library").exception("request failed")
    err = capsys.readouterr().err
    assert "RuntimeError" in err
    assert API_KEY not in err
    assert [entry["event"] for entry in json_lines(err)] == ["request failed"]


@pytest.mark.usefixtures("restore_logging")
def test_configuring_twice_forwards_each_record_once(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(BastionSettings(log_format="json"))
    configure_logging(BastionSettings(log_format="json"))
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, StructlogHandler)]
    assert len(handlers) == 1
    logging.getLogger("some.library").error("once")
    assert [entry["event"] for entry in json_lines(capsys.readouterr().err)] == ["once"]


@pytest.mark.usefixtures("restore_logging")
def test_a_level_structlog_does_not_name_is_logged_at_the_one_below(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """uvicorn's TRACE (5) and custom levels such as 25 must not break the handler."""
    configure_logging(BastionSettings(log_format="json", log_level="debug"))
    logger = logging.getLogger("some.library.verbose")
    logger.setLevel(1)
    try:
        for level, message in ((5, "trace"), (25, "between info and warning"), (45, "above")):
            logger.log(level, message)
    finally:
        logger.setLevel(logging.NOTSET)
    captured = capsys.readouterr().err
    assert "Logging error" not in captured
    levels = {entry["event"]: entry["level"] for entry in json_lines(captured)}
    assert levels == {"trace": "debug", "between info and warning": "info", "above": "error"}


class Shaped:
    def __structlog__(self) -> dict[str, int]:
        return {"shape": 1}


@pytest.mark.usefixtures("restore_logging")
def test_a_json_line_renders_values_json_cannot_say_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(BastionSettings(log_format="json"))
    when = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    structlog.get_logger("t").info("shapes", when=when, shaped=Shaped(), names={"a"})
    (line,) = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "shapes"]
    assert line["when"] == "2026-12-02T08:00:00Z"
    assert line["shaped"] == {"shape": 1}
    assert line["names"] == ["a"]  # redaction turns a set into a list before rendering


@pytest.mark.usefixtures("restore_logging")
def test_a_json_line_is_stamped_in_utc_and_keeps_what_orjson_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The fast encoder must lose nothing: an integer beyond 64 bits, which orjson refuses,
    still comes out (by the standard encoder), and text stays as it was written."""
    configure_logging(BastionSettings(log_format="json"))
    before = datetime.now(UTC)
    structlog.get_logger("t").info("odd", huge=2**70, name="Zoë", when=before)
    structlog.get_logger("t").info("plain", name="Zoë")
    lines = {line["event"]: line for line in json_lines(capsys.readouterr().err)}
    assert lines["odd"]["huge"] == 2**70
    assert lines["odd"]["when"] == before.isoformat()
    assert lines["plain"]["name"] == "Zoë"
    stamped = datetime.fromisoformat(lines["plain"]["timestamp"])
    assert lines["plain"]["timestamp"].endswith("Z")
    assert stamped.utcoffset() == timedelta(0)
    assert before <= stamped <= datetime.now(UTC)


@pytest.mark.usefixtures("restore_logging")
def test_the_request_line_is_written_when_loggers_are_cached(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bastion's own configuration caches loggers on first use, and the request log keeps the
    one it assembled: every request still gets its line, where the configuration sends it."""
    from bastion.audit.metrics import Metrics
    from bastion.audit.requests import RequestLog

    configure_logging(BastionSettings(log_format="json"))
    log = RequestLog(Metrics())
    for request_id in ("r-1", "r-2"):
        scope: dict[str, Any] = {
            "type": "http",
            "method": "GET",
            "path": "/x",
            "headers": [],
            "state": {"request_id": request_id, "client_ip": "203.0.113.7"},
        }
        log.end(scope, log.begin(scope), 200, 0.002)
    lines = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "request"]
    assert [line["request_id"] for line in lines] == ["r-1", "r-2"]
    assert lines[0]["client_ip"] == "203.0.113.7"
    assert lines[0]["status"] == 200


class CountingStream(io.StringIO):
    """A text stream that counts its writes: each is a system call on a real one."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_rendered_together_leave_in_one_write() -> None:
    stream = CountingStream()
    writer = LineWriterFactory(stream)()
    with write_together():
        for n in range(5):
            writer.info(f"line {n}")
        assert stream.getvalue() == ""  # held until the end
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(5)]
    assert stream.writes == 1
    writer.info("alone")
    assert stream.writes == 2
    assert stream.getvalue().endswith("line 4\nalone\n")


def test_lines_held_when_an_exception_ends_the_batch_are_still_written() -> None:
    stream = CountingStream()
    writer = LineWriterFactory(stream)()

    def fails_after_a_line() -> None:
        with write_together():
            writer.info("before the failure")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fails_after_a_line()
    assert stream.getvalue() == "before the failure\n"


def test_another_threads_lines_are_not_held() -> None:
    stream = CountingStream()
    writer = LineWriterFactory(stream)()
    with write_together():
        writer.info("held")
        thread = threading.Thread(target=writer.info, args=("from a worker",))
        thread.start()
        thread.join()
        assert stream.getvalue() == "from a worker\n"
    assert stream.getvalue() == "from a worker\nheld\n"


@pytest.mark.usefixtures("restore_logging")
def test_a_turn_of_request_lines_is_a_few_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.audit.metrics import Metrics
    from bastion.audit.requests import RequestLog

    stream = CountingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(BastionSettings(log_format="json"), forward_stdlib=False)
    log = RequestLog(Metrics())

    async def a_turn_of_requests() -> None:
        for n in range(20):
            scope: dict[str, Any] = {
                "type": "http",
                "method": "GET",
                "path": "/x",
                "headers": [],
                "state": {"request_id": f"r-{n}", "client_ip": "203.0.113.7"},
            }
            log.end(scope, log.begin(scope), 200, 0.001)
        await asyncio.sleep(0)

    asyncio.run(a_turn_of_requests())
    lines = [line for line in json_lines(stream.getvalue()) if line["event"] == "request"]
    assert [line["request_id"] for line in lines] == [f"r-{n}" for n in range(20)]
    assert stream.writes < 5  # twenty lines of ~240 bytes, in writes of at most PIPE_BUF


def test_held_lines_leave_in_whole_lines_no_write_over_pipe_buf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Several workers share one standard error: a pipe keeps a write whole up to PIPE_BUF
    bytes only, so no write may be longer, nor end inside a line."""
    written: list[str] = []
    stream = CountingStream()
    monkeypatch.setattr(stream, "write", lambda text: written.append(text) or len(text))
    writer = LineWriterFactory(stream)()
    lines = [f"{n:03d}" + "é" * 126 + "x" for n in range(40)]  # 256 bytes, 130 characters
    with write_together():
        for line in lines:
            writer.info(line)
    assert len(written) == 3  # fifteen lines and their newlines a write: 3,855 bytes
    assert all(len(text.encode()) <= select.PIPE_BUF and text.endswith("\n") for text in written)
    assert "".join(written).splitlines() == lines
    big = "x" * (select.PIPE_BUF * 2)
    written.clear()
    with write_together():
        writer.info("before")
        writer.info(big)
        writer.info("after")
    assert written == ["before\n", big + "\n", "after\n"]  # the long one alone, whole


def test_a_line_the_stream_must_escape_is_written_not_raised() -> None:
    """A lone surrogate (a client's ``\\udcff`` in a JSON body, logged) is escaped by stderr
    itself; measuring the line must not be where it fails, nor lose the lines held with it."""
    stream = CountingStream()
    writer = LineWriterFactory(stream)()
    with write_together():
        writer.info("before")
        writer.info("bad \udcff")
        writer.info("after")
    writer.info("alone \udcff")
    assert stream.getvalue().splitlines() == ["before", "bad \udcff", "after", "alone \udcff"]
