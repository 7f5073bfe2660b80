"""Chat models on demand: what is known of an offered GGUF file, and the manager that
loads and unloads their engines."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from privserve.engine.base import ModelSpec, TemplateThinking, TextEngine
from privserve.services.on_demand import Budget, OnDemandModels

ChatModels = OnDemandModels[TextEngine, "ChatOffer"]


@dataclass(frozen=True)
class ChatOffer:
    """A chat model the server can load, and what is known of it without loading it
    (None: not known)."""

    spec: ModelSpec
    size_bytes: int = 0
    memory_bytes: int = 0  # the file and its KV cache, once loaded
    precision: str | None = None
    context_length: int | None = None
    has_chat_format: bool | None = None
    thinking: TemplateThinking | None = None
    pinned: bool = False


def busy(engine: TextEngine) -> bool:
    """Requests queued or running: the engine must not be unloaded."""
    stats = engine.stats()
    return stats.queued_requests + stats.running_requests > 0


def chat_models(
    offers: Callable[[], Mapping[str, ChatOffer]],
    load: Callable[[ModelSpec], Awaitable[TextEngine]],
    unload: Callable[[TextEngine], Awaitable[None]],
    budget: Budget,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> ChatModels:
    async def load_offer(offer: ChatOffer) -> TextEngine:
        return await load(offer.spec)

    return OnDemandModels(
        "chat and completion", offers, load_offer, unload, budget, busy=busy, clock=clock
    )


def of_engines(engines: Mapping[str, TextEngine]) -> ChatModels:
    """Engines loaded elsewhere (tests' fakes), pinned, and nothing else offered."""
    models = chat_models(dict, _never_load, _never_unload, Budget())
    for model_id, engine in engines.items():
        models.add_pinned(
            model_id, engine, ChatOffer(ModelSpec(model_id, Path(model_id)), pinned=True)
        )
    return models


async def _never_load(spec: ModelSpec) -> TextEngine:
    from privserve.errors import ModelLoadError

    raise ModelLoadError(f"{spec.model_id} cannot be loaded here")


async def _never_unload(engine: TextEngine) -> None:
    return None
