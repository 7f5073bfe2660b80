"""The models this server offers, by the id clients send in `model`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from privserve.engine.base import EmbeddingEngine, RerankEngine, TextEngine
from privserve.engine.embedding.engine import CosineReranker
from privserve.errors import ModelNotFound, ModelUnavailable
from privserve.services.chat_models import ChatModels, of_engines
from privserve.services.on_demand import OnDemandModels
from privserve.services.retrieval_models import (
    EmbeddingModels,
    RerankModels,
    RetrievalOffer,
    embedders_of,
    rerankers_of,
)

E = TypeVar("E")
COSINE_RERANK_SUFFIX = "-rerank"


def cosine_rerank_id(embedding_model_id: str) -> str:
    """The id an embedding model reranks under when a model table needs ids of its own
    (FastGPT's requires unique ones); the embedding model's own id works as well."""
    return embedding_model_id + COSINE_RERANK_SUFFIX


class ModelCatalog:
    """Chat and completion models, embedding models and cross-encoder rerankers, each
    offered and loaded on demand.

    Every embedding model also reranks by cosine; cross-encoders come first and, among
    them, those loaded at start: the first is the default for requests that name no
    model."""

    def __init__(
        self,
        chat_models: ChatModels | Mapping[str, TextEngine],
        embedding_models: EmbeddingModels | Mapping[str, EmbeddingEngine] | None = None,
        cross_encoders: RerankModels | Sequence[RerankEngine] = (),
    ) -> None:
        self.chat_models: ChatModels = (
            chat_models if isinstance(chat_models, OnDemandModels) else of_engines(chat_models)
        )
        self.embedding_models: EmbeddingModels = (
            embedding_models
            if isinstance(embedding_models, OnDemandModels)
            else embedders_of(embedding_models or {})
        )
        self.rerank_models: RerankModels = (
            cross_encoders
            if isinstance(cross_encoders, OnDemandModels)
            else rerankers_of(list(cross_encoders))
        )
        self.created = int(time.time())

    # Chat models

    def text_engine(self, model_id: str) -> TextEngine:
        """A loaded chat model's engine; one offered but not loaded is a 503 that says so
        (requests load models through `using`)."""
        return _loaded(self.chat_models, model_id)

    @asynccontextmanager
    async def using(
        self, model_id: str, keep_alive_s: float | None = None
    ) -> AsyncIterator[TextEngine]:
        """A chat model's engine, loaded first if need be, kept loaded until its work is
        queued in it."""
        async with self.chat_models.use(model_id, keep_alive_s) as engine:
            yield engine

    def model_ids(self) -> list[str]:
        """Every offered chat model, loaded or not."""
        return sorted(self.chat_models.offered())

    def loaded_model_ids(self) -> list[str]:
        return self.chat_models.loaded_ids()

    def engine_failures(self) -> dict[str, str]:
        """The loaded chat models whose engine cannot serve (its thread died), and why."""
        return {
            model_id: reason
            for model_id in self.loaded_model_ids()
            if (reason := self.text_engine(model_id).health()) is not None
        }

    def context_length(self, model_id: str) -> int:
        """The window a request to a chat model gets, loaded or not (0: not known)."""
        engine = self.chat_models.loaded(model_id)
        if engine is not None:
            return engine.context_length
        offer = self.chat_models.offer(model_id)
        return (offer.context_length if offer else None) or 0

    # Embedding and rerank models

    def embedding_engine(self, model_id: str) -> EmbeddingEngine:
        """A loaded embedding model's engine (a 503 when offered but not loaded)."""
        return _loaded(self.embedding_models, model_id)

    @asynccontextmanager
    async def using_embedder(
        self, model_id: str, keep_alive_s: float | None = None
    ) -> AsyncIterator[EmbeddingEngine]:
        """An embedding model's engine, loaded first if need be, kept loaded until the
        block ends."""
        async with self.embedding_models.use(model_id, keep_alive_s) as engine:
            yield engine

    @asynccontextmanager
    async def using_reranker(self, model_id: str | None) -> AsyncIterator[RerankEngine]:
        """The named reranker (a cross-encoder, or an embedding model by its own id or its
        cosine rerank id), or the default one; loaded first if need be."""
        model_id = model_id or self.default_reranker_id()
        # Loaded models first: looking up what is offered reads the registry.
        if self.rerank_models.loaded(model_id) is not None:
            async with self.rerank_models.use(model_id) as loaded:
                yield loaded
            return
        embedding_id = self._cosine_of(model_id)
        if embedding_id in self.embedding_models.offered() and not self._is_cross_encoder(model_id):
            async with self.embedding_models.use(embedding_id) as embedder:
                yield CosineReranker(embedder)
            return
        async with self.rerank_models.use(model_id) as reranker:
            yield reranker

    def rerank_engine(self, model_id: str) -> RerankEngine:
        """A loaded reranker (for counters): a cross-encoder, or an embedding model's cosine."""
        if self._is_cross_encoder(model_id):
            return _loaded(self.rerank_models, model_id)
        return CosineReranker(_loaded(self.embedding_models, self._cosine_of(model_id)))

    def rerank_method(self, model_id: str) -> str:
        return "cross-encoder" if self._is_cross_encoder(model_id) else "cosine"

    def default_reranker_id(self) -> str:
        """What answers a rerank request that names no model: a cross-encoder loaded at
        start, else an embedding model loaded at start, else the first offered."""
        for models in (self.rerank_models, self.embedding_models):
            for model_id in models.loaded_ids():
                if models.pinned(model_id):
                    return model_id
        cross = self.rerank_models.offered()
        embedding = self.embedding_models.offered()
        for offers in (cross, embedding):
            for model_id, offer in sorted(offers.items()):
                if offer.pinned:
                    return model_id
        for offers in (cross, embedding):
            if offers:
                return sorted(offers)[0]
        raise ModelNotFound("this server has no rerank model", param="model")

    def embedding_offer(self, model_id: str) -> RetrievalOffer | None:
        return self.embedding_models.offer(model_id)

    def embedding_model_ids(self) -> list[str]:
        return sorted(self.embedding_models.offered())

    def loaded_embedding_ids(self) -> list[str]:
        return self.embedding_models.loaded_ids()

    def rerank_model_ids(self) -> list[str]:
        """Rerank-only models (cross-encoders); embedding models rerank too."""
        return sorted(set(self.rerank_models.offered()) - set(self.embedding_models.offered()))

    def loaded_rerank_ids(self) -> list[str]:
        return self.rerank_models.loaded_ids()

    def cosine_rerank_ids(self) -> list[str]:
        """The ids embedding models rerank under (`cosine_rerank_id`)."""
        return sorted(
            cosine_rerank_id(m)
            for m in self.embedding_models.offered()
            if cosine_rerank_id(m) not in self.rerank_models.offered()
        )

    def reranker_ids(self) -> list[str]:
        """Every model that reranks, the default first: cross-encoders by their ids,
        embedding models by their cosine rerank ids."""
        cross = self.rerank_model_ids()
        ids = [*cross, *(cosine_rerank_id(m) for m in self.embedding_model_ids())]
        default = self.default_reranker_id() if ids else None
        if default is not None and default not in cross:
            default = cosine_rerank_id(default)
        return sorted(ids, key=lambda m: m != default)

    def _cosine_of(self, model_id: str) -> str:
        """The embedding model a cosine rerank id stands for (or the id itself)."""
        if self.embedding_models.loaded(model_id) is not None:
            return model_id
        if (
            model_id.endswith(COSINE_RERANK_SUFFIX)
            and model_id not in self.embedding_models.offered()
        ):
            return model_id.removesuffix(COSINE_RERANK_SUFFIX)
        return model_id

    def _is_cross_encoder(self, model_id: str) -> bool:
        return model_id in self.rerank_models.offered()

    def has(self, model_id: str) -> bool:
        return (
            model_id in self.chat_models.offered()
            or model_id in self.embedding_models.offered()
            or model_id in self.rerank_models.offered()
            or model_id in self.cosine_rerank_ids()
        )


def _loaded(models: OnDemandModels[E, Any], model_id: str) -> E:
    """A loaded model's engine; offered but not loaded is a 503, not offered a 404."""
    engine = models.loaded(model_id)
    if engine is not None:
        return engine
    offered = models.offered()
    if model_id in offered:
        raise ModelUnavailable(f"the model '{model_id}' is not loaded", retry_after_s=1)
    names = ", ".join(sorted(offered)) or "none"
    raise ModelNotFound(
        f"The model '{model_id}' does not exist; this server's {models.kind} models: {names}",
        param="model",
    )
