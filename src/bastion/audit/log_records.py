"""Redaction of the Python ``logging`` records Bastion does not write itself (SPEC §3, §4.4, §6).

uvicorn's access log prints the raw request line, query string included
(``"GET /download?api_key=bst_… HTTP/1.1" 200``), and its error log prints messages and
tracebacks; an app run with ``uvicorn module:app`` logs both with uvicorn's own handlers, never
through Bastion's structlog pipeline. A filter on a logger runs before any of its handlers
formats a record, whatever handlers the app's logging configuration gives it, so the record is
redacted in place there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from bastion.audit.redact import redact_text, redact_value

UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")
"""uvicorn logs to these three by name (``uvicorn.asgi`` is its ``--log-level trace`` dump of
every ASGI message, query strings included)."""

_PLAIN = (int, float, type(None))


class RedactingFilter(logging.Filter):
    """Rewrites each record it sees so that no handler can print a secret; drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    """Redact ``record`` in place. The arguments are redacted one by one, so that formatters
    that read them (uvicorn's ``AccessFormatter`` unpacks its five) still find them; a secret
    in the format string itself makes the record carry its finished, redacted message."""
    record.args = _redact_args(record.args)
    template = str(record.msg)
    if redact_text(template) != template:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: logging could not either
            message = template
        record.msg, record.args = redact_text(message), None
        record.__dict__.pop("color_message", None)  # uvicorn's coloured copy of the template
    if record.exc_info and not record.exc_text:
        # Rendered here, redacted, and cached where every Formatter looks first.
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)


def _redact_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(_redact_arg(arg) for arg in args)
    if isinstance(args, Mapping):
        return {key: redact_value(str(key), value) for key, value in args.items()}
    return args


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, _PLAIN):
        return arg
    if isinstance(arg, str | bytes | bytearray | Mapping | list | tuple | set | frozenset):
        return redact_value(None, arg)
    text = str(arg)  # an exception, a URL object…: kept as it is unless its text holds a secret
    redacted = redact_text(text)
    return arg if redacted == text else redacted


def redact_loggers(names: Iterable[str] = UVICORN_LOGGERS) -> None:
    """Install a :class:`RedactingFilter` on each named logger, once: calling this again (a
    second ``Bastion.protect``) adds none."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(RedactingFilter())
