"""Chat models on demand, with engines that cost nothing to load: one load however many
wait, least recently used idle model unloaded to make room, keep-alive, pinned models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from privserve.engine.base import EngineStats, ModelSpec, TextEngine
from privserve.errors import ModelLoadError, ModelNotFound, ModelUnavailable
from privserve.services.chat_models import ChatOffer, chat_models
from privserve.services.on_demand import Budget


class Engine:
    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.running = 0

    def stats(self) -> EngineStats:
        return EngineStats(0, self.running, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, budget: Budget, sizes: dict[str, int] | None = None) -> None:
        self.sizes = sizes or {"a": 1, "b": 1, "c": 1, "pinned": 1, "broken": 1}
        self.loads: list[str] = []
        self.unloads: list[str] = []
        self.clock = Clock()
        self.gate: asyncio.Event | None = None
        self.models = chat_models(self.offers, self.load, self.unload, budget, clock=self.clock)

    def offers(self) -> dict[str, ChatOffer]:
        return {
            name: ChatOffer(
                ModelSpec(name, Path(f"{name}.gguf")),
                size_bytes=size,
                memory_bytes=size,
                pinned=name == "pinned",
            )
            for name, size in self.sizes.items()
        }

    async def load(self, spec: ModelSpec) -> TextEngine:
        if self.gate is not None:
            await self.gate.wait()
        if spec.model_id == "broken":
            raise ModelLoadError("llama.cpp rejected the file")
        self.loads.append(spec.model_id)
        return cast(TextEngine, Engine(spec.model_id))

    async def unload(self, engine: TextEngine) -> None:
        self.unloads.append(engine.model_id)


async def test_requests_during_a_load_share_it() -> None:
    h = Harness(Budget())
    h.gate = asyncio.Event()
    waiting = [asyncio.create_task(h.models.engine("a")) for _ in range(5)]
    await asyncio.sleep(0)
    assert h.models.state("a") == "loading"
    h.gate.set()
    engines = await asyncio.gather(*waiting)
    assert h.loads == ["a"] and len({id(e) for e in engines}) == 1
    assert h.models.state("a") == "loaded"


async def test_the_least_recently_used_idle_model_makes_room() -> None:
    h = Harness(Budget(max_loaded=2))
    for name in ("a", "b"):
        await h.models.engine(name)
        h.clock.now += 1
    await h.models.engine("a")  # a is now the more recent
    h.clock.now += 1
    await h.models.engine("c")
    assert h.unloads == ["b"] and h.models.loaded_ids() == ["a", "c"]


async def test_busy_and_pinned_models_are_not_unloaded_and_the_request_is_told() -> None:
    h = Harness(Budget(max_loaded=2))
    await h.models.pin("pinned")
    busy = cast(Any, await h.models.engine("a"))
    busy.running = 1
    with pytest.raises(ModelUnavailable) as refused:
        await h.models.engine("b")
    assert refused.value.status == 503 and refused.value.retry_after_s
    busy.running = 0
    async with h.models.use("a"):  # a request between choosing and queueing holds it too
        with pytest.raises(ModelUnavailable):
            await h.models.engine("b")
    await h.models.engine("b")
    assert h.unloads == ["a"]


async def test_a_model_larger_than_the_memory_budget_is_refused_before_loading() -> None:
    h = Harness(Budget(memory_bytes=10), sizes={"a": 6, "b": 6, "huge": 11})
    await h.models.engine("a")
    await h.models.engine("b")  # 12 > 10: a makes room
    assert h.unloads == ["a"]
    with pytest.raises(ModelUnavailable, match="huge"):
        await h.models.engine("huge")
    assert "huge" not in h.loads


async def test_idle_models_unload_after_their_keep_alive() -> None:
    h = Harness(Budget(keep_alive_s=300, keep_alive_by_model={"b": 10}))
    await h.models.pin("pinned")
    for name in ("a", "b"):
        await h.models.engine(name)
    await h.models.engine("c", keep_alive_s=0)  # a request's own
    assert await h.models.sweep() == ["c"]
    h.clock.now = 11
    assert await h.models.sweep() == ["b"]
    h.clock.now = 1000
    assert await h.models.sweep() == ["a"]
    assert h.models.loaded_ids() == ["pinned"]


async def test_a_failed_load_is_a_503_for_that_model_and_may_be_tried_again() -> None:
    h = Harness(Budget())
    for _ in range(2):
        with pytest.raises(ModelUnavailable, match="broken.*rejected"):
            await h.models.engine("broken")
    await h.models.engine("a")
    with pytest.raises(ModelNotFound):
        await h.models.engine("nope")
