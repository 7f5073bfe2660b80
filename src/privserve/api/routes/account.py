"""`GET /v1/privserve/me` and `GET /v1/privserve/usage`: what any key may read of itself,
its name and rights and its own usage, for clients such as the console."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from privserve.api.deps import Access, Admin
from privserve.api.routes.admin import ModelFilter, Since
from privserve.protocol.admin import Caller, UsageReport

router = APIRouter()


@router.get("/privserve/me")
async def me(access: Access, admin: Admin) -> Caller:
    return await admin.caller(access)


@router.get("/privserve/usage")
async def own_usage(
    access: Access,
    admin: Admin,
    model: ModelFilter = None,
    since: Since = None,
    by: Annotated[Literal["model", "day"], Query()] = "day",
) -> UsageReport:
    """The calling key's requests and tokens per model or UTC day."""
    return await admin.usage_of(access.key_id, model=model, since_text=since, by=by)
