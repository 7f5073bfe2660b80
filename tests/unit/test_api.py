"""The HTTP layer on a fake engine: SSE framing, usage, error mapping, overload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from privserve.api.app import create_app
from privserve.api.errors import param_from_loc
from privserve.config import Settings
from tests.unit.fake_engine import FakeEngine

KEY = "unit-test-key"
HI = [{"role": "user", "content": "hi there"}]


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def api(tmp_path: Path, engine: FakeEngine) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path, api_key=KEY)  # type: ignore[arg-type]
    app = create_app(settings, text_engines={"fake": engine})
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def events(body: str) -> list[str]:
    assert body.endswith("\n\n")
    frames = body.split("\n\n")[:-1]
    assert all(f.startswith("data: ") for f in frames)
    return [f.removeprefix("data: ") for f in frames]


def test_sse_framing_role_first_done_last(api: TestClient) -> None:
    response = api.post(
        "/v1/chat/completions",
        json={
            "model": "fake",
            "messages": HI,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = events(response.text)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == (
        "Hello there!"
    )
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 3,
        "total_tokens": 6,
        "prompt_tokens_details": {"cached_tokens": 1},
    }
    assert all(c["usage"] is None for c in chunks[:-1])


def test_usage_field_absent_without_include_usage(api: TestClient) -> None:
    response = api.post(
        "/v1/chat/completions", json={"model": "fake", "messages": HI, "stream": True}
    )
    chunks = [json.loads(f) for f in events(response.text)[:-1]]
    assert all("usage" not in c for c in chunks)


def test_non_stream_usage_and_n(api: TestClient) -> None:
    body = api.post("/v1/chat/completions", json={"model": "fake", "messages": HI, "n": 3}).json()
    assert [c["message"]["content"] for c in body["choices"]] == ["Hello there!"] * 3
    # The prompt is shared by the choices: its cached tokens are counted once.
    assert body["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 9,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 1},
    }


def test_overload_is_429_with_retry_after_and_frees_what_was_queued(
    api: TestClient, engine: FakeEngine
) -> None:
    engine.capacity = 1
    response = api.post("/v1/chat/completions", json={"model": "fake", "messages": HI, "n": 2})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "server_busy"
    assert engine.streams[0].cancelled


def test_context_check_uses_the_engine_length(api: TestClient) -> None:
    response = api.post(
        "/v1/chat/completions", json={"model": "fake", "messages": HI, "max_tokens": 62}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    ok = api.post("/v1/chat/completions", json={"model": "fake", "messages": HI, "max_tokens": 61})
    assert ok.status_code == 200


def test_chat_logprobs_in_openai_shape(api: TestClient) -> None:
    body = api.post(
        "/v1/chat/completions",
        json={"model": "fake", "messages": HI, "logprobs": True, "top_logprobs": 2},
    ).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in content] == ["Hello", " there", "!"]
    assert [e["logprob"] for e in content] == [-1.0, -2.0, -3.0]
    assert content[1]["bytes"] == list(b" there")
    assert [t["token"] for t in content[0]["top_logprobs"]] == ["a", "b"]
    plain = api.post("/v1/chat/completions", json={"model": "fake", "messages": HI}).json()
    assert plain["choices"][0]["logprobs"] is None


def test_chat_stream_chunks_carry_their_tokens_logprobs(api: TestClient) -> None:
    response = api.post(
        "/v1/chat/completions",
        json={"model": "fake", "messages": HI, "logprobs": True, "stream": True},
    )
    chunks = [json.loads(f) for f in events(response.text)[:-1]]
    tokens = [
        entry["token"]
        for c in chunks
        if c["choices"] and c["choices"][0]["logprobs"]
        for entry in c["choices"][0]["logprobs"]["content"]
    ]
    assert tokens == ["Hello", " there", "!"]


def test_completion_logprobs_in_legacy_shape(api: TestClient) -> None:
    body = api.post(
        "/v1/completions",
        json={"model": "fake", "prompt": "hi there", "logprobs": 1, "echo": True},
    ).json()
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["tokens"] == ["Hello", " there", "!"]
    assert logprobs["token_logprobs"] == [-1.0, -2.0, -3.0]
    assert logprobs["top_logprobs"] == [{"a": -2.0}, {"a": -3.0}, {"a": -4.0}]
    # Offsets count from the start of the choice's text, echoed prompt included.
    assert logprobs["text_offset"] == [8, 13, 19]


def test_top_logprobs_need_logprobs(api: TestClient) -> None:
    response = api.post(
        "/v1/chat/completions", json={"model": "fake", "messages": HI, "top_logprobs": 2}
    )
    assert response.status_code == 400
    assert "top_logprobs" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("bias", "message"),
    [({"hello": 1}, "token ids"), ({"5": 200}, "[-100, 100]"), ({"100": 1}, "vocabulary")],
)
def test_bad_logit_bias_is_400(api: TestClient, bias: dict[str, float], message: str) -> None:
    response = api.post(
        "/v1/chat/completions", json={"model": "fake", "messages": HI, "logit_bias": bias}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"].startswith("logit_bias") and message in error["message"]


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        (("body", "messages", 0, "content"), "messages[0].content"),
        (("body", "prompt", "str"), "prompt"),
        (("body", "prompt", "list[int]", 3), "prompt[3]"),
        (("body",), None),
    ],
)
def test_param_from_loc(loc: tuple[int | str, ...], param: str | None) -> None:
    assert param_from_loc(loc) == param


@pytest.mark.parametrize(
    "body",
    [
        "null",
        '"text"',
        "{}",
        '{"model": null, "messages": null}',
        '{"model": "fake", "messages": "hi"}',
        '{"model": "fake", "messages": [{"role": "user", "content": {"a": 1}}]}',
        '{"model": "fake", "messages": [{"role": "user", "content": [{"type": "text"}]}]}',
        '{"model": "fake", "messages": [{"role": "user", "content": "x"}], "stop": {"a": 1}}',
        '{"model": "fake", "messages": [{"role": "user", "content": "x"}], "n": 1.5}',
        '{"model": "fake", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e30}',
        '{"model": "fake", "messages": [{"role": "user", "content": "x"}], "seed": "abc"}',
        '{"model": "fake", "messages": [{"role": "user", "content": "x"}], "stream": "maybe"}',
        '{"model": "fake", "messages": [{"role": "user", "content": "x"}], "stop": ["a"] }',
        '{"model": "fake", "messages": [{"role": "user", "content": "\\ud800"}]}',
    ],
)
def test_odd_bodies_never_give_a_500(api: TestClient, body: str) -> None:
    for path in ("/v1/chat/completions", "/v1/completions"):
        response = api.post(path, content=body.encode())
        assert response.status_code < 500, (path, body, response.text)
        if response.status_code != 200:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_health_is_503_once_an_engine_cannot_serve(api: TestClient, engine: FakeEngine) -> None:
    assert api.get("/health").status_code == 200
    engine.health = lambda: "the engine thread failed: Fault()"  # type: ignore[method-assign]
    response = api.get("/health")
    assert response.status_code == 503
    error = response.json()["error"]
    assert "fake: the engine thread failed" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_a_draining_server_answers_503_with_retry_after(api: TestClient) -> None:
    drain = api.app.state.drain  # type: ignore[attr-defined]
    drain.is_draining = True
    try:
        response = api.get("/v1/models")
    finally:
        drain.is_draining = False
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "shutting_down"


def test_metrics_can_be_kept_for_admin_keys(tmp_path: Path, engine: FakeEngine) -> None:
    settings = Settings(
        home=tmp_path,
        api_key="sk-ps-user",  # type: ignore[arg-type]
        admin_key="sk-ps-admin",  # type: ignore[arg-type]
        server={"metrics_need_admin_key": True},  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings, text_engines={"fake": engine})) as client:
        assert client.get("/metrics").status_code == 401
        user = client.get("/metrics", headers={"Authorization": "Bearer sk-ps-user"})
        assert user.status_code == 403
        admin = client.get("/metrics", headers={"Authorization": "Bearer sk-ps-admin"})
        assert admin.status_code == 200 and "privserve_build_info" in admin.text


def test_the_console_is_served_with_its_policy_and_can_be_turned_off(
    tmp_path: Path, engine: FakeEngine
) -> None:
    settings = Settings(home=tmp_path, api_key=KEY)  # type: ignore[arg-type]
    with TestClient(create_app(settings, text_engines={"fake": engine})) as client:
        page = client.get("/ui")
        assert page.status_code == 200 and "/ui/static/app.js" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        script = client.get("/ui/static/pages/playground.js")
        assert script.status_code == 200 and script.headers["x-content-type-options"] == "nosniff"
        assert client.get("/ui/static/../../config.py").status_code == 404
        assert "/ui" not in client.get("/openapi.json").json()["paths"]
    off = Settings(home=tmp_path, api_key=KEY, server={"console": False})  # type: ignore[arg-type]
    with TestClient(create_app(off, text_engines={"fake": engine})) as client:
        assert client.get("/ui").status_code == 404
        assert client.get("/ui/static/app.js").status_code == 404
