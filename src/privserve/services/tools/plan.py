"""What one request's tools ask of the model, in the format its chat template reads."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from privserve.engine.base import OutputConstraint, PromptMessage, ToolFormat
from privserve.engine.schema_limits import check_schema
from privserve.errors import InvalidRequest
from privserve.protocol.chat import ChatCompletionRequest, NamedToolChoice, Tool, ToolCall
from privserve.services.tools.base import ToolCallFormat
from privserve.services.tools.hermes import HermesFormat
from privserve.services.tools.llama3 import Llama3JsonFormat
from privserve.services.tools.own import MAX_PARALLEL_CALLS, OwnFormat

__all__ = ["MAX_PARALLEL_CALLS", "ToolPlan", "plan_tools", "template_tool_call", "tool_calls_in"]


def format_for(native: ToolFormat | None) -> ToolCallFormat:
    """The chat template's own format, or privserve's when it has none."""
    if native == "hermes":
        return HermesFormat()
    if native == "llama3-json":
        return Llama3JsonFormat()
    return OwnFormat()


@dataclass(frozen=True)
class ToolPlan:
    tools: tuple[Tool, ...]
    forced: bool  # "required" or a named function: the constraint decides the shape
    parallel: bool
    format: ToolCallFormat

    def definitions(self) -> list[dict[str, Any]] | None:
        return self.format.definitions(self.tools)

    def with_instructions(self, turns: list[PromptMessage]) -> list[PromptMessage]:
        return self.format.prompt(turns, self.tools, forced=self.forced, parallel=self.parallel)

    def constraint(self) -> OutputConstraint | None:
        """What a forced answer is held to; None when the model may answer in text."""
        if not self.forced:
            return None
        return self.format.constraint(self.tools, parallel=self.parallel)

    def parse(self, text: str) -> list[ToolCall] | None:
        return self.format.parse(text, self.tools)

    def salvage(self, text: str) -> list[ToolCall] | None:
        return self.format.salvage(text, self.tools)


def plan_tools(request: ChatCompletionRequest, native: ToolFormat | None = None) -> ToolPlan | None:
    """What the request's tools ask of the model; None when no tool may be called.
    `native` is the chat template's own tool format, when it has one."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        if isinstance(choice, NamedToolChoice) or choice == "required":
            raise InvalidRequest(
                "tool_choice asks for a tool call, but no tools were given", param="tool_choice"
            )
        return None
    tools = tuple(request.tools)
    if isinstance(choice, NamedToolChoice):
        tools = tuple(t for t in request.tools if t.function.name == choice.function.name)
        if not tools:
            raise InvalidRequest(
                f"tool_choice names {choice.function.name!r}, which is not among the tools",
                param="tool_choice",
            )
    forced = choice == "required" or isinstance(choice, NamedToolChoice)
    if forced:
        names = {tool.function.name for tool in tools}
        for i, tool in enumerate(request.tools):
            if tool.function.name in names:
                check_schema(tool.function.parameters, param=f"tools[{i}].function.parameters")
    call_format = format_for(native)
    # Several calls in one answer only when asked for in so many words: small local models
    # given the choice keep repeating the same call until max_tokens.
    parallel = forced and request.parallel_tool_calls is True and not call_format.one_call_per_turn
    return ToolPlan(tools=tools, forced=forced, parallel=parallel, format=call_format)


def tool_calls_in(tools: ToolPlan | None, text: str, finish_reason: str) -> list[ToolCall] | None:
    """The calls an answer makes. One cut short by max_tokens makes none, except a forced
    parallel answer: its constrained output keeps the calls completed before the cut."""
    if tools is None:
        return None
    if finish_reason == "stop":
        return tools.parse(text.strip())
    if tools.forced and tools.parallel:
        return tools.salvage(text)
    return None


def template_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """An assistant message's call as chat templates read it: arguments as an object (they
    write it with `tojson`), not OpenAI's JSON text."""
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        # Text that is not JSON stays text: the template writes it as given.
        with contextlib.suppress(json.JSONDecodeError):
            function["arguments"] = json.loads(arguments)
    return {"id": call.get("id"), "type": call.get("type", "function"), "function": function}
