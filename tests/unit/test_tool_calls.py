"""Tool calls read out of answers: whole ones, and those completed before a cut."""

from __future__ import annotations

import json

import pytest

from privserve.api.schemas.chat import ChatCompletionRequest
from privserve.services.tools import ToolPlan, plan_tools, tool_calls_in

TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


def plan(**fields: object) -> ToolPlan:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [TOOL], **fields}
    )
    planned = plan_tools(request)
    assert planned is not None
    return planned


def arguments(calls: list | None) -> list[dict]:  # type: ignore[type-arg]
    assert calls is not None
    return [json.loads(c.function.arguments) for c in calls]


def test_a_cut_parallel_answer_keeps_its_complete_calls_once() -> None:
    tools = plan(tool_choice="required", parallel_tool_calls=True)
    cut = (
        '[ {"name": "search", "arguments": {"q": "gate"}}, '
        '{"name": "search", "arguments": {"q": "gate"}},\n'
        '{"name": "search", "arguments": {"q": "door"}}, {"name": "search", "argu'
    )
    assert arguments(tool_calls_in(tools, cut, "length")) == [{"q": "gate"}, {"q": "door"}]


@pytest.mark.parametrize("cut", ['[ {"name": "search", "argu', "[", '{"name": "search"'])
def test_a_cut_with_no_complete_call_makes_none(cut: str) -> None:
    tools = plan(tool_choice="required", parallel_tool_calls=True)
    assert tool_calls_in(tools, cut, "length") is None


def test_a_cut_single_or_optional_call_makes_none() -> None:
    whole = '{"name": "search", "arguments": {"q": "gate"}}'
    assert tool_calls_in(plan(tool_choice="required"), whole + " ", "length") is None
    assert tool_calls_in(plan(tool_choice="auto"), whole, "length") is None
    assert arguments(tool_calls_in(plan(tool_choice="auto"), whole, "stop")) == [{"q": "gate"}]


def test_a_cut_call_to_an_unknown_function_makes_none() -> None:
    tools = plan(tool_choice="required", parallel_tool_calls=True)
    assert tool_calls_in(tools, '[{"name": "other", "arguments": {}}, {', "length") is None
