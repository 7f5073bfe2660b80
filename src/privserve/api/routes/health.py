"""`GET /health`: liveness without a key."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from privserve.api.deps import Catalog
from privserve.errors import EngineError

router = APIRouter()


@router.get("/health", response_model=None)
async def health(catalog: Catalog) -> dict[str, object] | JSONResponse:
    """Liveness plus each engine's counters (queue depth, running, tokens, forward passes);
    503 once an engine cannot serve (its thread died)."""
    failures = catalog.engine_failures()
    if failures:
        failed = "; ".join(f"{model}: {reason}" for model, reason in failures.items())
        error = EngineError(f"an engine cannot serve: {failed}")
        error.status = 503
        return JSONResponse(error.to_body(), status_code=503)
    return {
        "status": "ok",
        # The loaded chat models; /v1/models lists every offered one with its state.
        "models": {m: asdict(catalog.text_engine(m).stats()) for m in catalog.loaded_model_ids()},
        "model_loads": {
            "loads": catalog.chat_models.loads,
            "unloads": catalog.chat_models.unloads,
        },
        "embedding_models": {
            m: catalog.embedding_engine(m).stats() for m in catalog.loaded_embedding_ids()
        },
        "rerank_models": {
            m: catalog.rerank_engine(m).stats()
            for m in catalog.loaded_rerank_ids()
            if m not in catalog.embedding_model_ids()
        },
    }
