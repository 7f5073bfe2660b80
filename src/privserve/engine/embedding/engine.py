"""An embedding model served with dynamic batching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt

from privserve.config import EmbeddingConfig
from privserve.engine.embedding.batcher import DynamicBatcher
from privserve.engine.embedding.model import SentenceEmbedder


class BatchedEmbedder:
    def __init__(self, embedder: SentenceEmbedder, config: EmbeddingConfig) -> None:
        self._embedder = embedder
        self._batcher = DynamicBatcher(
            embedder.encode,
            window_s=config.batch_window_ms / 1000,
            max_batch=config.max_batch,
            max_queued_texts=config.max_queued_texts,
        )

    @classmethod
    def load(cls, model_id: str, path: Path, config: EmbeddingConfig) -> BatchedEmbedder:
        return cls(SentenceEmbedder(model_id, path, threads=config.threads), config)

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def dimensions(self) -> int:
        return self._embedder.dimensions

    @property
    def max_input_tokens(self) -> int:
        return self._embedder.max_input_tokens

    @property
    def vocab_size(self) -> int:
        return self._embedder.vocab_size

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._embedder.count_tokens(texts)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._embedder.detokenize(ids)

    def start(self) -> None:
        """Starts batching on the running event loop."""
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return await self._batcher.embed(texts)

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self._batcher.stats).items()}
