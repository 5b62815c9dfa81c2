"""Fixtures of the HTTP integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Harness, make_settings
from tests.integration.backends import postgres_behind_proxy, private_redis
from tests.integration.helpers import running

__all__ = ["postgres_behind_proxy", "private_redis"]  # fixtures for the failure tests

StartApp = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_app(database_url: str, tmp_path: Path) -> AsyncIterator[StartApp]:
    """``await start_app(signup=False)``: a running app with those settings, closed at the end."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Harness:
            settings = make_settings(database_url, tmp_path, **overrides)
            return await stack.enter_async_context(running(settings))

        yield start
