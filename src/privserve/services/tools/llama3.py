"""Llama 3.x's format: one bare `{"name": ..., "parameters": {...}}` per turn, perhaps after
`<|python_tag|>`; its templates write back a single call per turn."""

from __future__ import annotations

import json
from collections.abc import Sequence

from privserve.engine.base import OutputConstraint
from privserve.protocol.chat import Tool, ToolCall
from privserve.services.tools.base import ToolCallFormat, may_open

# Llama 3.x may open a call with this token; its text, where it shows, is not the call.
PYTHON_TAG = "<|python_tag|>"


class Llama3JsonFormat(ToolCallFormat):
    arguments_key = "parameters"
    one_call_per_turn = True

    def constraint(self, tools: Sequence[Tool], *, parallel: bool) -> OutputConstraint:
        return OutputConstraint.json_schema(self.one_call_schema(tools), param="tools")

    def parse(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        try:
            found = json.loads(text.removeprefix(PYTHON_TAG))
        except json.JSONDecodeError:
            return None
        if isinstance(found, list):
            return None  # one call per turn is all its template can write back
        return self.calls([found], tools)

    def salvage(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        return None  # a single call: cut short, there is no complete one to keep

    def may_be_call(self, start: str) -> bool:
        return start[0] == "{" or may_open(start, PYTHON_TAG)
