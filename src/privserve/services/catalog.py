"""The models this server offers, by the id clients send in `model`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TypeVar

from privserve.engine.base import EmbeddingEngine, TextEngine
from privserve.errors import ModelNotFound

E = TypeVar("E")


class ModelCatalog:
    def __init__(
        self,
        text_engines: Mapping[str, TextEngine],
        embedding_engines: Mapping[str, EmbeddingEngine] | None = None,
    ) -> None:
        self._text = dict(text_engines)
        self._embedding = dict(embedding_engines or {})
        self.created = int(time.time())

    def text_engine(self, model_id: str) -> TextEngine:
        return self._find(self._text, model_id, "chat and completion")

    def embedding_engine(self, model_id: str) -> EmbeddingEngine:
        return self._find(self._embedding, model_id, "embedding")

    def _find(self, engines: Mapping[str, E], model_id: str, kind: str) -> E:
        engine = engines.get(model_id)
        if engine is None:
            served = ", ".join(sorted(engines)) or "none"
            raise ModelNotFound(
                f"The model '{model_id}' does not exist; this server's {kind} models: {served}",
                param="model",
            )
        return engine

    def model_ids(self) -> list[str]:
        return sorted(self._text)

    def embedding_model_ids(self) -> list[str]:
        return sorted(self._embedding)

    def has(self, model_id: str) -> bool:
        return model_id in self._text or model_id in self._embedding
