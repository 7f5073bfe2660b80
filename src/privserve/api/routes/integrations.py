"""`GET /v1/privserve/integrations`: the FastGPT entries and the One API channel for this
server, filled in with the caller's own key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from privserve.api.deps import Catalog, Chat
from privserve.auth.keys import parse_bearer
from privserve.services.integrations import (
    Endpoint,
    describe_catalog,
    integrations,
    parse_aliases,
)

router = APIRouter()


@router.get("/privserve/integrations")
async def get_integrations(
    request: Request,
    catalog: Catalog,
    chat: Chat,
    base_url: Annotated[
        str | None,
        Query(
            description="The URL FastGPT or One API reaches this server at; default: this "
            "request's own."
        ),
    ] = None,
    alias: Annotated[
        list[str] | None,
        Query(description="SERVED_ID=NAME: show a model under another name; repeatable."),
    ] = None,
) -> dict[str, Any]:
    # The key check already ran: the header holds the caller's valid key.
    key = parse_bearer(request.headers.get("authorization")) or ""
    models = describe_catalog(catalog, chat.thinks)
    endpoint = Endpoint.parse(base_url or str(request.base_url), key, parse_aliases(alias, models))
    return integrations(models, endpoint)
