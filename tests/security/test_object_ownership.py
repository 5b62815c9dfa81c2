"""Broken object-level authorization (OWASP API1; SPEC §3 404 rule, §4.5).

Mallory knows the id of Alice's item. Reading, changing or deleting it must answer exactly as a
missing id does (same status, same bytes), and Alice's item must come out untouched.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Harness
from tests.security.conftest import Account
from tests.security.helpers import assert_problem

MISSING_ID = 987_654


async def create_item(
    harness: Harness, owner: Account, name: str = "alice's diary"
) -> dict[str, Any]:
    response = await harness.client.post(
        "/items", json={"name": name, "description": "private"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def attempt(harness: Harness, method: str, item_id: int, who: Account) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": who.headers}
    if method == "PATCH":
        kwargs["json"] = {"name": "pwned", "description": "mallory was here"}
    return await harness.client.request(method, f"/items/{item_id}", **kwargs)


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_other_users_item_answers_404_identical_to_a_missing_one(
    harness: Harness, alice: Account, mallory: Account, method: str
) -> None:
    item = await create_item(harness, alice)
    foreign = await attempt(harness, method, item["id"], mallory)
    missing = await attempt(harness, method, MISSING_ID, mallory)
    assert_problem(foreign, 404)
    assert foreign.status_code == missing.status_code
    assert foreign.content == missing.content
    assert foreign.headers["content-type"] == missing.headers["content-type"]
    assert "alice" not in foreign.text
    assert "diary" not in foreign.text


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_other_users_item_is_unchanged_after_the_attempt(
    harness: Harness, alice: Account, mallory: Account, method: str
) -> None:
    item = await create_item(harness, alice)
    await attempt(harness, method, item["id"], mallory)
    after = await harness.client.get(f"/items/{item['id']}", headers=alice.headers)
    assert after.status_code == 200, after.text
    assert after.json() == item


async def test_other_users_item_is_not_in_the_list(
    harness: Harness, alice: Account, mallory: Account
) -> None:
    item = await create_item(harness, alice)
    own = await create_item(harness, mallory, name="mallory's own")
    listing = await harness.client.get("/items", headers=mallory.headers)
    assert listing.status_code == 200
    body = listing.json()
    assert [i["id"] for i in body["items"]] == [own["id"]]
    assert body["total"] == 1
    assert item["id"] not in [i["id"] for i in body["items"]]


@pytest.mark.parametrize(
    "params", [{"offset": 0, "limit": 100}, {"offset": 1}, {"limit": 1, "offset": 0}]
)
async def test_paging_never_reaches_other_users_items(
    harness: Harness, alice: Account, mallory: Account, params: dict[str, int]
) -> None:
    for n in range(3):
        await create_item(harness, alice, name=f"alice {n}")
    listing = await harness.client.get("/items", params=params, headers=mallory.headers)
    assert listing.status_code == 200
    assert listing.json()["items"] == []
    assert listing.json()["total"] == 0


async def test_owner_can_still_use_the_item_after_an_attack(
    harness: Harness, alice: Account, mallory: Account
) -> None:
    item = await create_item(harness, alice)
    for method in ("PATCH", "DELETE"):
        await attempt(harness, method, item["id"], mallory)
    patched = await harness.client.patch(
        f"/items/{item['id']}", json={"name": "renamed"}, headers=alice.headers
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed"
    deleted = await harness.client.delete(f"/items/{item['id']}", headers=alice.headers)
    assert deleted.status_code == 204


async def test_deleted_item_answers_like_a_foreign_one(
    harness: Harness, alice: Account, mallory: Account
) -> None:
    """After Alice deletes her item, Mallory's probes cannot tell it ever existed."""
    gone = await create_item(harness, alice)
    kept = await create_item(harness, alice, name="kept")
    assert (await attempt(harness, "DELETE", gone["id"], alice)).status_code == 204
    deleted_probe = await attempt(harness, "GET", gone["id"], mallory)
    foreign_probe = await attempt(harness, "GET", kept["id"], mallory)
    assert deleted_probe.content == foreign_probe.content
    owner_probe = await attempt(harness, "GET", gone["id"], alice)
    assert owner_probe.content == foreign_probe.content
