"""What services see of an engine: plain dataclasses in, token events out, no HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "length"]
# Who goes first when requests wait: `interactive` keys before `batch` ones (indexing jobs),
# up to the longest a batch request may be passed over.
Priority = Literal["interactive", "batch"]


def goes_first(priority: Priority, waited_s: float, batch_max_wait_s: float) -> bool:
    """Whether a waiting request is served with the interactive ones: it is one, or it is a
    batch request that has waited the bound (slowed, never starved)."""
    return priority != "batch" or waited_s >= batch_max_wait_s


@dataclass(frozen=True)
class ModelSpec:
    """A model file to load and the id clients address it by."""

    model_id: str
    path: Path
    chat_template: str | None = None


@dataclass(frozen=True)
class PromptMessage:
    """One chat turn, already flattened to text; roles: system, user, assistant, tool.

    For chat templates with a tool format of their own, an assistant turn keeps its calls
    (`{"id", "type", "function": {"name", "arguments": {...}}}`) and a tool turn the id of
    the call it answers; other formats read them from `content`."""

    role: str
    content: str
    tool_calls: tuple[dict[str, Any], ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class TemplateThinking:
    """What a chat template says of thinking: whether the model writes a `<think>` block
    (the template writes or strips one), and whether the template reads `enable_thinking`
    to render thinking off its own way (Qwen3)."""

    thinks: bool = False
    has_switch: bool = False


# The tool-call format a chat template describes itself, when it has one:
# "hermes" is `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Qwen2.5 and later,
# Hermes 2 Pro and the templates made after them); "llama3-json" is one bare
# `{"name": ..., "parameters": {...}}` per turn, as Llama 3.1 and later templates ask for.
ToolFormat = Literal["hermes", "llama3-json"]


@dataclass(frozen=True)
class OutputConstraint:
    """What the output must be, as data: each engine turns it into its own mechanism.

    A JSON document: any object when `schema_json` is None (OpenAI's `json_object`), else one
    the JSON schema accepts. With `tags`, each document sits between the two texts (a chat
    template's tool-call tags), up to `max_documents` of them one per line. `param` names
    the request field the constraint came from, for errors about it. A grammar the client
    wrote itself (GBNF text, its start rule `root`) comes as `gbnf`, in place of a schema."""

    schema_json: str | None
    param: str
    tags: tuple[str, str] | None = None
    max_documents: int = 1
    gbnf: str | None = None

    @classmethod
    def grammar(cls, gbnf: str, *, param: str = "grammar") -> OutputConstraint:
        return cls(None, param, gbnf=gbnf)

    @classmethod
    def json_schema(
        cls,
        schema: Mapping[str, Any],
        *,
        param: str,
        tags: tuple[str, str] | None = None,
        max_documents: int = 1,
    ) -> OutputConstraint:
        # Canonical text: equal schemas make equal (hashable) constraints.
        text = json.dumps(schema, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return cls(text, param, tags, max_documents)

    @property
    def schema(self) -> Any:
        return None if self.schema_json is None else json.loads(self.schema_json)


@dataclass(frozen=True)
class SamplingParams:
    """OpenAI's sampling parameters plus the common extensions (top_k, min_p, repetition)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    constraint: OutputConstraint | None = None  # structured output, tool calls

    @property
    def is_greedy(self) -> bool:
        """Argmax of the (biased) logits, with no penalties or constraint that depend on the
        history."""
        return (
            self.temperature == 0.0
            and self.presence_penalty == 0.0
            and self.frequency_penalty == 0.0
            and self.repetition_penalty == 1.0
            and self.constraint is None
        )


@dataclass(frozen=True)
class ThinkingControl:
    """A thinking model's reasoning block, as the engine follows it: the answer starts
    inside it (the prompt opened it) or may open it first. The engine ends the block itself
    once it has `budget` tokens (None: no bound), writing `close_tokens` (the closing tag)
    as its last ones; with `grammar_after_block` the constraint holds only the answer after
    the block, and the reasoning stays free text."""

    open_text: str
    close_text: str
    close_tokens: tuple[int, ...]
    starts_inside: bool
    budget: int | None = None
    grammar_after_block: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    prompt_tokens: Sequence[int]
    sampling: SamplingParams
    request_id: str = ""
    priority: Priority = "interactive"
    thinking: ThinkingControl | None = None


@dataclass(frozen=True)
class TopLogprob:
    token: str
    bytes: tuple[int, ...]
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and, when asked, the likeliest others."""

    token: str
    bytes: tuple[int, ...]
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class TokenEvent:
    """Text decoded since the last event; `finish_reason` is set on the last one only.

    `cached_tokens` (prompt tokens served from the prefix cache) is set on the last event.
    """

    text: str
    completion_tokens: int
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    cached_tokens: int = 0


@dataclass(frozen=True)
class EngineStats:
    queued_requests: int
    running_requests: int
    completed_requests: int
    generated_tokens: int = 0
    slots: int = 1
    prefill_tokens: int = 0
    cached_prompt_tokens: int = 0
    steps: int = 0
    last_step_ms: float = 0.0
    tokens_per_second: float = 0.0
    # KV cache positions the slots hold (a prefix copied between slots counts in each,
    # though llama.cpp shares its cells), and the cache's size.
    kv_cells_used: int = 0
    kv_cells: int = 0
    # Tokens drafted from the prompt and checked by the model, and those it kept.
    draft_tokens: int = 0
    accepted_draft_tokens: int = 0
    # Running sequences moved into another slot's stream to keep them in one run.
    gathered_sequences: int = 0


class TokenStream(Protocol):
    """Text of one request as decoded; `aclose` (or `cancel`) frees its work in the engine."""

    def __aiter__(self) -> AsyncIterator[TokenEvent]: ...

    async def __anext__(self) -> TokenEvent: ...

    def cancel(self) -> None: ...

    async def aclose(self) -> None: ...


class TextEngine(Protocol):
    """A loaded text-generation model that serves many requests."""

    @property
    def model_id(self) -> str: ...

    @property
    def context_length(self) -> int: ...

    @property
    def has_chat_format(self) -> bool:
        """False for a model that serves text completions only (no chat template)."""
        ...

    def render_chat(
        self,
        messages: Sequence[PromptMessage],
        tools: Sequence[dict[str, Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        """The model's own chat format, ending with the assistant's turn opened; `tools`
        (OpenAI tool definitions) go to a template that has a tool format, `variables` (the
        request's `chat_template_kwargs`) to the template as they are. InvalidRequest for a
        model without a chat format."""
        ...

    @property
    def thinking(self) -> TemplateThinking:
        """What the chat template says of thinking (nothing, without a template)."""
        ...

    @property
    def tool_format(self) -> ToolFormat | None:
        """The chat template's own tool-call format, or None when it has none."""
        ...

    @property
    def vocab_size(self) -> int: ...

    def tokenize(self, text: str, *, is_chat: bool, add_special: bool = True) -> list[int]:
        """Token ids fed to the model; `is_chat` text carries its own special tokens;
        without `add_special` the tokenizer adds none (no BOS) of its own."""
        ...

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of token ids, special tokens written out."""
        ...

    def check_constraint(self, constraint: OutputConstraint) -> None:
        """Raises InvalidRequest (naming `constraint.param`) when the engine cannot hold an
        output to it, or it would cost more than the server allows. May take a while for a
        large schema: call it off the event loop, before `generate`."""
        ...

    def generate(self, request: GenerationRequest) -> TokenStream:
        """Queues the request (raising Overloaded when full); iterate to get its text."""
        ...

    def stats(self) -> EngineStats: ...

    def health(self) -> str | None:
        """None while the engine serves; else why it cannot (its thread died)."""
        ...

    def stop(self) -> None:
        """Refuses new requests and ends running ones with ShuttingDown; returns at once."""
        ...


class EmbeddingEngine(Protocol):
    """A loaded embedding model that batches texts from many requests."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_input_tokens(self) -> int: ...

    @property
    def shortenable(self) -> bool:
        """Trained so that a vector's leading dimensions make a shorter one (Matryoshka)."""
        ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def prompts(self) -> Mapping[str, str]:
        """Instructions the model was trained to read before texts of a kind, by name
        (sentence-transformers' `prompts`: Qwen3-Embedding's "query")."""
        ...

    @property
    def default_prompt_name(self) -> str | None:
        """The prompt put before every text that asks for none."""
        ...

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model sees for each text, before truncation."""
        ...

    def detokenize(self, ids: Sequence[int]) -> str: ...

    async def embed(self, texts: Sequence[str], priority: Priority = "interactive") -> Any:
        """Normalized float32 vectors, one row per text (a numpy array)."""
        ...

    def stats(self) -> dict[str, float]: ...


class RerankEngine(Protocol):
    """Scores documents against a query: a cross-encoder, or cosine over an embedding model."""

    method: str  # "cross-encoder" or "cosine"

    @property
    def model_id(self) -> str: ...

    @property
    def max_input_tokens(self) -> int: ...

    async def count_tokens(self, query: str, documents: Sequence[str]) -> tuple[int, int]:
        """(the query's tokens, all tokens the model reads for this request)."""
        ...

    async def score(
        self, query: str, documents: Sequence[str], priority: Priority = "interactive"
    ) -> list[float]:
        """One relevance score per document, higher is more relevant."""
        ...

    def stats(self) -> dict[str, float]: ...
