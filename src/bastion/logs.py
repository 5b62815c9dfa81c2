"""Structured logging setup: console lines in development, JSON in production (SPEC §6).

Python ``logging`` records (uvicorn's "Invalid HTTP request received.", a library's warning) go
through the same pipeline, so they get the same format and, above all, the same redaction;
without it they reach standard error raw, through ``logging``'s last-resort handler.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sys
import threading
import weakref
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
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
    # A datetime for JSON, rendered by orjson itself: a third of the cost of formatting it here.
    stamp: structlog.typing.Processor = (
        _stamp_utc if is_json else structlog.processors.TimeStamper(fmt="iso", utc=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            exceptions,
            redact_secrets,
            # added after the redaction, which has nothing to look for in what they add
            structlog.processors.add_log_level,
            stamp,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=LineWriterFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    if forward_stdlib:
        _forward_stdlib_logging()


def _json_fallback(value: object) -> object:
    """What JSON cannot say itself: an object's own ``__structlog__`` form, else its repr (a
    datetime as RFC 3339, as orjson writes it, for the rare line the standard encoder writes)."""
    if isinstance(value, datetime):
        return value.isoformat()
    as_structlog = getattr(value, "__structlog__", None)
    return as_structlog() if callable(as_structlog) else repr(value)


_JSON = json.JSONEncoder(default=_json_fallback, ensure_ascii=False)
_ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _encode_json(event_dict: object, **_options: object) -> str:
    """One JSON line. Every request writes one, so it is orjson's (a tenth of the standard
    library's time); what orjson refuses (an integer beyond 64 bits) the standard one says."""
    try:
        return orjson.dumps(event_dict, default=_json_fallback, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _JSON.encode(event_dict)


def _stamp_utc(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The time of the line, as RFC 3339 in UTC once rendered (``2026-12-02T15:55:01.123Z``);
    a line written after the fact (the request log's, at the end of the loop's turn) brings
    the time of what it tells."""
    if "timestamp" not in event_dict:
        event_dict["timestamp"] = datetime.now(UTC)
    return event_dict


PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # POSIX's least where the platform says none


class LineWriter:
    """The end of Bastion's pipeline: each rendered line written to the stream, whole, in one
    write (``PrintLogger``'s ``print()`` makes two on an unbuffered stderr). Lines rendered
    inside :func:`write_together` wait and leave together, in writes of up to ``PIPE_BUF``
    bytes: the request log writes a turn of the event loop's lines so, a system call for about
    seventeen requests instead of one each, which measured ~8 µs a request on the benchmark's
    public route. One writer, and one lock, for every logger on the stream (structlog's own
    gives each logger a lock of its own, which keeps no two loggers' lines apart)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._lock = threading.Lock()
        _writers.add(self)

    def msg(self, message: str) -> None:
        held: dict[LineWriter, list[str]] | None = getattr(_together, "lines", None)
        if held is not None:
            held.setdefault(self, []).append(message)
            return
        self.write_lines([message])

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg
    failure = msg

    def write_lines(self, lines: list[str]) -> None:
        """The lines in as few writes as keep each whole: a write to a pipe is atomic up to
        ``PIPE_BUF`` bytes only, and several workers share the server's standard error, so a
        longer one could be cut by another worker's line (a torn JSON line is a lost record).
        A line longer than that goes alone, as it would have anyway."""
        with self._lock:
            chunk: list[str] = []
            size = 0
            for line in lines:
                length = 1 + (
                    len(line)
                    if line.isascii()
                    # as the stream will write it: stderr escapes what it cannot encode
                    else len(line.encode(self._encoding, "backslashreplace"))
                )
                if chunk and size + length > PIPE_BUF:
                    self._write("".join(chunk))
                    chunk, size = [], 0
                chunk.append(line + "\n")
                size += length
            if chunk:
                self._write("".join(chunk))

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


_writers: weakref.WeakSet[LineWriter] = weakref.WeakSet()


_held_at_fork: list[LineWriter] = []


def _hold_writers() -> None:
    """Before a fork: no line is being written, so no writer's lock (held across the write's
    system call) is copied into the child held, where its next line would wait forever."""
    _held_at_fork[:] = list(_writers)
    for writer in _held_at_fork:
        writer._lock.acquire()


def _release_writers() -> None:
    """The locks taken before the fork, exactly: a writer made meanwhile holds none."""
    for writer in _held_at_fork:
        writer._lock.release()
    _held_at_fork.clear()


os.register_at_fork(
    before=_hold_writers, after_in_parent=_release_writers, after_in_child=_release_writers
)


class LineWriterFactory:
    """structlog's ``logger_factory``: the same :class:`LineWriter` for every logger."""

    def __init__(self, stream: TextIO) -> None:
        self.writer = LineWriter(stream)

    def __call__(self, *_args: Any) -> LineWriter:
        return self.writer


_together = threading.local()


@contextmanager
def write_together() -> Iterator[None]:
    """Hold the lines this thread renders through a :class:`LineWriter` and write each
    writer's in one go at the end, an exception's included; other threads' lines, and lines
    that end elsewhere (an app's own logging setup, a test's capture), are not held."""
    if getattr(_together, "lines", None) is not None:  # already held, by an outer call
        yield
        return
    held: dict[LineWriter, list[str]] = {}
    _together.lines = held
    try:
        yield
    finally:
        _together.lines = None
        for writer, lines in held.items():
            writer.write_lines(lines)


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
