"""privserve's own format, for templates without one: the tools described in a system
message, and a reply that is one JSON object `{"name": ..., "arguments": {...}}`, or a JSON
array of them when parallel calls are allowed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from privserve.engine.base import OutputConstraint, PromptMessage
from privserve.protocol.chat import Tool, ToolCall
from privserve.services.tools.base import ToolCallFormat, skip_space

MAX_PARALLEL_CALLS = 8


class OwnFormat(ToolCallFormat):
    def definitions(self, tools: Sequence[Tool]) -> list[dict[str, Any]] | None:
        return None  # the template never sees them: the system message describes them

    def prompt(
        self, turns: list[PromptMessage], tools: Sequence[Tool], *, forced: bool, parallel: bool
    ) -> list[PromptMessage]:
        instructions = _instructions(tools, forced=forced, parallel=parallel)
        if turns and turns[0].role == "system":
            first = PromptMessage("system", f"{turns[0].content}\n\n{instructions}")
            return [first, *turns[1:]]
        return [PromptMessage("system", instructions), *turns]

    def constraint(self, tools: Sequence[Tool], *, parallel: bool) -> OutputConstraint:
        one = self.one_call_schema(tools)
        schema = (
            {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_PARALLEL_CALLS}
            if parallel
            else one
        )
        return OutputConstraint.json_schema(schema, param="tools")

    def parse(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        try:
            found = json.loads(text)
        except json.JSONDecodeError:
            return None
        return self.calls(found if isinstance(found, list) else [found], tools)

    def salvage(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        return self.distinct_calls(_complete_array_items(text), tools)

    def may_be_call(self, start: str) -> bool:
        return start[0] in "{["


def _instructions(tools: Sequence[Tool], *, forced: bool, parallel: bool) -> str:
    described = "\n".join(
        f"- {tool.function.name}: {tool.function.description or ''} "
        f"Parameters (JSON schema): {json.dumps(tool.function.parameters, ensure_ascii=False)}"
        for tool in tools
    )
    shape = '{"name": <function name>, "arguments": <arguments object>}'
    many = f"a JSON array of such objects, [{shape}, ...]" if parallel else ""
    how = f"reply with only {many or 'a JSON object ' + shape}"
    must = "You must call a function: " if forced else "To call a function, "
    return f"You can call these functions:\n{described}\n{must}{how}."


def _complete_array_items(text: str) -> list[Any]:
    """The items of a JSON array that are complete before the text is cut."""
    decoder, text = json.JSONDecoder(), text.strip()
    if not text.startswith("["):
        return []
    found: list[Any] = []
    position = 1
    while True:
        try:
            item, position = decoder.raw_decode(text, skip_space(text, position))
        except json.JSONDecodeError:
            return found
        found.append(item)
        position = skip_space(text, position)
        if text[position : position + 1] != ",":
            return found
        position += 1
