"""`/admin/v1/keys`: create, list, read, change and revoke API keys, with an admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from privserve.api.deps import Access
from privserve.api.json_route import JsonBodyRoute
from privserve.errors import PermissionDenied
from privserve.protocol.admin import KeyCreate, KeyCreated, KeyInfo, KeyList, KeyUpdate
from privserve.services.admin import KeyAdmin


async def require_admin(access: Access) -> None:
    if not access.is_admin:
        raise PermissionDenied("this key may not manage keys: an admin key is needed")


async def _key_admin(request: Request) -> KeyAdmin:
    return KeyAdmin(request.app.state.key_store)


Admin = Annotated[KeyAdmin, Depends(_key_admin)]

router = APIRouter(route_class=JsonBodyRoute, dependencies=[Depends(require_admin)])


@router.post("/keys")
async def create_key(body: KeyCreate, admin: Admin) -> KeyCreated:
    return await admin.create(body)


@router.get("/keys")
async def list_keys(admin: Admin) -> KeyList:
    return await admin.list()


@router.get("/keys/{key_id}")
async def get_key(key_id: int, admin: Admin) -> KeyInfo:
    return await admin.get(key_id)


@router.patch("/keys/{key_id}")
async def update_key(key_id: int, body: KeyUpdate, admin: Admin) -> KeyInfo:
    return await admin.update(key_id, body)


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: int, admin: Admin) -> KeyInfo:
    return await admin.revoke(key_id)
