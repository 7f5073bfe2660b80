"""What a team's server does beyond one request: interactive keys ahead of batch ones in the
scheduler, two servers enforcing one budget through PostgreSQL and Redis, and a ledger that
survives the server being killed."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID, NO_END
from tests.integration.server import RunningServer, start_server
from tests.integration.test_limits import (
    EMBED_ID,
    chat_within_quota,
    fresh_minute,
    key_json,
    new_key,
    usage_json,
)

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def one_slot_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One slot, so requests wait for it."""
    home = tmp_path_factory.mktemp("one-slot")
    running = start_server(home, env={"PRIVSERVE_LLAMA__PARALLEL": "1"})
    yield running
    running.stop()


async def queued(server: RunningServer, count: int) -> None:
    """Returns once `count` requests wait for the model's slot."""
    async with httpx.AsyncClient(base_url=server.root_url) as http:
        for _ in range(600):
            stats = (await http.get("/health")).json()["models"][MODEL_ID]
            if stats["queued_requests"] >= count:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"never saw {count} requests waiting")


async def test_a_waiting_interactive_request_starts_before_earlier_batch_ones(
    one_slot_server: RunningServer,
) -> None:
    server = one_slot_server
    interactive, _ = new_key(server.home)
    batch, _ = new_key(server.home, "--priority", "batch")
    started: dict[str, float] = {}

    async def chat(key: str, name: str, max_tokens: int) -> None:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=key, max_retries=0, timeout=120
        ) as client:
            stream = await client.chat.completions.create(
                model=MODEL_ID,
                messages=[{"role": "user", "content": f"Tell me about {name}."}],
                max_tokens=max_tokens,
                logit_bias=NO_END,
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    started.setdefault(name, time.monotonic())

    holder = asyncio.create_task(chat(interactive, "holder", 40))
    while "holder" not in started:
        await asyncio.sleep(0.01)
    batches = [asyncio.create_task(chat(batch, f"batch-{i}", 3)) for i in range(3)]
    await queued(server, 3)
    late = asyncio.create_task(chat(interactive, "interactive", 3))
    await queued(server, 4)
    await asyncio.gather(holder, late, *batches)
    assert started["interactive"] < min(started[f"batch-{i}"] for i in range(3)), started


async def test_two_servers_share_one_rate_limit_and_one_quota(
    postgres_url: str, tmp_path: Path
) -> None:
    shared = {
        "PRIVSERVE_DATABASE_URL": postgres_url,
        "PRIVSERVE_LIMITS__STORAGE_URL": "redis://127.0.0.1:6379",
        "PRIVSERVE_LIMITS__KEY_PREFIX": "test-" + secrets.token_hex(6),
    }
    first = start_server(tmp_path / "a", env=shared)
    try:
        second = start_server(tmp_path / "b", env=shared)
        try:
            await _share_one_budget(first, second, shared)
        finally:
            second.stop()
    finally:
        first.stop()


async def _share_one_budget(
    first: RunningServer, second: RunningServer, shared: dict[str, str]
) -> None:
    home = first.home
    limited, _ = new_key(home, "--rpm", "4", env=shared)
    fresh_minute()
    statuses = []
    async with httpx.AsyncClient(timeout=60) as http:
        for i in range(6):
            server = (first, second)[i % 2]
            answer = await http.post(
                server.base_url + "/embeddings",
                json={"model": EMBED_ID, "input": "shared"},
                headers={"Authorization": f"Bearer {limited}"},
            )
            statuses.append(answer.status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]

    quota = 240
    metered, key_id = new_key(home, "--quota", f"{quota}/month", env=shared)

    results = await asyncio.gather(
        *(chat_within_quota((first, second)[i % 2].base_url, metered, i) for i in range(16))
    )
    served = [r for r in results if r is not None]
    assert served and None in results, results
    assert sum(served) <= quota
    assert key_json(home, key_id, env=shared)["quota_used"] == sum(served)
    [row] = usage_json(home, "--key", str(key_id), env=shared)["data"]
    assert row["total_tokens"] == sum(served) and row["requests"] == 16
    [day] = usage_json(home, "--key", str(key_id), "--by", "day", env=shared)["data"]
    assert day["requests"] == 16


async def test_after_a_kill_every_complete_response_is_on_the_ledger_once(
    tmp_path: Path,
) -> None:
    env = {"PRIVSERVE_LEDGER__HOLD_S": "2"}
    server = start_server(tmp_path, env=env)
    key, key_id = new_key(tmp_path, "--quota", "100000/total")
    complete: dict[str, tuple[int, int]] = {}  # request id: (prompt, completion) tokens

    async def stream(http: httpx.AsyncClient, i: int) -> None:
        request_id = f"kill-{i}"
        async with http.stream(
            "POST",
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}", "x-request-id": request_id},
            json={
                "model": MODEL_ID,
                "messages": [{"role": "user", "content": f"Story {i}."}],
                "max_tokens": 4 + 12 * i,
                "logit_bias": NO_END,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ) as response:
            usage = None
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    assert usage is not None
                    complete[request_id] = (usage["prompt_tokens"], usage["completion_tokens"])
                elif line.startswith("data: ") and '"usage":{' in line:
                    usage = httpx.Response(200, content=line[6:]).json()["usage"]

    async def kill_when_some_are_done() -> None:
        while len(complete) < 5:
            await asyncio.sleep(0.01)
        os.kill(server.process.pid, signal.SIGKILL)

    async with httpx.AsyncClient(base_url=server.root_url, timeout=120) as http:
        results = await asyncio.gather(
            kill_when_some_are_done(),
            *(stream(http, i) for i in range(16)),
            return_exceptions=True,
        )
    server.wait_exit()
    cut = [r for r in results if isinstance(r, Exception)]
    assert 5 <= len(complete) < 16 and cut, (len(complete), results)

    time.sleep(2.5)  # the dead server's quota holds expire; the next start frees them
    restarted = start_server(tmp_path, env=env)
    try:
        with sqlite3.connect(tmp_path / "privserve.db") as db:
            rows = db.execute(
                "SELECT request_id, prompt_tokens, completion_tokens FROM usage_ledger "
                "WHERE key_id = ?",
                (key_id,),
            ).fetchall()
        ids = [row[0] for row in rows]
        assert len(ids) == len(set(ids)), "a request counted twice"
        recorded = {row[0]: (row[1], row[2]) for row in rows}
        for request_id, tokens in complete.items():
            assert recorded.get(request_id) == tokens, request_id
        # What the dead server held goes back; the quota counts what was used.
        used = sum(p + c for p, c in recorded.values())
        for _ in range(50):
            if key_json(tmp_path, key_id)["quota_held"] == 0:
                break
            time.sleep(0.1)
        shown = key_json(tmp_path, key_id)
        assert shown["quota_held"] == 0 and shown["quota_used"] == used
    finally:
        restarted.stop()


def test_a_server_that_cannot_reach_its_redis_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as failed:
        start_server(tmp_path, env={"PRIVSERVE_LIMITS__STORAGE_URL": "redis://127.0.0.1:1"})
    assert "cannot reach the rate-limit storage redis://127.0.0.1:1" in str(failed.value)
