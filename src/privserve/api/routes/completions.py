"""`POST /v1/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from privserve.api.deps import Completions, Metered
from privserve.api.disconnect import unless_disconnected
from privserve.api.json_route import JsonBodyRoute
from privserve.api.metered import metered
from privserve.api.sse import sse_response
from privserve.protocol.completions import Completion, CompletionRequest

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/completions", response_model=None, responses={200: {"model": Completion}})
async def create_completion(
    body: CompletionRequest, service: Completions, ticket: Metered, request: Request
) -> Completion | Response:
    async with metered(ticket, body.model, streaming=bool(body.stream)):
        if body.stream:
            return sse_response(await service.stream(body, ticket))
        return await unless_disconnected(request, service.create(body, ticket))
