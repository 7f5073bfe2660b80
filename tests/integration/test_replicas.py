"""Replicas on Ray Serve, on a local Ray instance the server starts on loopback: two
replicas of the bundled chat model both serve and say which answered, a prompt's later
requests reach the replica that cached it, one rate limit (Redis) and one ledger
(PostgreSQL) hold across them, and a replica killed under load is restarted by Ray while
the other keeps answering."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from privserve.replicas.routing import HashRing, routing_key
from tests.integration.conftest import POSTGRES
from tests.integration.server import RunningServer, start_server
from tests.integration.test_limits import fresh_minute, new_key, usage_json

pytestmark = pytest.mark.model

MODEL = "smollm2-135m"
REPLICA = "x-privserve-replica"
ADMIN_KEY = "sk-test-replicas-admin"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = "privserve_" + secrets.token_hex(6)

    async def run(statement: str) -> None:
        admin = create_async_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
        async with admin.connect() as connection:
            await connection.execute(text(statement))
        await admin.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield f"{POSTGRES}/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def shared(database: str) -> dict[str, str]:
    return {
        "PRIVSERVE_DATABASE_URL": database,
        "PRIVSERVE_LIMITS__STORAGE_URL": "redis://127.0.0.1:6379",
        "PRIVSERVE_LIMITS__KEY_PREFIX": "test-" + secrets.token_hex(6),
    }


@pytest.fixture(scope="module")
def replicated(
    tmp_path_factory: pytest.TempPathFactory, api_key: str, shared: dict[str, str]
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("replicas"),
        args=["--replicas", "2", "--embedding-model", "", "--threads", "1", "--parallel", "4"],
        env={
            "PRIVSERVE_API_KEY": api_key,
            "PRIVSERVE_ADMIN_KEY": ADMIN_KEY,
            # Two replicas and the ingress on a two-core machine.
            "PRIVSERVE_RAY__REPLICA_CPUS": "0.5",
            **shared,
        },
        timeout_s=240,
        model=MODEL,
    )
    yield running
    running.stop()
    # The replicas go with the server: nothing of the local Ray instance is left running.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and replica_pids(expected=None):
        time.sleep(1)
    assert replica_pids(expected=None) == []


def chat(http: httpx.Client, key: str, system: str, question: str = "Hi") -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": MODEL,
            "max_tokens": 2,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ],
        },
    )


def test_both_replicas_serve_and_name_themselves(replicated: RunningServer, api_key: str) -> None:
    with httpx.Client(base_url=replicated.root_url, timeout=120) as http:
        answers = [chat(http, api_key, f"You are assistant number {i}.") for i in range(16)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.headers[REPLICA] for a in answers}) == 2
    # One request id per response, the one the ledger keeps.
    assert all(len(a.headers.get_list("x-request-id")) == 1 for a in answers)


def test_metrics_through_the_ingress_count_every_replicas_requests(
    replicated: RunningServer, api_key: str
) -> None:
    def served() -> dict[str, float]:
        page = httpx.get(replicated.root_url + "/metrics", timeout=60)
        assert page.status_code == 200
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(page.text):
            for sample in family.samples:
                if (
                    sample.name == "privserve_requests_total"
                    and sample.labels.get("endpoint") == "chat/completions"
                ):
                    replica = sample.labels["replica"]
                    totals[replica] = totals.get(replica, 0.0) + sample.value
        return totals

    before = served()
    with httpx.Client(base_url=replicated.root_url, timeout=120) as http:
        answers = [chat(http, api_key, f"Counted request {i}.") for i in range(10)]
    after = served()
    assert len(after) == 2  # one page, both replicas
    by_replica = {name: 0 for name in after}
    for answer in answers:
        by_replica[answer.headers[REPLICA]] += 1
    for name, count in by_replica.items():
        assert after[name] - before.get(name, 0.0) == count, (before, after, by_replica)


def test_a_client_that_leaves_frees_its_replicas_work(
    replicated: RunningServer, api_key: str
) -> None:
    def running() -> float:
        page = httpx.get(replicated.root_url + "/metrics", timeout=60).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == "privserve_requests_running"
        )

    body = {
        "model": MODEL,
        "max_tokens": 3000,
        "stream": True,
        "logit_bias": {"0": -100, "2": -100, "4": -100},  # its end tokens: it runs on
        "messages": [{"role": "user", "content": "Tell me a long story."}],
    }
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=replicated.root_url, timeout=120) as http:
        with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            assert running() == 1
        # The connection is closed mid-answer.
    deadline = time.monotonic() + 30
    while running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running() == 0


def test_a_model_unloaded_and_loaded_by_hand_is_so_on_every_replica(
    replicated: RunningServer,
) -> None:
    def loaded() -> dict[str, float]:
        page = httpx.get(replicated.root_url + "/metrics", timeout=60).text
        return {
            sample.labels["replica"]: sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == "privserve_models_loaded" and sample.labels["kind"] == "chat"
        }

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert list(loaded().values()) == [1.0, 1.0]
    url = f"{replicated.base_url.removesuffix('/v1')}/admin/v1/models/{MODEL}"
    unloaded = httpx.post(f"{url}/unload", headers=admin, timeout=120)
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "unloaded"
    assert list(loaded().values()) == [0.0, 0.0]
    assert httpx.post(f"{url}/load", headers=admin, timeout=120).json()["state"] == "loaded"
    assert list(loaded().values()) == [1.0, 1.0]


def test_a_prompts_later_requests_reach_the_replica_that_cached_it(
    replicated: RunningServer, api_key: str
) -> None:
    system = "You answer questions about the river archive. " * 40  # a long shared start
    with httpx.Client(base_url=replicated.root_url, timeout=120) as http:
        answers = [chat(http, api_key, system, f"Question {i}?") for i in range(6)]
    assert len({a.headers[REPLICA] for a in answers}) == 1
    cached = [a.json()["usage"]["prompt_tokens_details"]["cached_tokens"] for a in answers]
    # Each later request finds the system prompt in its replica's cache.
    prompt = answers[0].json()["usage"]["prompt_tokens"]
    assert cached[0] < prompt / 2 and all(c > prompt / 2 for c in cached[1:]), cached


def test_one_rate_limit_and_one_ledger_hold_across_replicas(
    replicated: RunningServer, shared: dict[str, str], api_key: str
) -> None:
    with httpx.Client(base_url=replicated.root_url, timeout=120) as http:
        replicas = {
            chat(http, api_key, f"Which replica are you, {i}?").headers[REPLICA] for i in range(16)
        }
    assert len(replicas) == 2
    # Replica ids are new every run: pick prompts the ring sends to each in turn, so the four
    # allowed requests reach both.
    ring = HashRing(replicas)
    homes: dict[str, list[str]] = {replica: [] for replica in replicas}
    for i in range(200):
        system = f"Spread request {i}."
        body = json.dumps({"model": MODEL, "messages": [{"role": "system", "content": system}]})
        key_of = routing_key("/v1/chat/completions", body.encode())
        assert key_of is not None
        homes[ring.order(key_of)[0]].append(system)
    first, second = homes.values()
    systems = [s for pair in zip(first[:4], second[:4], strict=True) for s in pair]
    key, key_id = new_key(replicated.home, "--rpm", "4", env=shared)
    fresh_minute()
    with httpx.Client(base_url=replicated.root_url, timeout=120) as http:
        answers = [chat(http, key, system) for system in systems]
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 4 and statuses.count(429) == 4, statuses
    served_by = {a.headers[REPLICA] for a in answers if a.status_code == 200}
    assert len(served_by) == 2, "the limited requests should have reached both replicas"
    [row] = usage_json(replicated.home, "--key", str(key_id), env=shared)["data"]
    assert row["requests"] == 8 and row["errors"] == 4  # every request, on both, in one ledger


def test_a_replica_killed_under_load_is_restarted_while_the_other_answers(
    replicated: RunningServer, api_key: str
) -> None:
    with httpx.Client(base_url=replicated.root_url, timeout=120) as http:
        before = {chat(http, api_key, f"Before {i}.").headers[REPLICA] for i in range(12)}
        assert len(before) == 2
        victim = replica_pids()[0]
        os.kill(victim, signal.SIGKILL)
        # The other replica keeps answering while Ray brings a new one up.
        deadline = time.monotonic() + 180
        answered = failed = 0
        seen: set[str] = set()
        while time.monotonic() < deadline:
            answer = chat(http, api_key, f"During {answered + failed}.")
            if answer.status_code == 200:
                answered += 1
                seen.add(answer.headers[REPLICA])
            else:
                failed += 1
            if len(seen - before) >= 1 and len(seen) >= 2:
                break
            time.sleep(0.2)
    assert answered > 0 and failed <= 2, (answered, failed)
    assert seen - before, "Ray did not bring up a new replica"


def replica_pids(expected: int | None = 2) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "ServeReplica:privserve:privserve-engines"],
        capture_output=True,
        text=True,
    )
    pids = [int(pid) for pid in found.stdout.split()]
    assert expected is None or len(pids) == expected, found.stdout
    return pids
