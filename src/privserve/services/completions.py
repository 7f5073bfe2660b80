"""Text completions (`/v1/completions`): prompts as text or token ids, no chat format."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import anyio

from privserve.api.schemas.common import Usage
from privserve.api.schemas.completions import Completion, CompletionChoice, CompletionRequest
from privserve.engine.base import FinishReason, TextEngine, TokenStream
from privserve.errors import InvalidRequest
from privserve.services.catalog import ModelCatalog
from privserve.services.generation import (
    check_token_ids,
    choice_requests,
    closing_all,
    collect_all,
    completion_budget,
    merge,
    new_id,
    submit_all,
)


@dataclass(frozen=True)
class _Prompt:
    text: str | None  # None where the client sent token ids
    tokens: list[int]


class CompletionService:
    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    async def create(self, request: CompletionRequest) -> Completion:
        engine, prompts, streams = await self._submit(request)
        results = await collect_all(streams)
        n = request.n or 1
        choices = []
        for index, result in enumerate(results):
            echo = prompts[index // n].text if request.echo else None
            choices.append(
                CompletionChoice(
                    text=(echo or "") + result.text,
                    index=index,
                    finish_reason=result.finish_reason,
                )
            )
        prompt_tokens = sum(len(p.tokens) for p in prompts)
        completion_tokens = sum(r.completion_tokens for r in results)
        return Completion(
            id=new_id("cmpl-"),
            created=int(time.time()),
            model=engine.model_id,
            choices=choices,
            usage=Usage.of(prompt_tokens, completion_tokens),
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Completion]:
        engine, prompts, streams = await self._submit(request)
        return self._chunks(request, engine.model_id, prompts, streams)

    async def _chunks(
        self,
        request: CompletionRequest,
        model_id: str,
        prompts: list[_Prompt],
        streams: list[TokenStream],
    ) -> AsyncIterator[Completion]:
        chunk_id, created, n = new_id("cmpl-"), int(time.time()), request.n or 1
        usage_field: dict[str, Any] = {"usage": None} if request.include_usage else {}

        def chunk(index: int, text: str, finish: FinishReason | None) -> Completion:
            choice = CompletionChoice(text=text, index=index, finish_reason=finish)
            return Completion(
                id=chunk_id, created=created, model=model_id, choices=[choice], **usage_field
            )

        async with closing_all(streams):
            if request.echo:
                for index in range(len(streams)):
                    yield chunk(index, prompts[index // n].text or "", None)
            completion_tokens = 0
            async for index, event in merge(streams):
                if event.finish_reason is not None:
                    completion_tokens += event.completion_tokens
                if event.text or event.finish_reason is not None:
                    yield chunk(index, event.text, event.finish_reason)
        if request.include_usage:
            prompt_tokens = sum(len(p.tokens) for p in prompts)
            yield Completion(
                id=chunk_id,
                created=created,
                model=model_id,
                choices=[],
                usage=Usage.of(prompt_tokens, completion_tokens),
            )

    async def _submit(
        self, request: CompletionRequest
    ) -> tuple[TextEngine, list[_Prompt], list[TokenStream]]:
        if request.logprobs is not None:
            raise InvalidRequest("logprobs are not supported yet", param="logprobs")
        if request.suffix:
            raise InvalidRequest("suffix (insertion) is not supported", param="suffix")
        if request.best_of is not None and request.best_of != (request.n or 1):
            raise InvalidRequest("best_of other than n is not supported", param="best_of")
        engine = self._catalog.text_engine(request.model)
        prompts = await self._prompts(engine, request)
        if request.echo and any(p.text is None for p in prompts):
            raise InvalidRequest("echo needs text prompts, not token ids", param="echo")
        requests = []
        request_id = new_id("")
        for i, prompt in enumerate(prompts):
            max_tokens = completion_budget(
                engine, len(prompt.tokens), request.max_tokens, prompt_param="prompt"
            )
            requests += choice_requests(request, prompt.tokens, max_tokens, f"{request_id}-{i}")
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
                check_token_ids(engine, item, param=f"prompt[{i}]")
                prompts.append(_Prompt(None, list(item)))
        return prompts
