"""`response_format` through the real server and the bundled model: the output is held to
JSON, or to a JSON schema, by a grammar; what comes back always parses and validates."""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import openai
import pytest

from tests.integration.conftest import MODEL_ID

pytestmark = pytest.mark.model

CITY_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 20},
        "population": {"type": "integer", "minimum": 0},
        "rivers": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
        "capital": {"type": "boolean"},
    },
    "required": ["city", "population", "rivers", "capital"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "Describe a city you like as JSON."}]
# The bundled tokenizer's ids for a newline and for a double quote.
NEWLINE, QUOTE = "107", "236775"
CODE_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": "^.{3,8}$"}},
    "required": ["code"],
    "additionalProperties": False,
}


def assert_schema_answer(
    client: openai.OpenAI, schema: dict[str, object], **sampling: object
) -> None:
    """A `json_schema` answer ends and validates, whatever the sampling."""
    reply = client.chat.completions.create(
        model=MODEL_ID,
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
        max_tokens=300,
        **sampling,  # type: ignore[arg-type]
    )
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "stop", content
    jsonschema.validate(json.loads(content), schema)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_json_schema_response_always_validates(client: openai.OpenAI, seed: int) -> None:
    assert_schema_answer(client, CITY_SCHEMA, temperature=0.9, seed=seed)


@pytest.mark.parametrize(
    ("schema", "leaning"),
    [(CITY_SCHEMA, NEWLINE), (CODE_SCHEMA, QUOTE)],
    ids=["newline-in-a-string", "quote-in-a-pattern"],
)
def test_strings_stay_json_when_the_model_leans_to_bad_characters(
    client: openai.OpenAI, schema: dict[str, object], leaning: str
) -> None:
    """A raw newline is no JSON string character, nor is a bare quote where a pattern's `.`
    stands: pushed hard towards one, the model must still write strings that a strict JSON
    parser reads."""
    assert_schema_answer(client, schema, logit_bias={leaning: 30}, temperature=0)


def test_json_object_mode_gives_objects_also_when_streamed(client: openai.OpenAI) -> None:
    # Object strings are unbounded, so about a third of the answers run into max_tokens;
    # eight seeds make at least two that end near certain, in any order of earlier tests.
    finished = 0
    for seed in range(1, 9):
        stream = client.chat.completions.create(
            model=MODEL_ID,
            messages=MESSAGES,  # type: ignore[arg-type]
            response_format={"type": "json_object"},
            temperature=0.9,
            seed=seed,
            max_tokens=300,
            stream=True,
        )
        chunks = [c for c in stream if c.choices]
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        # Free-form strings may run past max_tokens; every answer that ends is an object.
        if chunks[-1].choices[0].finish_reason == "stop":
            assert isinstance(json.loads(text), dict), text
            finished += 1
        else:
            assert text.startswith("{"), text
    assert finished >= 2


def test_free_text_is_unchanged_by_a_text_format(client: openai.OpenAI) -> None:
    plain, text_format = (
        client.chat.completions.create(
            model=MODEL_ID,
            messages=MESSAGES,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=12,
            **extra,  # type: ignore[arg-type]
        )
        .choices[0]
        .message.content
        for extra in ({}, {"response_format": {"type": "text"}})
    )
    assert plain == text_format


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ({"type": "json_schema"}, "response_format"),
        ({"type": "xml"}, "response_format.type"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_a_bad_response_format_is_a_clear_400(
    http: httpx.Client, response_format: dict[str, object], param: str
) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": MODEL_ID, "messages": MESSAGES, "response_format": response_format},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


# An answer only this grammar makes: a fixed opening, then one to three digits.
DIGITS_GRAMMAR = 'root ::= "Answer: " [0-9] [0-9]? [0-9]?'


@pytest.mark.parametrize("seed", [1, 2])
def test_a_grammar_holds_a_chat_answer_to_its_sentences(client: openai.OpenAI, seed: int) -> None:
    reply = client.chat.completions.create(
        model=MODEL_ID,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=20,
        temperature=1.0,
        seed=seed,
        extra_body={"grammar": DIGITS_GRAMMAR},
    )
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "stop", content
    assert re.fullmatch(r"Answer: [0-9]{1,3}", content), content


def test_a_grammar_holds_a_streamed_completion(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model=MODEL_ID,
        prompt="The number of the day is",
        max_tokens=20,
        temperature=1.0,
        seed=5,
        stream=True,
        extra_body={"grammar": DIGITS_GRAMMAR},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert re.fullmatch(r"Answer: [0-9]{1,3}", text), text
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("grammar", "says"),
    [
        ('root ::= undefined-rule "x"', "parse"),
        ('root ::= root "a" | "b"', "parse"),
        ('start ::= "x"', "parse"),
        ("", "at least 1 character"),
    ],
)
def test_a_bad_grammar_is_a_400_naming_grammar(http: httpx.Client, grammar: str, says: str) -> None:
    for path, body in [
        ("/v1/chat/completions", {"messages": MESSAGES}),
        ("/v1/completions", {"prompt": "Hi"}),
    ]:
        response = http.post(path, json={"model": MODEL_ID, "grammar": grammar, **body})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "grammar"
        assert says in error["message"]


def test_a_grammar_and_a_json_response_format_together_are_a_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL_ID,
            "messages": MESSAGES,
            "grammar": DIGITS_GRAMMAR,
            "response_format": {"type": "json_object"},
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "grammar"
