"""Function calling with the bundled model: required and named calls are held to the
tools' schemas by a grammar, so they always parse into valid arguments, streamed or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from tests.integration.conftest import MODEL_ID
from tests.integration.server import start_server

pytestmark = pytest.mark.model

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 30},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"timezone": {"type": "string", "maxLength": 40}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER},
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Time now", "parameters": TIME},
    },
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_required_call_always_parses_into_valid_arguments(
    client: openai.OpenAI, seed: int
) -> None:
    reply = client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        temperature=0.9,
        seed=seed,
        max_tokens=120,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_a_named_call_streams_as_tool_call_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        temperature=0,
        max_tokens=120,
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [d.function.name for d in deltas if d.function] == ["get_time"]
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    jsonschema.validate(json.loads(arguments), TIME)


def test_tool_choice_none_answers_in_text_and_history_with_calls_is_read(
    client: openai.OpenAI,
) -> None:
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    reply = client.chat.completions.create(
        model=MODEL_ID,
        messages=history,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="none",
        temperature=0,
        max_tokens=8,
    )
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "tools[0].function.name",
        ),
    ],
)
def test_bad_tool_requests_are_clear_400s(
    http: httpx.Client, extra: dict[str, object], param: str
) -> None:
    response = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": ASK, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_parallel_required_calls_are_valid_and_distinct(client: openai.OpenAI) -> None:
    # The bundled model repeats its call until max_tokens; the calls completed before the
    # cut come back, each once.
    reply = client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=True,
        temperature=0,
        max_tokens=80,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    seen = set()
    for call in choice.message.tool_calls:
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, SCHEMAS[call.function.name])
        seen.add((call.function.name, call.function.arguments))
    assert len(seen) == len(choice.message.tool_calls)


TEMPLATES = Path(__file__).parents[1] / "data"


def serve_with_template(
    tmp_path_factory: pytest.TempPathFactory, api_key: str, template: str
) -> Iterator[openai.OpenAI]:
    """A client of the bundled model served behind one of the tests' chat templates."""
    home = tmp_path_factory.mktemp(template.split(".")[0])
    running = start_server(
        home,
        args=["--chat-template", str(TEMPLATES / template), "--embedding-model", ""],
        env={"PRIVSERVE_API_KEY": api_key},
    )
    try:
        with openai.OpenAI(base_url=running.base_url, api_key=api_key, max_retries=0) as c:
            yield c
    finally:
        running.stop()


def streamed_named_call(client: openai.OpenAI, name: str) -> ChoiceDeltaToolCall:
    """A named call, streamed: one `tool_calls` delta and never any text."""
    stream = client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": name}},
        max_tokens=100,  # room for the longest call the schemas allow
        temperature=1.0,
        seed=7,
        stream=True,
    )
    deltas, finish = [], None
    for chunk in stream:
        delta = chunk.choices[0].delta
        assert not delta.content  # the call is never shown as text
        deltas += delta.tool_calls or []
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    (call,) = deltas
    assert call.function is not None and call.function.name == name
    jsonschema.validate(json.loads(call.function.arguments or ""), SCHEMAS[name])
    return call


def call_and_result(call: ChoiceDeltaToolCall, result: str) -> list[dict[str, object]]:
    """The conversation after `call` was made and answered, as a client sends it back."""
    assert call.function is not None
    made = {"id": call.id, "type": "function", "function": call.function.model_dump()}
    return [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [made]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]


def assert_history_reaches_the_prompt(
    client: openai.OpenAI, history: list[dict[str, object]]
) -> None:
    followed, alone = (
        client.chat.completions.create(
            model=MODEL_ID,
            messages=messages,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            max_tokens=8,
            temperature=0,
        )
        for messages in (history, ASK)
    )
    assert followed.usage is not None and alone.usage is not None
    assert followed.usage.prompt_tokens > alone.usage.prompt_tokens + 10


@pytest.fixture(scope="module")
def hermes_client(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[openai.OpenAI]:
    """The bundled model behind a chat template with its own tool format (Hermes style,
    `<tool_call>` tags, as Qwen2.5's): tools go through the template, not privserve's text."""
    yield from serve_with_template(tmp_path_factory, api_key, "hermes_tools.jinja")


@pytest.mark.parametrize("parallel", [False, True])
def test_a_templates_own_tool_format_gives_valid_calls(
    hermes_client: openai.OpenAI, parallel: bool
) -> None:
    reply = hermes_client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="required",
        parallel_tool_calls=parallel,
        temperature=0.7,
        seed=3,
        max_tokens=100,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.content is None
    for call in choice.message.tool_calls:
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    if not parallel:
        assert len(choice.message.tool_calls) == 1


def test_a_templates_own_format_streams_a_named_call_and_reads_history(
    hermes_client: openai.OpenAI,
) -> None:
    call = streamed_named_call(hermes_client, "get_time")
    # The call and its result go back through the template's own tags.
    assert_history_reaches_the_prompt(hermes_client, call_and_result(call, "12:00"))


@pytest.fixture(scope="module")
def llama3_client(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[openai.OpenAI]:
    """The bundled model behind a Llama 3.x style template: bare `{"name", "parameters"}`
    calls, one per turn, results in the ipython role."""
    yield from serve_with_template(tmp_path_factory, api_key, "llama3_tools.jinja")


def test_a_llama3_template_gets_one_valid_call_even_when_parallel_is_allowed(
    llama3_client: openai.OpenAI,
) -> None:
    for seed in (1, 2):
        reply = llama3_client.chat.completions.create(
            model=MODEL_ID,
            messages=ASK,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice="required",
            parallel_tool_calls=True,
            temperature=0.7,
            seed=seed,
            max_tokens=100,
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls or []
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_a_llama3_call_streams_and_its_history_goes_back_through_the_template(
    llama3_client: openai.OpenAI,
) -> None:
    call = streamed_named_call(llama3_client, "get_weather")
    history = call_and_result(call, "Sunny, 21 degrees")
    assert_history_reaches_the_prompt(llama3_client, history)
    # Two calls in one turn are more than this template can write: its own error, as a 400.
    made = history[1]["tool_calls"]
    assert isinstance(made, list)
    with pytest.raises(openai.BadRequestError) as refused:
        llama3_client.chat.completions.create(
            model=MODEL_ID,
            messages=[
                *ASK,
                {"role": "assistant", "content": None, "tool_calls": made * 2},
            ],  # type: ignore[list-item]
            tools=TOOLS,  # type: ignore[arg-type]
            max_tokens=8,
        )
    assert "one tool call per turn" in str(refused.value)
