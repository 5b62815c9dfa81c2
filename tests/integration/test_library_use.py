"""Bastion inside a team's own app, written exactly as SPEC §1.1 shows it: no role mapping of
the app's own scopes, so ``*`` (admin) must hold them because the routes require them.

No ``from __future__ import annotations`` here: the routes are defined inside a fixture, and
FastAPI could not resolve string annotations naming its local ``bastion``."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI

from bastion import Bastion, Principal, require
from tests.conftest import STRONG_PASSWORD, make_settings
from tests.integration.helpers import serving_with_users


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    bastion = Bastion(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=bastion.lifespan)
    bastion.protect(app)

    @app.get("/reports")
    async def reports(
        user: Annotated[Principal, bastion.require("reports:read")],
    ) -> dict[str, str]:
        return {"for": user.username}

    @app.get("/exports")  # the module-level require: known once the app starts
    async def exports(user: Annotated[Principal, require("exports:run")]) -> dict[str, str]:
        return {"for": user.username}

    @app.get("/audits", dependencies=[require("audits:read")])  # two requires: both count
    async def audits(user: Annotated[Principal, require("audits:export")]) -> dict[str, str]:
        return {"for": user.username}

    @app.get("/{path:path}")  # an SPA fallback, last: it must not hide Bastion's routes
    async def fallback(path: str) -> dict[str, str]:
        return {"page": path}

    async with serving_with_users(bastion, app) as c:
        yield c


async def token(client: httpx.AsyncClient, username: str, **extra: str) -> httpx.Response:
    return await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": username, "password": STRONG_PASSWORD, **extra},
    )


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_an_admin_holds_the_apps_own_scopes(client: httpx.AsyncClient) -> None:
    login = await token(client, "root")
    assert {"reports:read", "exports:run"} <= set(login.json()["scope"].split())
    headers = bearer(login)
    assert (await client.get("/reports", headers=headers)).json() == {"for": "root"}
    assert (await client.get("/exports", headers=headers)).status_code == 200


async def test_an_admin_may_ask_for_just_the_apps_scope(client: httpx.AsyncClient) -> None:
    login = await token(client, "root", scope="reports:read")
    assert login.json()["scope"] == "reports:read"
    headers = bearer(login)
    assert (await client.get("/reports", headers=headers)).status_code == 200
    narrowed = await client.get("/exports", headers=headers)
    assert narrowed.status_code == 403


async def test_a_user_without_the_scope_gets_403_with_the_challenge(
    client: httpx.AsyncClient,
) -> None:
    assert (await token(client, "alice", scope="reports:read")).json()["error"] == "invalid_scope"
    response = await client.get("/reports", headers=bearer(await token(client, "alice")))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="bastion", error="insufficient_scope", scope="reports:read"'
    )


async def test_the_docs_offer_the_apps_scopes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    flow = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
    assert {"reports:read", "exports:run", "audits:read", "audits:export"} <= set(flow["scopes"])
    security = schema["paths"]["/audits"]["get"]["security"]
    assert {"OAuth2PasswordBearer": ["audits:export", "audits:read"]} in security


async def test_every_require_of_a_route_counts(client: httpx.AsyncClient) -> None:
    root = bearer(await token(client, "root"))
    assert (await client.get("/audits", headers=root)).status_code == 200
    narrowed = bearer(await token(client, "root", scope="audits:export"))
    assert (await client.get("/audits", headers=narrowed)).status_code == 403


async def test_an_apps_catch_all_does_not_hide_the_login_or_the_probes(
    client: httpx.AsyncClient,
) -> None:
    assert (await token(client, "alice")).status_code == 200
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/some/page")).json() == {"page": "some/page"}


async def test_the_reference_servers_routes_are_not_forced_on_the_app(
    client: httpx.AsyncClient,
) -> None:
    # the app's own fallback answers them: Bastion added no /public or /items of its own
    assert (await client.get("/public")).json() == {"page": "public"}
    assert (await client.get("/items")).json() == {"page": "items"}
    assert (await client.get("/health")).status_code == 200


async def test_protect_after_the_apps_catch_all_still_puts_bastion_first(
    database_url: str, tmp_path: Path
) -> None:
    bastion = Bastion(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=bastion.lifespan)

    @app.get("/{path:path}")
    async def fallback(path: str) -> dict[str, str]:
        return {"page": path}

    bastion.protect(app)  # after the fallback: the order an app's code happens to have
    async with bastion.lifespan(app):
        if not bastion.db.is_sqlite:
            await bastion.db.upgrade()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/health")).json() == {"status": "ok"}
            assert "/auth/token" in (await c.get("/openapi.json")).json()["paths"]
            assert (await c.get("/docs")).headers["content-type"].startswith("text/html")
            assert (await c.get("/some/page")).json() == {"page": "some/page"}


async def test_two_apps_in_one_process_each_answer_with_their_own_bastion(
    tmp_path: Path,
) -> None:
    """Each app's requests are served by the Bastion that protects it, however they
    interleave: a token of one is no credential for the other (its own signing secret, its
    own users), and each app's ``/auth/me`` names its own user."""
    clients: list[httpx.AsyncClient] = []
    stack = []
    for name in ("one", "two"):
        directory = tmp_path / name
        directory.mkdir()
        settings = make_settings(
            f"sqlite+aiosqlite:///{directory / 'bastion.db'}",
            directory,
            secret_key=f"{name}-" + "s" * 60,
        )
        bastion = Bastion(settings)
        app = FastAPI(lifespan=bastion.lifespan)
        bastion.protect(app)
        lifespan = bastion.lifespan(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        await bastion.accounts.create_user(f"user-{name}", STRONG_PASSWORD, ["user"])
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
    try:
        one, two = clients
        token_one = bearer(await token(one, "user-one"))
        token_two = bearer(await token(two, "user-two"))
        for _ in range(3):
            assert (await one.get("/auth/me", headers=token_one)).json()["username"] == "user-one"
            assert (await two.get("/auth/me", headers=token_one)).status_code == 401
            assert (await two.get("/auth/me", headers=token_two)).json()["username"] == "user-two"
            assert (await one.get("/auth/me", headers=token_two)).status_code == 401
    finally:
        for client in clients:
            await client.aclose()
        for lifespan in reversed(stack):
            await lifespan.__aexit__(None, None, None)
