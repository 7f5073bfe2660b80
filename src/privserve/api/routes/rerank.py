"""`POST /v1/rerank` and `POST /rerank`: the Cohere/Jina shape, or FastGPT 4.6's legacy one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from privserve.api.deps import Rerank
from privserve.api.disconnect import unless_disconnected
from privserve.api.schemas.rerank import (
    LegacyRerankRequest,
    LegacyRerankResult,
    RerankRequest,
    RerankResponse,
)
from privserve.errors import InvalidRequest

router = APIRouter()


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


@router.post("/rerank", response_model=None)
async def rerank(request: Request, service: Rerank) -> RerankResponse | list[LegacyRerankResult]:
    body = await _body(request)
    # FastGPT 4.6 sends `inputs: [{id, text}]`; everything since sends `documents`.
    is_legacy = "inputs" in body and "documents" not in body
    try:
        parsed = (LegacyRerankRequest if is_legacy else RerankRequest).model_validate(body)
    except ValidationError as exc:
        raise _as_body_error(exc) from None
    if isinstance(parsed, LegacyRerankRequest):
        return await unless_disconnected(request, service.rerank_legacy(parsed))
    return await unless_disconnected(request, service.rerank(parsed))


def _as_body_error(exc: ValidationError) -> RequestValidationError:
    """The same 400 as for any other body: api/errors.py maps it."""
    located = []
    for detail in exc.errors():
        entry: dict[str, Any] = dict(detail)
        entry["loc"] = ("body", *detail["loc"])
        located.append(entry)
    return RequestValidationError(located)
