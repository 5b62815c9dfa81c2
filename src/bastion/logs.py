"""Structured logging setup: console lines in development, JSON in production (SPEC §6).

Python ``logging`` records (uvicorn's "Invalid HTTP request received.", a library's warning) go
through the same pipeline, so they get the same format and, above all, the same redaction;
without it they reach standard error raw, through ``logging``'s last-resort handler.
"""

from __future__ import annotations

import json
import logging
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from bastion.audit.redact import redact_secrets
from bastion.settings import BastionSettings, LogFormat


def configure_logging(settings: BastionSettings, *, forward_stdlib: bool = True) -> None:
    """Bastion's structlog pipeline. ``forward_stdlib`` also routes the standard library's
    records (uvicorn's) through it, with a root handler: right for ``bastion serve``, not for
    a library inside an app whose own logging setup that handler would override."""
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    is_json = settings.effective_log_format is LogFormat.JSON
    # Tracebacks never carry the values of local variables: those are the passwords, tokens and
    # keys the failing code was handling. They are rendered first, then redacted like the rest.
    exceptions: structlog.typing.Processor = (
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        if is_json
        else structlog.processors.format_exc_info
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_encode_json)
        if is_json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            exceptions,
            redact_secrets,
            # added after the redaction, which has nothing to look for in what they add
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    if forward_stdlib:
        _forward_stdlib_logging()


def _json_fallback(value: object) -> object:
    """What JSON cannot say itself: an object's own ``__structlog__`` form, else its repr."""
    as_structlog = getattr(value, "__structlog__", None)
    return as_structlog() if callable(as_structlog) else repr(value)


_JSON = json.JSONEncoder(default=_json_fallback)


def _encode_json(event_dict: object, **_options: object) -> str:
    """One JSON line, by one encoder made once: structlog's default calls ``json.dumps`` with
    ``default=``, which builds a new encoder for every line (~1 µs of every request)."""
    return _JSON.encode(event_dict)


class StructlogHandler(logging.Handler):
    """A root ``logging`` handler handing each record to structlog, as configured when the
    record arrives: its processors, its redaction, its output."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            extra = {"exc_info": record.exc_info} if record.exc_info else {}
            structlog.get_logger(record.name).log(
                _structlog_level(record.levelno), record.getMessage(), logger=record.name, **extra
            )
        except Exception:
            self.handleError(record)


def _structlog_level(levelno: int) -> int:
    """structlog knows the five named levels only (uvicorn's TRACE is 5): the one at or below."""
    return min(max(levelno // 10 * 10, logging.DEBUG), logging.CRITICAL)


def _forward_stdlib_logging() -> None:
    """One :class:`StructlogHandler` on the root logger, however often logging is configured."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StructlogHandler)]:
        root.removeHandler(handler)
    root.addHandler(StructlogHandler())
