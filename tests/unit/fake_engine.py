"""A fake text engine: words are tokens, and it answers with a fixed list of words."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from privserve.engine.base import (
    EngineStats,
    GenerationRequest,
    OutputConstraint,
    PromptMessage,
    TemplateThinking,
    TokenEvent,
    TokenLogprob,
    TopLogprob,
)
from privserve.engine.schema_limits import check_schema
from privserve.errors import Overloaded


class FakeStream:
    def __init__(self, words: Sequence[str], request: GenerationRequest) -> None:
        self._events = self._make(words, request)
        self.cancelled = False

    async def _make(
        self, words: Sequence[str], request: GenerationRequest
    ) -> AsyncIterator[TokenEvent]:
        sampling = request.sampling
        limit = sampling.max_tokens
        for i, word in enumerate(words[:limit], start=1):
            last = i == min(limit, len(words))
            finish = ("length" if i == limit else "stop") if last else None
            logprobs: tuple[TokenLogprob, ...] = ()
            if sampling.logprobs:
                # Word i has log-probability -i; its alternatives are "a", "b", ... below it.
                top = tuple(
                    TopLogprob(chr(97 + k), (97 + k,), -i - k - 1)
                    for k in range(sampling.top_logprobs)
                )
                logprobs = (TokenLogprob(word, tuple(word.encode()), -float(i), top),)
            # The fake's cache always holds the prompt's first token.
            yield TokenEvent(word, i, finish, logprobs, cached_tokens=1 if finish else 0)

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> TokenEvent:
        return await self._events.__anext__()

    def cancel(self) -> None:
        self.cancelled = True

    async def aclose(self) -> None:
        self.cancel()


class FakeEngine:
    def __init__(self, words: Sequence[str] = ("Hello", " there", "!"), context: int = 64) -> None:
        self.words = list(words)
        self.context = context
        self.capacity: int | None = None
        self.streams: list[FakeStream] = []
        self.checked: list[OutputConstraint] = []
        self.has_chat_format = True
        self.template_thinking = TemplateThinking()
        self.generation_prompt = ""  # what the fake's template ends the prompt with
        self.variables: dict[str, Any] = {}
        self.prompts: list[str] = []  # every chat prompt, as rendered

    @property
    def model_id(self) -> str:
        return "fake"

    @property
    def context_length(self) -> int:
        return self.context

    @property
    def vocab_size(self) -> int:
        return 100

    def render_chat(
        self,
        messages: Sequence[PromptMessage],
        tools: Sequence[dict[str, Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        self.variables = dict(variables or {})
        return " ".join(f"{m.role}: {m.content}" for m in messages) + self.generation_prompt

    @property
    def thinking(self) -> TemplateThinking:
        return self.template_thinking

    @property
    def tool_format(self) -> None:
        return None

    def tokenize(self, text: str, *, is_chat: bool, add_special: bool = True) -> list[int]:
        if is_chat:
            self.prompts.append(text)
        return [len(w) for w in text.split()]

    def detokenize(self, ids: Sequence[int]) -> str:
        return " ".join("x" * i for i in ids)

    def check_constraint(self, constraint: OutputConstraint) -> None:
        """Checks what the llama engine checks before building a grammar: the bounds."""
        self.checked.append(constraint)
        if constraint.schema_json is not None:
            check_schema(constraint.schema, param=constraint.param)

    def health(self) -> str | None:
        return None

    def stop(self) -> None:
        self.capacity = 0

    def generate(self, request: GenerationRequest) -> FakeStream:
        if self.capacity is not None and len(self.streams) >= self.capacity:
            raise Overloaded("fake is full")
        stream = FakeStream(self.words, request)
        self.streams.append(stream)
        return stream

    def stats(self) -> EngineStats:
        return EngineStats(0, 0, len(self.streams))
