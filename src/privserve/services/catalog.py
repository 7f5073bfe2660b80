"""The models this server offers, by the id clients send in `model`."""

from __future__ import annotations

import time
from collections.abc import Mapping

from privserve.engine.base import TextEngine
from privserve.errors import ModelNotFound


class ModelCatalog:
    def __init__(self, text_engines: Mapping[str, TextEngine]) -> None:
        self._text = dict(text_engines)
        self.created = int(time.time())

    def text_engine(self, model_id: str) -> TextEngine:
        engine = self._text.get(model_id)
        if engine is None:
            served = ", ".join(sorted(self._text)) or "none"
            raise ModelNotFound(
                f"The model '{model_id}' does not exist; this server offers: {served}",
                param="model",
            )
        return engine

    def model_ids(self) -> list[str]:
        return sorted(self._text)

    def has(self, model_id: str) -> bool:
        return model_id in self._text
