"""Bounds on a request body, enforced before any route parses it.

A body larger than `server.max_body_bytes` is a 413 (at once when Content-Length says so, else
as soon as the bytes read pass it), and one that takes longer than `server.body_timeout_s` to
arrive is a 408: a client sending a byte a second would otherwise hold a connection and its
buffer for as long as it likes. The body read here is handed to the route unchanged.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from privserve.errors import BodyTimedOut, BodyTooLarge, PrivserveError


class BodyLimits:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self._max_bytes:
                raise self._too_large()
            first = await self._read_body(receive)
        except PrivserveError as error:
            await JSONResponse(error.to_body(), status_code=error.status)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()  # after the body: the disconnect, when it comes

        await self._app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> Message:
        """The whole body as one message (or the disconnect that cut it short)."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return message
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise self._too_large()
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise BodyTimedOut(
                f"the request body took longer than the server's limit of {self._timeout_s:g} s "
                "to arrive"
            ) from None
        return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"the request body is larger than the server's limit of {self._max_bytes} bytes"
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
