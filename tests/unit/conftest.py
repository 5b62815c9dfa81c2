"""Fixtures shared by the unit tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bastion.audit.log_records import UVICORN_LOGGERS, RedactingFilter
from bastion.storage.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A real SQLite database of the test's own, migrated, disposed of afterwards."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}")
    await database.upgrade()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def uvicorn_loggers_without_redaction() -> Iterator[None]:
    """uvicorn's loggers without the filter an earlier ``Bastion.protect`` may have installed,
    and as they were afterwards: the filters live on process-wide loggers."""
    saved = {name: logging.getLogger(name).filters[:] for name in UVICORN_LOGGERS}
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.filters[:] = [f for f in logger.filters if not isinstance(f, RedactingFilter)]
    yield
    for name, filters in saved.items():
        logging.getLogger(name).filters[:] = filters
