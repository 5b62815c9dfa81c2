"""Bastion's routes as one group ahead of the app's: first in matching, invisible in cost."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match

from bastion.api.routing import RouteGroup, expand


async def token() -> dict[str, str]:
    return {"at": "token"}


async def key(key_id: str) -> dict[str, str]:
    return {"key": key_id}


async def fallback(path: str) -> dict[str, str]:
    return {"page": path}


class Counting(APIRoute):
    """A route that counts how often the router asks it whether it matches."""

    asked = 0

    def matches(self, scope: Any) -> tuple[Match, Any]:
        Counting.asked += 1
        return super().matches(scope)


def group() -> RouteGroup:
    return RouteGroup(
        [
            APIRoute("/auth/token", token, methods=["POST"]),
            Counting("/auth/keys/{key_id}", key, methods=["DELETE"], name="delete_key"),
        ]
    )


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    app.get("/{path:path}")(fallback)  # an app's catch-all, declared before the group is added
    app.router.routes.insert(0, group())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_the_groups_routes_answer_before_an_apps_catch_all(client: httpx.AsyncClient) -> None:
    assert (await client.post("/auth/token")).json() == {"at": "token"}
    assert (await client.delete("/auth/keys/k1")).json() == {"key": "k1"}
    assert (await client.get("/some/page")).json() == {"page": "some/page"}


async def test_a_wrong_method_is_405_with_allow_and_a_trailing_slash_redirects() -> None:
    app = FastAPI()
    app.router.routes.insert(0, group())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        answer = await client.get("/auth/token")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        assert (await client.get("/elsewhere")).status_code == 404
        redirect = await client.post("/auth/token/", follow_redirects=False)
        assert redirect.status_code == 307
        assert redirect.headers["location"] == "http://testserver/auth/token"


async def test_a_path_no_group_route_can_match_skips_their_matching(
    client: httpx.AsyncClient,
) -> None:
    Counting.asked = 0
    assert (await client.get("/reports/auth/keys/x")).json() == {"page": "reports/auth/keys/x"}
    assert Counting.asked == 0
    await client.delete("/auth/keys/k2")
    assert Counting.asked == 1


def test_url_path_for_finds_a_grouped_route_and_refuses_an_unknown_name() -> None:
    app = FastAPI()
    app.router.routes.insert(0, group())
    assert app.url_path_for("delete_key", key_id="k3") == "/auth/keys/k3"
    with pytest.raises(Exception, match="No route exists"):
        app.url_path_for("nothing")


def test_expand_lists_grouped_routes_in_place() -> None:
    inner = group()
    after = APIRoute("/after", token)
    routes: list[BaseRoute] = [RouteGroup([inner]), after]
    assert [getattr(r, "path", None) for r in expand(routes)] == [
        "/auth/token",
        "/auth/keys/{key_id}",
        "/after",
    ]
