"""``Bastion.protect(app)`` (SPEC §1.1): what it installs beyond the app itself."""

from __future__ import annotations

import logging
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
