"""``configure_logging`` (SPEC §6): Python ``logging`` records (uvicorn's, a library's) come out
through Bastion's pipeline, as JSON in production and redacted, never raw through ``logging``'s
last-resort handler."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from bastion.api_keys import new_api_key, new_key_id
from bastion.audit.redact import REDACTED
from bastion.logs import StructlogHandler, configure_logging
from bastion.settings import BastionSettings

API_KEY = new_api_key(new_key_id())


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers[:] = handlers


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


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
