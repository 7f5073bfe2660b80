"""`/admin/v1/keys` (create, list, read, change and revoke API keys), `/admin/v1/usage`
(the ledger's sums) and `/admin/v1/models/{id}/load|unload`, with an admin key."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from privserve.api.deps import Access, Admin, Catalog
from privserve.api.json_route import JsonBodyRoute
from privserve.api.routes.models import card
from privserve.errors import ModelNotFound, PermissionDenied
from privserve.protocol.admin import (
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyUpdate,
    UsageReport,
)
from privserve.protocol.models import ModelCard


async def require_admin(access: Access) -> None:
    if not access.is_admin:
        raise PermissionDenied("this key may not manage keys or models: an admin key is needed")


# A row id: what the database's INTEGER holds (PostgreSQL's is 32 bits).
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The key's id.")]

# The usage filters `privserve usage` takes, here and for a key's own usage.
ModelFilter = Annotated[str | None, Query(max_length=200, description="A model id.")]
Since = Annotated[str | None, Query(max_length=40, description="7d, 24h, 90m, 2w, or an ISO date.")]

router = APIRouter(route_class=JsonBodyRoute, dependencies=[Depends(require_admin)])


@router.post("/keys")
async def create_key(body: KeyCreate, admin: Admin) -> KeyCreated:
    return await admin.create(body)


@router.get("/keys")
async def list_keys(admin: Admin) -> KeyList:
    return await admin.list()


@router.get("/keys/{key_id}")
async def get_key(key_id: KeyId, admin: Admin) -> KeyInfo:
    return await admin.get(key_id)


@router.patch("/keys/{key_id}")
async def update_key(key_id: KeyId, body: KeyUpdate, admin: Admin) -> KeyInfo:
    return await admin.update(key_id, body)


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: KeyId, admin: Admin) -> KeyInfo:
    return await admin.revoke(key_id)


@router.get("/usage")
async def usage(
    admin: Admin,
    key: Annotated[str | None, Query(max_length=200, description="Id, name or prefix.")] = None,
    model: ModelFilter = None,
    since: Since = None,
    by: Annotated[Literal["key", "model", "day"], Query()] = "key",
) -> UsageReport:
    return await admin.usage(key=key, model=model, since_text=since, by=by)


@router.post("/models/{model_id}/load")
async def load_model(model_id: str, catalog: Catalog) -> ModelCard:
    """Loads an offered chat model now (as its first request would); a load already under
    way is waited for."""
    await catalog.chat_models.engine(model_id)
    return card(catalog, model_id)


@router.post("/models/{model_id}/unload")
async def unload_model(model_id: str, catalog: Catalog) -> ModelCard:
    """Unloads a chat model now, pinned or not; requests running on it end with an error.
    It loads again on its next request."""
    if model_id not in catalog.model_ids():
        raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
    await catalog.chat_models.unload(model_id)
    return card(catalog, model_id)
