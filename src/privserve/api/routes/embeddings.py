"""`POST /v1/embeddings`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from privserve.api.deps import Embeddings, Metered
from privserve.api.disconnect import unless_disconnected
from privserve.api.json_route import JsonBodyRoute
from privserve.api.metered import metered
from privserve.protocol.embeddings import EmbeddingRequest, EmbeddingResponse

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/embeddings")
async def create_embeddings(
    body: EmbeddingRequest, service: Embeddings, ticket: Metered, request: Request
) -> EmbeddingResponse:
    async with metered(ticket, body.model):
        return await unless_disconnected(request, service.create(body, ticket))
