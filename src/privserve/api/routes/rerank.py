"""`POST /v1/rerank` and `POST /rerank`: the Cohere/Jina shape, or FastGPT 4.6's legacy one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from privserve.api.deps import Catalog, Metered, Rerank
from privserve.api.disconnect import unless_disconnected
from privserve.api.json_route import JsonBodyRoute
from privserve.api.metered import metered
from privserve.protocol.rerank import (
    LegacyRerankRequest,
    LegacyRerankResult,
    RerankRequest,
    RerankResponse,
)

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/rerank", response_model=None)
async def rerank(
    body: Annotated[dict[str, Any], Body()],
    service: Rerank,
    catalog: Catalog,
    ticket: Metered,
    request: Request,
) -> RerankResponse | list[LegacyRerankResult]:
    # FastGPT 4.6 sends `inputs: [{id, text}]`; everything since sends `documents`.
    is_legacy = "inputs" in body and "documents" not in body
    try:
        parsed = (LegacyRerankRequest if is_legacy else RerankRequest).model_validate(body)
    except ValidationError as exc:
        raise _as_body_error(exc) from None
    # No model named: the default reranker answers, and the key must be allowed it.
    async with metered(ticket, parsed.model or catalog.default_reranker_id()):
        if isinstance(parsed, LegacyRerankRequest):
            return await unless_disconnected(request, service.rerank_legacy(parsed, ticket))
        return await unless_disconnected(request, service.rerank(parsed, ticket))


def _as_body_error(exc: ValidationError) -> RequestValidationError:
    """The same 400 as for any other body: api/errors.py maps it."""
    located = []
    for detail in exc.errors():
        entry: dict[str, Any] = dict(detail)
        entry["loc"] = ("body", *detail["loc"])
        located.append(entry)
    return RequestValidationError(located)
