"""The OpenAPI document, made to tell the truth about what the server sends.

FastAPI's own document lists a 422 the server never sends (validation errors are 400s), no
other error, an "any object" body for rerank and no streams. Here every operation lists the
statuses it can answer, each error with the OpenAI error body; streaming operations list
`text/event-stream`; rerank lists its two request shapes and their two answers; and the
bearer scheme comes from the key check's dependency. Clients can be generated from it, and
a fuzzer can hold the server to it.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from privserve.protocol.chat import ChatCompletionChunk
from privserve.protocol.completions import Completion
from privserve.protocol.errors import ErrorResponse
from privserve.protocol.rerank import (
    LegacyRerankRequest,
    LegacyRerankResult,
    RerankRequest,
    RerankResponse,
)

_REF = "#/components/schemas/{model}"
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "data": {"type": "string", "description": "A chunk's JSON, an error's, or [DONE]."},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

_WHY = {
    400: "The request is invalid: its JSON, a field (named in `param`), or its size in tokens.",
    401: "No API key, or one that is not valid (or has expired).",
    403: "The key may not be used from this network, or may not manage keys.",
    404: "The model (or key) does not exist, or the key may not use it.",
    405: "The method is not allowed here; `Allow` lists those that are.",
    408: "The request body took longer than `server.body_timeout_s` to arrive.",
    413: "The request body is larger than `server.max_body_bytes`.",
    429: "Too many requests wait for this model (`server_busy`); or the key is over its "
    "requests or tokens per minute or its concurrent requests (`rate_limit_exceeded`), or its "
    "quota cannot cover the request (`insufficient_quota`). Retry after `Retry-After` seconds "
    "(absent when waiting will not help, as for a spent total quota).",
    500: "The server failed.",
    503: "The server is shutting down, or an engine cannot serve.",
    504: "The request took longer than `server.request_timeout_s`.",
}
# Any request can meet these: the body bounds, a wrong method, a draining server, a fault.
_ANY = (400, 405, 408, 413, 500, 503)
_KEYED = (401, 403)
_MODEL = (404, 429)
_STREAMS = {"/v1/chat/completions": ChatCompletionChunk, "/v1/completions": Completion}
_REQUEST_ID = {
    "x-request-id": {
        "description": "The request's id, as the usage ledger records it (the client's own "
        "`x-request-id` when it sent a plain one of at most 64 characters).",
        "schema": {"type": "string"},
    }
}
# OpenAI's rate-limit headers, sent to keys that have the limit.
_RATE_HEADERS = {
    f"x-ratelimit-{what}-{kind}": {
        "description": f"For keys with a {kind}-per-minute limit: {meaning}.",
        "schema": {"type": "string"},
    }
    for kind in ("requests", "tokens")
    for what, meaning in (
        ("limit", "the limit"),
        ("remaining", "what is left of this minute's window"),
        ("reset", "when the window resets, e.g. `42s` or `1m0s`"),
    )
}


def install_openapi(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def build_document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _add_models(schemas, ErrorResponse, RerankRequest, LegacyRerankRequest, RerankResponse)
    _add_models(schemas, LegacyRerankResult, ChatCompletionChunk, Completion)
    _refine_chat_request(schemas)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            _describe_errors(path, operation)
            if path in _STREAMS:
                _add_stream(operation, _STREAMS[path].__name__)
            if path.endswith("/rerank"):
                _describe_rerank(operation)
    return doc


def _describe_errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    responses.pop("422", None)
    statuses = set(_ANY)
    if operation.get("security"):
        statuses.update(_KEYED)
    metered = bool(operation.get("requestBody")) and path.startswith(("/v1/", "/rerank"))
    if operation.get("requestBody") or "{" in path:
        statuses.update(_MODEL)
    if path == "/admin/v1/usage":
        statuses.add(404)  # an unknown `key`
    if path in _STREAMS:
        statuses.add(504)
    for status in sorted(statuses):
        response: dict[str, Any] = {
            "description": _WHY[status],
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
        if status == 405:
            response["headers"] = {"Allow": {"schema": {"type": "string"}}}
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        responses.setdefault(str(status), response)
    for code, answer in responses.items():
        headers = answer.setdefault("headers", {})
        headers.update(_REQUEST_ID)
        if metered and code in ("200", "429"):
            headers.update(_RATE_HEADERS)


def _add_stream(operation: dict[str, Any], chunk: str) -> None:
    ok = operation["responses"]["200"]
    ok["description"] = (
        "With `stream: false`, the whole answer. With `stream: true`, server-sent events: "
        f"`data: {{{chunk}}}` for each chunk, then `data: [DONE]`; an error after the first "
        "chunk ends the stream with one `data: {ErrorResponse}` event."
    )
    # Before Open API 3.2, an event stream's `schema` describes each event.
    ok["content"]["text/event-stream"] = {"schema": _SSE_EVENT}


def _describe_rerank(operation: dict[str, Any]) -> None:
    operation["requestBody"]["content"]["application/json"]["schema"] = {
        "oneOf": [
            {"$ref": _REF.format(model="RerankRequest")},
            {"$ref": _REF.format(model="LegacyRerankRequest")},
        ],
        "description": "The Cohere/Jina shape (`documents`), or FastGPT 4.6's (`inputs`).",
    }
    legacy = {"type": "array", "items": {"$ref": _REF.format(model="LegacyRerankResult")}}
    operation["responses"]["200"]["content"]["application/json"]["schema"] = {
        "oneOf": [{"$ref": _REF.format(model="RerankResponse")}, legacy]
    }


def _refine_chat_request(schemas: dict[str, Any]) -> None:
    """Rules the request models check in code, written into their schemas: every role but
    the assistant's needs `content`; a text model reads only text parts, each with its
    text; `json_schema` responses need their `json_schema`."""
    message = schemas["ChatMessage"]
    roles = message["properties"]["role"]["enum"]
    content = message["properties"]["content"]["anyOf"]
    with_content = copy.deepcopy(message)
    with_content["properties"]["role"] = {
        "type": "string",
        "enum": [r for r in roles if r != "assistant"],
    }
    with_content["properties"]["content"] = {"anyOf": [c for c in content if c != {"type": "null"}]}
    with_content["required"] = ["role", "content"]
    assistant = copy.deepcopy(message)
    assistant["properties"]["role"] = {"type": "string", "enum": ["assistant"]}
    schemas["ChatMessage"] = {
        "title": "ChatMessage",
        "oneOf": [with_content, assistant],
        "description": "`content` may be null only on an assistant turn with `tool_calls`.",
    }
    part = schemas["ContentPart"]
    part["properties"]["type"] = {"type": "string", "enum": ["text"]}
    part["properties"]["text"] = {"type": "string"}
    part["required"] = ["type", "text"]
    response_format = schemas["ResponseFormat"]
    plain = copy.deepcopy(response_format)
    plain["properties"] = {"type": {"type": "string", "enum": ["text", "json_object"]}}
    structured = copy.deepcopy(response_format)
    structured["properties"] = {
        "type": {"type": "string", "enum": ["json_schema"]},
        "json_schema": {"$ref": _REF.format(model="JsonSchemaFormat")},
    }
    structured["required"] = ["type", "json_schema"]
    schemas["ResponseFormat"] = {"title": "ResponseFormat", "oneOf": [plain, structured]}


def _add_models(schemas: dict[str, Any], *models: type[BaseModel]) -> None:
    for model in models:
        # Requests are documented as they are read, answers as they are written.
        mode: JsonSchemaMode = (
            "validation" if model.__name__.endswith("Request") else "serialization"
        )
        schema = TypeAdapter(model).json_schema(ref_template=_REF, mode=mode)
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)
