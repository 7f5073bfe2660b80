"""What every tool-call format does, and the pieces they share."""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from privserve.engine.base import OutputConstraint, PromptMessage
from privserve.protocol.chat import FunctionCall, Tool, ToolCall


class ToolCallFormat(ABC):
    """How one format describes the tools, holds a forced answer, and reads calls back."""

    arguments_key = "arguments"  # where a call keeps its arguments
    one_call_per_turn = False  # its templates write back a single call per turn

    def definitions(self, tools: Sequence[Tool]) -> list[dict[str, Any]] | None:
        """The tools as the chat template reads them; None when the template does not."""
        return [tool.model_dump(mode="json", exclude_none=True) for tool in tools]

    def prompt(
        self, turns: list[PromptMessage], tools: Sequence[Tool], *, forced: bool, parallel: bool
    ) -> list[PromptMessage]:
        """The conversation as the model reads it; templates with a format of their own
        describe the tools themselves."""
        return turns

    @abstractmethod
    def constraint(self, tools: Sequence[Tool], *, parallel: bool) -> OutputConstraint:
        """What a forced answer is held to."""

    @abstractmethod
    def parse(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        """The calls in a whole answer, or None when it is not exactly calls to offered
        functions."""

    @abstractmethod
    def salvage(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        """The complete calls at the start of an answer cut short by max_tokens."""

    @abstractmethod
    def may_be_call(self, start: str) -> bool:
        """Whether streamed text that starts so may still turn out to be a call."""

    def one_call_schema(self, tools: Sequence[Tool]) -> dict[str, Any]:
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
                for tool in tools
            ]
        }

    def calls(self, items: list[Any], tools: Sequence[Tool]) -> list[ToolCall] | None:
        """Decoded call objects as OpenAI tool calls; None unless each calls an offered
        function with an arguments object."""
        names = {tool.function.name for tool in tools}
        parsed = []
        for item in items:
            if not (
                isinstance(item, dict)
                and item.get("name") in names
                and isinstance(item.get(self.arguments_key), dict)
            ):
                return None
            arguments = json.dumps(item[self.arguments_key], ensure_ascii=False)
            parsed.append(
                ToolCall(
                    id="call_" + secrets.token_hex(12),
                    function=FunctionCall(name=item["name"], arguments=arguments),
                )
            )
        return parsed or None

    def distinct_calls(self, items: list[Any], tools: Sequence[Tool]) -> list[ToolCall] | None:
        """Each call once: small models held to the call format tend to repeat a call
        until the budget runs out, and the repeats carry nothing the first did not."""
        distinct = [item for i, item in enumerate(items) if item not in items[:i]]
        return self.calls(distinct, tools) if distinct else None


def skip_space(text: str, position: int) -> int:
    while text[position : position + 1].isspace():
        position += 1
    return position


def may_open(start: str, tag: str) -> bool:
    """Whether text that starts so is, or may still become, text that opens with `tag`."""
    return start.startswith(tag) or tag.startswith(start)
