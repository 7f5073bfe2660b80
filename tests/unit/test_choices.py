"""Several choices of one request: one failing cancels the others and is raised as itself;
a cancelled stream wakes whoever waits on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from privserve.engine.base import GenerationRequest, SamplingParams, TokenEvent
from privserve.engine.streams import GenerationStream
from privserve.errors import EngineError
from privserve.services.generation import collect_all, merge


class FailingStream:
    """Sends one token, then fails."""

    def __init__(self) -> None:
        self.closed = False
        self._sent = False

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        return self

    async def __anext__(self) -> TokenEvent:
        await asyncio.sleep(0)
        if not self._sent:
            self._sent = True
            return TokenEvent("a", 1)
        raise EngineError("the model could not decode this request")

    def cancel(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class EndlessStream:
    """Never sends anything; records whether its reader was cancelled."""

    def __init__(self) -> None:
        self.reader_cancelled = False
        self.closed = False

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        return self

    async def __anext__(self) -> TokenEvent:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.reader_cancelled = True
            raise
        raise AssertionError("unreachable")

    def cancel(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


async def test_a_failing_choice_cancels_its_siblings_and_is_raised_as_itself() -> None:
    failing, endless = FailingStream(), EndlessStream()
    with pytest.raises(EngineError, match="could not decode"):
        await asyncio.wait_for(collect_all([failing, endless]), timeout=5)
    assert endless.reader_cancelled  # its reader did not go on waiting
    assert failing.closed and endless.closed  # and the engine work of both is freed


async def test_a_failing_stream_ends_a_merge_with_its_own_error() -> None:
    failing, endless = FailingStream(), EndlessStream()
    seen = []
    with pytest.raises(EngineError):
        async with asyncio.timeout(5):
            async for index, event in merge([failing, endless]):
                seen.append((index, event.text))
    assert seen == [(0, "a")]
    assert endless.reader_cancelled


async def test_leaving_a_merge_early_cancels_every_reader() -> None:
    first, second = EndlessStream(), EndlessStream()
    merged = merge([first, second])
    reader = asyncio.ensure_future(anext(merged))
    await asyncio.sleep(0.01)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await merged.aclose()  # type: ignore[attr-defined]
    assert first.reader_cancelled and second.reader_cancelled


async def test_cancelling_a_stream_wakes_its_reader() -> None:
    request = GenerationRequest([1, 2], SamplingParams(max_tokens=4))
    stream = GenerationStream(request, asyncio.get_running_loop())
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.01)
    assert not reader.done()
    stream.cancel()  # the engine will send nothing more for it
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, timeout=5)
    assert stream.is_cancelled()
