"""`/v1/embeddings` wire types, named as in the official OpenAI client."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from privserve.protocol.common import RequestModel

EmbeddingInput = str | list[str] | list[int] | list[list[int]]
# Which side of a search the inputs are on, in the names embedding APIs use (Voyage, Cohere,
# NVIDIA): a model trained with a query instruction reads it before queries only.
InputType = Literal["query", "search_query", "document", "passage", "search_document"]
QUERY_INPUT_TYPES = frozenset({"query", "search_query"})


class EmbeddingRequest(RequestModel):
    model: str = Field(min_length=1)
    # A string, strings, token ids, or lists of token ids, as OpenAI accepts.
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    input_type: InputType | None = None
    # One of the model's own prompts by name, as sentence-transformers and TEI name them.
    prompt_name: str | None = Field(None, min_length=1, max_length=64)

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: EmbeddingInput) -> EmbeddingInput:
        if value == "" or value == []:
            raise ValueError("input must not be empty")
        if isinstance(value, list) and any(v == "" or v == [] for v in value):
            raise ValueError("input must not contain empty strings or empty token lists")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # base64 of little-endian float32 when asked


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
