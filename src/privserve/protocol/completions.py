"""Text completion wire types (`/v1/completions`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from privserve.protocol.common import SamplingFields, UsageWhenAsked


class CompletionRequest(SamplingFields):
    # A string, strings, token ids, or lists of token ids, as OpenAI accepts.
    prompt: str | list[str] | list[int] | list[list[int]]
    # OpenAI's default for this endpoint; null means the default too, as OpenAI reads it.
    max_tokens: int = Field(16, ge=1)
    echo: bool | None = False
    logprobs: int | None = Field(None, ge=0, le=5)
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _null_is_the_default(cls, value: object) -> object:
        return 16 if value is None else value

    @field_validator("prompt")
    @classmethod
    def _non_empty(
        cls, value: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        if isinstance(value, list) and (not value or any(v == [] for v in value)):
            raise ValueError("prompt must not be empty")
        return value


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class Completion(UsageWhenAsked):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    system_fingerprint: str | None = None
