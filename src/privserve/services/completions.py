"""Text completions (`/v1/completions`): prompts as text or token ids, no chat format."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import anyio

from privserve.config import SamplingDefaults
from privserve.engine.base import FinishReason, TextEngine, TokenStream
from privserve.errors import InvalidRequest
from privserve.metering.meter import Ticket
from privserve.protocol.common import Usage
from privserve.protocol.completions import (
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
)
from privserve.services.catalog import ModelCatalog
from privserve.services.generation import (
    check_constraint,
    check_logit_bias,
    check_token_ids,
    choice_requests,
    closing_all,
    collect_all,
    completion_budget,
    ending,
    merge,
    new_id,
    started,
    submit_all,
    with_grammar,
)
from privserve.services.logprobs import completion_logprobs


@dataclass(frozen=True)
class _Prompt:
    text: str | None  # None where the client sent token ids
    tokens: list[int]


class CompletionService:
    def __init__(
        self,
        catalog: ModelCatalog,
        *,
        fit_max_tokens: bool = False,
        sampling: Mapping[str, SamplingDefaults] | None = None,
    ) -> None:
        self._catalog = catalog
        self._fit_max_tokens = fit_max_tokens
        self._sampling = dict(sampling or {})

    async def create(self, request: CompletionRequest, ticket: Ticket) -> Completion:
        engine, prompts, streams = await self._submit(request, ticket)
        results = await collect_all(streams)
        n = request.n or 1
        choices = []
        for index, result in enumerate(results):
            echo = (prompts[index // n].text if request.echo else None) or ""
            logprobs = None
            if request.logprobs is not None:
                logprobs = completion_logprobs(
                    result.logprobs, text_offset=len(echo), with_top=request.logprobs > 0
                )
            choices.append(
                CompletionChoice(
                    text=echo + result.text,
                    index=index,
                    logprobs=logprobs,
                    finish_reason=result.finish_reason,
                )
            )
        prompt_tokens = sum(len(p.tokens) for p in prompts)
        completion_tokens = sum(r.completion_tokens for r in results)
        # The n choices of a prompt share it: its cache use is counted from the first.
        cached_tokens = sum(r.cached_tokens for r in results[::n])
        await ticket.settle(
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
            finish_reason=results[0].finish_reason,
        )
        return Completion(
            id=new_id("cmpl-"),
            created=int(time.time()),
            model=engine.model_id,
            choices=choices,
            usage=Usage.of(prompt_tokens, completion_tokens, cached_tokens=cached_tokens),
        )

    async def stream(self, request: CompletionRequest, ticket: Ticket) -> AsyncIterator[Completion]:
        """Validates and queues now, then streams; the stream settles and closes `ticket`."""
        engine, prompts, streams = await self._submit(request, ticket)
        return await started(self._chunks(request, engine.model_id, prompts, streams, ticket))

    async def _chunks(
        self,
        request: CompletionRequest,
        model_id: str,
        prompts: list[_Prompt],
        streams: list[TokenStream],
        ticket: Ticket,
    ) -> AsyncGenerator[Completion, None]:
        chunk_id, created, n = new_id("cmpl-"), int(time.time()), request.n or 1
        usage_field: dict[str, Any] = {"usage": None} if request.include_usage else {}

        def chunk(
            index: int,
            text: str,
            finish: FinishReason | None,
            logprobs: CompletionLogprobs | None = None,
        ) -> Completion:
            choice = CompletionChoice(
                text=text, index=index, logprobs=logprobs, finish_reason=finish
            )
            return Completion(
                id=chunk_id, created=created, model=model_id, choices=[choice], **usage_field
            )

        # Where each choice's next text starts, for logprobs' text_offset.
        offsets = [0] * len(streams)
        produced = [0] * len(streams)  # tokens each choice has made so far
        async with ending(ticket, produced), closing_all(streams):
            if request.echo:
                for index in range(len(streams)):
                    echo = prompts[index // n].text or ""
                    offsets[index] = len(echo)
                    yield chunk(index, echo, None)
            completion_tokens = cached_tokens = 0
            first_reason: str | None = None
            async for index, event in merge(streams):
                produced[index] = event.completion_tokens
                ticket.first_token()
                if event.finish_reason is not None:
                    first_reason = first_reason or event.finish_reason
                    completion_tokens += event.completion_tokens
                    if index % n == 0:
                        cached_tokens += event.cached_tokens
                if event.text or event.logprobs or event.finish_reason is not None:
                    logprobs = None
                    if request.logprobs is not None:
                        logprobs = completion_logprobs(
                            event.logprobs,
                            text_offset=offsets[index],
                            with_top=request.logprobs > 0,
                        )
                    offsets[index] += len(event.text)
                    yield chunk(index, event.text, event.finish_reason, logprobs)
            # Before the usage chunk and [DONE]: a client that saw the end is on the ledger.
            await ticket.settle(
                completion_tokens=completion_tokens,
                cached_tokens=cached_tokens,
                finish_reason=first_reason,
            )
        if request.include_usage:
            prompt_tokens = sum(len(p.tokens) for p in prompts)
            yield Completion(
                id=chunk_id,
                created=created,
                model=model_id,
                choices=[],
                usage=Usage.of(prompt_tokens, completion_tokens, cached_tokens=cached_tokens),
            )

    async def _submit(
        self, request: CompletionRequest, ticket: Ticket
    ) -> tuple[TextEngine, list[_Prompt], list[TokenStream]]:
        if request.suffix:
            raise InvalidRequest("suffix (insertion) is not supported", param="suffix")
        if request.best_of is not None and request.best_of != (request.n or 1):
            raise InvalidRequest("best_of other than n is not supported", param="best_of")
        async with self._catalog.using(request.model, request.keep_alive_s()) as engine:
            return await self._submit_to(engine, request, ticket)

    async def _submit_to(
        self, engine: TextEngine, request: CompletionRequest, ticket: Ticket
    ) -> tuple[TextEngine, list[_Prompt], list[TokenStream]]:
        check_logit_bias(engine, request)
        prompts = await self._prompts(engine, request)
        if request.echo and any(p.text is None for p in prompts):
            raise InvalidRequest("echo needs text prompts, not token ids", param="echo")
        constraint = with_grammar(request, None)
        await check_constraint(engine, constraint)
        requests = []
        request_id = new_id("")
        most_tokens = 0
        for i, prompt in enumerate(prompts):
            max_tokens = completion_budget(
                engine,
                len(prompt.tokens),
                request.max_tokens,
                prompt_param="prompt",
                fit=self._fit_max_tokens,
            )
            requests += choice_requests(
                request,
                prompt.tokens,
                max_tokens,
                f"{request_id}-{i}",
                top_logprobs=request.logprobs,
                constraint=constraint,
                priority=ticket.priority,
                defaults=self._sampling.get(engine.model_id),
            )
            most_tokens += len(prompt.tokens) + max_tokens * (request.n or 1)
        await ticket.admit(sum(len(p.tokens) for p in prompts), most_tokens)
        return engine, prompts, submit_all(engine, requests)

    async def _prompts(self, engine: TextEngine, request: CompletionRequest) -> list[_Prompt]:
        raw = request.prompt
        # One prompt given as a string or token ids, or a list of either.
        if isinstance(raw, str) or all(isinstance(t, int) for t in raw):
            raw = [raw]  # type: ignore[assignment]
        items = cast(list[str | list[int]], raw)
        prompts = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                tokens = await anyio.to_thread.run_sync(
                    functools.partial(engine.tokenize, item, is_chat=False)
                )
                prompts.append(_Prompt(item, tokens))
            else:
                check_token_ids(engine.vocab_size, item, param=f"prompt[{i}]")
                prompts.append(_Prompt(None, list(item)))
        return prompts
