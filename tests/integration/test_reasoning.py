"""Thinking models through the real server: the bundled model behind a Qwen3-style and an
R1-style chat template (tests/data), held by `grammar` to write an exact thinking block and
answer, so what the server does with the block is all that varies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.integration.cli import run_privserve
from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server
from tests.integration.test_fastgpt import fastgpt_chat_body, sse_data

pytestmark = pytest.mark.model

TEMPLATES = Path(__file__).parents[1] / "data"
ASK = [{"role": "user", "content": "Is the north gate open at noon?"}]
# A block of lowercase words, then an answer of one capitalised word and a full stop.
THINK_THEN_ANSWER = (
    'root ::= "<think>\\n" thought "\\n</think>\\n\\n" answer\n'
    "thought ::= [a-z] [a-z ]{10,40}\n"
    'answer ::= [A-Z] [a-z]{1,10} "."'
)
# For a prompt that opened the block: the model starts inside it.
INSIDE_THEN_ANSWER = THINK_THEN_ANSWER.replace('"<think>\\n" ', "", 1)
ANSWER_ONLY = 'root ::= [A-Z] [a-z]{1,10} "."'
ANSWER = re.compile(r"[A-Z][a-z]{1,10}\.")
THOUGHT = re.compile(r"\n[a-z][a-z ]{10,40}\n")


def serve(
    tmp_path_factory: pytest.TempPathFactory, api_key: str, template: str, **env: str
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp(template.split(".")[0])
    running = start_server(
        home,
        args=["--chat-template", str(TEMPLATES / template), "--embedding-model", ""],
        env={"PRIVSERVE_API_KEY": api_key, **env},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def qwen3_style(tmp_path_factory: pytest.TempPathFactory, api_key: str) -> Iterator[RunningServer]:
    yield from serve(tmp_path_factory, api_key, "qwen3-style.jinja")


@pytest.fixture(scope="module")
def r1_style(tmp_path_factory: pytest.TempPathFactory, api_key: str) -> Iterator[RunningServer]:
    # Also: the reasoning in both fields newer vLLM clients and older ones read.
    yield from serve(tmp_path_factory, api_key, "r1-style.jinja", PRIVSERVE_REASONING_FORMAT="both")


@pytest.fixture
def qwen(qwen3_style: RunningServer, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=qwen3_style.base_url, api_key=api_key, max_retries=0) as c:
        yield c


def ask(client: openai.OpenAI, grammar: str, **extra: Any) -> Any:
    sampling = {"max_tokens": 80, "temperature": 0.8, "seed": 3, **extra}
    return client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        extra_body={"grammar": grammar, **sampling.pop("extra_body", {})},
        **sampling,
    )


def test_the_thinking_block_comes_back_as_reasoning_content(qwen: openai.OpenAI) -> None:
    reply = ask(qwen, THINK_THEN_ANSWER)
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "stop"
    assert THOUGHT.fullmatch(message.reasoning_content), message.reasoning_content  # type: ignore[attr-defined]
    assert ANSWER.fullmatch(message.content or ""), message.content
    assert "<think>" not in (message.content or "")
    details = reply.usage.completion_tokens_details
    assert details is not None
    assert 0 < details.reasoning_tokens < reply.usage.completion_tokens


def test_reasoning_streams_before_the_block_closes(qwen: openai.OpenAI) -> None:
    stream = ask(qwen, THINK_THEN_ANSWER, stream=True, stream_options={"include_usage": True})
    order, reasoning, content, usage, finish = [], "", "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        finish = chunk.choices[0].finish_reason or finish
        piece = getattr(delta, "reasoning_content", None)
        if piece:
            reasoning += piece
            order.append("reasoning")
        if delta.content:
            content += delta.content
            order.append("content")
    assert THOUGHT.fullmatch(reasoning), reasoning
    assert ANSWER.fullmatch(content), content
    # Several reasoning deltas, all before the first piece of the answer.
    assert order.count("reasoning") > 2
    assert order.index("content") == order.count("reasoning")
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens > 0


@pytest.mark.parametrize(
    "off",
    [
        {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}},
        {"extra_body": {"enable_thinking": False}},
        {"reasoning_effort": "none"},
    ],
)
def test_thinking_off_renders_the_templates_empty_block(
    qwen: openai.OpenAI, off: dict[str, Any]
) -> None:
    reply = ask(qwen, ANSWER_ONLY, **off)
    message = reply.choices[0].message
    assert ANSWER.fullmatch(message.content or ""), message.content
    assert getattr(message, "reasoning_content", None) is None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0


def test_an_answer_cut_inside_the_block_is_reasoning_only(qwen: openai.OpenAI) -> None:
    # The opening tag takes the grammar several tokens; twelve end inside the thought.
    stream = ask(qwen, THINK_THEN_ANSWER, stream=True, max_tokens=12)
    reasoning, content, finish = "", "", None
    for chunk in stream:
        delta = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        content += delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "length"
    assert reasoning and not content


def test_a_template_that_opens_the_block_has_the_answer_start_inside_it(
    r1_style: RunningServer, api_key: str
) -> None:
    with openai.OpenAI(base_url=r1_style.base_url, api_key=api_key, max_retries=0) as client:
        reply = ask(client, INSIDE_THEN_ANSWER)
        message = reply.choices[0].message
        assert THOUGHT.fullmatch("\n" + message.reasoning_content), message.reasoning_content  # type: ignore[attr-defined]
        assert message.reasoning == message.reasoning_content  # type: ignore[attr-defined]
        assert ANSWER.fullmatch(message.content or "")
        # Off, without a switch in the template: the prompt's block is closed for it.
        reply = ask(client, ANSWER_ONLY, reasoning_effort="none")
        assert ANSWER.fullmatch(reply.choices[0].message.content or "")
        assert getattr(reply.choices[0].message, "reasoning_content", None) is None


def test_fastgpts_stream_reader_shows_reasoning_and_answer_apart(
    qwen3_style: RunningServer, api_key: str
) -> None:
    body = fastgpt_chat_body(stream=True, max_tokens=80, grammar=THINK_THEN_ANSWER)
    del body["enable_thinking"], body["chat_template_kwargs"]  # a deployment that thinks
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=qwen3_style.base_url, headers=headers, timeout=120) as http:
        with http.stream("POST", "/chat/completions", json=body) as response:
            assert response.status_code == 200
            chunks = sse_data(response)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    # As FastGPT reads a stream: reasoning_content into its panel, content into the answer.
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    answer = "".join(d.get("content") or "" for d in deltas)
    assert THOUGHT.fullmatch(reasoning)
    assert ANSWER.fullmatch(answer)


def test_fastgpt_config_marks_a_thinking_model_as_reasoning(
    qwen3_style: RunningServer, server: RunningServer, api_key: str
) -> None:
    def llm_entry(running: RunningServer) -> dict[str, Any]:
        served = httpx.get(
            running.base_url + "/privserve/integrations",
            headers={"Authorization": f"Bearer {api_key}"},
        ).json()
        [entry] = served["fastgpt"]["config_json"]["llmModels"]
        assert isinstance(entry, dict)
        return entry

    assert llm_entry(qwen3_style)["reasoning"] is True
    assert llm_entry(server)["reasoning"] is False  # the bundled template writes no block

    # The command reads it from the file's template and the settings, with no server.
    def printed(**env: str) -> Any:
        done = run_privserve(server.home, "fastgpt-config", "--embedding-model", "", env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["llmModels"][0]["reasoning"]

    assert printed() is False
    assert printed(PRIVSERVE_CHAT_TEMPLATE=str(TEMPLATES / "qwen3-style.jinja")) is True
    assert printed(PRIVSERVE_MODELS=json.dumps({MODEL_ID: {"thinks": True}})) is True


# The bundled tokenizer's newline tokens: banned, the model never ends a thought itself.
NO_NEWLINE = {"107": -100, "108": -100}
OPEN_THOUGHT = (
    'root ::= "<think>\\n" [a-z] [a-z ]{0,400} "\\n</think>\\n\\n" answer\n'
    'answer ::= [A-Z] [a-z]{1,10} "."'
)


@pytest.mark.parametrize("field", ["thinking_budget", "max_reasoning_tokens"])
def test_the_budget_closes_the_block_at_exactly_the_budget(qwen: openai.OpenAI, field: str) -> None:
    reply = ask(
        qwen,
        OPEN_THOUGHT,
        max_tokens=120,
        logit_bias=NO_NEWLINE,
        extra_body={field: 16},
    )
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens_details.reasoning_tokens == 16
    assert message.reasoning_content.strip()  # type: ignore[attr-defined]
    assert ANSWER.fullmatch(message.content or ""), message.content


def test_a_json_answer_after_free_reasoning_validates(qwen: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"open": {"type": "boolean"}, "hour": {"type": "integer"}},
        "required": ["open", "hour"],
        "additionalProperties": False,
    }
    reply = qwen.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=120,
        temperature=0.8,
        seed=5,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "gate", "schema": schema, "strict": True},
        },
        extra_body={"thinking_budget": 24},
    )
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "stop", message
    # The reasoning was free text, not JSON; the answer after it is held to the schema.
    reasoning = message.reasoning_content  # type: ignore[attr-defined]
    assert reasoning and not reasoning.lstrip().startswith("{")
    jsonschema.validate(json.loads(message.content or ""), schema)
    assert reply.usage.completion_tokens_details.reasoning_tokens == 24


def test_a_required_tool_call_after_reasoning_is_read(qwen: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "gate_hours",
            "parameters": {
                "type": "object",
                "properties": {"gate": {"type": "string", "enum": ["north", "south"]}},
                "required": ["gate"],
            },
        },
    }
    reply = qwen.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,  # type: ignore[arg-type]
        tools=[tool],  # type: ignore[list-item]
        tool_choice="required",
        max_tokens=120,
        seed=5,
        extra_body={"thinking_budget": 12},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and choice.message.tool_calls[0].function.name == "gate_hours"
    assert json.loads(choice.message.tool_calls[0].function.arguments)["gate"] in ("north", "south")
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
