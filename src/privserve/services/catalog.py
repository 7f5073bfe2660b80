"""The models this server offers, by the id clients send in `model`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from privserve.engine.base import EmbeddingEngine, RerankEngine, TextEngine
from privserve.engine.embedding.engine import CosineReranker
from privserve.errors import ModelNotFound, ModelUnavailable
from privserve.services.chat_models import ChatModels

E = TypeVar("E")
COSINE_RERANK_SUFFIX = "-rerank"


def cosine_rerank_id(embedding_model_id: str) -> str:
    """The id an embedding model reranks under when a model table needs ids of its own
    (FastGPT's requires unique ones); the embedding model's own id works as well."""
    return embedding_model_id + COSINE_RERANK_SUFFIX


class ModelCatalog:
    """Chat and completion models (loaded on demand), embedding engines, and rerankers.

    Every embedding model also reranks by cosine; cross-encoders, when configured, come first
    and are the default for requests that name no model."""

    def __init__(
        self,
        chat_models: ChatModels | Mapping[str, TextEngine],
        embedding_engines: Mapping[str, EmbeddingEngine] | None = None,
        cross_encoders: Sequence[RerankEngine] = (),
    ) -> None:
        self.chat_models = (
            chat_models
            if isinstance(chat_models, ChatModels)
            else ChatModels.of_engines(chat_models)
        )
        self._embedding = dict(embedding_engines or {})
        self._rerank: dict[str, RerankEngine] = {e.model_id: e for e in cross_encoders}
        # The cosine rerank ids of embedding models, to the embedding ids.
        self._cosine_ids: dict[str, str] = {}
        for model_id, engine in sorted(self._embedding.items()):
            self._rerank.setdefault(model_id, CosineReranker(engine))
            self._cosine_ids.setdefault(cosine_rerank_id(model_id), model_id)
        self.created = int(time.time())

    def text_engine(self, model_id: str) -> TextEngine:
        """A loaded chat model's engine; one offered but not loaded is a 503 that says so
        (requests load models through `using`)."""
        engine = self.chat_models.loaded(model_id)
        if engine is not None:
            return engine
        offered = self.chat_models.offered()
        if model_id in offered:
            raise ModelUnavailable(f"the model '{model_id}' is not loaded", retry_after_s=1)
        return self._find({}, model_id, "chat and completion", served=offered)

    @asynccontextmanager
    async def using(
        self, model_id: str, keep_alive_s: float | None = None
    ) -> AsyncIterator[TextEngine]:
        """A chat model's engine, loaded first if need be, kept loaded until its work is
        queued in it."""
        async with self.chat_models.use(model_id, keep_alive_s) as engine:
            yield engine

    def embedding_engine(self, model_id: str) -> EmbeddingEngine:
        return self._find(self._embedding, model_id, "embedding")

    def rerank_engine(self, model_id: str | None) -> RerankEngine:
        """The named reranker, or the default one when `model_id` is None."""
        if model_id is None:
            if not self._rerank:
                raise ModelNotFound("this server has no rerank model", param="model")
            return next(iter(self._rerank.values()))
        return self._find(self._rerank, self._cosine_ids.get(model_id, model_id), "rerank")

    def _find(
        self,
        engines: Mapping[str, E],
        model_id: str,
        kind: str,
        served: Mapping[str, object] | None = None,
    ) -> E:
        engine = engines.get(model_id)
        if engine is None:
            names = ", ".join(sorted(engines or served or {})) or "none"
            raise ModelNotFound(
                f"The model '{model_id}' does not exist; this server's {kind} models: {names}",
                param="model",
            )
        return engine

    def model_ids(self) -> list[str]:
        """Every offered chat model, loaded or not."""
        return sorted(self.chat_models.offered())

    def loaded_model_ids(self) -> list[str]:
        return self.chat_models.loaded_ids()

    def context_length(self, model_id: str) -> int:
        """The window a request to a chat model gets, loaded or not (0: not known)."""
        engine = self.chat_models.loaded(model_id)
        if engine is not None:
            return engine.context_length
        offer = self.chat_models.offer(model_id)
        return (offer.context_length if offer else None) or 0

    def embedding_model_ids(self) -> list[str]:
        return sorted(self._embedding)

    def rerank_model_ids(self) -> list[str]:
        """Rerank-only models (cross-encoders); embedding models rerank too."""
        return sorted(set(self._rerank) - set(self._embedding))

    def cosine_rerank_ids(self) -> list[str]:
        """The ids embedding models rerank under (`cosine_rerank_id`)."""
        return sorted(self._cosine_ids)

    def reranker_ids(self) -> list[str]:
        """Every model that reranks, the default first: cross-encoders by their ids,
        embedding models by their cosine rerank ids."""
        return [
            model_id if model_id not in self._embedding else cosine_rerank_id(model_id)
            for model_id in self._rerank
        ]

    def has(self, model_id: str) -> bool:
        return (
            model_id in self.chat_models.offered()
            or model_id in self._embedding
            or model_id in self._rerank
            or model_id in self._cosine_ids
        )
