"""``Bastion.protect(app)`` (SPEC §1.1): what it installs beyond the app itself."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI

from bastion.audit.log_records import UVICORN_LOGGERS, RedactingFilter
from bastion.core import Bastion
from bastion.settings import BastionSettings
from tests.conftest import TEST_SECRET


@pytest.mark.usefixtures("uvicorn_loggers_without_redaction")
def test_protect_redacts_uvicorns_logs_once_however_often_it_runs(tmp_path: Path) -> None:
    """uvicorn's access log prints query strings, ``?api_key=`` included (SPEC §4.4); two
    protected apps in one process must not redact (and slow) every line twice."""
    bastion = Bastion(
        BastionSettings(
            secret_key=TEST_SECRET,
            data_dir=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}",
        )
    )
    bastion.protect(FastAPI())
    bastion.protect(FastAPI())
    for name in UVICORN_LOGGERS:
        filters = logging.getLogger(name).filters
        assert len([f for f in filters if isinstance(f, RedactingFilter)]) == 1, name


def test_an_app_that_set_up_no_logging_gets_tracebacks_without_local_variables(
    tmp_path: Path,
) -> None:
    """structlog's own default renders tracebacks with their local variables: the password a
    failing handler held would be printed. An app that configured nothing gets Bastion's
    pipeline from ``protect``; run in a fresh interpreter, where nothing is configured yet."""
    script = f"""
import structlog
from fastapi import FastAPI
from bastion import Bastion
from bastion.settings import BastionSettings

bastion = Bastion(BastionSettings(
    secret_key={TEST_SECRET!r}, data_dir={str(tmp_path)!r}, log_format="json",
    database_url="sqlite+aiosqlite:///{tmp_path / "b.db"}",
))
bastion.protect(FastAPI())

def fail(password):
    raise ValueError("boom")

try:
    fail("hunter2-never-printed")
except ValueError:
    structlog.get_logger("app").exception("failed", token="tok-never-printed")

import logging
# the app's own standard logging is left alone: no root handler that would make its
# basicConfig() a no-op
print("root handlers:", len(logging.getLogger().handlers))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "boom" in output  # the traceback is there...
    assert "hunter2-never-printed" not in output  # ...without the frame's locals
    assert "tok-never-printed" not in output
    assert "root handlers: 0" in result.stdout
