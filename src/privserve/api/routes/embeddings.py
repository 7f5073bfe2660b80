"""`POST /v1/embeddings`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from privserve.api.deps import Access, Embeddings, require_model
from privserve.api.disconnect import unless_disconnected
from privserve.api.json_route import JsonBodyRoute
from privserve.protocol.embeddings import EmbeddingRequest, EmbeddingResponse

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/embeddings")
async def create_embeddings(
    body: EmbeddingRequest, service: Embeddings, access: Access, request: Request
) -> EmbeddingResponse:
    require_model(access, body.model)
    return await unless_disconnected(request, service.create(body))
