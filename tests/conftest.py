"""Shared fixtures: real databases (SQLite file, and PostgreSQL when reachable), a real app with
its lifespan, and an HTTP client speaking ASGI to it.

PostgreSQL tests skip with a reason on a machine without the server, except under ``CI=true``,
where its absence is a failure (the CI machine has one on 127.0.0.1:5432).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from bastion.core import Bastion
from bastion.server import create_app
from bastion.settings import BastionSettings

# Tests reconfigure structlog to capture what Bastion logs; loggers cached on first use would
# keep writing wherever the first configuration sent them. Configured here, structlog also
# counts as "set up by the app", so ``Bastion.protect`` leaves it alone in tests.
structlog.configure(cache_logger_on_first_use=False)

POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_SECRET = "test-secret-" + "k" * 8 + secrets.token_urlsafe(32)
STRONG_PASSWORD = "correct horse battery staple"

# Cheap Argon2 parameters keep the suite fast; the production parameters are tested on their own.
FAST_HASHING: dict[str, Any] = {"argon2_time_cost": 1, "argon2_memory_cost": 1024}
# Generous limits so that tests of other behaviour never trip them; limit tests set their own.
LOOSE_LIMITS: dict[str, Any] = {
    "ratelimit_ip": "100000/minute",
    "ratelimit_principal": "100000/minute",
    "ratelimit_login": "1000/minute",
}


async def one_turn() -> None:
    """Let the event loop turn once: a request's log line and counters are written when the
    turn it ended in is over (a real client's next read always comes after that), so a test
    reading them in-process, right after an in-process request, waits for that turn."""
    await asyncio.sleep(0)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For a test that configures logging itself: the configuration before it, put back."""
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers[:] = handlers


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON lines of captured output (Bastion's production log format)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_execute(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(dsn), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"bastion_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, Exception) as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc!r}"
        if IN_CI:
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(message)
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    bastion = Bastion(BastionSettings(secret_key=TEST_SECRET, database_url=url))
    asyncio.run(_upgrade(bastion))
    yield url
    asyncio.run(_pg_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _upgrade(bastion: Bastion) -> None:
    try:
        await bastion.db.upgrade()
    finally:
        await bastion.db.dispose()


REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis, for tests of the shared limiter; skips (or, in CI, fails) without.
    Each test uses its own key prefix, so runs never see each other's counters."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {REDIS_URL}: {exc!r}"
        if IN_CI:
            pytest.fail(message + " (CI=true: Redis tests must run)")
        pytest.skip(message)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    import redis

    prefix = f"bastion-test-{secrets.token_hex(6)}"
    yield prefix
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(
        _pg_execute(
            url,
            "TRUNCATE users, refresh_families, refresh_tokens, revoked_access_tokens, items, "
            "login_failures, api_keys, sessions, audit_events "
            "RESTART IDENTITY CASCADE",
        )
    )
    return url


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> BastionSettings:
    values: dict[str, Any] = {
        "secret_key": TEST_SECRET,
        "database_url": database_url,
        "data_dir": tmp_path,
        **FAST_HASHING,
        **LOOSE_LIMITS,
    }
    values.update(overrides)
    return BastionSettings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> BastionSettings:
    return make_settings(database_url, tmp_path)


@dataclass
class Harness:
    """A running app, its Bastion and an HTTP client bound to it."""

    app: FastAPI
    bastion: Bastion
    client: httpx.AsyncClient

    async def create_user(
        self, username: str, password: str = STRONG_PASSWORD, *, admin: bool = False
    ) -> int:
        roles = ["user", "admin"] if admin else ["user"]
        user = await self.bastion.accounts.create_user(username, password, roles)
        return user.id

    async def login(
        self, username: str, password: str = STRONG_PASSWORD, **extra: str
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/auth/token",
            data={"grant_type": "password", "username": username, "password": password, **extra},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def user_with_token(self, username: str, *, admin: bool = False) -> dict[str, str]:
        """Create a user, log in, and return ``Authorization`` headers for it."""
        await self.create_user(username, admin=admin)
        tokens = await self.login(username)
        return {"Authorization": f"Bearer {tokens['access_token']}"}


@asynccontextmanager
async def open_harness(settings: BastionSettings) -> AsyncIterator[Harness]:
    """A running reference app for ``settings``, for tests that need their own configuration."""
    bastion = Bastion(settings)
    app = create_app(bastion=bastion)
    async with bastion.lifespan(app):
        if not bastion.db.is_sqlite:
            await bastion.db.upgrade()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, bastion, client)


@pytest.fixture
async def harness(settings: BastionSettings) -> AsyncIterator[Harness]:
    async with open_harness(settings) as running:
        yield running
