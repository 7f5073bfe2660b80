"""Streaming with tools: text that may be a call is held back until it is known."""

from __future__ import annotations

from typing import Any

from privserve.protocol.chat import ToolCall
from privserve.services.tools.plan import ToolPlan, tool_calls_in


class ToolCallBuffer:
    """One streamed choice's text while it may still be a tool call.

    Text is held while the answer could be a call (nothing but spaces yet, or the format's
    opening from its first character); the first other character releases it as content."""

    def __init__(self, tools: ToolPlan) -> None:
        self._tools = tools
        self._held = ""
        self._releasing = False

    def feed(self, text: str) -> str:
        if self._releasing:
            return text
        self._held += text
        start = self._held.lstrip()
        if not start or self._tools.forced or self._tools.format.may_be_call(start):
            return ""
        self._releasing = True
        held, self._held = self._held, ""
        return held

    def finish(self, finish_reason: str) -> tuple[list[ToolCall] | None, str]:
        """(the calls, if the held text is one; else the held text to send as content)."""
        held, self._held = self._held, ""
        calls = tool_calls_in(self._tools, held, finish_reason)
        return (calls, "") if calls else (None, held)


def call_deltas(calls: list[ToolCall]) -> dict[str, Any]:
    """Whole calls as one streamed delta, in OpenAI's indexed shape."""
    return {
        "tool_calls": [{"index": i, **call.model_dump(mode="json")} for i, call in enumerate(calls)]
    }
