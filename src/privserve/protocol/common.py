"""Wire types shared by the generation endpoints."""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

MAX_STOP_SEQUENCES = 16
MAX_CHOICES = 16
MAX_LOGIT_BIASES = 1024  # tokens one request may bias; each costs every sampling step
MAX_GRAMMAR_CHARS = 256 * 1024  # as large as a grammar built from a JSON schema may be
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: float | str) -> float:
    """Ollama's durations: seconds as a number, or "300ms", "90s", "5m", "1h"; negative
    is forever."""
    if isinstance(value, int | float):
        return float(value)
    match = DURATION.match(value)
    if match is None:
        raise ValueError(f'{value!r} is not a duration such as 300, "5m" or "1h"')
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


class RequestModel(BaseModel):
    # FastGPT, One API and SDKs add fields of their own: ignore what we do not know.
    # NaN and infinity are no numbers a parameter can take.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class StreamOptions(RequestModel):
    include_usage: bool = False


class SamplingFields(RequestModel):
    """Parameters chat and text completions share, with OpenAI's ranges."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    n: int | None = Field(None, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = Field(None)
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    # Extensions vLLM, llama.cpp's server and Ollama accept; -1 or 0 turns top_k off.
    top_k: int | None = Field(None, ge=-1, le=2**31 - 1)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    # GBNF text, as llama.cpp's server takes it: the output must be a sentence of its `root`.
    grammar: str | None = Field(None, min_length=1, max_length=MAX_GRAMMAR_CHARS)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Ollama's: how long the model stays loaded once idle after this request.
    keep_alive: float | str | None = None

    @field_validator("keep_alive")
    @classmethod
    def _duration(cls, value: float | str | None) -> float | str | None:
        if value is not None:
            duration_seconds(value)
        return value

    def keep_alive_s(self) -> float | None:
        return None if self.keep_alive is None else duration_seconds(self.keep_alive)

    @field_validator("stop")
    @classmethod
    def _bounded_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _token_id_keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and len(value) > MAX_LOGIT_BIASES:
            raise ValueError(f"at most {MAX_LOGIT_BIASES} tokens may be biased")
        for key, bias in (value or {}).items():
            if not key.strip().isdigit():
                raise ValueError(f"logit_bias keys are token ids; {key!r} is not one")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"logit_bias values lie in [-100, 100]; got {bias}")
        return value

    def token_biases(self) -> tuple[tuple[int, float], ...]:
        return tuple((int(k), v) for k, v in (self.logit_bias or {}).items())

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    # Sent for thinking models only: how many of the completion tokens were the reasoning.
    completion_tokens_details: CompletionTokensDetails | None = None

    @classmethod
    def of(
        cls,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_tokens: int = 0,
        reasoning_tokens: int | None = None,
    ) -> Usage:
        details = (
            None
            if reasoning_tokens is None
            else CompletionTokensDetails(reasoning_tokens=reasoning_tokens)
        )
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
            completion_tokens_details=details,
        )

    @model_serializer(mode="wrap")
    def _omit_absent_details(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if data.get("completion_tokens_details", 0) is None:
            data.pop("completion_tokens_details")
        return data


class UsageWhenAsked(BaseModel):
    """A response whose `usage` appears only when set: stream chunks carry `"usage": null`
    only after the client asked for `stream_options.include_usage`, as OpenAI sends them."""

    usage: Usage | None = None

    @model_serializer(mode="wrap")
    def _omit_unasked_usage(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if "usage" not in self.model_fields_set:
            data.pop("usage", None)
        return data
