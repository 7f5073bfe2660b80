"""Continuous batching through the real server: isolation, prefix cache, logprobs, overload."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID, NO_END
from tests.integration.server import RunningServer, start_server
from tests.integration.test_concurrency import engine_stats, wait_idle

pytestmark = pytest.mark.model

WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "music",
    "garden",
    "silver",
    "window",
    "yellow",
    "tiger",
    "paper",
    "ocean",
    "candle",
    "forest",
    "planet",
    "bridge",
    "mirror",
    "orange",
    "thunder",
    "pencil",
    "lemon",
    "castle",
    "rocket",
    "violin",
]


def forced_prompts(count: int, seed: int) -> list[tuple[str, str]]:
    """Prompts whose answer is forced: a line of random words said three times, then again."""
    rng = random.Random(seed)
    lines = [" ".join(rng.sample(WORDS, 8)) for _ in range(count)]
    return [(f"Repeat exactly: {line}\n{line}\n{line}\n", line) for line in lines]


async def complete_text(client: openai.AsyncOpenAI, prompt: str, max_tokens: int) -> str:
    result = await client.completions.create(
        model=MODEL_ID, prompt=prompt, max_tokens=max_tokens, temperature=0
    )
    return result.choices[0].text


async def test_sixteen_concurrent_forced_answers_equal_their_answers_alone(
    async_client: openai.AsyncOpenAI,
) -> None:
    cases = forced_prompts(16, seed=1)
    # Each answer is limited to the copy's length (the line has at most 2 tokens a word).
    limits = [len(line.split()) * 2 for _, line in cases]
    alone = [
        await complete_text(async_client, p, n) for (p, _), n in zip(cases, limits, strict=True)
    ]
    together = await asyncio.gather(
        *(complete_text(async_client, p, n) for (p, _), n in zip(cases, limits, strict=True))
    )
    assert together == alone
    # The copies really are forced: the model repeats each line.
    assert sum(a.startswith(line) for a, (_, line) in zip(alone, cases, strict=True)) >= 14


async def test_a_request_joining_mid_flight_changes_no_one_elses_answer(
    async_client: openai.AsyncOpenAI,
) -> None:
    cases = forced_prompts(6, seed=2)
    long_prompts = [prompt + f"{line}\n" * 3 for prompt, line in cases[:4]]
    alone = [await complete_text(async_client, p, 40) for p in long_prompts]
    joiners_alone = [await complete_text(async_client, p, 16) for p, _ in cases[4:]]

    async def join_later() -> list[str]:
        await asyncio.sleep(0.5)  # the first four are decoding by now
        return list(
            await asyncio.gather(*(complete_text(async_client, p, 16) for p, _ in cases[4:]))
        )

    *first, joiners = await asyncio.gather(
        *(complete_text(async_client, p, 40) for p in long_prompts), join_later()
    )
    assert first == alone
    assert joiners == joiners_alone


def test_repeated_prefix_is_served_from_the_cache(
    client: openai.OpenAI, server: RunningServer
) -> None:
    rng = random.Random(3)
    system = "You answer from these notes. " + " ".join(rng.choice(WORDS) for _ in range(300))
    first = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "Hi?"}],
        max_tokens=4,
        temperature=0,
    )
    before = engine_stats(server)
    second = client.chat.completions.create(
        model=MODEL_ID,
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": "A different question?"},
        ],
        max_tokens=4,
        temperature=0,
    )
    after = engine_stats(server)
    assert first.usage is not None and second.usage is not None
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    # The whole system prompt (300+ tokens) is reused; only the new question is computed.
    assert details.cached_tokens >= 300
    assert details.cached_tokens < second.usage.prompt_tokens
    computed = after["prefill_tokens"] - before["prefill_tokens"]
    assert computed == second.usage.prompt_tokens - details.cached_tokens


def test_n_choices_compute_the_prompt_once(client: openai.OpenAI, server: RunningServer) -> None:
    rng = random.Random(4)
    prompt = " ".join(rng.choice(WORDS) for _ in range(200))
    before = engine_stats(server)
    result = client.completions.create(
        model=MODEL_ID, prompt=prompt, n=4, max_tokens=3, temperature=1.0, seed=5
    )
    after = engine_stats(server)
    assert result.usage is not None and len(result.choices) == 4
    computed = after["prefill_tokens"] - before["prefill_tokens"]
    # One prefill of the prompt, then each other choice recomputes only its last token.
    assert computed <= result.usage.prompt_tokens + 3


def test_stop_string_across_two_tokens_is_found_and_not_emitted(client: openai.OpenAI) -> None:
    prompt = "The history of the city begins"
    plain = client.completions.create(
        model=MODEL_ID, prompt=prompt, max_tokens=24, temperature=0, logprobs=1
    )
    assert plain.choices[0].logprobs is not None
    tokens = plain.choices[0].logprobs.tokens or []
    text = plain.choices[0].text
    # A stop made of the end of one token and the start of the next.
    i = next(
        i
        for i in range(2, len(tokens) - 1)
        if len(tokens[i].strip()) >= 2 and len(tokens[i + 1].strip()) >= 2
    )
    stop = tokens[i][-2:] + tokens[i + 1][:2]
    cut = text.find(stop)
    stopped = client.completions.create(
        model=MODEL_ID, prompt=prompt, max_tokens=24, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == text[:cut]
    assert stop not in stopped.choices[0].text


def test_chinese_streams_without_broken_characters(client: openai.OpenAI) -> None:
    prompt = "北京是中国的首都，上海是中国最大的城市。广州"
    chunks = [
        c.choices[0].text
        for c in client.completions.create(
            model=MODEL_ID, prompt=prompt, max_tokens=40, temperature=0, stream=True
        )
        if c.choices
    ]
    whole = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=40, temperature=0)
    assert "".join(chunks) == whole.choices[0].text
    assert any("\u4e00" <= ch <= "\u9fff" for ch in whole.choices[0].text)
    assert all("\ufffd" not in chunk for chunk in chunks)


def test_logprobs_through_the_real_model(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    choice = result.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    entries = choice.logprobs.content
    assert result.usage is not None and len(entries) == result.usage.completion_tokens
    for entry in entries:
        assert entry.logprob <= 0
        alternatives = [t.logprob for t in entry.top_logprobs]
        assert alternatives == sorted(alternatives, reverse=True) and len(alternatives) == 3
        # Greedy: the chosen token is the likeliest one.
        assert entry.token == entry.top_logprobs[0].token
    visible = "".join(e.token for e in entries if not e.token.startswith("<"))
    assert visible.startswith(choice.message.content or "")


def test_logit_bias_reaches_the_sampler(client: openai.OpenAI) -> None:
    one = "236770"  # the bundled tokenizer's id for "1"
    for temperature in (0.0, 1.0):
        result = client.completions.create(
            model=MODEL_ID,
            prompt="The sky is",
            max_tokens=4,
            temperature=temperature,
            logit_bias={one: 100},
        )
        assert result.choices[0].text == "1111"


def test_disconnected_stream_frees_its_slot_for_the_next_request(
    server: RunningServer, http: httpx.Client
) -> None:
    wait_idle(server)
    body = {
        "model": MODEL_ID,
        "prompt": "Once upon a time, in a land far away,",
        "max_tokens": 1000,
        "temperature": 0.8,
        "logit_bias": NO_END,
        "stream": True,
    }
    with http.stream("POST", "/v1/completions", json=body) as response:
        for seen, _ in enumerate(response.iter_lines()):
            if seen > 8:
                assert engine_stats(server)["running_requests"] == 1
                break  # leaving the loop closes the connection mid-stream
    assert wait_idle(server)["running_requests"] == 0
    again = http.post("/v1/completions", json={**body, "stream": False, "max_tokens": 2}).json()
    # The new request took the freed slot and its cached prompt.
    details = again["usage"]["prompt_tokens_details"]
    assert details["cached_tokens"] == again["usage"]["prompt_tokens"] - 1


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory, api_key: str) -> Iterator[RunningServer]:
    """One slot, two waiting places and a 4-second limit: easy to fill, quick to time out."""
    home: Path = tmp_path_factory.mktemp("small")
    running = start_server(
        home,
        args=["--parallel", "1"],
        env={
            "PRIVSERVE_API_KEY": api_key,
            "PRIVSERVE_SERVER__MAX_QUEUED_REQUESTS": "2",
            "PRIVSERVE_SERVER__REQUEST_TIMEOUT_S": "4",
        },
    )
    yield running
    running.stop()


async def until_engine(server: RunningServer, field: str, count: int) -> None:
    """Waits for the engine's `field` to reach `count`: at most 3 s, within the 4-second limit."""
    deadline = time.monotonic() + 3
    while (stats := engine_stats(server))[field] < count:
        assert time.monotonic() < deadline, f"{field} never reached {count}: {stats}"
        await asyncio.sleep(0.05)


async def test_overload_gets_429_promptly_and_timeouts_free_the_engine(
    small_server: RunningServer, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    long = {
        "model": MODEL_ID,
        "prompt": "Tell me a story.",
        "max_tokens": 2000,
        "temperature": 1,
        "logit_bias": NO_END,  # no early end: each runs into the time limit
    }
    async with httpx.AsyncClient(
        base_url=small_server.root_url, headers=headers, timeout=60
    ) as http:
        assert engine_stats(small_server)["slots"] == 1
        # One at a time: three arriving together could find the first not yet moved to
        # the slot, so the third would be refused and two would never wait.
        busy = [asyncio.create_task(http.post("/v1/completions", json=long))]
        await until_engine(small_server, "running_requests", 1)
        busy += [asyncio.create_task(http.post("/v1/completions", json=long)) for _ in range(2)]
        await until_engine(small_server, "queued_requests", 2)
        started = time.monotonic()
        refused = await asyncio.gather(*(http.post("/v1/completions", json=long) for _ in range(4)))
        assert time.monotonic() - started < 3  # no waiting for the 2,000-token answers
        for response in refused:
            assert response.status_code == 429
            assert response.headers["retry-after"]
            assert response.json()["error"]["code"] == "server_busy"
        # Each long request outlives the 4-second limit and ends with a clear 504.
        for response in await asyncio.gather(*busy):
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "timeout"
        assert engine_stats(small_server)["running_requests"] == 0
        ok = await http.post("/v1/completions", json={**long, "max_tokens": 3})
        assert ok.status_code == 200
