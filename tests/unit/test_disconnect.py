"""`unless_disconnected`: the work runs in the request's own task, a client that leaves
cancels it, and no cancel of its own outlives the call."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from privserve.api.disconnect import ClientDisconnected, unless_disconnected


class Client:
    """The ASGI receive channel of one request whose body has been read."""

    def __init__(self) -> None:
        self._gone = asyncio.Event()

    def leave(self) -> None:
        self._gone.set()

    async def receive(self) -> Message:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    def request(self) -> Request:
        return Request({"type": "http", "method": "POST", "headers": []}, self.receive)


async def test_work_that_finishes_returns_its_result_and_leaves_no_cancel() -> None:
    client = Client()

    async def work() -> str:
        await asyncio.sleep(0.01)
        return "done"

    assert await unless_disconnected(client.request(), work()) == "done"
    this = asyncio.current_task()
    assert this is not None and this.cancelling() == 0


async def test_a_client_that_leaves_cancels_the_work_before_the_call_returns() -> None:
    client = Client()
    cleaned_up = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned_up.set()
        return "never"

    asyncio.get_running_loop().call_later(0.05, client.leave)
    with pytest.raises(ClientDisconnected):
        await unless_disconnected(client.request(), work())
    assert cleaned_up.is_set()
    this = asyncio.current_task()
    # The cancel was the watcher's: an enclosing timeout still works afterwards.
    assert this is not None and this.cancelling() == 0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    client = Client()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(30)

    call = asyncio.ensure_future(unless_disconnected(client.request(), work()))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_an_enclosing_timeout_still_times_the_work_out() -> None:
    client = Client()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await unless_disconnected(client.request(), asyncio.sleep(30))
