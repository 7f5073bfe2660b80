"""Tool calls read out of answers: whole ones, and those completed before a cut."""

from __future__ import annotations

import json

import pytest

from privserve.engine.base import PromptMessage, ToolFormat
from privserve.engine.llama.grammar import constraint_grammar
from privserve.protocol.chat import ChatCompletionRequest
from privserve.services.tools import ToolCallBuffer, ToolPlan, plan_tools, tool_calls_in

TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


def plan(native: ToolFormat | None = None, **fields: object) -> ToolPlan:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [TOOL], **fields}
    )
    planned = plan_tools(request, native)
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


def test_tagged_calls_parse_and_other_text_does_not() -> None:
    tools = plan(tool_choice="auto", native="hermes")
    one = '<tool_call>\n{"name": "search", "arguments": {"q": "gate"}}\n</tool_call>'
    assert arguments(tools.parse(one)) == [{"q": "gate"}]
    assert arguments(tools.parse(f"{one}\n{one.replace('gate', 'door')}")) == [
        {"q": "gate"},
        {"q": "door"},
    ]
    assert tools.parse("The gate opens at 7.") is None
    assert tools.parse(f"Let me look. {one}") is None  # a call is the whole answer
    assert tools.parse('{"name": "search", "arguments": {}}') is None  # not this format
    assert tools.parse("<tool_call>not json</tool_call>") is None


def test_a_cut_tagged_answer_keeps_its_complete_calls_once() -> None:
    tools = plan(tool_choice="required", parallel_tool_calls=True, native="hermes")
    call = '<tool_call>\n{"name": "search", "arguments": {"q": "gate"}}\n</tool_call>'
    cut = f'{call}\n{call}\n<tool_call>\n{{"name": "sea'
    assert arguments(tool_calls_in(tools, cut, "length")) == [{"q": "gate"}]
    assert tool_calls_in(tools, '<tool_call>\n{"name"', "length") is None


def test_a_closing_tag_inside_a_string_does_not_end_the_call() -> None:
    tools = plan(tool_choice="required", parallel_tool_calls=True, native="hermes")
    odd = '<tool_call>\n{"name": "search", "arguments": {"q": "}}</tool_call> x"}}\n</tool_call>'
    assert arguments(tools.parse(odd)) == [{"q": "}}</tool_call> x"}]
    assert arguments(tool_calls_in(tools, f"{odd}\n<tool_call>\n{{", "length")) == [
        {"q": "}}</tool_call> x"}
    ]


def test_llama3_calls_carry_parameters_one_per_turn() -> None:
    tools = plan(tool_choice="required", parallel_tool_calls=True, native="llama3-json")
    assert not tools.parallel  # its template writes back one call per turn
    one = '{"name": "search", "parameters": {"q": "gate"}}'
    assert arguments(tools.parse(one)) == [{"q": "gate"}]
    assert arguments(tools.parse("<|python_tag|>" + one)) == [{"q": "gate"}]
    assert tools.parse('{"name": "search", "arguments": {"q": "gate"}}') is None
    assert tools.parse(f"[{one}]") is None
    constraint = tools.constraint()
    assert constraint is not None
    assert '"\\"parameters\\""' in constraint_grammar(constraint)


def test_a_native_plan_leaves_the_prompt_to_the_template() -> None:
    tools = plan(tool_choice="auto", native="hermes")
    turns = [PromptMessage("system", "Be brief."), PromptMessage("user", "x")]
    assert tools.with_instructions(turns) == turns
    assert tools.definitions() == [TOOL]
    assert plan(tool_choice="auto").definitions() is None


@pytest.mark.parametrize("parallel", [False, True])
def test_native_grammars_compile(parallel: bool) -> None:
    from llama_cpp.llama_grammar import LlamaGrammar

    tools = plan(tool_choice="required", parallel_tool_calls=parallel, native="hermes")
    constraint = tools.constraint()
    assert constraint is not None
    grammar = constraint_grammar(constraint)
    assert grammar.startswith('root ::= "<tool_call>\\n"')
    LlamaGrammar.from_string(grammar, verbose=False)


@pytest.mark.parametrize(
    ("native", "call", "text"),
    [
        (
            "hermes",
            ["<tool", '_call>\n{"name": "search", "arguments": {"q": "x"}}\n</tool_call>'],
            ["<t", "able>"],
        ),
        (
            "llama3-json",
            ["<|python", '_tag|>{"name": "search", "parameters": {"q": "x"}}'],
            ["<|", "im|>"],
        ),
    ],
)
def test_streamed_text_is_held_while_it_may_open_a_call(
    native: ToolFormat, call: list[str], text: list[str]
) -> None:
    """A call's opening is held back while it may still be one; other text is released as
    soon as it cannot be."""
    buffer = ToolCallBuffer(plan(tool_choice="auto", native=native))
    assert [buffer.feed(piece) for piece in call] == ["", ""]
    calls, rest = buffer.finish("stop")
    assert arguments(calls) == [{"q": "x"}] and rest == ""
    other = ToolCallBuffer(plan(tool_choice="auto", native=native))
    assert other.feed(text[0]) == "" and other.feed(text[1]) == "".join(text)
    assert ToolCallBuffer(plan(tool_choice="auto", native=native)).feed("[1]") == "[1]"
