"""Rerank wire types: the Cohere/Jina shape FastGPT sends, and FastGPT 4.6's legacy one."""

from __future__ import annotations

from pydantic import BaseModel, Field

from privserve.protocol.common import RequestModel


class RerankDocument(RequestModel):
    text: str


class RerankRequest(RequestModel):
    model: str | None = None  # FastGPT's requestUrl mode may leave it out
    query: str = Field(min_length=1)
    documents: list[str | RerankDocument] = Field(min_length=1, max_length=4096)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankTokens(BaseModel):
    input_tokens: int


class RerankMeta(BaseModel):
    tokens: RerankTokens


class RerankUsage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    usage: RerankUsage
    meta: RerankMeta


class LegacyInput(RequestModel):
    id: str
    text: str


class LegacyRerankRequest(RequestModel):
    """FastGPT 4.6: `{query, inputs: [{id, text}]}` answered by `[{id, score}]`."""

    model: str | None = None
    query: str = Field(min_length=1)
    inputs: list[LegacyInput] = Field(min_length=1, max_length=4096)


class LegacyRerankResult(BaseModel):
    id: str
    score: float
