"""What chat and text completions share: token budgets, choices, ids and stream merging."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio

from privserve.config import SamplingDefaults
from privserve.engine.base import (
    FinishReason,
    GenerationRequest,
    OutputConstraint,
    Priority,
    SamplingParams,
    TextEngine,
    ThinkingControl,
    TokenEvent,
    TokenLogprob,
    TokenStream,
)
from privserve.errors import ContextLengthExceeded, EngineError, InvalidRequest
from privserve.metering.meter import Ticket, status_of
from privserve.protocol.common import SamplingFields

T = TypeVar("T")
_Value = TypeVar("_Value", int, float)


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def completion_budget(
    engine: TextEngine,
    prompt_tokens: int,
    max_tokens: int | None,
    *,
    prompt_param: str,
    fit: bool = False,
) -> int:
    """Tokens the answer may take; without `max_tokens`, the rest of the context. A
    `max_tokens` past the context is a 400, or with `fit` the room that is left."""
    if prompt_tokens >= engine.context_length:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {engine.context_length} tokens, "
            f"but the prompt has {prompt_tokens} tokens. Shorten the prompt.",
            param=prompt_param,
        )
    if max_tokens is None:
        return engine.context_length - prompt_tokens
    if fit:
        return min(max_tokens, engine.context_length - prompt_tokens)
    if prompt_tokens + max_tokens > engine.context_length:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {engine.context_length} tokens. "
            f"However, you requested {prompt_tokens + max_tokens} tokens "
            f"({prompt_tokens} in the prompt, {max_tokens} for the completion). "
            f"Reduce the prompt or max_tokens.",
            param="max_tokens",
        )
    return max_tokens


def choice_requests(
    fields: SamplingFields,
    prompt: Sequence[int],
    max_tokens: int,
    request_id: str,
    *,
    top_logprobs: int | None = None,
    constraint: OutputConstraint | None = None,
    priority: Priority = "interactive",
    thinking: ThinkingControl | None = None,
    defaults: SamplingDefaults | None = None,
) -> list[GenerationRequest]:
    """One engine request per choice; with a seed, choice i uses seed + i so choices differ.
    What the request leaves unset comes from the model's `defaults`, else OpenAI's.

    `top_logprobs` None: no log-probabilities; a number: the chosen token's and that many
    alternatives'. The engine shares the prompt's cache between the choices."""
    n = fields.n or 1
    model = defaults or SamplingDefaults()
    temperature = _first(fields.temperature, model.temperature, 1.0)
    top_p = _first(fields.top_p, model.top_p, 1.0)
    top_k = max(_first(fields.top_k, model.top_k, 0), 0)
    min_p = _first(fields.min_p, model.min_p, 0.0)
    repetition_penalty = _first(fields.repetition_penalty, model.repetition_penalty, 1.0)
    requests = []
    for i in range(n):
        sampling = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            min_p=min_p,
            stop=fields.stop_sequences(),
            seed=None if fields.seed is None else fields.seed + i,
            presence_penalty=fields.presence_penalty or 0.0,
            frequency_penalty=fields.frequency_penalty or 0.0,
            repetition_penalty=repetition_penalty,
            logit_bias=fields.token_biases(),
            logprobs=top_logprobs is not None,
            top_logprobs=top_logprobs or 0,
            constraint=constraint,
        )
        requests.append(
            GenerationRequest(prompt, sampling, f"{request_id}/{i}", priority, thinking)
        )
    return requests


def _first(given: _Value | None, model: _Value | None, default: _Value) -> _Value:
    if given is not None:
        return given
    return default if model is None else model


def with_grammar(
    fields: SamplingFields, other: OutputConstraint | None, *, other_name: str = ""
) -> OutputConstraint | None:
    """The request's `grammar` as its constraint, or `other` when it has none; a grammar and
    another constraint at once are a 400 (the output cannot follow both)."""
    if fields.grammar is None:
        return other
    if other is not None:
        raise InvalidRequest(
            f"grammar cannot be combined with {other_name or other.param}: give one of them",
            param="grammar",
        )
    return OutputConstraint.grammar(fields.grammar)


async def check_constraint(engine: TextEngine, constraint: OutputConstraint | None) -> None:
    """Builds and checks the constraint before the request is queued, off the event loop: a
    large schema takes a while, and a bad one is a 400 before any byte of the answer."""
    if constraint is not None:
        await anyio.to_thread.run_sync(engine.check_constraint, constraint)


def check_logit_bias(engine: TextEngine, fields: SamplingFields) -> None:
    check_token_ids(engine.vocab_size, [token for token, _ in fields.token_biases()], "logit_bias")


def check_token_ids(vocab_size: int, tokens: Sequence[int], param: str) -> None:
    bad = next((t for t in tokens if not 0 <= t < vocab_size), None)
    if bad is not None:
        raise InvalidRequest(
            f"token id {bad} is outside the model's vocabulary (0..{vocab_size - 1})",
            param=param,
        )


def submit_all(engine: TextEngine, requests: Sequence[GenerationRequest]) -> list[TokenStream]:
    """Queues every request or none: if one is refused, those already queued are cancelled."""
    streams: list[TokenStream] = []
    try:
        for request in requests:
            streams.append(engine.generate(request))
    except BaseException:
        for stream in streams:
            stream.cancel()
        raise
    return streams


@dataclass
class ChoiceResult:
    text: str
    completion_tokens: int
    finish_reason: FinishReason
    logprobs: list[TokenLogprob]
    cached_tokens: int
    # The text as it came: each piece with the tokens made up to it.
    pieces: list[tuple[str, int]]


async def collect(stream: TokenStream) -> ChoiceResult:
    """The whole answer of one choice."""
    pieces: list[tuple[str, int]] = []
    logprobs: list[TokenLogprob] = []
    async for event in stream:
        pieces.append((event.text, event.completion_tokens))
        logprobs.extend(event.logprobs)
        if event.finish_reason is not None:
            return ChoiceResult(
                "".join(text for text, _ in pieces),
                event.completion_tokens,
                event.finish_reason,
                logprobs,
                event.cached_tokens,
                pieces,
            )
    raise EngineError("the request was cancelled before it finished")


@asynccontextmanager
async def closing_all(streams: Sequence[TokenStream]) -> AsyncIterator[None]:
    """Whatever ends the block (done, error, client gone), unfinished requests are cancelled."""
    try:
        yield
    finally:
        for stream in streams:
            await stream.aclose()


async def collect_all(streams: Sequence[TokenStream]) -> list[ChoiceResult]:
    """Every choice's answer; when one fails, the others are cancelled and its error is
    raised as itself."""
    async with closing_all(streams), first_error():
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(collect(s)) for s in streams]
    return [task.result() for task in tasks]


@asynccontextmanager
async def ending(ticket: Ticket, produced: Sequence[int]) -> AsyncIterator[None]:
    """Closes a stream's ticket however the stream ends: done, failed, or its client gone
    (recorded with the tokens `produced` so far)."""
    try:
        yield
    except BaseException as exc:
        await ticket.close_after_error(status_of(exc), completion_tokens=sum(produced))
        raise
    await ticket.close(200)


@asynccontextmanager
async def first_error() -> AsyncIterator[None]:
    """A task group's failure as its first error, so error handlers see the error itself."""
    try:
        yield
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None


async def merge(streams: Sequence[TokenStream]) -> AsyncIterator[tuple[int, TokenEvent]]:
    """Events of several streams as they come, tagged with the stream's index. When one
    stream fails, the others stop being read and its error is raised as itself.

    The caller closes the streams (see `closing_all`)."""
    if len(streams) == 1:  # the common case: no pump task and queue hop per token
        async for event in streams[0]:
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, TokenEvent]] = asyncio.Queue()

    async def pump(index: int, stream: TokenStream) -> None:
        async for event in stream:
            queue.put_nowait((index, event))

    async with first_error(), asyncio.TaskGroup() as group:
        for i, stream in enumerate(streams):
            group.create_task(pump(i, stream))
        remaining = len(streams)
        while remaining:
            item = await queue.get()
            if item[1].finish_reason is not None:
                remaining -= 1
            yield item


async def started(items: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    """Runs `items` to its first item now and returns an iterator over all of them.

    A started generator that is dropped is closed by the event loop, which runs its clean-up
    (cancelling its engine work); one never started is not. A client that leaves before the
    response body is first read would otherwise leave its request running in the engine."""
    first = await anext(items)
    return _continue(first, items)


async def _continue(first: T, rest: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    async with contextlib.aclosing(rest):
        yield first
        async for item in rest:
            yield item
