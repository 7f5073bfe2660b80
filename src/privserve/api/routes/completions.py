"""`POST /v1/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from privserve.api.deps import Access, Completions, require_model
from privserve.api.disconnect import unless_disconnected
from privserve.api.json_route import JsonBodyRoute
from privserve.api.sse import sse_response
from privserve.protocol.completions import Completion, CompletionRequest

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/completions", response_model=None, responses={200: {"model": Completion}})
async def create_completion(
    body: CompletionRequest, service: Completions, access: Access, request: Request
) -> Completion | Response:
    require_model(access, body.model)
    if body.stream:
        return sse_response(await service.stream(body))
    return await unless_disconnected(request, service.create(body))
