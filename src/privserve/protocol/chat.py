"""Chat completion wire types, named as in the official OpenAI client."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from privserve.protocol.common import (
    RequestModel,
    SamplingFields,
    Usage,
    UsageWhenAsked,
)


class ContentPart(RequestModel):
    """One part of a list-valued `content`; only text parts reach a text model."""

    type: str
    text: str | None = None


class ChatMessage(RequestModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_required_except_for_assistant(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"content is required for a {self.role} message")
        return self


class JsonSchemaFormat(RequestModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = "response"
    description: str | None = None
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(RequestModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_for_json_schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema with a schema")
        return self


class FunctionDefinition(RequestModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Tool(RequestModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(RequestModel):
    name: str


class NamedToolChoice(RequestModel):
    type: Literal["function"]
    function: NamedFunction


MAX_TEMPLATE_KWARGS = 32

# OpenAI's reasoning efforts; "none" turns a thinking model's thinking off.
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


def plain_template_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """Template variables are few plain values: a template cannot be made to walk a
    client's nested structure."""
    if len(kwargs or {}) > MAX_TEMPLATE_KWARGS:
        raise ValueError(f"chat_template_kwargs may hold {MAX_TEMPLATE_KWARGS} entries")
    for name, value in (kwargs or {}).items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise ValueError(
                f"chat_template_kwargs values are strings, numbers or booleans; {name!r} is not"
            )
    return kwargs


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    # Thinking models: extra variables for the chat template (`enable_thinking`, as
    # FastGPT and vLLM pass it), the switch some clients send at the top, OpenAI's effort,
    # and the most tokens the reasoning may take (two names, as servers call it).
    chat_template_kwargs: dict[str, Any] | None = None
    enable_thinking: bool | None = None
    reasoning_effort: ReasoningEffort | None = None
    thinking_budget: int | None = Field(None, ge=0)
    max_reasoning_tokens: int | None = Field(None, ge=0)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @model_validator(mode="after")
    def _top_logprobs_needs_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs to be true")
        return self

    @model_validator(mode="after")
    def _plain_template_kwargs(self) -> ChatCompletionRequest:
        kwargs = self.chat_template_kwargs or {}
        if len(kwargs) > MAX_TEMPLATE_KWARGS:
            raise ValueError(f"chat_template_kwargs may hold {MAX_TEMPLATE_KWARGS} entries")
        for name, value in kwargs.items():
            if not isinstance(value, str | int | float | bool) and value is not None:
                raise ValueError(
                    f"chat_template_kwargs values are strings, numbers or booleans; {name!r} is not"
                )
        return self

    def thinking_wanted(self) -> bool | None:
        """Whether the client turned thinking on or off; None when it said nothing."""
        kwargs = self.chat_template_kwargs or {}
        if isinstance(kwargs.get("enable_thinking"), bool):
            return bool(kwargs["enable_thinking"])
        if self.enable_thinking is not None:
            return self.enable_thinking
        if self.reasoning_effort is not None:
            return self.reasoning_effort != "none"
        return None

    def reasoning_budget(self) -> int | None:
        return (
            self.thinking_budget if self.thinking_budget is not None else self.max_reasoning_tokens
        )


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ToolCall] | None = None
    # A thinking model's reasoning, apart from the answer; absent for other models.
    reasoning_content: str | None = None
    reasoning: str | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_reasoning(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for name in ("reasoning_content", "reasoning"):
            if data.get(name, "") is None:
                data.pop(name)
        return data


class TopLogprobEntry(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class LogprobEntry(TopLogprobEntry):
    top_logprobs: list[TopLogprobEntry]


class ChoiceLogprobs(BaseModel):
    content: list[LogprobEntry] | None
    refusal: None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChunkChoice(BaseModel):
    index: int
    # Only the fields that changed: the role on the first chunk, then content or tool calls.
    delta: dict[str, Any]
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length", "tool_calls"] | None = None


class ChatCompletionChunk(UsageWhenAsked):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    system_fingerprint: str | None = None
