"""`/tokenize`, `/detokenize` and `/apply-template` on the real server and bundled model: the
counts are the ones the ledger charges, and the calls are key-protected like the rest."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.integration.conftest import MODEL_ID
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

MIXED = "The north gate opens at 7:00. 北门早上七点开。"
HI = [{"role": "user", "content": "Hello there!"}]


@pytest.fixture
def root(server: RunningServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.root_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    ) as c:
        yield c


def test_text_goes_to_tokens_and_back(root: httpx.Client) -> None:
    tokens = root.post("/tokenize", json={"model": MODEL_ID, "content": MIXED}).json()
    assert tokens["count"] == len(tokens["tokens"]) > 5
    assert tokens["max_model_len"] == 4096
    back = root.post("/detokenize", json={"model": MODEL_ID, "tokens": tokens["tokens"]}).json()
    assert back["content"] == back["prompt"] == MIXED


def test_pieces_spell_the_text_and_special_tokens_are_asked_for(root: httpx.Client) -> None:
    plain = root.post("/tokenize", json={"content": MIXED, "with_pieces": True}).json()
    assert "".join(p["piece"] for p in plain["tokens"][:4]).startswith("The north")
    special = root.post("/tokenize", json={"prompt": MIXED, "add_special_tokens": True}).json()
    ids = [p["id"] for p in plain["tokens"]]
    assert special["tokens"][1:] == ids and special["count"] == len(ids) + 1  # the BOS


def test_a_chats_token_count_is_what_the_chat_is_charged(
    root: httpx.Client, client: openai.OpenAI
) -> None:
    counted = root.post("/tokenize", json={"model": MODEL_ID, "messages": HI}).json()
    reply = client.chat.completions.create(model=MODEL_ID, messages=HI, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert counted["count"] == reply.usage.prompt_tokens
    prompt = root.post("/apply-template", json={"model": MODEL_ID, "messages": HI}).json()
    assert prompt["prompt"].endswith("<start_of_turn>model\n")
    assert "Hello there!" in prompt["prompt"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/tokenize", {"model": MODEL_ID}, None),
        ("/tokenize", {"content": "a", "messages": HI}, None),
        ("/tokenize", {"messages": HI, "chat_template_kwargs": {"x": {"nested": 1}}}, None),
        ("/detokenize", {"tokens": [10**9]}, "tokens"),
        ("/detokenize", {"tokens": "abc"}, "tokens"),
        ("/apply-template", {"messages": []}, "messages"),
        ("/tokenize", {"model": "nope", "content": "a"}, "model"),
    ],
)
def test_bad_token_requests_are_clear_errors(
    root: httpx.Client, path: str, body: dict[str, object], param: str | None
) -> None:
    response = root.post(path, json=body)
    assert response.status_code in (400, 404), response.text
    error = response.json()["error"]
    assert error["message"]
    if param is not None:
        assert error["param"] == param


def test_the_token_routes_need_a_key(server: RunningServer) -> None:
    with httpx.Client(base_url=server.root_url, timeout=30) as bare:
        for path in ("/tokenize", "/detokenize", "/apply-template"):
            response = bare.post(path, json={"content": "a", "tokens": [1], "messages": HI})
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_api_key"
