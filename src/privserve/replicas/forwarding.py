"""A request read by the ingress, replayed into a replica's own ASGI app, its response
streamed back in parts: the status and headers first, then the body as it is written."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message

REPLICA_HEADER = "x-privserve-replica"


@dataclass(frozen=True)
class ForwardedRequest:
    method: str
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    client: tuple[str, int] | None = None


@dataclass(frozen=True)
class ResponseStart:
    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


async def replay(
    app: ASGIApp, request: ForwardedRequest, replica: str
) -> AsyncIterator[ResponseStart | bytes]:
    """Runs `request` through `app`; yields its ResponseStart (with the replica's name in
    a header), then each body chunk. Closing the iterator early (the client left) tells the
    app the client disconnected and cancels it, so its work is freed."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "root_path": "",
        "query_string": request.query_string,
        "headers": request.headers,
        "client": request.client,
        "server": ("privserve-replica", 0),
    }
    parts: asyncio.Queue[Message | None] = asyncio.Queue()
    disconnected = asyncio.Event()
    body_sent = False

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        await parts.put(message)

    async def run() -> None:
        try:
            await app(scope, receive, send)
        finally:
            await parts.put(None)

    task = asyncio.create_task(run())
    try:
        while (message := await parts.get()) is not None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (REPLICA_HEADER.encode(), replica.encode())]
                yield ResponseStart(message["status"], headers)
            elif message["type"] == "http.response.body" and message.get("body"):
                yield bytes(message["body"])
        await task
    finally:
        disconnected.set()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
