"""Every bad input gets an OpenAI error body with the right status, never a 500 or a 422."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID

pytestmark = pytest.mark.model

HI = [{"role": "user", "content": "Hi"}]


def error_of(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def test_malformed_json_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", content=b'{"model": ', headers={"Content-Type": "application/json"}
    )
    error = error_of(response, 400)
    assert error["type"] == "invalid_request_error"


def test_body_without_json_content_type_is_still_read(http: httpx.Client) -> None:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}'
    response = http.post(
        "/v1/chat/completions",
        content=body % MODEL_ID.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"model": MODEL_ID, "messages": HI, "temperature": 3}, "temperature"),
        ({"model": MODEL_ID, "messages": HI, "top_p": 1.5}, "top_p"),
        ({"model": MODEL_ID, "messages": HI, "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL_ID, "messages": HI, "n": 0}, "n"),
        ({"model": MODEL_ID, "messages": HI, "presence_penalty": -3}, "presence_penalty"),
        ({"model": MODEL_ID, "messages": HI, "stop": [1, 2]}, "stop"),
        ({"model": MODEL_ID, "messages": []}, "messages"),
        ({"model": MODEL_ID}, "messages"),
        ({"messages": HI}, "model"),
        ({"model": MODEL_ID, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL_ID, "messages": [{"role": "user"}]}, "messages[0]"),
        (
            {"model": MODEL_ID, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].type",
        ),
    ],
)
def test_schema_violations_name_the_param(
    http: httpx.Client, payload: dict[str, object], param: str
) -> None:
    error = error_of(http.post("/v1/chat/completions", json=payload), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_completion_prompt_errors(http: httpx.Client) -> None:
    bad_type = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": 5})
    assert error_of(bad_type, 400)["param"] == "prompt"
    out_of_vocab = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": [10**9]})
    assert error_of(out_of_vocab, 400)["param"] == "prompt[0]"


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=HI)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-3.5-turbo")


def test_context_length_exceeded(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL_ID, messages=HI, max_tokens=100_000)  # type: ignore[arg-type]
    assert caught.value.code == "context_length_exceeded"
    long_prompt = "word " * 6000
    response = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": long_prompt})
    assert error_of(response, 400)["code"] == "context_length_exceeded"


def test_wrong_path_and_method_are_openai_shaped(http: httpx.Client) -> None:
    assert error_of(http.get("/v1/nothing-here"), 404)["code"] == "not_found"
    assert error_of(http.delete("/v1/chat/completions"), 405)["code"] == "method_not_allowed"
    assert error_of(http.get("/v1/chat/completions"), 405)["code"] == "method_not_allowed"


def test_lone_surrogate_in_content_is_answered(http: httpx.Client) -> None:
    body = (
        '{"model": "%s", "messages": [{"role": "user", "content": "a\\ud800b"}], "max_tokens": 2}'
    )
    response = http.post("/v1/chat/completions", content=(body % MODEL_ID).encode())
    assert response.status_code == 200, response.text
