"""Rerank: score documents against a query, best first.

A cross-encoder reads the query and each document together. Without one, the reranker is an
embedding model: the score is the cosine similarity of the query's and the document's
normalized vectors.
"""

from __future__ import annotations

from privserve.engine.base import RerankEngine
from privserve.errors import ContextLengthExceeded
from privserve.metering.meter import Ticket
from privserve.protocol.rerank import (
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
from privserve.services.catalog import ModelCatalog
from privserve.services.generation import new_id


class RerankService:
    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    async def _scores(
        self, engine: RerankEngine, query: str, texts: list[str], ticket: Ticket
    ) -> tuple[list[float], int]:
        query_tokens, tokens = await engine.count_tokens(query, texts)
        limit = engine.max_input_tokens
        if query_tokens > limit:
            raise ContextLengthExceeded(
                f"the query has {query_tokens} tokens; this model reads at most {limit}",
                param="query",
            )
        await ticket.admit(tokens, tokens)
        scores = await engine.score(query, texts, priority=ticket.priority)
        await ticket.settle(completion_tokens=0)
        return scores, tokens

    async def rerank(self, request: RerankRequest, ticket: Ticket) -> RerankResponse:
        texts = request.texts()
        async with self._catalog.using_reranker(request.model) as engine:
            scores, tokens = await self._scores(engine, request.query, texts, ticket)
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

    async def rerank_legacy(
        self, request: LegacyRerankRequest, ticket: Ticket
    ) -> list[LegacyRerankResult]:
        texts = [i.text for i in request.inputs]
        async with self._catalog.using_reranker(request.model) as engine:
            scores, _ = await self._scores(engine, request.query, texts, ticket)
        ranked = sorted(zip(request.inputs, scores, strict=True), key=lambda pair: -pair[1])
        return [LegacyRerankResult(id=item.id, score=score) for item, score in ranked]
