"""Start, stop and faults, each on a server of its own: bodies that are too large or too slow,
errors after the first token, a storm of clients that leave, SIGTERM while answers run,
SIGKILL under load, keys across restarts, and a start-up that fails half way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from privserve.config import Settings
from privserve.runtime import open_runtime
from tests.integration.cli import run_privserve
from tests.integration.conftest import MODEL_ID, NO_END
from tests.integration.server import RunningServer, start_server
from tests.integration.test_errors import error_of

pytestmark = pytest.mark.model

KEY = "sk-test-lifecycle"
AUTH = {"Authorization": f"Bearer {KEY}"}
NO_EMBEDDINGS = ["--embedding-model", ""]


def long_answer(max_tokens: int) -> dict[str, object]:
    return {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "max_tokens": max_tokens,
        "temperature": 0.8,
        "seed": 1,
        "logit_bias": NO_END,
        "stream": True,
    }


def sse_events(lines: Iterator[str]) -> list[dict[str, object] | str]:
    events: list[dict[str, object] | str] = []
    for line in lines:
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def engine_stats(server: RunningServer) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(server.root_url + "/health").json()["models"][MODEL_ID]
    return stats


def wait_idle(server: RunningServer, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    stats = engine_stats(server)
    while time.monotonic() < deadline:
        stats = engine_stats(server)
        if stats["running_requests"] == 0 and stats["queued_requests"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"engine still busy: {stats}")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Small limits, so each can be reached quickly."""
    home = tmp_path_factory.mktemp("strict")
    running = start_server(
        home,
        args=NO_EMBEDDINGS,
        env={
            "PRIVSERVE_API_KEY": KEY,
            "PRIVSERVE_SERVER__MAX_BODY_BYTES": "65536",
            "PRIVSERVE_SERVER__BODY_TIMEOUT_S": "2",
            "PRIVSERVE_SERVER__REQUEST_TIMEOUT_S": "4",
            "PRIVSERVE_SERVER__ACCESS_LOG": "false",
        },
    )
    yield running
    running.stop()
    (home / "server.log").write_text("".join(running.output))


def test_a_body_over_the_limit_is_413_before_it_is_read(strict: RunningServer) -> None:
    big = json.dumps({"model": MODEL_ID, "prompt": "x" * 70_000}).encode()
    with httpx.Client(base_url=strict.root_url, headers=AUTH, timeout=30) as http:
        declared = http.post("/v1/completions", content=big)
        assert error_of(declared, 413)["code"] == "request_too_large"
        # No Content-Length: sent chunked, counted as it arrives.
        chunked = http.post("/v1/completions", content=iter([big[:40_000], big[40_000:]]))
        assert error_of(chunked, 413)["code"] == "request_too_large"
        small = http.post(
            "/v1/completions", json={"model": MODEL_ID, "prompt": "x", "max_tokens": 1}
        )
        assert small.status_code == 200, small.text


def _whole_response(reply: bytes) -> bool:
    """Whether `reply` holds a response's head and all the body its Content-Length gives."""
    head, separator, body = reply.partition(b"\r\n\r\n")
    if not separator:
        return False
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return length is None or len(body) >= int(length.group(1))


def test_a_body_sent_a_byte_at_a_time_is_cut_off(strict: RunningServer) -> None:
    host, port = strict.root_url.removeprefix("http://").split(":")
    body = json.dumps({"model": MODEL_ID, "prompt": "x", "max_tokens": 1}).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sock.settimeout(0.5)
        reply = b""
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                reply += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if reply:
                break
        sock.settimeout(10)
        # The head and the body may come in separate segments: read both whole.
        while not _whole_response(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert time.monotonic() - started < 15  # the 2 s limit, not the client's pace
    assert b"request_timeout" in reply


def test_an_error_after_the_first_token_ends_the_stream_with_an_error_event(
    strict: RunningServer,
) -> None:
    """The request outlives the 4 s limit while streaming: one OpenAI-shaped error event,
    no hang, no cut."""
    with httpx.Client(base_url=strict.root_url, headers=AUTH, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=long_answer(4000)) as response:
            assert response.status_code == 200
            events = sse_events(response.iter_lines())
    content = [e for e in events if isinstance(e, dict) and "choices" in e]
    assert len(content) > 2  # tokens came before the error
    last = events[-1]
    assert isinstance(last, dict) and set(last) == {"error"}, events[-2:]
    error = last["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "timeout"


def test_a_storm_of_clients_that_leave_frees_every_slot(strict: RunningServer) -> None:
    """200 clients start streams and drop them after their first bytes: every slot and
    queue place comes back, and the process's memory with it."""

    async def storm(clients: int) -> int:
        started = 0

        async def one(http: httpx.AsyncClient) -> None:
            nonlocal started
            payload = long_answer(2000) | {"seed": started}
            try:
                async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
                    if response.status_code == 200:
                        started += 1
                        async for _ in response.aiter_bytes():
                            break  # leave after the first bytes
            except httpx.HTTPError:
                pass

        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(
            base_url=strict.root_url, headers=AUTH, timeout=60, limits=limits
        ) as http:
            await asyncio.gather(*(one(http) for _ in range(clients)))
        return started

    assert asyncio.run(storm(40)) > 0  # warm-up: first-use allocations
    wait_idle(strict)
    before = rss_bytes(strict.process.pid)
    assert asyncio.run(storm(200)) > 0
    wait_idle(strict)
    after = rss_bytes(strict.process.pid)
    stats = engine_stats(strict)
    assert stats["running_requests"] == 0 and stats["queued_requests"] == 0
    assert after - before < 64 * 1024 * 1024, (before, after)


def signal_and_wait(server: RunningServer, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
    server.process.send_signal(sig)
    return server.wait_exit(timeout_s)


def test_sigterm_lets_running_answers_finish_refuses_new_ones_and_exits_0(
    tmp_path: Path,
) -> None:
    server = start_server(
        tmp_path,
        args=NO_EMBEDDINGS,
        env={"PRIVSERVE_API_KEY": KEY, "PRIVSERVE_SERVER__SHUTDOWN_GRACE_S": "60"},
    )
    events: list[dict[str, object] | str] = []
    try:
        with httpx.Client(base_url=server.root_url, headers=AUTH, timeout=120) as http:
            with http.stream("POST", "/v1/chat/completions", json=long_answer(80)) as response:
                lines = response.iter_lines()
                events += sse_events(iter([next(lines)]))
                server.process.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                with httpx.Client(base_url=server.root_url, headers=AUTH, timeout=10) as fresh:
                    refused = fresh.get("/v1/models")
                events += sse_events(lines)
        assert error_of(refused, 503)["code"] == "shutting_down"
        assert refused.headers["retry-after"] == "1"
        assert server.wait_exit() == 0
    finally:
        if server.process.poll() is None:
            server.stop()
    finishes = [
        c["finish_reason"]  # type: ignore[index]
        for e in events
        if isinstance(e, dict)
        for c in e.get("choices", [])  # type: ignore[attr-defined]
        if c.get("finish_reason")
    ]
    assert finishes == ["length"] and events[-1] == "[DONE]", events[-3:]
    log = "".join(server.output)
    assert "Traceback" not in log, log[-3000:]


def test_answers_still_running_after_the_grace_period_end_with_an_error_event(
    tmp_path: Path,
) -> None:
    server = start_server(
        tmp_path,
        args=NO_EMBEDDINGS,
        env={"PRIVSERVE_API_KEY": KEY, "PRIVSERVE_SERVER__SHUTDOWN_GRACE_S": "1"},
    )
    try:
        with httpx.Client(base_url=server.root_url, headers=AUTH, timeout=120) as http:
            with http.stream("POST", "/v1/chat/completions", json=long_answer(4000)) as response:
                lines = response.iter_lines()
                next(lines)
                server.process.send_signal(signal.SIGTERM)
                events = sse_events(lines)
        assert server.wait_exit() == 0
    finally:
        if server.process.poll() is None:
            server.stop()
    last = events[-1]
    assert isinstance(last, dict) and set(last) == {"error"}, events[-2:]
    assert last["error"]["code"] == "shutting_down"  # type: ignore[index]
    assert "Traceback" not in "".join(server.output)


def privserve_cli(home: Path, *args: str) -> str:
    done = run_privserve(home, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_after_sigkill_under_load_the_database_opens_and_every_key_works(
    tmp_path: Path,
) -> None:
    keys = [
        line.split()[-1]
        for name in ("a", "b", "c")
        for line in privserve_cli(tmp_path, "keys", "create", "--name", name).splitlines()
        if "sk-ps-" in line
    ]
    assert len(keys) == 3
    server = start_server(tmp_path, args=NO_EMBEDDINGS)
    stop = threading.Event()

    def load(key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.root_url, headers=headers, timeout=30) as http:
            while not stop.is_set():
                try:
                    http.post("/v1/chat/completions", json=long_answer(30) | {"stream": False})
                    privserve_cli(tmp_path, "keys", "create", "--name", "during-load")
                except (httpx.HTTPError, AssertionError):
                    return

    workers = [threading.Thread(target=load, args=(k,)) for k in keys]
    for worker in workers:
        worker.start()
    time.sleep(3)
    signal_and_wait(server, signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    restarted = start_server(tmp_path, args=NO_EMBEDDINGS)
    try:
        for key in keys:
            reply = httpx.get(
                restarted.base_url + "/models", headers={"Authorization": f"Bearer {key}"}
            )
            assert reply.status_code == 200, reply.text
    finally:
        restarted.stop()


def test_the_environment_key_works_exactly_while_the_variable_is_set(tmp_path: Path) -> None:
    with_key = start_server(tmp_path, args=NO_EMBEDDINGS, env={"PRIVSERVE_API_KEY": KEY})
    try:
        assert httpx.get(with_key.base_url + "/models", headers=AUTH).status_code == 200
    finally:
        with_key.stop()
    without = start_server(tmp_path, args=NO_EMBEDDINGS)
    try:
        refused = httpx.get(without.base_url + "/models", headers=AUTH)
        assert error_of(refused, 401)["code"] == "invalid_api_key"
        assert without.printed_key is not None  # no key left: a first one was made
    finally:
        without.stop()


async def test_a_start_that_fails_half_way_releases_what_it_opened(
    model_path: Path, tmp_path: Path
) -> None:
    """The chat model loads, then the rerank model cannot: the engine thread, the torch
    thread, the model's mapped file and the database are all released."""
    broken = tmp_path / "not-a-cross-encoder"
    broken.mkdir()
    settings = Settings(
        home=tmp_path,
        model=[str(model_path)],
        embedding={"model": ""},  # type: ignore[arg-type]
        rerank={"model": str(broken)},  # type: ignore[arg-type]
    )
    before = {t.name for t in threading.enumerate()}
    mapped_before = Path("/proc/self/maps").read_text().count(str(model_path))
    with pytest.raises(Exception):  # noqa: B017  (whatever the loader raises)
        async with open_runtime(settings):
            pass
    left = {t.name for t in threading.enumerate()} - before
    assert not [n for n in left if n.startswith(("llama-", "torch", "grammar-"))], left
    assert Path("/proc/self/maps").read_text().count(str(model_path)) == mapped_before
    database = tmp_path / "privserve.db"
    assert str(database) not in open_files()


def open_files() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found
