"""`GET /health`: liveness without a key."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from privserve.api.deps import Catalog

router = APIRouter()


@router.get("/health")
async def health(catalog: Catalog) -> dict[str, object]:
    """Liveness plus each engine's counters (queue depth, running, tokens, forward passes)."""
    return {
        "status": "ok",
        "models": {m: asdict(catalog.text_engine(m).stats()) for m in catalog.model_ids()},
        "embedding_models": {
            m: catalog.embedding_engine(m).stats() for m in catalog.embedding_model_ids()
        },
        "rerank_models": {m: catalog.rerank_engine(m).stats() for m in catalog.rerank_model_ids()},
    }
