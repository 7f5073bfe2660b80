"""Embedding and rerank models served with dynamic batching on the torch thread."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Generic

import anyio
import numpy as np
import numpy.typing as npt

from privserve.config import EmbeddingConfig, RerankConfig
from privserve.engine.base import EmbeddingEngine, Priority
from privserve.engine.embedding.batcher import DynamicBatcher, Item
from privserve.engine.embedding.cross_encoder import CrossEncoderScorer, Pair
from privserve.engine.embedding.model import SentenceEmbedder
from privserve.engine.embedding.tokens import TokenCounter
from privserve.engine.embedding.torch_thread import TorchThread

INLINE_COUNT_CHARS = 2048  # up to this much text is tokenized on the event loop


async def count_tokens(
    counter: TokenCounter, texts: Sequence[str], pairs_with: Sequence[str] | None = None
) -> list[int]:
    size = sum(map(len, texts)) + (sum(map(len, pairs_with)) if pairs_with else 0)
    if size <= INLINE_COUNT_CHARS:
        return counter.count_inline(texts, pairs_with)
    # Tokenizing thousands of texts takes milliseconds: keep it off the event loop.
    return await anyio.to_thread.run_sync(counter.count, texts, pairs_with)


class _BatchedOnTorchThread(Generic[Item]):
    """A model whose passes run on the torch thread, fed by a dynamic batcher."""

    def __init__(
        self,
        forward: Callable[[list[Item]], npt.NDArray[np.float32]],
        thread: TorchThread,
        *,
        window_ms: float,
        max_batch: int,
        max_queued: int,
        batch_max_wait_s: float,
    ) -> None:
        async def encode(items: list[Item]) -> npt.NDArray[np.float32]:
            return await thread.run(forward, items)

        self._batcher: DynamicBatcher[Item] = DynamicBatcher(
            encode,
            window_s=window_ms / 1000,
            max_batch=max_batch,
            max_queued_texts=max_queued,
            batch_max_wait_s=batch_max_wait_s,
        )

    def start(self) -> None:
        """Starts batching on the running event loop."""
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self._batcher.stats).items()}


class BatchedEmbedder(_BatchedOnTorchThread[str]):
    def __init__(
        self,
        embedder: SentenceEmbedder,
        config: EmbeddingConfig,
        thread: TorchThread,
        batch_max_wait_s: float = 10.0,
    ) -> None:
        super().__init__(
            embedder.encode,
            thread,
            window_ms=config.batch_window_ms,
            max_batch=config.max_batch,
            max_queued=config.max_queued_texts,
            batch_max_wait_s=batch_max_wait_s,
        )
        self._embedder = embedder

    @classmethod
    def load(
        cls,
        model_id: str,
        path: Path,
        config: EmbeddingConfig,
        thread: TorchThread,
        batch_max_wait_s: float = 10.0,
    ) -> BatchedEmbedder:
        """Blocks while the model loads (on the torch thread); call it off the event loop."""
        embedder = thread.call(
            lambda: SentenceEmbedder(
                model_id, path, shortenable=config.shortenable, dtype=config.dtype
            )
        )
        return cls(embedder, config, thread, batch_max_wait_s)

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def dimensions(self) -> int:
        return self._embedder.dimensions

    @property
    def shortenable(self) -> bool:
        return self._embedder.shortenable

    @property
    def max_input_tokens(self) -> int:
        return self._embedder.max_input_tokens

    @property
    def vocab_size(self) -> int:
        return self._embedder.tokens.vocab_size

    @property
    def prompts(self) -> Mapping[str, str]:
        return self._embedder.prompts

    @property
    def default_prompt_name(self) -> str | None:
        return self._embedder.default_prompt_name

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return await count_tokens(self._embedder.tokens, texts)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._embedder.tokens.detokenize(ids)

    async def embed(
        self, texts: Sequence[str], priority: Priority = "interactive"
    ) -> npt.NDArray[np.float32]:
        return await self._batcher.embed(texts, priority)


class BatchedCrossEncoder(_BatchedOnTorchThread[Pair]):
    """A cross-encoder reranker: query-document pairs from many requests share passes."""

    method = "cross-encoder"

    def __init__(
        self,
        scorer: CrossEncoderScorer,
        config: RerankConfig,
        thread: TorchThread,
        batch_max_wait_s: float = 10.0,
    ):
        super().__init__(
            scorer.score,
            thread,
            window_ms=config.batch_window_ms,
            max_batch=config.max_batch,
            max_queued=config.max_queued_pairs,
            batch_max_wait_s=batch_max_wait_s,
        )
        self._scorer = scorer

    @classmethod
    def load(
        cls,
        model_id: str,
        path: Path,
        config: RerankConfig,
        thread: TorchThread,
        batch_max_wait_s: float = 10.0,
    ) -> BatchedCrossEncoder:
        """Blocks while the model loads (on the torch thread); call it off the event loop."""
        scorer = thread.call(lambda: CrossEncoderScorer(model_id, path, dtype=config.dtype))
        return cls(scorer, config, thread, batch_max_wait_s)

    @property
    def model_id(self) -> str:
        return self._scorer.model_id

    @property
    def max_input_tokens(self) -> int:
        return self._scorer.max_input_tokens

    async def count_tokens(self, query: str, documents: Sequence[str]) -> tuple[int, int]:
        tokens = self._scorer.tokens
        query_tokens = (await count_tokens(tokens, [query]))[0]
        pairs = await count_tokens(tokens, [query] * len(documents), documents)
        return query_tokens, sum(min(n, self.max_input_tokens) for n in pairs)

    async def score(
        self, query: str, documents: Sequence[str], priority: Priority = "interactive"
    ) -> list[float]:
        scores = await self._batcher.embed([(query, d) for d in documents], priority)
        return [float(s) for s in scores]


class CosineReranker:
    """Rerank without a cross-encoder: the cosine similarity of the query's and each
    document's normalized vectors from an embedding model, which also gives its id."""

    method = "cosine"

    def __init__(self, embedder: EmbeddingEngine) -> None:
        self._embedder = embedder

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def max_input_tokens(self) -> int:
        return self._embedder.max_input_tokens

    def _instructed(self, query: str) -> str:
        """The query as the model reads queries: after its query prompt, if it has one."""
        return self._embedder.prompts.get("query", "") + query

    async def count_tokens(self, query: str, documents: Sequence[str]) -> tuple[int, int]:
        counts = await self._embedder.count_tokens([self._instructed(query), *documents])
        # Long documents are read up to the model's limit, as a cross-encoder would.
        return counts[0], sum(min(n, self.max_input_tokens) for n in counts)

    async def score(
        self, query: str, documents: Sequence[str], priority: Priority = "interactive"
    ) -> list[float]:
        vectors = await self._embedder.embed([self._instructed(query), *documents], priority)
        return [float(s) for s in np.asarray(vectors[1:]) @ np.asarray(vectors[0])]

    def stats(self) -> dict[str, float]:
        return self._embedder.stats()
