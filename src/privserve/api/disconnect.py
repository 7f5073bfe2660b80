"""Cancel non-streaming work whose client has gone away."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")

POLL_INTERVAL_S = 0.05


class ClientDisconnected(Exception):
    pass


async def unless_disconnected(request: Request, work: Coroutine[object, object, T]) -> T:
    """Runs `work`; if the client disconnects first, cancels it, which frees its engine slots."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_INTERVAL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                raise ClientDisconnected()
    finally:
        if not task.done():
            task.cancel()
