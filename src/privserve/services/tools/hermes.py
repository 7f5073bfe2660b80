"""Hermes-style calls, as Qwen2.5 and later templates write them: each call's JSON between
`<tool_call>` and `</tool_call>` tags, several in a row when parallel calls are allowed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from privserve.engine.base import OutputConstraint
from privserve.protocol.chat import Tool, ToolCall
from privserve.services.tools.base import ToolCallFormat, may_open, skip_space
from privserve.services.tools.own import MAX_PARALLEL_CALLS

OPEN, CLOSE = "<tool_call>", "</tool_call>"


class HermesFormat(ToolCallFormat):
    def constraint(self, tools: Sequence[Tool], *, parallel: bool) -> OutputConstraint:
        return OutputConstraint.json_schema(
            self.one_call_schema(tools),
            param="tools",
            tags=(OPEN, CLOSE),
            max_documents=MAX_PARALLEL_CALLS if parallel else 1,
        )

    def parse(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        found, whole = tagged_items(text)
        return self.calls(found, tools) if found and whole else None

    def salvage(self, text: str, tools: Sequence[Tool]) -> list[ToolCall] | None:
        found, _ = tagged_items(text)
        return self.distinct_calls(found, tools)

    def may_be_call(self, start: str) -> bool:
        return may_open(start, OPEN)


def tagged_items(text: str) -> tuple[list[Any], bool]:
    """The JSON in each tag, in order, up to the first thing that is not one; and whether the
    whole text was tags and white space. The JSON is read as JSON, so a closing tag inside
    one of its strings does not end the call."""
    decoder, found, position = json.JSONDecoder(), list[Any](), 0
    while True:
        position = skip_space(text, position)
        if position == len(text):
            return found, True
        if not text.startswith(OPEN, position):
            return found, False
        position = skip_space(text, position + len(OPEN))
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return found, False
        position = skip_space(text, position)
        if not text.startswith(CLOSE, position):
            return found, False
        found.append(item)
        position += len(CLOSE)
