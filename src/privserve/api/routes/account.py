"""`GET /v1/privserve/me` and `GET /v1/privserve/usage`: what any key may read of itself,
its name and rights and its own usage, for clients such as the console."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from privserve.api.deps import Access, Admin
from privserve.protocol.admin import Caller, UsageReport

router = APIRouter()


@router.get("/privserve/me")
async def me(access: Access, admin: Admin) -> Caller:
    return await admin.caller(access)


@router.get("/privserve/usage")
async def own_usage(
    access: Access,
    admin: Admin,
    model: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        str | None, Query(max_length=40, description="7d, 24h, 90m, 2w, or an ISO date.")
    ] = None,
    by: Annotated[Literal["model", "day"], Query()] = "day",
) -> UsageReport:
    """The calling key's requests and tokens per model or UTC day."""
    return await admin.usage_of(access.key_id, model=model, since_text=since, by=by)
