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
    for it costs nothing, where polling cost every request a wake-up per interval. The work
    runs in this task and only the watcher gets one: a task for the work too, and
    `asyncio.wait` over both, cost every request measurable CPU."""
    this = asyncio.current_task()
    if this is None:  # not in a task: nothing to cancel
        return await work
    watcher = asyncio.ensure_future(_cancel_when_gone(request.receive, this))
    try:
        return await work
    except asyncio.CancelledError:
        if _cancelled_by(watcher):
            raise ClientDisconnected() from None
        raise
    finally:
        if not watcher.done():
            watcher.cancel()
        elif _cancelled_by(watcher):
            this.uncancel()  # the cancel was ours, not the server's: it must not linger


async def _cancel_when_gone(receive: Receive, task: asyncio.Task[object]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the rest of a body nobody read
    task.cancel()


def _cancelled_by(watcher: asyncio.Future[None]) -> bool:
    """Whether the watcher saw the client leave (and so cancelled the work)."""
    return watcher.done() and not watcher.cancelled() and watcher.exception() is None
