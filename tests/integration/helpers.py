"""Helpers shared by the HTTP integration tests: building apps, reading tokens as a client
would, and asserting the error shapes of SPEC §3 and §4.2."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import update

from bastion.core import Bastion
from bastion.server import create_app
from bastion.settings import BastionSettings
from bastion.storage.models import User
from tests.conftest import STRONG_PASSWORD, Harness

USER_SCOPES = {"items:read", "items:write", "keys:manage"}
RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
PROBLEM_JSON = "application/problem+json"


@asynccontextmanager
async def running(settings: BastionSettings) -> AsyncIterator[Harness]:
    """An app built from ``settings``, its lifespan entered, and a client bound to it."""
    bastion = Bastion(settings)
    app = create_app(bastion=bastion)
    async with bastion.lifespan(app):
        if not bastion.db.is_sqlite:
            await bastion.db.upgrade()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, bastion, client)


@asynccontextmanager
async def serving_with_users(bastion: Bastion, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An app of the test's own, its lifespan entered, with ``root`` (admin) and ``alice``
    (user), both with ``STRONG_PASSWORD``, and a client bound to it."""
    async with bastion.lifespan(app):
        if not bastion.db.is_sqlite:
            await bastion.db.upgrade()
        await bastion.accounts.create_user("root", STRONG_PASSWORD, ["user", "admin"])
        await bastion.accounts.create_user("alice", STRONG_PASSWORD, ["user"])
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, read as a client would: without verifying it."""
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


def header_of(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def scope_set(scope: str) -> set[str]:
    return set(scope.split())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem of ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def assert_oauth_error(response: httpx.Response, error: str) -> dict[str, Any]:
    """``response`` is an RFC 6749 §5.2 error: 400, ``error``, a description, never cached."""
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert "no-store" in response.headers.get("cache-control", "")
    return body


def assert_no_credentials_challenge(response: httpx.Response) -> None:
    """401 for missing credentials: a bare ``Bearer realm="bastion"`` challenge (plus, on routes
    that also take API keys, an ``ApiKey`` one), with no ``error`` since no token was sent."""
    assert response.status_code == 401, response.text
    challenges = [c.strip() for c in response.headers["www-authenticate"].split(",")]
    assert challenges[0] == 'Bearer realm="bastion"'
    assert set(challenges[1:]) <= {'ApiKey realm="bastion"', 'Cookie realm="bastion"'}
    assert "error=" not in response.headers["www-authenticate"]


def assert_invalid_token(response: httpx.Response) -> None:
    """401 with the RFC 6750 ``invalid_token`` challenge."""
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="bastion"')
    assert 'error="invalid_token"' in challenge


def error_fields(body: dict[str, Any]) -> list[str]:
    """The last element of each validation error's ``loc``: the field it names."""
    return [str(error["loc"][-1]) for error in body.get("errors", [])]


def no_value_echoed(response: httpx.Response, value: str) -> bool:
    return value not in response.text and value not in json.dumps(response.json())


async def set_user(harness: Harness, user_id: int, **values: Any) -> None:
    """Change a user row directly in the database, as an operator (or another worker) would,
    without telling this worker's user-state cache."""
    async with harness.bastion.db.transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(**values))


async def password_login(
    harness: Harness, username: str, password: str, **extra: str
) -> httpx.Response:
    return await harness.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": username, "password": password, **extra},
    )


async def refresh(harness: Harness, refresh_token: str, **extra: str) -> httpx.Response:
    return await harness.client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **extra},
    )
