"""`POST /v1/chat/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from privserve.api.deps import Chat, Metered
from privserve.api.disconnect import unless_disconnected
from privserve.api.json_route import JsonBodyRoute
from privserve.api.metered import metered
from privserve.api.sse import sse_response
from privserve.protocol.chat import ChatCompletion, ChatCompletionRequest

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/chat/completions", response_model=None, responses={200: {"model": ChatCompletion}})
async def create_chat_completion(
    body: ChatCompletionRequest, service: Chat, ticket: Metered, request: Request
) -> ChatCompletion | Response:
    async with metered(ticket, body.model, streaming=bool(body.stream)):
        if body.stream:
            return sse_response(await service.stream(body, ticket))
        return await unless_disconnected(request, service.create(body, ticket))
