"""``/items``, the owned resource, and ``/secure-data`` (SPEC §4.5).

Ownership is enforced in the repository's queries, and another user's item answers exactly as a
missing one does (same status, same body), so ids cannot be probed (OWASP API1).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from bastion.api.dependencies import Items, JSONBody, require
from bastion.api.guarded import GuardedRoute
from bastion.api.schemas import ItemCreate, ItemOut, ItemPage, ItemUpdate, SecureData
from bastion.errors import NotFound
from bastion.principal import Principal

router = APIRouter(tags=["items"], route_class=GuardedRoute)

ITEM_NOT_FOUND = "No item with this id exists."
MAX_ITEM_ID = 2**31 - 1
"""Ids are 32-bit on PostgreSQL; a larger one names no item, so it is a 404 like any other."""


def _existing_id(item_id: int) -> int:
    if not 1 <= item_id <= MAX_ITEM_ID:
        raise NotFound(ITEM_NOT_FOUND)
    return item_id


@router.get("/items", response_model=ItemPage)
async def list_items(
    principal: Annotated[Principal, require("items:read")],
    items: Items,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> ItemPage:
    page, total = await items.list_owned(principal.user_id, limit=limit, offset=offset)
    return ItemPage(
        items=[ItemOut.model_validate(i, from_attributes=True) for i in page],
        limit=limit,
        offset=offset,
        total=total,
    )


@router.post("/items", status_code=201, response_model=ItemOut)
async def create_item(
    principal: Annotated[Principal, require("items:write")],
    _json: Annotated[None, JSONBody],
    body: ItemCreate,
    items: Items,
) -> ItemOut:
    item = await items.create(principal.user_id, body.name, body.description)
    return ItemOut.model_validate(item, from_attributes=True)


@router.get("/items/{item_id}", response_model=ItemOut)
async def get_item(
    item_id: int, principal: Annotated[Principal, require("items:read")], items: Items
) -> ItemOut:
    item = await items.get_owned(principal.user_id, _existing_id(item_id))
    if item is None:
        raise NotFound(ITEM_NOT_FOUND)
    return ItemOut.model_validate(item, from_attributes=True)


@router.patch("/items/{item_id}", response_model=ItemOut)
async def update_item(
    item_id: int,
    principal: Annotated[Principal, require("items:write")],
    _json: Annotated[None, JSONBody],
    body: ItemUpdate,
    items: Items,
) -> ItemOut:
    changes = body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        del changes["name"]
    item = await items.update_owned(principal.user_id, _existing_id(item_id), changes)
    if item is None:
        raise NotFound(ITEM_NOT_FOUND)
    return ItemOut.model_validate(item, from_attributes=True)


@router.delete("/items/{item_id}", status_code=204)
async def delete_item(
    item_id: int, principal: Annotated[Principal, require("items:write")], items: Items
) -> Response:
    if not await items.delete_owned(principal.user_id, _existing_id(item_id)):
        raise NotFound(ITEM_NOT_FOUND)
    return Response(status_code=204)


@router.get("/secure-data", response_model=SecureData)
async def secure_data(principal: Annotated[Principal, require()]) -> SecureData:
    return SecureData(data="This is protected data", user=principal.username)
