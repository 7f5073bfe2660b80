"""Keys: required on /v1, shown once, stored hashed, revocable while the server runs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer, start_server

pytestmark = pytest.mark.model


def privserve(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "privserve", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    return done.stdout


def new_key(home: Path, name: str) -> str:
    return privserve(home, "keys", "create", "--name", name).strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "You didn't provide an API key"),
        ("Bearer wrong-key", "Incorrect API key provided: wrong-****."),
        ("Basic abc", "You didn't provide an API key"),
        ("Bearer", "You didn't provide an API key"),
    ],
)
def test_missing_or_wrong_key_is_401(server: RunningServer, header: str | None, says: str) -> None:
    headers = {"Authorization": header} if header else {}
    for path in ("/v1/models", f"/v1/models/{MODEL_ID}"):
        response = httpx.get(server.root_url + path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["message"].startswith(says), error
        assert "wrong-key" not in error["message"]  # never echoed whole
        assert {k: error[k] for k in ("type", "param", "code")} == {
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    response = httpx.post(
        server.root_url + "/v1/chat/completions",
        headers=headers,
        json={"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 401


def test_client_raises_authentication_error(server: RunningServer) -> None:
    with openai.OpenAI(base_url=server.base_url, api_key="nope", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


def test_created_key_works_and_revoking_takes_effect_at_once(server: RunningServer) -> None:
    key = new_key(server.home, "ci")
    assert key.startswith("sk-ps-") and len(key) > 40
    with openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
        assert client.models.list().data[0].id == MODEL_ID
        listing = privserve(server.home, "keys", "list")
        assert "ci" in listing and key[:12] in listing and key not in listing
        privserve(server.home, "keys", "revoke", "ci")
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


def test_database_holds_only_hashes(server: RunningServer, api_key: str) -> None:
    key = new_key(server.home, "hash-check")
    raw = (server.home / "privserve.db").read_bytes()
    assert key.encode() not in raw
    assert api_key.encode() not in raw
    with sqlite3.connect(server.home / "privserve.db") as db:
        hashes = [row[0] for row in db.execute("select key_hash from api_keys")]
    assert all(len(h) == 64 for h in hashes)


def test_first_start_without_keys_prints_one_key_that_works(
    tmp_path: Path, model_path: Path
) -> None:
    running = start_server(tmp_path / "fresh", args=["--model", str(model_path)])
    try:
        key = running.printed_key
        assert key is not None and key.startswith("sk-ps-")
        ok = httpx.get(running.base_url + "/models", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        assert ok.json()["data"][0]["id"] == model_path.stem
    finally:
        running.stop()
    again = start_server(tmp_path / "fresh", args=["--model", str(model_path)])
    try:
        assert again.printed_key is None, "a key is shown once, never again"
    finally:
        again.stop()
