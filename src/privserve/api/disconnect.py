"""Cancel non-streaming work whose client has gone away."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TypeVar

from starlette.requests import Request
from starlette.types import Receive

T = TypeVar("T")


class ClientDisconnected(Exception):
    pass


async def unless_disconnected(request: Request, work: Coroutine[object, object, T]) -> T:
    """Runs `work`; if the client disconnects first, cancels it, which frees its engine slots.

    The body has been read by now, so the server's next message is the disconnect: waiting
    for it costs nothing, where polling cost every request a wake-up per interval."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        raise ClientDisconnected()
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of a body nobody read
