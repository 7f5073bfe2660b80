"""The slot queue's order: interactive requests first, batch ones after, but never longer
than the bound."""

from __future__ import annotations

import asyncio
import time

from privserve.engine.base import GenerationRequest, Priority, SamplingParams
from privserve.engine.llama.waiting import WaitingList
from privserve.engine.streams import GenerationStream


def stream(name: str, priority: Priority) -> GenerationStream:
    request = GenerationRequest([1, 2], SamplingParams(max_tokens=1), name, priority)
    return GenerationStream(request, asyncio.get_running_loop())


def order(waiting: WaitingList) -> list[str]:
    return [item.stream.request.request_id for item in waiting.take_all()]


async def test_interactive_requests_are_offered_slots_first_in_arrival_order() -> None:
    waiting = WaitingList(10, "m", None, batch_max_wait_s=60)
    for name, priority in (("b1", "batch"), ("i1", "interactive"), ("b2", "batch")):
        waiting.submit(stream(name, priority))  # type: ignore[arg-type]
    waiting.submit(stream("i2", "interactive"))
    assert order(waiting) == ["i1", "i2", "b1", "b2"]


async def test_a_batch_request_past_the_bound_takes_its_turn_by_arrival() -> None:
    waiting = WaitingList(10, "m", None, batch_max_wait_s=0.05)
    waiting.submit(stream("b-old", "batch"))
    time.sleep(0.06)
    waiting.submit(stream("i1", "interactive"))
    waiting.submit(stream("b-new", "batch"))
    assert order(waiting) == ["b-old", "i1", "b-new"]


async def test_requests_put_back_are_ordered_again() -> None:
    waiting = WaitingList(10, "m", None, batch_max_wait_s=60)
    waiting.submit(stream("b1", "batch"))
    kept = waiting.take_all()
    waiting.put_back(kept)
    waiting.submit(stream("i1", "interactive"))
    assert order(waiting) == ["i1", "b1"]
