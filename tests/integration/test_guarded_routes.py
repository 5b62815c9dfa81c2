"""Routes whose ``require()`` runs in :class:`bastion.GuardedRoute` instead of FastAPI's solving:
the same answers as FastAPI would give (or safer ones), on app routes, included routers and
overridden dependencies, and never an endpoint called without its guards.

String annotations on purpose (``from __future__``): the routes' annotations name module-level
objects only, which FastAPI resolves, as an app's own module would."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from bastion import Bastion, CredentialKind, GuardedRoute, Principal, require
from bastion.api.dependencies import JSONBody
from tests.conftest import STRONG_PASSWORD, make_settings
from tests.integration.helpers import assert_no_credentials_challenge, serving_with_users

READ = require("notes:read")
WRITE = require("notes:write")
ANY_CALLER = require()
RATED = require(rate="3/minute")


async def tenant_of(user: Annotated[Principal, RATED]) -> str:
    """A sub-dependency asking for the route's own guard again, as apps do."""
    return f"tenant-of-{user.username}"


async def greet(user: Annotated[Principal, ANY_CALLER], greeting: str) -> dict[str, str]:
    return {"said": f"{greeting} {user.username}"}


class Note(BaseModel):
    text: str


def build_app(bastion: Bastion) -> FastAPI:
    app = FastAPI(lifespan=bastion.lifespan)
    bastion.protect(app)

    @app.get("/whoami")
    async def whoami(user: Annotated[Principal, ANY_CALLER]) -> dict[str, str]:
        """Who the caller is."""
        await asyncio.sleep(0.01)  # concurrent requests overlap here
        return {"username": user.username or "", "kind": user.kind.value}

    @app.post("/notes", status_code=201)
    async def create_note(note: Note, user: Annotated[Principal, WRITE]) -> dict[str, str]:
        return {"text": note.text, "by": user.username or ""}

    @app.get("/audited", dependencies=[READ])  # a route-level guard, and a parameter's
    async def audited(user: Annotated[Principal, ANY_CALLER]) -> dict[str, str]:
        return {"username": user.username or ""}

    @app.get("/twice", dependencies=[ANY_CALLER])  # one guard named twice runs once
    async def twice(user: Annotated[Principal, ANY_CALLER], request: Request) -> dict[str, Any]:
        return {"remaining": request.state.principal.subject == user.subject}

    @app.get("/sync")  # a plain def: FastAPI keeps solving it, in its thread
    def sync_route(user: Annotated[Principal, ANY_CALLER]) -> dict[str, str]:
        return {"username": user.username or ""}

    @app.get("/nested")  # the guard again in a sub-dependency: one request counts once
    async def nested(
        user: Annotated[Principal, RATED], tenant: Annotated[str, Depends(tenant_of)]
    ) -> dict[str, str]:
        return {"tenant": tenant}

    @app.post("/ordered", dependencies=[JSONBody])  # declared first: FastAPI's order holds
    async def ordered(user: Annotated[Principal, ANY_CALLER]) -> dict[str, str]:
        return {"username": user.username or ""}

    app.add_api_route("/partial", functools.partial(greet, greeting="hello"))

    audited_route = route_at(app, "/audited")  # rebuilt from what the route shows
    app.router.add_api_route(
        "/rebuilt",
        audited_route.endpoint,
        dependencies=audited_route.dependencies,
        route_class_override=APIRoute,
    )

    router = APIRouter(prefix="/team", route_class=GuardedRoute)

    @router.get("/notes")
    async def team_notes(user: Annotated[Principal, READ]) -> dict[str, str]:
        return {"username": user.username or ""}

    @router.get("/rated")
    async def team_rated(user: Annotated[Principal, RATED]) -> dict[str, str]:
        return {"username": user.username or ""}

    app.include_router(router, prefix="/v1", dependencies=[ANY_CALLER])
    rated = APIRouter(prefix="/rated", route_class=GuardedRoute)

    @rated.get("/included")  # the router's guard is the route's: counted once
    async def rated_included(user: Annotated[Principal, RATED]) -> dict[str, str]:
        return {"username": user.username or ""}

    app.include_router(rated, dependencies=[RATED])
    return app


@pytest.fixture
async def app_and_client(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    bastion = Bastion(make_settings(database_url, tmp_path))
    app = build_app(bastion)
    async with serving_with_users(bastion, app) as client:
        yield app, client


@pytest.fixture
def client(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


async def headers_for(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": username, "password": STRONG_PASSWORD},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def route_at(app: FastAPI, path: str) -> APIRoute:
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path == path:
            return route
    raise AssertionError(path)


def test_protect_makes_the_apps_routes_guarded(
    app_and_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, _ = app_and_client
    route = route_at(app, "/whoami")
    assert isinstance(route, GuardedRoute)
    assert len(route.bastion_guards) == 1
    # FastAPI no longer solves the guard: nothing in the route's tree depends on it
    assert all(d.call is not ANY_CALLER.dependency for d in route.dependant.dependencies)
    assert len(route_at(app, "/twice").bastion_guards) == 1
    assert route_at(app, "/sync").bastion_guards == ()


async def test_a_guarded_route_gives_the_callers_principal(client: httpx.AsyncClient) -> None:
    assert_no_credentials_challenge(await client.get("/whoami"))
    response = await client.get("/whoami", headers=await headers_for(client, "alice"))
    assert response.status_code == 200, response.text
    assert response.json() == {"username": "alice", "kind": CredentialKind.BEARER.value}


async def test_concurrent_requests_each_get_their_own_principal(
    client: httpx.AsyncClient,
) -> None:
    alice, root = await headers_for(client, "alice"), await headers_for(client, "root")
    responses = await asyncio.gather(
        *(client.get("/whoami", headers=alice if i % 2 else root) for i in range(10))
    )
    assert [r.json()["username"] for r in responses] == ["root", "alice"] * 5


async def test_a_forged_token_is_refused(client: httpx.AsyncClient) -> None:
    headers = await headers_for(client, "alice")
    header, payload, signature = headers["Authorization"].removeprefix("Bearer ").split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_wrong_method_is_405_before_credentials_are_asked(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/whoami")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


async def test_no_credentials_is_401_before_the_body_is_read(client: httpx.AsyncClient) -> None:
    malformed = {"content-type": "application/json"}
    response = await client.post("/notes", content=b"{not json", headers=malformed)
    assert_no_credentials_challenge(response)
    assert "json" not in response.text.lower()  # nothing about the route's input leaks
    # with credentials, the same body is the client's mistake, reported as such
    headers = {**malformed, **await headers_for(client, "root")}
    response = await client.post("/notes", content=b"{not json", headers=headers)
    assert response.status_code == 422
    response = await client.post("/notes", json={"text": "hi"}, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json() == {"text": "hi", "by": "root"}


async def test_a_missing_scope_is_403_on_a_parameter_guard(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/notes", json={"text": "hi"}, headers=await headers_for(client, "alice")
    )
    assert response.status_code == 403
    assert 'scope="notes:write"' in response.headers["www-authenticate"]


async def test_a_route_level_guard_runs_too(client: httpx.AsyncClient) -> None:
    # alice is authenticated (the parameter's guard passes) but lacks notes:read
    response = await client.get("/audited", headers=await headers_for(client, "alice"))
    assert response.status_code == 403
    assert 'scope="notes:read"' in response.headers["www-authenticate"]
    response = await client.get("/audited", headers=await headers_for(client, "root"))
    assert response.status_code == 200
    assert response.json() == {"username": "root"}


async def test_a_guard_named_twice_gives_one_principal(client: httpx.AsyncClient) -> None:
    response = await client.get("/twice", headers=await headers_for(client, "alice"))
    assert response.status_code == 200
    assert response.json() == {"remaining": True}


async def test_a_plain_def_route_is_still_guarded(client: httpx.AsyncClient) -> None:
    assert_no_credentials_challenge(await client.get("/sync"))
    response = await client.get("/sync", headers=await headers_for(client, "alice"))
    assert response.json() == {"username": "alice"}


async def test_an_included_router_runs_its_guards_and_the_includes(
    client: httpx.AsyncClient,
) -> None:
    assert_no_credentials_challenge(await client.get("/v1/team/notes"))
    response = await client.get("/v1/team/notes", headers=await headers_for(client, "alice"))
    assert response.status_code == 403  # the route's own guard: notes:read
    response = await client.get("/v1/team/notes", headers=await headers_for(client, "root"))
    assert response.status_code == 200
    assert response.json() == {"username": "root"}
    assert (await client.post("/v1/team/notes")).status_code == 405


@pytest.fixture
def overridden(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> Iterator[FastAPI]:
    app, _ = app_and_client
    yield app
    app.dependency_overrides.clear()


def stand_in(username: str) -> Principal:
    return Principal(
        subject="999",
        username=username,
        kind=CredentialKind.BEARER,
        scopes=frozenset(),
        roles=frozenset(),
        credential_id="stand-in",
    )


async def test_dependency_overrides_replace_a_guard(
    overridden: FastAPI, client: httpx.AsyncClient
) -> None:
    overridden.dependency_overrides[ANY_CALLER.dependency] = lambda: stand_in("tester")
    response = await client.get("/whoami")  # no credentials: the override answers
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "tester"
    # other guards are not overridden: audited still needs notes:read from a real caller
    assert_no_credentials_challenge(await client.get("/audited"))


async def test_an_override_with_its_own_dependencies_and_cleanup(
    overridden: FastAPI, client: httpx.AsyncClient
) -> None:
    closed: list[str] = []

    def header_name(request: Request) -> str:
        return request.headers.get("x-test-user", "nobody")

    # a default: this module's annotations are strings, and header_name is local
    async def override(name: str = Depends(header_name)) -> AsyncIterator[Principal]:
        yield stand_in(name)
        closed.append(name)

    overridden.dependency_overrides[ANY_CALLER.dependency] = override
    response = await client.get("/whoami", headers={"x-test-user": "bob"})
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "bob"
    assert closed == ["bob"]


async def test_the_openapi_document_still_declares_the_guards(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/notes"]["post"]
    assert {"OAuth2PasswordBearer": ["notes:write"]} in operation["security"]
    assert operation["operationId"] == "create_note_notes_post"
    assert document["paths"]["/whoami"]["get"]["description"] == "Who the caller is."
    included = document["paths"]["/v1/team/notes"]["get"]
    assert {"OAuth2PasswordBearer": ["notes:read"]} in included["security"]
    # the body is still validated against the model, and the guard is no parameter
    assert "requestBody" in operation
    assert "user" not in str(operation.get("parameters", []))


async def test_a_route_rebuilt_from_a_guarded_one_is_still_guarded(
    app_and_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    """``route.endpoint`` and ``route.dependencies`` no longer name the guards FastAPI was
    spared; a plain route built from them must not be an open door (nor a 500)."""
    app, client = app_and_client
    assert type(route_at(app, "/rebuilt")) is APIRoute
    assert_no_credentials_challenge(await client.get("/rebuilt"))
    response = await client.get("/rebuilt", headers=await headers_for(client, "alice"))
    assert response.status_code == 403  # the route-level guard: notes:read
    response = await client.get("/rebuilt", headers=await headers_for(client, "root"))
    assert response.status_code == 200
    assert response.json() == {"username": "root"}


@pytest.mark.parametrize("path", ["/nested", "/rated/included", "/v1/team/rated"])
async def test_a_guard_asked_again_counts_the_request_once(
    client: httpx.AsyncClient, path: str
) -> None:
    """The route's limit (3/minute) is hit once per request, however many times FastAPI and
    the route ask the same guard: in a sub-dependency, in the router's dependencies."""
    headers = await headers_for(client, "root")
    statuses = [(await client.get(path, headers=headers)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_a_dependency_declared_before_the_guard_still_runs_first(
    app_and_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_and_client
    assert route_at(app, "/ordered").bastion_guards == ()  # FastAPI keeps it, order and all
    response = await client.post("/ordered", content=b"hi", headers={"content-type": "text/plain"})
    assert response.status_code == 415


async def test_a_partial_endpoint_keeps_fastapis_name(
    app_and_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_and_client
    route = route_at(app, "/partial")
    assert len(route.bastion_guards) == 1
    plain = APIRoute("/partial", functools.partial(greet, greeting="hello"), methods=["GET"])
    assert (route.name, route.unique_id) == (plain.name, plain.unique_id)
    response = await client.get("/partial", headers=await headers_for(client, "alice"))
    assert response.json() == {"said": "hello alice"}


@pytest.mark.parametrize("path", ["/audited", "/rebuilt"])
async def test_two_requirements_on_a_route_count_a_request_once(
    database_url: str, tmp_path: Path, path: str
) -> None:
    """Each require() counts toward the per-principal limit; a route with two of them (the
    router's and the parameter's) must still count one request as one, or the limit halves."""
    bastion = Bastion(make_settings(database_url, tmp_path, ratelimit_principal="4/minute"))
    async with serving_with_users(bastion, build_app(bastion)) as client:
        headers = await headers_for(client, "root")
        statuses = [(await client.get(path, headers=headers)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
