"""Function calling: the chat template's own tool format where it has one, else privserve's.

A template with its own format (Hermes style, `<tool_call>{...}</tool_call>`, as Qwen2.5 and
later write; or Llama 3.x's bare `{"name": ..., "parameters": {...}}`, one call per turn)
gets the tools as transformers passes them and describes them itself; its calls are read
back in that format. Other models get the tools described in a system message, with one
reply format: a JSON object `{"name": ..., "arguments": {...}}` (a JSON array of them when
parallel calls are allowed). Either way, with `tool_choice` "required" or a named function
a grammar holds the output to exactly that format and to each function's parameter schema,
so the call always parses into valid arguments. With "auto" the model may answer in text
instead; an answer that is a well-formed call to an offered function becomes `tool_calls`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from privserve.engine.base import OutputConstraint, PromptMessage, ToolFormat
from privserve.engine.schema_limits import check_schema
from privserve.errors import InvalidRequest
from privserve.protocol.chat import (
    ChatCompletionRequest,
    FunctionCall,
    NamedToolChoice,
    Tool,
    ToolCall,
)

MAX_PARALLEL_CALLS = 8
HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
# Llama 3.x may open a call with this token; its text, where it shows, is not the call.
LLAMA3_PYTHON_TAG = "<|python_tag|>"


@dataclass(frozen=True)
class ToolPlan:
    tools: tuple[Tool, ...]
    forced: bool  # "required" or a named function: the grammar decides the shape
    parallel: bool
    native: ToolFormat | None = None  # the chat template's own format, when it has one

    def definitions(self) -> list[dict[str, Any]] | None:
        """The tools as the template reads them, for templates with their own format."""
        if self.native is None:
            return None
        return [tool.model_dump(mode="json", exclude_none=True) for tool in self.tools]

    @property
    def arguments_key(self) -> str:
        """Where a call keeps its arguments: "parameters" in Llama 3.x's format."""
        return "parameters" if self.native == "llama3-json" else "arguments"

    def one_call_schema(self) -> dict[str, Any]:
        key = self.arguments_key
        return {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "name": {"const": tool.function.name},
                        key: tool.function.parameters,
                    },
                    "required": ["name", key],
                    "additionalProperties": False,
                }
                for tool in self.tools
            ]
        }

    def call_schema(self) -> dict[str, Any]:
        """privserve's reply format: one call, or an array of them."""
        one = self.one_call_schema()
        if not self.parallel:
            return one
        return {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_PARALLEL_CALLS}

    def constraint(self) -> OutputConstraint | None:
        """What a forced answer is held to; None when the model may answer in text."""
        if not self.forced:
            return None
        if self.native != "hermes":
            return OutputConstraint.json_schema(self.call_schema(), param="tools")
        # The call's JSON, wrapped in the template's tags; several tagged calls in a row
        # when parallel calls are allowed.
        return OutputConstraint.json_schema(
            self.one_call_schema(),
            param="tools",
            tags=(HERMES_OPEN, HERMES_CLOSE),
            max_documents=MAX_PARALLEL_CALLS if self.parallel else 1,
        )

    def instructions(self) -> str:
        described = "\n".join(
            f"- {tool.function.name}: {tool.function.description or ''} "
            f"Parameters (JSON schema): {json.dumps(tool.function.parameters, ensure_ascii=False)}"
            for tool in self.tools
        )
        shape = '{"name": <function name>, "arguments": <arguments object>}'
        many = f"a JSON array of such objects, [{shape}, ...]" if self.parallel else ""
        how = f"reply with only {many or 'a JSON object ' + shape}"
        must = "You must call a function: " if self.forced else "To call a function, "
        return f"You can call these functions:\n{described}\n{must}{how}."

    def with_instructions(self, turns: list[PromptMessage]) -> list[PromptMessage]:
        """The conversation with the tool instructions in its (first) system message; a
        template with its own tool format describes the tools itself."""
        if self.native is not None:
            return turns
        if turns and turns[0].role == "system":
            first = PromptMessage("system", f"{turns[0].content}\n\n{self.instructions()}")
            return [first, *turns[1:]]
        return [PromptMessage("system", self.instructions()), *turns]

    def parse(self, text: str) -> list[ToolCall] | None:
        """The calls in `text`, or None when it is not exactly a call to offered functions."""
        if self.native == "hermes":
            return self._parse_tagged(text)
        if self.native == "llama3-json":
            text = text.removeprefix(LLAMA3_PYTHON_TAG)
        try:
            found = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(found, list) and self.native == "llama3-json":
            return None  # one call per turn is all its template can write back
        return self._calls(found if isinstance(found, list) else [found])

    def _parse_tagged(self, text: str) -> list[ToolCall] | None:
        found, whole = _tagged_items(text)
        return self._calls(found) if found and whole else None

    def salvage(self, text: str) -> list[ToolCall] | None:
        """The complete calls at the start of a parallel answer cut short by max_tokens,
        each once: small models held to the call format tend to repeat a call until the
        budget runs out, and the repeats carry nothing the first did not."""
        if self.native == "hermes":
            found, _ = _tagged_items(text)
        else:
            found = _complete_array_items(text)
        distinct = [item for i, item in enumerate(found) if item not in found[:i]]
        return self._calls(distinct) if distinct else None

    def _calls(self, calls: list[Any]) -> list[ToolCall] | None:
        names = {tool.function.name for tool in self.tools}
        parsed = []
        for call in calls:
            if not (
                isinstance(call, dict)
                and call.get("name") in names
                and isinstance(call.get(self.arguments_key), dict)
            ):
                return None
            arguments = json.dumps(call[self.arguments_key], ensure_ascii=False)
            parsed.append(
                ToolCall(
                    id="call_" + secrets.token_hex(12),
                    function=FunctionCall(name=call["name"], arguments=arguments),
                )
            )
        return parsed or None


def _tagged_items(text: str) -> tuple[list[Any], bool]:
    """The JSON in each `<tool_call>` tag, in order, up to the first thing that is not one;
    and whether the whole text was tags and white space. The JSON is read as JSON, so a
    closing tag inside one of its strings does not end the call."""
    decoder, found, position = json.JSONDecoder(), list[Any](), 0
    while True:
        position = _skip_space(text, position)
        if position == len(text):
            return found, True
        if not text.startswith(HERMES_OPEN, position):
            return found, False
        position = _skip_space(text, position + len(HERMES_OPEN))
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return found, False
        position = _skip_space(text, position)
        if not text.startswith(HERMES_CLOSE, position):
            return found, False
        found.append(item)
        position += len(HERMES_CLOSE)


def _skip_space(text: str, position: int) -> int:
    while text[position : position + 1].isspace():
        position += 1
    return position


def _complete_array_items(text: str) -> list[Any]:
    """The items of a JSON array that are complete before the text is cut."""
    decoder, text = json.JSONDecoder(), text.strip()
    if not text.startswith("["):
        return []
    found: list[Any] = []
    position = 1
    while True:
        try:
            item, position = decoder.raw_decode(text, _skip_space(text, position))
        except json.JSONDecodeError:
            return found
        found.append(item)
        position = _skip_space(text, position)
        if text[position : position + 1] != ",":
            return found
        position += 1


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
        for i, tool in enumerate(request.tools):
            if tool in tools:
                check_schema(tool.function.parameters, param=f"tools[{i}].function.parameters")
    # Several calls in one answer only when asked for in so many words: small local models
    # given the choice keep repeating the same call until max_tokens. Llama 3.x's templates
    # write back one call per turn, so its format makes one.
    parallel = forced and request.parallel_tool_calls is True and native != "llama3-json"
    return ToolPlan(tools=tools, forced=forced, parallel=parallel, native=native)


def tool_calls_in(tools: ToolPlan | None, text: str, finish_reason: str) -> list[ToolCall] | None:
    """The calls an answer makes. One cut short by max_tokens makes none, except a forced
    parallel answer: its grammar-held array keeps the calls completed before the cut."""
    if tools is None:
        return None
    if finish_reason == "stop":
        return tools.parse(text.strip())
    if tools.forced and tools.parallel:
        return tools.salvage(text)
    return None


def call_deltas(calls: list[ToolCall]) -> dict[str, Any]:
    """Whole calls as one streamed delta, in OpenAI's indexed shape."""
    return {
        "tool_calls": [{"index": i, **call.model_dump(mode="json")} for i, call in enumerate(calls)]
    }


class ToolCallBuffer:
    """One streamed choice's text while it may still be a tool call.

    Text is held while the answer could be a call (nothing but spaces yet, or JSON from its
    first character); the first other character releases it as content."""

    def __init__(self, tools: ToolPlan) -> None:
        self._tools = tools
        self._held = ""
        self._releasing = False

    def feed(self, text: str) -> str:
        if self._releasing:
            return text
        self._held += text
        start = self._held.lstrip()
        if not start or self._tools.forced or self._may_be_call(start):
            return ""
        self._releasing = True
        held, self._held = self._held, ""
        return held

    def _may_be_call(self, start: str) -> bool:
        if self._tools.native == "hermes":
            return _may_open(start, HERMES_OPEN)
        if self._tools.native == "llama3-json":
            return start[0] == "{" or _may_open(start, LLAMA3_PYTHON_TAG)
        return start[0] in "{["

    def finish(self, finish_reason: str) -> tuple[list[ToolCall] | None, str]:
        """(the calls, if the held text is one; else the held text to send as content)."""
        held, self._held = self._held, ""
        calls = tool_calls_in(self._tools, held, finish_reason)
        return (calls, "") if calls else (None, held)


def _may_open(start: str, tag: str) -> bool:
    """Whether text that starts so is, or may still become, text that opens with `tag`."""
    return start.startswith(tag) or tag.startswith(start)
