"""Chat completions: wire messages -> the model's chat format -> engine -> wire response."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from privserve.config import ModelSettings, ReasoningFormat
from privserve.engine.base import (
    OutputConstraint,
    PromptMessage,
    TemplateThinking,
    TextEngine,
    ThinkingControl,
    TokenStream,
)
from privserve.errors import InvalidRequest, UnsupportedInput
from privserve.metering.meter import Ticket
from privserve.protocol.chat import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatMessage,
    ChunkChoice,
    ResponseFormat,
)
from privserve.protocol.common import Usage
from privserve.services.catalog import ModelCatalog
from privserve.services.generation import (
    check_constraint,
    check_logit_bias,
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
from privserve.services.logprobs import chat_logprobs
from privserve.services.reasoning import (
    CLOSE_TAG,
    OPEN_TAG,
    ChoiceReasoning,
    Split,
    ThinkingPlan,
    model_thinks,
    plan_thinking,
    reasoning_fields,
    split_reasoning,
    starts_inside,
)
from privserve.services.tools import (
    ToolCallBuffer,
    ToolPlan,
    call_deltas,
    plan_tools,
    template_tool_call,
    tool_calls_in,
)

ROLE_ALIASES = {"developer": "system", "function": "tool"}


def output_constraint(response_format: ResponseFormat | None) -> OutputConstraint | None:
    """What `response_format` holds the answer to; None for free text."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return OutputConstraint(None, param="response_format")
    assert response_format.json_schema is not None  # the schema type checks it
    return OutputConstraint.json_schema(
        response_format.json_schema.json_schema, param="response_format.json_schema.schema"
    )


def to_prompt_messages(
    messages: Sequence[ChatMessage], *, native_tools: bool = False, thinks: bool = False
) -> list[PromptMessage]:
    """Flattens OpenAI message shapes (strings, text parts, tool calls) into plain turns;
    with `native_tools` the calls and call ids stay apart for the template to write. For a
    thinking model, earlier answers lose the reasoning a client left in them: a model is
    never fed its old thoughts."""
    turns = []
    for i, message in enumerate(messages):
        if isinstance(message.content, list):
            texts = []
            for j, part in enumerate(message.content):
                if part.type != "text":
                    raise UnsupportedInput(
                        f"this model reads text only; content part type {part.type!r} "
                        "is not supported",
                        param=f"messages[{i}].content[{j}].type",
                    )
                if part.text is None:
                    raise InvalidRequest(
                        "a text content part needs 'text'", param=f"messages[{i}].content[{j}].text"
                    )
                texts.append(part.text)
            content = "\n".join(texts)
        else:
            content = message.content or ""
        role = ROLE_ALIASES.get(message.role, message.role)
        if thinks and role == "assistant":
            content = split_reasoning(content).content
        if native_tools:
            calls = tuple(template_tool_call(call) for call in message.tool_calls or ())
            turns.append(PromptMessage(role, content, calls, message.tool_call_id))
            continue
        if message.tool_calls:
            calls_text = "\n".join(
                json.dumps(call.get("function", call)) for call in message.tool_calls
            )
            content = f"{content}\n{calls_text}" if content else calls_text
        turns.append(PromptMessage(role, content))
    return turns


@dataclass(frozen=True)
class RenderedChat:
    engine: TextEngine
    text: str  # the prompt, the assistant's turn opened
    tools: ToolPlan | None
    thinking: ThinkingPlan


@dataclass(frozen=True)
class SubmittedChat:
    """A chat request queued in its engine: what reading its answer needs."""

    model_id: str
    prompt_tokens: int
    streams: list[TokenStream]
    tools: ToolPlan | None  # read again to find the calls in the answer
    thinking: ThinkingPlan
    starts_inside: bool  # the prompt opened the reasoning block

    def reasoning(self) -> ChoiceReasoning | None:
        """A choice's reader of reasoning, when the answer is split."""
        if not self.thinking.split:
            return None
        return ChoiceReasoning(starts_inside=self.starts_inside)


class ChatService:
    def __init__(
        self,
        catalog: ModelCatalog,
        *,
        fit_max_tokens: bool = False,
        reasoning_format: ReasoningFormat = "separate",
        model_settings: Mapping[str, ModelSettings] | None = None,
    ) -> None:
        self._catalog = catalog
        self._fit_max_tokens = fit_max_tokens
        self._reasoning_format: ReasoningFormat = reasoning_format
        self._model_settings = dict(model_settings or {})

    def thinks(self, model_id: str) -> bool:
        """Whether the chat model writes a thinking block (its settings, else its template,
        read from its file when it is not loaded)."""
        engine = self._catalog.chat_models.loaded(model_id)
        offer = self._catalog.chat_models.offer(model_id)
        if engine is not None:
            template = engine.thinking
        else:
            template = (offer.thinking if offer else None) or TemplateThinking()
        return model_thinks(template, self._settings_of(model_id))

    def _settings_of(self, model_id: str) -> ModelSettings:
        return self._model_settings.get(model_id) or ModelSettings()

    async def create(self, request: ChatCompletionRequest, ticket: Ticket) -> ChatCompletion:
        submitted = await self._submit(request, ticket)
        tools = submitted.tools
        results = await collect_all(submitted.streams)
        completion_tokens = sum(r.completion_tokens for r in results)
        await ticket.settle(
            completion_tokens=completion_tokens,
            cached_tokens=results[0].cached_tokens,
            finish_reason=results[0].finish_reason,
        )
        wants_logprobs = bool(request.logprobs)
        choices = []
        reasoning_tokens: int | None = None
        for i, result in enumerate(results):
            answer, reasoning = result.text, {}
            reader = submitted.reasoning()
            if reader is not None:
                split = Split()
                for text, tokens in result.pieces:
                    split = split + reader.feed(text, tokens)
                split = split + reader.finish()
                answer = split.content
                reasoning = reasoning_fields(split.reasoning, self._reasoning_format)
                reasoning_tokens = (reasoning_tokens or 0) + reader.reasoning_tokens
            calls = tool_calls_in(tools, answer, result.finish_reason)
            choices.append(
                ChatChoice(
                    index=i,
                    message=ChatCompletionMessage(
                        content=None if calls else answer, tool_calls=calls, **reasoning
                    ),
                    logprobs=chat_logprobs(result.logprobs) if wants_logprobs else None,
                    finish_reason="tool_calls" if calls else result.finish_reason,
                )
            )
        return ChatCompletion(
            id=new_id("chatcmpl-"),
            created=int(time.time()),
            model=submitted.model_id,
            choices=choices,
            # The n choices share one prompt: its cache use is the first choice's.
            usage=Usage.of(
                submitted.prompt_tokens,
                completion_tokens,
                cached_tokens=results[0].cached_tokens,
                reasoning_tokens=reasoning_tokens,
            ),
        )

    async def stream(
        self, request: ChatCompletionRequest, ticket: Ticket
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Validates and queues now (errors raise before any byte is sent), then streams;
        the stream settles and closes `ticket`."""
        submitted = await self._submit(request, ticket)
        return await started(self._chunks(submitted, request.include_usage, ticket))

    async def _chunks(
        self, submitted: SubmittedChat, include_usage: bool, ticket: Ticket
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        model_id, streams, tools = submitted.model_id, submitted.streams, submitted.tools
        chunk_id, created = new_id("chatcmpl-"), int(time.time())
        usage_field: dict[str, Any] = {"usage": None} if include_usage else {}

        def chunk(choices: list[ChunkChoice]) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id, created=created, model=model_id, choices=choices, **usage_field
            )

        produced = [0] * len(streams)  # tokens each choice has made so far
        reasoning_tokens: int | None = None
        async with ending(ticket, produced), closing_all(streams):
            yield chunk(
                [
                    ChunkChoice(index=i, delta={"role": "assistant", "content": ""})
                    for i in range(len(streams))
                ]
            )
            completion_tokens = cached_tokens = 0
            first_reason: str | None = None
            # With tools, text that may be a call is held back until the answer ends.
            held = [ToolCallBuffer(tools) for _ in streams] if tools else None
            # A thinking model's reasoning goes out as it comes, in fields of its own.
            readers = [submitted.reasoning() for _ in streams]
            async for index, event in merge(streams):
                produced[index] = event.completion_tokens
                ticket.first_token()
                reader = readers[index]
                split = (
                    Split(content=event.text)
                    if reader is None
                    else reader.feed(event.text, event.completion_tokens)
                )
                if event.finish_reason is not None and reader is not None:
                    split = split + reader.finish()
                delta = self._delta(split, held[index] if held is not None else None)
                if delta or event.logprobs:
                    yield chunk(
                        [
                            ChunkChoice(
                                index=index,
                                delta=delta or {"content": ""},
                                logprobs=chat_logprobs(event.logprobs) if event.logprobs else None,
                            )
                        ]
                    )
                if event.finish_reason is not None:
                    completion_tokens += event.completion_tokens
                    if reader is not None:
                        reasoning_tokens = (reasoning_tokens or 0) + reader.reasoning_tokens
                    if index == 0:
                        cached_tokens = event.cached_tokens
                    finish_reason: str = event.finish_reason
                    first_reason = first_reason or finish_reason
                    if held is not None:
                        calls, rest = held[index].finish(event.finish_reason)
                        if calls:
                            finish_reason = "tool_calls"
                            yield chunk([ChunkChoice(index=index, delta=call_deltas(calls))])
                        elif rest:
                            yield chunk([ChunkChoice(index=index, delta={"content": rest})])
                    yield chunk([ChunkChoice(index=index, delta={}, finish_reason=finish_reason)])
            # Before the usage chunk and [DONE]: a client that saw the end is on the ledger.
            await ticket.settle(
                completion_tokens=completion_tokens,
                cached_tokens=cached_tokens,
                finish_reason=first_reason,
            )
        if include_usage:
            yield ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=model_id,
                choices=[],
                usage=Usage.of(
                    submitted.prompt_tokens,
                    completion_tokens,
                    cached_tokens=cached_tokens,
                    reasoning_tokens=reasoning_tokens,
                ),
            )

    def _thinking_control(
        self,
        engine: TextEngine,
        request: ChatCompletionRequest,
        thinking: ThinkingPlan,
        text: str,
        constraint: OutputConstraint | None,
    ) -> tuple[str, ThinkingControl | None]:
        """What the engine must do about the reasoning block: end it at a budget, and hold
        only the answer after it to a schema or a tool call. A client's own `grammar` holds
        the whole output, the block included. For the others the prompt opens the block
        (where the template did not), so the model's first token is not held to them."""
        settings = self._settings_of(engine.model_id)
        budget = request.reasoning_budget()
        if budget is None:
            budget = settings.thinking_budget
        after_block = constraint is not None and constraint.gbnf is None
        if not thinking.enabled or (budget is None and not after_block):
            return text, None
        if after_block and not starts_inside(text):
            text += OPEN_TAG + "\n"
        close = engine.tokenize("\n" + CLOSE_TAG, is_chat=True, add_special=False)
        control = ThinkingControl(
            OPEN_TAG, CLOSE_TAG, tuple(close), starts_inside(text), budget, after_block
        )
        return text, control

    def _delta(self, split: Split, held: ToolCallBuffer | None) -> dict[str, Any]:
        """A streamed piece's delta: its reasoning, and its content unless a tool call may
        be starting (then the content is held)."""
        delta: dict[str, Any] = reasoning_fields(split.reasoning, self._reasoning_format)
        content = split.content if held is None else held.feed(split.content)
        if content:
            delta["content"] = content
        return delta

    def render(self, engine: TextEngine, request: ChatCompletionRequest) -> RenderedChat:
        """The request's prompt as the model reads it: its template, its tools, thinking on
        or off."""
        tools = plan_tools(request, engine.tool_format)
        settings = self._settings_of(engine.model_id)
        thinking = plan_thinking(
            engine.thinking,
            settings,
            self._reasoning_format,
            request.thinking_wanted(),
            request.chat_template_kwargs,
        )
        turns = to_prompt_messages(
            request.messages, native_tools=engine.tool_format is not None, thinks=thinking.thinks
        )
        if tools is None:
            text = engine.render_chat(turns, None, thinking.variables)
        else:
            text = engine.render_chat(
                tools.with_instructions(turns), tools.definitions(), thinking.variables
            )
        return RenderedChat(engine, thinking.finish_prompt(text), tools, thinking)

    async def _submit(self, request: ChatCompletionRequest, ticket: Ticket) -> SubmittedChat:
        async with self._catalog.using(request.model, request.keep_alive_s()) as engine:
            return await self._submit_to(engine, request, ticket)

    async def _submit_to(
        self, engine: TextEngine, request: ChatCompletionRequest, ticket: Ticket
    ) -> SubmittedChat:
        rendered = self.render(engine, request)
        engine, text, tools, thinking = (
            rendered.engine,
            rendered.text,
            rendered.tools,
            rendered.thinking,
        )
        check_logit_bias(engine, request)
        # A required call's constraint wins over response_format: the answer is the call.
        constraint = with_grammar(
            request,
            (tools.constraint() if tools else None) or output_constraint(request.response_format),
            other_name="response_format or a required tool call",
        )
        await check_constraint(engine, constraint)
        text, control = self._thinking_control(engine, request, thinking, text, constraint)
        # Long prompts take milliseconds to tokenize: keep that off the event loop.
        prompt = await anyio.to_thread.run_sync(
            functools.partial(engine.tokenize, text, is_chat=True)
        )
        max_tokens = completion_budget(
            engine,
            len(prompt),
            request.max_completion_tokens or request.max_tokens,
            prompt_param="messages",
            fit=self._fit_max_tokens,
        )
        top_logprobs = (request.top_logprobs or 0) if request.logprobs else None
        # Last, once the request is known to be good: limits and quota are only spent on
        # work that will run.
        await ticket.admit(len(prompt), len(prompt) + max_tokens * (request.n or 1))
        requests = choice_requests(
            request,
            prompt,
            max_tokens,
            new_id(""),
            top_logprobs=top_logprobs,
            constraint=constraint,
            priority=ticket.priority,
            thinking=control,
            defaults=self._settings_of(engine.model_id).sampling,
        )
        return SubmittedChat(
            engine.model_id,
            len(prompt),
            submit_all(engine, requests),
            tools,
            thinking,
            thinking.thinks and starts_inside(text),
        )
