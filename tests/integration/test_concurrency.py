"""Model compute stays off the event loop; disconnected clients free the engine."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.integration.conftest import MODEL_ID, NO_END
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

LONG = {
    "model": MODEL_ID,
    "messages": [{"role": "user", "content": "Write a very long story."}],
    "max_tokens": 1500,
    "temperature": 0.7,
    "logit_bias": NO_END,
}


def engine_stats(server: RunningServer) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(server.root_url + "/health").json()["models"][MODEL_ID]
    return stats


def wait_idle(server: RunningServer, timeout_s: float = 10) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = engine_stats(server)
        if stats["running_requests"] == 0 and stats["queued_requests"] == 0:
            return stats
        time.sleep(0.05)
    raise AssertionError(f"engine still busy: {stats}")


async def test_health_and_models_answer_during_generation(
    server: RunningServer, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=server.root_url, headers=headers, timeout=60) as http:
        async with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as r:
            lines = r.aiter_lines()
            async for line in lines:
                if line.startswith("data: ") and '"content":"' in line:
                    break  # generation is under way
            for path in ("/health", "/v1/models"):
                started = time.monotonic()
                response = await http.get(path)
                assert response.status_code == 200
                assert time.monotonic() - started < 0.5, path
            assert engine_stats(server)["running_requests"] == 1


def read_events(server: RunningServer, api_key: str, stop_after: int) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=server.root_url, headers=headers, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as r:
            seen = 0
            for line in r.iter_lines():
                seen += line.startswith("data: ")
                if seen >= stop_after:
                    return  # leaving the block closes the connection mid-stream


def test_disconnect_mid_stream_stops_generation(server: RunningServer, api_key: str) -> None:
    before = wait_idle(server)
    read_events(server, api_key, stop_after=5)
    after = wait_idle(server)
    assert after["completed_requests"] == before["completed_requests"] + 1
    # Five events read; the engine notices the disconnect within a few more tokens.
    assert after["generated_tokens"] - before["generated_tokens"] < 40


def test_disconnect_while_waiting_for_a_non_stream_answer(
    server: RunningServer, api_key: str
) -> None:
    before = wait_idle(server)
    headers = {"Authorization": f"Bearer {api_key}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.root_url + "/v1/chat/completions", json=LONG, headers=headers, timeout=1.0
        )
    after = wait_idle(server, timeout_s=5)
    # About a second of generation at most, far from the 1500 tokens asked for.
    assert after["generated_tokens"] - before["generated_tokens"] < 400


async def test_eight_concurrent_streams_all_complete_together(
    server: RunningServer, api_key: str
) -> None:
    """Eight streams run side by side: each answers in full (ten tokens, a finish reason,
    [DONE]), and every one had its first token before any had finished."""
    headers = {"Authorization": f"Bearer {api_key}"}

    async def one(i: int, http: httpx.AsyncClient) -> tuple[float, float, int, str]:
        payload = {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": f"Count from {i}."}],
            "max_tokens": 10,
            "temperature": 0,
            "logit_bias": NO_END,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        first_token = finished = 0.0
        completion_tokens, finish_reason, done = 0, "", False
        async with http.stream("POST", "/v1/chat/completions", json=payload) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunk = json.loads(line.removeprefix("data: "))
                    for choice in chunk["choices"]:
                        if choice["delta"].get("content") and not first_token:
                            first_token = time.monotonic()
                        finish_reason = choice.get("finish_reason") or finish_reason
                    if chunk.get("usage"):
                        completion_tokens = chunk["usage"]["completion_tokens"]
                        finished = time.monotonic()
        assert done
        return first_token, finished, completion_tokens, finish_reason

    async with httpx.AsyncClient(base_url=server.root_url, headers=headers, timeout=120) as http:
        results = await asyncio.gather(*(one(i, http) for i in range(8)))
    assert [(tokens, reason) for _, _, tokens, reason in results] == [(10, "length")] * 8
    assert max(first for first, _, _, _ in results) < min(end for _, end, _, _ in results)
