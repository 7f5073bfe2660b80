"""FastGPT entries and the One API channel, built from a description of the served models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from privserve.api.app import create_app
from privserve.config import Settings
from privserve.errors import InvalidRequest
from privserve.services.catalog import ModelCatalog
from privserve.services.integrations import (
    FASTGPT_MAX_DIMENSIONS,
    ONE_API_OPENAI_COMPATIBLE,
    ChatModelInfo,
    EmbeddingModelInfo,
    Endpoint,
    RerankModelInfo,
    ServedModels,
    describe_catalog,
    fastgpt_config,
    fastgpt_model_json,
    one_api_channel,
)
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_rerank_and_dimensions import FakeEmbedder

MODELS = ServedModels(
    chat=[ChatModelInfo("glm2-q4", 8192), ChatModelInfo("gemma3-270m", 4096)],
    embedding=[EmbeddingModelInfo("m3e", 768, 512, shortenable=False)],
    rerank=[RerankModelInfo("bge-reranker", "cross-encoder"), RerankModelInfo("m3e", "cosine")],
)
KEY = "sk-ps-unit"


@pytest.mark.parametrize(
    "given",
    ["http://h:6006", "http://h:6006/", "http://h:6006/v1", "http://h:6006/v1/", " http://h:6006 "],
)
def test_base_url_with_or_without_v1_gives_one_root(given: str) -> None:
    endpoint = Endpoint.parse(given, KEY)
    assert endpoint.root == "http://h:6006"
    assert endpoint.v1 == "http://h:6006/v1"


@pytest.mark.parametrize("given", ["h:6006", "ftp://h/v1", "", "http://"])
def test_a_base_url_that_is_not_http_is_refused(given: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        Endpoint.parse(given, KEY)
    assert raised.value.param == "base_url"


def test_llm_entries_follow_the_real_context() -> None:
    config = fastgpt_config(MODELS, Endpoint.parse("http://h:6006", KEY))
    assert set(config) == {"llmModels", "vectorModels", "reRankModels"}
    glm, gemma = config["llmModels"]
    assert (glm["model"], glm["maxContext"], gemma["maxContext"]) == ("glm2-q4", 8192, 4096)
    for entry, context in ((glm, 8192), (gemma, 4096)):
        # Answer plus quotes leave room for history and the system prompt.
        assert entry["maxResponse"] + entry["quoteMaxToken"] < context
        assert entry["toolChoice"] is True and entry["functionCall"] is False
        assert entry["vision"] is False
        for field in ("usedInClassify", "usedInExtractFields", "usedInToolCall", "datasetProcess"):
            assert entry[field] is True
        assert entry["defaultSystemChatPrompt"] == "" and entry["defaultConfig"] == {}


def test_vector_entries_stay_inside_the_models_input_limit() -> None:
    (vector,) = fastgpt_config(MODELS, Endpoint.parse("http://h:6006", KEY))["vectorModels"]
    assert vector["model"] == "m3e" and vector["maxToken"] == 512
    assert vector["defaultToken"] < vector["maxToken"]
    assert "dimensions" not in vector["defaultConfig"]  # not trained to shorten


def test_shortenable_models_ask_for_at_most_what_fastgpt_stores() -> None:
    models = ServedModels(chat=[], embedding=[EmbeddingModelInfo("big", 4096, 8192, True)])
    (vector,) = fastgpt_config(models, Endpoint.parse("http://h:6006", KEY))["vectorModels"]
    assert vector["defaultConfig"] == {"dimensions": FASTGPT_MAX_DIMENSIONS}


def test_rerank_entries_point_at_this_servers_rerank_with_the_key() -> None:
    config = fastgpt_config(MODELS, Endpoint.parse("http://h:6006/v1", KEY))
    first = config["reRankModels"][0]
    assert first == {
        "model": "bge-reranker",
        "name": "bge-reranker",
        "charsPointsPrice": 0,
        "requestUrl": "http://h:6006/v1/rerank",
        "requestAuth": KEY,
    }


def test_model_json_carries_type_url_and_key_for_each_model() -> None:
    entries = fastgpt_model_json(MODELS, Endpoint.parse("http://h:6006", KEY))
    by_type = {(e["metadata"]["type"], e["model"]): e["metadata"] for e in entries}
    assert set(by_type) == {
        ("llm", "glm2-q4"),
        ("llm", "gemma3-270m"),
        ("embedding", "m3e"),
        ("rerank", "bge-reranker"),  # FastGPT uses one reranker: the default
    }
    assert by_type["llm", "glm2-q4"]["requestUrl"] == "http://h:6006/v1/chat/completions"
    assert by_type["embedding", "m3e"]["requestUrl"] == "http://h:6006/v1/embeddings"
    assert by_type["rerank", "bge-reranker"]["requestUrl"] == "http://h:6006/v1/rerank"
    for entry in entries:
        meta = entry["metadata"]
        assert meta["requestAuth"] == KEY and meta["isCustom"] and meta["isActive"]
        assert meta["model"] == entry["model"]


def test_one_api_channel_lists_chat_and_embedding_models() -> None:
    channel = one_api_channel(MODELS, Endpoint.parse("http://h:6006", KEY))
    assert channel["type"] == ONE_API_OPENAI_COMPATIBLE
    assert channel["base_url"] == "http://h:6006/v1"
    assert channel["openai_type_base_url"] == "http://h:6006"
    assert channel["key"] == KEY
    assert channel["models"] == "glm2-q4,gemma3-270m,m3e"
    assert channel["model_mapping"] == {}
    assert channel["test_model"] == "glm2-q4"


def test_aliases_rename_models_and_map_them_back() -> None:
    endpoint = Endpoint.parse("http://h:6006", KEY, {"glm2-q4": "chatglm2"})
    channel = one_api_channel(MODELS, endpoint)
    assert channel["models"] == "chatglm2,gemma3-270m,m3e"
    assert channel["model_mapping"] == {"chatglm2": "glm2-q4"}
    assert fastgpt_config(MODELS, endpoint)["llmModels"][0]["model"] == "chatglm2"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path, api_key=KEY)  # type: ignore[arg-type]
    app = create_app(settings, text_engines={"fake": FakeEngine(context=2048)})
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


def test_integrations_endpoint_uses_the_callers_key_and_url(api: TestClient) -> None:
    body = api.get("/v1/privserve/integrations").json()
    assert body["base_url"] == "http://testserver/v1"
    (llm,) = body["fastgpt"]["config_json"]["llmModels"]
    assert (llm["model"], llm["maxContext"]) == ("fake", 2048)
    assert body["one_api"]["key"] == KEY
    assert body["fastgpt"]["model_json"][0]["metadata"]["requestAuth"] == KEY
    other = api.get("/v1/privserve/integrations", params={"base_url": "http://gpu-box:6006/v1"})
    assert other.json()["one_api"]["base_url"] == "http://gpu-box:6006/v1"


def test_integrations_endpoint_needs_a_key(api: TestClient) -> None:
    response = api.get("/v1/privserve/integrations", headers={"Authorization": ""})
    assert response.status_code == 401


def test_integrations_endpoint_refuses_a_bad_base_url(api: TestClient) -> None:
    response = api.get("/v1/privserve/integrations", params={"base_url": "gpu-box"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "base_url"


@pytest.mark.parametrize(
    ("path", "hint"),
    [("/v1/v1/embeddings", "ends in /v1"), ("/chat/completions", "Did you mean /v1/chat")],
)
def test_a_wrong_base_url_gets_a_404_that_says_how_to_fix_it(
    api: TestClient, path: str, hint: str
) -> None:
    response = api.post(path, json={})
    assert response.status_code == 404
    assert hint in response.json()["error"]["message"]


def test_model_json_ids_are_unique_with_an_embedding_model_that_also_reranks() -> None:
    """FastGPT's model table wants each id once: the embedding model's cosine reranker has
    an id of its own."""
    catalog = ModelCatalog({}, {"m3e": FakeEmbedder({})})
    entries = fastgpt_model_json(describe_catalog(catalog), Endpoint.parse("http://h:6006", KEY))
    ids = [entry["model"] for entry in entries]
    assert len(ids) == len(set(ids)) and ids == ["m3e", "m3e-rerank"]
    assert catalog.rerank_engine("m3e-rerank").method == "cosine"
    assert catalog.rerank_method("m3e-rerank") == catalog.rerank_method("m3e") == "cosine"


def test_model_json_entries_call_this_server_by_its_own_ids_and_show_the_alias() -> None:
    endpoint = Endpoint.parse("http://h:6006", KEY, {"glm2-q4": "chatglm2"})
    entries = fastgpt_model_json(MODELS, endpoint)
    [glm] = [e for e in entries if e["model"] == "glm2-q4"]
    assert glm["metadata"]["name"] == "chatglm2" and glm["metadata"]["model"] == "glm2-q4"
    config = fastgpt_config(MODELS, endpoint)  # through One API, which maps the alias back
    assert "chatglm2" in [e["model"] for e in config["llmModels"]]


def test_thinking_models_are_flagged_for_fastgpts_reasoning_panel() -> None:
    models = ServedModels(
        chat=[ChatModelInfo("qwen3-8b", 8192, reasoning=True), ChatModelInfo("glm2", 8192)],
        embedding=[EmbeddingModelInfo("qwen3-embedding", 1024, 512, False, query_prompt=True)],
    )
    config = fastgpt_config(models, Endpoint.parse("http://h:6006", KEY))
    assert [m["reasoning"] for m in config["llmModels"]] == [True, False]
    [vector] = config["vectorModels"]
    assert (vector["queryConfig"], vector["dbConfig"]) == (
        {"input_type": "query"},
        {"input_type": "document"},
    )
