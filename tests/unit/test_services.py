"""Services with a fake engine: what happens to engine work when nobody reads the answer."""

from __future__ import annotations

import asyncio
import gc

from privserve.api.schemas.chat import ChatCompletionRequest
from privserve.api.schemas.completions import CompletionRequest
from privserve.services.catalog import ModelCatalog
from privserve.services.chat import ChatService
from privserve.services.completions import CompletionService
from tests.unit.fake_engine import FakeEngine


async def test_chat_stream_dropped_before_its_body_is_read_cancels_its_work() -> None:
    engine = FakeEngine()
    service = ChatService(ModelCatalog({"fake": engine}))
    request = ChatCompletionRequest.model_validate(
        {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    chunks = await service.stream(request)
    assert not engine.streams[0].cancelled
    del chunks  # the client left before the server read the first chunk
    gc.collect()
    await asyncio.sleep(0.05)  # the event loop closes the dropped generator
    assert engine.streams[0].cancelled


async def test_completion_stream_dropped_before_its_body_is_read_cancels_its_work() -> None:
    engine = FakeEngine()
    service = CompletionService(ModelCatalog({"fake": engine}))
    request = CompletionRequest.model_validate({"model": "fake", "prompt": "hi", "stream": True})
    chunks = await service.stream(request)
    del chunks
    gc.collect()
    await asyncio.sleep(0.05)
    assert engine.streams[0].cancelled
