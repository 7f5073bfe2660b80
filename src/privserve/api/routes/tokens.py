"""`POST /tokenize`, `/detokenize` and `/apply-template`, as llama.cpp's and vLLM's servers
have them: the model's own tokens, for a key allowed the model. Nothing runs on the model,
so nothing is metered."""

from __future__ import annotations

from fastapi import APIRouter

from privserve.api.deps import Access, Tokens
from privserve.api.json_route import JsonBodyRoute
from privserve.api.metered import require_model
from privserve.protocol.tokens import (
    ApplyTemplateRequest,
    ApplyTemplateResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)

router = APIRouter(route_class=JsonBodyRoute)


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, service: Tokens, access: Access) -> TokenizeResponse:
    model_id = service.model_id(body.model)
    require_model(access, model_id)
    return await service.tokenize(body, model_id)


@router.post("/detokenize")
async def detokenize(
    body: DetokenizeRequest, service: Tokens, access: Access
) -> DetokenizeResponse:
    model_id = service.model_id(body.model)
    require_model(access, model_id)
    return await service.detokenize(body, model_id)


@router.post("/apply-template")
async def apply_template(
    body: ApplyTemplateRequest, service: Tokens, access: Access
) -> ApplyTemplateResponse:
    model_id = service.model_id(body.model)
    require_model(access, model_id)
    return await service.apply_template(body, model_id)
