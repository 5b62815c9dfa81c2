"""``examples/reports_app.py``, the SPEC §1.1 shape, works as documented: in-process over ASGI,
and as a real ``uvicorn`` process driven over HTTP."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from bastion import Bastion
from tests.conftest import STRONG_PASSWORD
from tests.e2e.test_serve_process import cli_env, free_port, wait_until_up

MODULE = "examples.reports_app"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    """The example imported afresh with its settings in the environment, as a user runs it."""
    for name in list(os.environ):
        if name.startswith("BASTION_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BASTION_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("BASTION_ARGON2_MEMORY_COST", "1024")
    sys.modules.pop(MODULE, None)
    module = importlib.import_module(MODULE)
    try:
        yield module
    finally:
        sys.modules.pop(MODULE, None)


@dataclass
class Example:
    bastion: Bastion
    client: httpx.AsyncClient

    async def user(self, username: str, roles: list[str]) -> None:
        await self.bastion.accounts.create_user(username, STRONG_PASSWORD, roles)

    async def token(self, username: str, **extra: str) -> str:
        response = await self.client.post(
            "/auth/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": STRONG_PASSWORD,
                **extra,
            },
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture
async def example(example_module: ModuleType) -> AsyncIterator[Example]:
    bastion: Bastion = example_module.bastion
    app = example_module.app
    async with bastion.lifespan(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Example(bastion, client)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_importing_the_example_only_builds_the_app(example_module: ModuleType) -> None:
    """The module-level objects are the §1.1 ones, and the app's own scope is known."""
    assert isinstance(example_module.bastion, Bastion)
    assert example_module.app.state.bastion is example_module.bastion
    assert "reports:read" in example_module.bastion.settings.known_scopes


async def test_the_public_route_is_public(example: Example) -> None:
    response = await example.client.get("/hello")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, anyone"}
    assert "x-request-id" in response.headers


async def test_a_user_reads_reports_with_a_bearer_token(example: Example) -> None:
    await example.user("alice", ["user"])
    token = await example.token("alice")
    response = await example.client.get("/reports", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["for"] == "alice"
    assert body["auth"] == "bearer"
    assert body["reports"]


async def test_no_credentials_is_401_with_a_bearer_challenge(example: Example) -> None:
    response = await example.client.get("/reports")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="bastion"'), challenge
    assert "error=" not in challenge
    # the route also accepts API keys, so it says so
    assert 'ApiKey realm="bastion"' in challenge


async def test_a_token_without_the_scope_is_403(example: Example) -> None:
    await example.user("bob", ["user"])
    narrowed = await example.token("bob", scope="keys:manage")
    response = await example.client.get("/reports", headers=bearer(narrowed))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="reports:read"' in challenge


async def test_the_admin_route_needs_the_admin_role(example: Example) -> None:
    await example.user("carol", ["user"])
    await example.user("root", ["user", "admin"])
    user_token = await example.token("carol")
    denied = await example.client.get("/admin/summary", headers=bearer(user_token))
    assert denied.status_code == 403
    admin_token = await example.token("root")
    allowed = await example.client.get("/admin/summary", headers=bearer(admin_token))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["admin"] == "root"
    assert allowed.json()["auth"] == "bearer"
    # an admin holds the app's own scope too ("*" expands to every known scope)
    assert (await example.client.get("/reports", headers=bearer(admin_token))).status_code == 200


async def test_reports_accept_an_api_key_and_say_so(example: Example) -> None:
    await example.user("dave", ["user"])
    token = await example.token("dave")
    created = await example.client.post(
        "/auth/keys", json={"name": "cron", "scopes": ["reports:read"]}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    headers = {"X-API-Key": created.json()["key"]}
    response = await example.client.get("/reports", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["for"] == "dave"
    assert response.json()["auth"] == "api_key"
    # the admin route takes bearer tokens only: a key there is no credential at all
    assert (await example.client.get("/admin/summary", headers=headers)).status_code == 401


@pytest.mark.slow
def test_the_example_runs_under_uvicorn(tmp_path: Path) -> None:
    """``uvicorn examples.reports_app:app`` from the repository root, as the README says."""
    env = cli_env(tmp_path)
    create = subprocess.run(
        [sys.executable, "-m", "bastion", "createuser", "alice", "--password-stdin"],
        input=STRONG_PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert create.returncode == 0, create.stderr
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "examples.reports_app:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, process)
        with httpx.Client(base_url=base_url, timeout=10) as client:
            assert client.get("/hello").json() == {"message": "Hello, anyone"}
            assert client.get("/reports").status_code == 401
            token = client.post(
                "/auth/token",
                data={"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD},
            )
            assert token.status_code == 200, token.text
            headers = bearer(token.json()["access_token"])
            reports = client.get("/reports", headers=headers)
            assert reports.status_code == 200, reports.text
            assert reports.json()["for"] == "alice"
            assert reports.json()["auth"] == "bearer"
            assert client.get("/admin/summary", headers=headers).status_code == 403
            docs = client.get("/docs")
            assert docs.status_code == 200
            assert "script-src 'self'" in docs.headers["content-security-policy"]
    finally:
        process.terminate()
        process.wait(timeout=15)
