"""Input built to hurt gets a clear 4xx before it costs anything, and the server keeps
serving: schemas whose grammars would not fit in memory, grammars llama.cpp refuses, huge
lists and numbers, odd bodies."""

from __future__ import annotations

import json
import random
import string
import time

import httpx
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer
from tests.integration.test_errors import error_of

pytestmark = pytest.mark.model

HI = [{"role": "user", "content": "Hi"}]
SCHEMA_PARAM = "response_format.json_schema.schema"


def with_schema(schema: object, **extra: object) -> dict[str, object]:
    return {
        "model": MODEL_ID,
        "messages": HI,
        "max_tokens": 4,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        **extra,
    }


def assert_still_serving(http: httpx.Client) -> None:
    assert http.get("/health", timeout=5).status_code == 200
    reply = http.post(
        "/v1/chat/completions",
        json={"model": MODEL_ID, "messages": HI, "max_tokens": 2, "temperature": 0},
    )
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("schema", "param"),
    [
        ({"type": "string", "minLength": 10**9}, f"{SCHEMA_PARAM}.minLength"),
        ({"type": "string", "maxLength": 10**8}, f"{SCHEMA_PARAM}.maxLength"),
        (
            {"type": "object", "properties": {"tags": {"type": "array", "minItems": 5000}}},
            f"{SCHEMA_PARAM}.properties.tags.minItems",
        ),
        ({"type": "array", "maxItems": 10**6}, f"{SCHEMA_PARAM}.maxItems"),
        ({"enum": [f"v{i}" for i in range(10_000)]}, f"{SCHEMA_PARAM}.enum"),
        ({"anyOf": [{"const": i} for i in range(2000)]}, f"{SCHEMA_PARAM}.anyOf"),
        ({"type": "string", "pattern": "^(a{100}){100}$"}, f"{SCHEMA_PARAM}.pattern"),
        ({"type": "string", "pattern": "^x{1000000}$"}, f"{SCHEMA_PARAM}.pattern"),
    ],
    ids=[
        "minLength",
        "maxLength",
        "nested-minItems",
        "maxItems",
        "enum",
        "anyOf",
        "pattern",
        "pattern-count",
    ],
)
def test_a_schema_past_a_limit_is_a_400_naming_where_it_is(
    http: httpx.Client, schema: object, param: str
) -> None:
    error = error_of(http.post("/v1/chat/completions", json=with_schema(schema), timeout=30), 400)
    assert error["param"] == param, error
    assert_still_serving(http)


def test_a_tools_schema_past_a_limit_is_a_400_naming_the_tool(http: httpx.Client) -> None:
    tools = [
        {"type": "function", "function": {"name": "fine"}},
        {
            "type": "function",
            "function": {
                "name": "greedy",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string", "maxLength": 10**9}},
                },
            },
        },
    ]
    payload = {"model": MODEL_ID, "messages": HI, "tools": tools, "tool_choice": "required"}
    error = error_of(http.post("/v1/chat/completions", json=payload, timeout=30), 400)
    assert error["param"] == "tools[1].function.parameters.properties.q.maxLength", error


@pytest.mark.parametrize("stream", [False, True])
def test_a_grammar_llama_cpp_cannot_parse_is_a_400_before_any_byte(
    http: httpx.Client, stream: bool
) -> None:
    """An empty enum admits no document; llama.cpp refuses its grammar. That is the
    client's 400, before the stream's first chunk, never a 500 in the middle of it."""
    payload = with_schema({"enum": []}, stream=stream)
    with http.stream("POST", "/v1/chat/completions", json=payload) as response:
        response.read()
    error = error_of(response, 400)
    assert error["param"] == SCHEMA_PARAM, error
    assert "grammar" in str(error["message"])


def test_a_large_allowed_enum_does_not_hold_up_other_requests(
    server: RunningServer, http: httpx.Client, api_key: str
) -> None:
    """A 1,000-value enum of random strings: the model's own picks rarely fit, so most of its
    tokens need the grammar's pass over the whole vocabulary (seconds each). That runs off
    the engine thread: a plain chat sent beside it finishes while it is still choosing."""
    rng = random.Random(7)
    values = ["".join(rng.choices(string.ascii_letters, k=20)) for _ in range(1000)]
    slow = with_schema({"enum": values}, max_tokens=6, temperature=1.0, seed=3, stream=True)
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.root_url, headers=headers, timeout=300) as other:
        with other.stream("POST", "/v1/chat/completions", json=slow) as constrained:
            assert constrained.status_code == 200
            lines = constrained.iter_lines()
            assert next(lines).startswith("data: ")  # the role chunk: it is running
            plain = http.post(
                "/v1/chat/completions",
                json={"model": MODEL_ID, "messages": HI, "max_tokens": 8, "temperature": 0},
            )
            assert plain.status_code == 200, plain.text
            finished_plain = time.monotonic()
            rest = [line for line in lines if line]
            finished_constrained = time.monotonic()
    assert plain.json()["choices"][0]["finish_reason"] in ("stop", "length")
    assert rest[-1] == "data: [DONE]", rest[-3:]
    assert finished_constrained > finished_plain
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in rest
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    )
    assert text.startswith('"') and len(text) > 1  # held to the enum from its first token


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        ({"messages": HI, "stop": [f"s{i}" for i in range(10_000)]}, 400, "stop"),
        ({"messages": HI, "logit_bias": {str(i): 1 for i in range(100_000)}}, 400, "logit_bias"),
        ({"messages": HI, "n": 10_000}, 400, "n"),
        ({"messages": HI, "max_tokens": 2**31}, 400, "max_tokens"),
        ({"messages": HI, "temperature": float("nan")}, 400, "temperature"),
        ({"messages": HI, "top_p": float("inf")}, 400, "top_p"),
        ({"messages": HI, "seed": 2**80}, 400, "seed"),
        ({"messages": HI, "top_k": 2**80}, 400, "top_k"),
        ({"messages": [{"role": "user", "content": "word " * 200_000}]}, 400, "messages"),
    ],
    ids=[
        "stop-10k",
        "logit-bias-100k",
        "n-10k",
        "max-tokens-2^31",
        "nan",
        "inf",
        "seed-2^80",
        "top-k-2^80",
        "1mb-prompt",
    ],
)
def test_outsized_fields_get_a_clear_400(
    http: httpx.Client, payload: dict[str, object], status: int, param: str
) -> None:
    body = json.dumps({"model": MODEL_ID, **payload}, allow_nan=True)
    response = http.post(
        "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )
    error = error_of(response, status)
    assert error["param"] == param, error
    if payload.get("temperature") is not None:
        assert "2" not in str(error["message"]), error  # not "less than or equal to 2"
    assert_still_serving(http)


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"model": "\xff\xfe", "messages": []}', b"\x00" * 64],
    ids=["nested-100k", "invalid-utf8", "nul-bytes"],
)
def test_odd_bodies_get_a_clear_400(http: httpx.Client, body: bytes) -> None:
    response = http.post(
        "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )
    error_of(response, 400)
    assert_still_serving(http)


def test_a_completion_without_max_tokens_or_with_null_gets_sixteen(http: httpx.Client) -> None:
    no_end = {"1": -100, "106": -100, "212": -100}
    for extra in ({}, {"max_tokens": None}):
        payload = {"model": MODEL_ID, "prompt": "Once", "logit_bias": no_end, **extra}
        reply = http.post("/v1/completions", json=payload)
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] == 16, extra


def test_a_wrong_method_is_405_with_allow(http: httpx.Client) -> None:
    response = http.get("/v1/chat/completions")
    error_of(response, 405)
    assert response.headers["allow"] == "POST"
