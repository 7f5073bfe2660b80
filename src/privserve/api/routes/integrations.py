"""`GET /v1/privserve/integrations`: the FastGPT entries and the One API channel for this
server, filled in with the caller's own key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from privserve.api.deps import Catalog
from privserve.auth.keys import parse_bearer
from privserve.services.integrations import Endpoint, describe_catalog, integrations

router = APIRouter()


@router.get("/privserve/integrations")
async def get_integrations(
    request: Request,
    catalog: Catalog,
    base_url: Annotated[
        str | None,
        Query(
            description="The URL FastGPT or One API reaches this server at; default: this "
            "request's own."
        ),
    ] = None,
) -> dict[str, Any]:
    # The key check already ran: the header holds the caller's valid key.
    key = parse_bearer(request.headers.get("authorization")) or ""
    endpoint = Endpoint.parse(base_url or str(request.base_url), key)
    return integrations(describe_catalog(catalog), endpoint)
