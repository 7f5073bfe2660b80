"""What FastGPT and One API need to know to use this server, built from the models it serves.

The same entries come out of `privserve fastgpt-config` / `privserve oneapi-channel` and of
`GET /v1/privserve/integrations`, so the web page and the CLI never disagree."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from privserve.errors import InvalidRequest
from privserve.services.catalog import ModelCatalog

FastGptFormat = Literal["config-json", "model-json"]

# FastGPT stores vectors in a pgvector column of this size and pads shorter ones itself.
FASTGPT_MAX_DIMENSIONS = 1536
# One API's "OpenAI 兼容" channel: its base URL ends in /v1, One API adds /chat/completions.
ONE_API_OPENAI_COMPATIBLE = 50
# One API's plain "OpenAI" channel: One API adds /v1/chat/completions to its base URL.
ONE_API_OPENAI = 1
PROVIDER = "Other"  # FastGPT's provider list has no entry for self-hosted servers


@dataclass(frozen=True)
class ChatModelInfo:
    model_id: str
    context_length: int
    reasoning: bool = False  # writes a thinking block: FastGPT shows it in its own panel


@dataclass(frozen=True)
class EmbeddingModelInfo:
    model_id: str
    dimensions: int
    max_input_tokens: int
    shortenable: bool
    # Trained with a query instruction (Qwen3-Embedding): FastGPT then marks its queries.
    query_prompt: bool = False


@dataclass(frozen=True)
class RerankModelInfo:
    model_id: str
    method: str  # "cross-encoder" or "cosine"


@dataclass(frozen=True)
class ServedModels:
    chat: Sequence[ChatModelInfo]
    embedding: Sequence[EmbeddingModelInfo] = ()
    rerank: Sequence[RerankModelInfo] = ()  # the default reranker first


@dataclass(frozen=True)
class Endpoint:
    """Where clients reach this server (`root`, no /v1) and the key they send."""

    root: str
    key: str
    aliases: Mapping[str, str] = field(default_factory=dict)  # served id -> name clients use

    @classmethod
    def parse(cls, base_url: str, key: str, aliases: Mapping[str, str] | None = None) -> Endpoint:
        """`base_url` with or without a trailing /v1; anything but http(s) is refused."""
        root = base_url.strip().rstrip("/")
        root = root.removesuffix("/v1").rstrip("/")
        parts = urlsplit(root)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidRequest(
                f"base URL {base_url!r} is not an http(s) URL such as http://privserve:6006",
                param="base_url",
            )
        return cls(root=root, key=key, aliases=dict(aliases or {}))

    @property
    def v1(self) -> str:
        return f"{self.root}/v1"

    def public_name(self, model_id: str) -> str:
        return self.aliases.get(model_id, model_id)


def parse_aliases(pairs: Sequence[str] | None, models: ServedModels) -> dict[str, str]:
    """`SERVED_ID=NAME` pairs as a mapping; an alias of a model not served is an error that
    names the ones that are."""
    aliases: dict[str, str] = {}
    for pair in pairs or ():
        served, sep, name = pair.partition("=")
        if not sep or not served.strip() or not name.strip():
            raise InvalidRequest(f"{pair!r} is not SERVED_ID=NAME", param="alias")
        aliases[served.strip()] = name.strip()
    ids = [
        *(m.model_id for m in models.chat),
        *(m.model_id for m in models.embedding),
        *(m.model_id for m in models.rerank),
    ]
    unknown = sorted(set(aliases) - set(ids))
    if unknown:
        raise InvalidRequest(
            f"--alias names {', '.join(unknown)}, which this server does not serve "
            f"(it serves {', '.join(dict.fromkeys(ids))})",
            param="alias",
        )
    return aliases


def describe_catalog(
    catalog: ModelCatalog, thinks: Callable[[str], bool] = lambda model_id: False
) -> ServedModels:
    """The running server's models, with the sizes its engines report; `thinks` says which
    chat models write a thinking block."""
    chat = [
        ChatModelInfo(m, catalog.context_length(m), reasoning=thinks(m))
        for m in catalog.model_ids()
    ]
    embedding = []
    for model_id in catalog.embedding_model_ids():
        engine = catalog.embedding_models.loaded(model_id)
        offer = catalog.embedding_offer(model_id)
        if engine is not None:  # what the loaded model says of itself
            sizes = (engine.dimensions, engine.max_input_tokens)
            shortenable, prompts = engine.shortenable, engine.prompts
        elif offer and offer.dimensions is not None and offer.max_input_tokens is not None:
            sizes = (offer.dimensions, offer.max_input_tokens)
            shortenable, prompts = offer.shortenable, offer.prompts
        else:
            continue  # a directory that does not say its sizes is listed once loaded
        embedding.append(
            EmbeddingModelInfo(
                model_id, *sizes, shortenable, query_prompt=bool(prompts.get("query"))
            )
        )
    rerank = [RerankModelInfo(m, catalog.rerank_method(m)) for m in catalog.reranker_ids()]
    return ServedModels(chat=chat, embedding=embedding, rerank=rerank)


def response_budget(context_length: int) -> tuple[int, int]:
    """(maxResponse, quoteMaxToken): a quarter of the window for the answer and half for
    knowledge-base quotes, so history and the system prompt keep the last quarter."""
    return max(16, context_length // 4), max(16, context_length // 2)


def _llm_entry(info: ChatModelInfo, name: str) -> dict[str, Any]:
    max_response, quote_max = response_budget(info.context_length)
    return {
        "model": name,
        "name": name,
        "maxContext": info.context_length,
        "maxResponse": max_response,
        "quoteMaxToken": quote_max,
        "maxTemperature": 1,
        "charsPointsPrice": 0,
        "censor": False,
        "vision": False,  # text parts only: image parts are refused with a 400
        "reasoning": info.reasoning,
        "datasetProcess": True,
        "usedInClassify": True,
        "usedInExtractFields": True,
        "usedInToolCall": True,
        "usedInQueryExtension": True,
        # privserve answers `tools`/`tool_choice` for every chat model (grammar-held calls);
        # the legacy `functions` field is not served.
        "toolChoice": True,
        "functionCall": False,
        "customCQPrompt": "",
        "customExtractPrompt": "",
        "defaultSystemChatPrompt": "",
        "defaultConfig": {},
        "fieldMap": {},
    }


def _vector_entry(info: EmbeddingModelInfo, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model": name,
        "name": name,
        "charsPointsPrice": 0,
        # FastGPT counts chunk tokens with its own tokenizer; a margin keeps chunks inside
        # the model's limit when the model's tokenizer counts more.
        "defaultToken": max(16, info.max_input_tokens * 3 // 4),
        "maxToken": info.max_input_tokens,
        "weight": 100,
        "defaultConfig": {},
        "dbConfig": {},
        "queryConfig": {},
    }
    if info.shortenable:
        entry["defaultConfig"] = {"dimensions": min(info.dimensions, FASTGPT_MAX_DIMENSIONS)}
    if info.query_prompt:
        # FastGPT merges these into its embedding requests for chunks and for questions.
        entry["dbConfig"] = {"input_type": "document"}
        entry["queryConfig"] = {"input_type": "query"}
    return entry


def _rerank_entry(info: RerankModelInfo, name: str, endpoint: Endpoint) -> dict[str, Any]:
    return {
        "model": name,
        "name": name,
        "charsPointsPrice": 0,
        "requestUrl": f"{endpoint.v1}/rerank",
        "requestAuth": endpoint.key,
    }


def fastgpt_config(models: ServedModels, endpoint: Endpoint) -> dict[str, Any]:
    """The `llmModels`, `vectorModels` and `reRankModels` of FastGPT's `config.json`
    (before 4.8.20): chat and embeddings go through One API, rerank straight here."""
    return {
        "llmModels": [_llm_entry(m, endpoint.public_name(m.model_id)) for m in models.chat],
        "vectorModels": [
            _vector_entry(m, endpoint.public_name(m.model_id)) for m in models.embedding
        ],
        # FastGPT uses the first reranker only: the server's default one comes first.
        "reRankModels": [
            _rerank_entry(m, endpoint.public_name(m.model_id), endpoint) for m in models.rerank
        ],
    }


def fastgpt_model_json(models: ServedModels, endpoint: Endpoint) -> list[dict[str, Any]]:
    """FastGPT ≥ 4.8.20's model configuration to import (Account → Model providers →
    Model config → Config file): each model with `requestUrl`/`requestAuth`, so FastGPT calls
    privserve directly, with or without One API."""

    def entry(kind: str, body: dict[str, Any], path: str) -> dict[str, Any]:
        metadata = {
            "isCustom": True,
            "isActive": True,
            "provider": PROVIDER,
            "type": kind,
            **body,
            "requestUrl": f"{endpoint.v1}/{path}",
            "requestAuth": endpoint.key,
        }
        return {"model": body["model"], "metadata": metadata}

    # FastGPT sends `model` to the requestUrl, which is this server: its own id goes there,
    # and an alias only into `name`, the name people see.
    def own_id(served: str, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "model": served}

    llm = [own_id(m.model_id, _llm_entry(m, endpoint.public_name(m.model_id))) for m in models.chat]
    vector = [
        own_id(m.model_id, _vector_entry(m, endpoint.public_name(m.model_id)))
        for m in models.embedding
    ]
    rerank = [
        own_id(m.model_id, _rerank_entry(m, endpoint.public_name(m.model_id), endpoint))
        for m in models.rerank[:1]
    ]
    return (
        [entry("llm", e, "chat/completions") for e in llm]
        + [entry("embedding", e, "embeddings") for e in vector]
        + [entry("rerank", e, "rerank") for e in rerank]
    )


def fastgpt(models: ServedModels, endpoint: Endpoint, fmt: FastGptFormat) -> Any:
    return (
        fastgpt_config(models, endpoint)
        if fmt == "config-json"
        else fastgpt_model_json(models, endpoint)
    )


def one_api_channel(models: ServedModels, endpoint: Endpoint) -> dict[str, Any]:
    """The One API channel to create for this server. Rerank is not relayed by One API:
    FastGPT calls it here directly (its `requestUrl`)."""
    served = [m.model_id for m in models.chat] + [m.model_id for m in models.embedding]
    names = [endpoint.public_name(m) for m in served]
    mapping = {endpoint.public_name(m): m for m in served if endpoint.public_name(m) != m}
    return {
        "name": "privserve",
        "type": ONE_API_OPENAI_COMPATIBLE,
        "type_name": "OpenAI 兼容 (OpenAI Compatible)",
        "base_url": endpoint.v1,
        "key": endpoint.key,
        "models": ",".join(names),
        "model_mapping": mapping,
        # One API's plain "OpenAI" type appends /v1/... itself: its base URL has no /v1.
        "openai_type_base_url": endpoint.root,
        "test_model": names[0] if names else None,
    }


def integrations(models: ServedModels, endpoint: Endpoint) -> dict[str, Any]:
    """Everything at once, for `GET /v1/privserve/integrations`."""
    return {
        "base_url": endpoint.v1,
        "fastgpt": {
            "config_json": fastgpt_config(models, endpoint),
            "model_json": fastgpt_model_json(models, endpoint),
        },
        "one_api": one_api_channel(models, endpoint),
    }
