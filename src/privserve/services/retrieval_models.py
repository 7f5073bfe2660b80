"""Embedding and rerank models on demand: what is known of an offered directory, and the
managers that load and unload their engines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privserve.engine.base import EmbeddingEngine, RerankEngine
from privserve.errors import ModelLoadError
from privserve.services.on_demand import Budget, OnDemandModels


@dataclass(frozen=True)
class RetrievalOffer:
    """An embedding or rerank model the server can load (None: not known unloaded)."""

    model_id: str
    path: Path
    memory_bytes: int = 0
    pinned: bool = False
    dimensions: int | None = None
    max_input_tokens: int | None = None
    shortenable: bool = False
    prompts: Mapping[str, str] = field(default_factory=dict)


EmbeddingModels = OnDemandModels[EmbeddingEngine, RetrievalOffer]
RerankModels = OnDemandModels[RerankEngine, RetrievalOffer]


def embedders_of(engines: Mapping[str, EmbeddingEngine]) -> EmbeddingModels:
    """Embedding engines loaded elsewhere (tests' fakes), pinned, and nothing else offered."""
    models: EmbeddingModels = OnDemandModels(
        "embedding", dict, _never_load, _never_unload, Budget()
    )
    for model_id, engine in engines.items():
        models.add_pinned(model_id, engine, _offer_of_loaded(model_id, engine))
    return models


def rerankers_of(engines: list[RerankEngine]) -> RerankModels:
    models: RerankModels = OnDemandModels("rerank", dict, _never_load, _never_unload, Budget())
    for engine in engines:
        models.add_pinned(
            engine.model_id, engine, RetrievalOffer(engine.model_id, Path(), pinned=True)
        )
    return models


def _offer_of_loaded(model_id: str, engine: EmbeddingEngine) -> RetrievalOffer:
    return RetrievalOffer(
        model_id,
        Path(),
        pinned=True,
        dimensions=engine.dimensions,
        max_input_tokens=engine.max_input_tokens,
        shortenable=engine.shortenable,
        prompts=dict(engine.prompts),
    )


async def _never_load(offer: RetrievalOffer) -> Any:
    raise ModelLoadError(f"{offer.model_id} cannot be loaded here")


async def _never_unload(engine: object) -> None:
    return None
