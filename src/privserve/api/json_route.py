"""Routes that read the body as JSON whatever Content-Type says, as OpenAI's API does.

`curl -d` sends `application/x-www-form-urlencoded` unless told otherwise; refusing that
with a schema error is the most common first-try failure.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_JSON = (b"content-type", b"application/json")


class JsonBodyRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            # A request that says JSON (nearly all) goes through as it came.
            if request.method == "POST" and _JSON not in request.scope["headers"]:
                headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
                scope = {**request.scope, "headers": [*headers, _JSON]}
                request = Request(scope, request.receive)
            return await handler(request)

        return handle
