"""Python ``logging`` records written by uvicorn, not by Bastion (SPEC §3, §4.4, §6): the access
log's request line and the error log's messages and tracebacks lose their secrets before any
handler, uvicorn's own formatters included, prints them."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from uvicorn.logging import AccessFormatter, DefaultFormatter

from bastion.api_keys import new_api_key, new_key_id
from bastion.audit.log_records import (
    UVICORN_LOGGERS,
    RedactingFilter,
    redact_loggers,
    redact_record,
)
from bastion.audit.redact import REDACTED

API_KEY = new_api_key(new_key_id())
PASSWORD = "hunter2hunter2"


def record(msg: object, *args: object, name: str = "uvicorn.error") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args or None, None)


def access_record(path: str) -> logging.LogRecord:
    """What uvicorn's HTTP protocols hand ``uvicorn.access`` for each response."""
    return record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", path, "1.1", 200)


def test_the_access_log_line_loses_the_secret_query_values_and_keeps_its_shape() -> None:
    entry = access_record(f"/download?api_key={API_KEY}&token=t0k3n&password={PASSWORD}&page=2")
    redact_record(entry)
    line = AccessFormatter(
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    ).format(entry)
    for secret in (API_KEY, "t0k3n", PASSWORD):
        assert secret not in line
    assert line.endswith(
        f'127.0.0.1:50000 - "GET /download?api_key={REDACTED}&token={REDACTED}'
        f'&password={REDACTED}&page=2 HTTP/1.1" 200 OK'
    )


@pytest.mark.parametrize(
    "query",
    ["access_token=a1", "refresh_token=a1", "client_secret=a1", "apikey=a1", "session_id=a1"],
)
def test_every_secret_query_parameter_is_redacted_in_the_access_log(query: str) -> None:
    entry = access_record(f"/x?{query}")
    redact_record(entry)
    assert "a1" not in entry.getMessage()


def test_an_exception_logged_by_uvicorn_is_rendered_without_its_secrets() -> None:
    try:
        raise ValueError(f"refused {API_KEY} with password={PASSWORD}")
    except ValueError:
        message = "Exception in ASGI application\n"
        entry = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, message, None, sys.exc_info()
        )
    redact_record(entry)
    text = DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False).format(entry)
    assert "ValueError" in text
    assert API_KEY not in text
    assert PASSWORD not in text


def test_a_secret_in_the_format_string_itself_is_redacted_with_the_message() -> None:
    entry = record(f"password={PASSWORD} for %s", "alice")
    entry.color_message = f"password={PASSWORD} for %s"
    redact_record(entry)
    assert entry.getMessage() == f"password={REDACTED} for alice"
    assert PASSWORD not in str(vars(entry))


def test_arguments_of_every_kind_are_redacted() -> None:
    entry = record(
        "%s %s %r %d",
        f"Bearer {API_KEY}",
        b"cookie: sid=abc",
        ConnectionError(f"peer sent {API_KEY}"),
        3,
    )
    redact_record(entry)
    message = entry.getMessage()
    assert API_KEY not in message
    assert "sid=abc" not in message
    assert message.endswith(" 3")
    mapping = record("%(headers)s", {"headers": {"authorization": "Digest xyz", "accept": "*/*"}})
    redact_record(mapping)
    assert "xyz" not in mapping.getMessage()
    assert "*/*" in mapping.getMessage()


def test_a_record_whose_arguments_do_not_fit_does_not_break_the_caller() -> None:
    entry = record(f"token={PASSWORD} %s %s", "only one")
    assert RedactingFilter().filter(entry) is True
    assert PASSWORD not in str(entry.msg)


@pytest.mark.usefixtures("uvicorn_loggers_without_redaction")
def test_installing_twice_adds_one_filter_per_logger() -> None:
    redact_loggers()
    redact_loggers()
    for name in UVICORN_LOGGERS:
        filters = logging.getLogger(name).filters
        assert len([f for f in filters if isinstance(f, RedactingFilter)]) == 1, name


@pytest.mark.usefixtures("uvicorn_loggers_without_redaction")
def test_the_filter_redacts_before_any_handler_of_the_logger_formats() -> None:
    logger = logging.getLogger("uvicorn.access")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        redact_loggers()
        path = f"/download?api_key={API_KEY}"
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", path, "1.1", 200)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    assert API_KEY not in stream.getvalue()
    assert f"/download?api_key={REDACTED}" in stream.getvalue()
