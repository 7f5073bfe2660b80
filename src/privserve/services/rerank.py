"""Rerank: score documents against a query, best first.

Without a cross-encoder, the reranker is the embedding model: the score is the cosine
similarity of the query's and the document's normalized vectors.
"""

from __future__ import annotations

import anyio
import numpy as np

from privserve.api.schemas.rerank import (
    LegacyRerankRequest,
    LegacyRerankResult,
    RerankDocument,
    RerankMeta,
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankTokens,
    RerankUsage,
)
from privserve.engine.base import EmbeddingEngine
from privserve.errors import ContextLengthExceeded, ModelNotFound
from privserve.services.catalog import ModelCatalog
from privserve.services.generation import new_id


class RerankService:
    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    def _engine(self, model: str | None) -> EmbeddingEngine:
        served = self._catalog.embedding_model_ids()
        if model is None:
            if not served:
                raise ModelNotFound("this server has no rerank model", param="model")
            return self._catalog.embedding_engine(served[0])
        return self._catalog.embedding_engine(model)

    async def _scores(
        self, engine: EmbeddingEngine, query: str, texts: list[str]
    ) -> tuple[list[float], int]:
        inputs = [query, *texts]
        counts = await anyio.to_thread.run_sync(engine.count_tokens, inputs)
        limit = engine.max_input_tokens
        if counts[0] > limit:
            raise ContextLengthExceeded(
                f"the query has {counts[0]} tokens; this model reads at most {limit}",
                param="query",
            )
        vectors = await engine.embed(inputs)
        scores = np.asarray(vectors[1:]) @ np.asarray(vectors[0])
        # Long documents are read up to the model's limit, as a cross-encoder would.
        return [float(s) for s in scores], sum(min(c, limit) for c in counts)

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        engine = self._engine(request.model)
        texts = request.texts()
        scores, tokens = await self._scores(engine, request.query, texts)
        order = sorted(range(len(texts)), key=lambda i: -scores[i])[: request.top_n]
        return RerankResponse(
            id=new_id("rerank-"),
            model=engine.model_id,
            results=[
                RerankResult(
                    index=i,
                    relevance_score=scores[i],
                    document=RerankDocument(text=texts[i]) if request.return_documents else None,
                )
                for i in order
            ],
            usage=RerankUsage(total_tokens=tokens),
            meta=RerankMeta(tokens=RerankTokens(input_tokens=tokens)),
        )

    async def rerank_legacy(self, request: LegacyRerankRequest) -> list[LegacyRerankResult]:
        engine = self._engine(request.model)
        scores, _ = await self._scores(engine, request.query, [i.text for i in request.inputs])
        ranked = sorted(zip(request.inputs, scores, strict=True), key=lambda pair: -pair[1])
        return [LegacyRerankResult(id=item.id, score=score) for item, score in ranked]
