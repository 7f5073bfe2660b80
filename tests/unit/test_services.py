"""Services with a fake engine: what happens to engine work when nobody reads the answer."""

from __future__ import annotations

import asyncio
import gc

import pytest

from privserve.errors import ContextLengthExceeded, InvalidRequest
from privserve.metering.meter import Ticket
from privserve.protocol.chat import ChatCompletionRequest
from privserve.protocol.completions import CompletionRequest
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
    chunks = await service.stream(request, Ticket.unmetered())
    assert not engine.streams[0].cancelled
    del chunks  # the client left before the server read the first chunk
    gc.collect()
    await asyncio.sleep(0.05)  # the event loop closes the dropped generator
    assert engine.streams[0].cancelled


async def test_completion_stream_dropped_before_its_body_is_read_cancels_its_work() -> None:
    engine = FakeEngine()
    service = CompletionService(ModelCatalog({"fake": engine}))
    request = CompletionRequest.model_validate({"model": "fake", "prompt": "hi", "stream": True})
    chunks = await service.stream(request, Ticket.unmetered())
    del chunks
    gc.collect()
    await asyncio.sleep(0.05)
    assert engine.streams[0].cancelled


async def test_a_max_tokens_past_the_context_is_fitted_only_when_asked() -> None:
    # The fake's words are tokens: a 60-word prompt leaves 4 of its 64.
    request = ChatCompletionRequest.model_validate(
        {
            "model": "fake",
            "messages": [{"role": "user", "content": " ".join(["w"] * 59)}],
            "max_tokens": 30,
        }
    )
    strict = FakeEngine(words=["a"] * 30, context=64)
    with pytest.raises(ContextLengthExceeded):
        await ChatService(ModelCatalog({"fake": strict})).create(request, Ticket.unmetered())
    fitted = FakeEngine(words=["a"] * 30, context=64)
    reply = await ChatService(ModelCatalog({"fake": fitted}), fit_max_tokens=True).create(
        request, Ticket.unmetered()
    )
    assert reply.usage.prompt_tokens == 60
    assert reply.usage.completion_tokens == 4 and reply.choices[0].finish_reason == "length"


async def test_a_constraint_is_checked_by_the_engine_before_anything_is_queued() -> None:
    engine = FakeEngine()
    service = ChatService(ModelCatalog({"fake": engine}))
    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 10**9}}}
    request = ChatCompletionRequest.model_validate(
        {
            "model": "fake",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
        }
    )
    with pytest.raises(InvalidRequest) as raised:
        await service.create(request, Ticket.unmetered())
    assert raised.value.param == "response_format.json_schema.schema.properties.s.maxLength"
    assert [c.schema for c in engine.checked] == [schema]
    assert engine.streams == []  # refused before it was queued
