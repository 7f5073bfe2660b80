"""`GET /v1/models` and `GET /v1/models/{id}`."""

from __future__ import annotations

from fastapi import APIRouter

from privserve.api.deps import Catalog
from privserve.api.schemas.models import ModelCard, ModelList
from privserve.errors import ModelNotFound

router = APIRouter()


@router.get("/models")
async def list_models(catalog: Catalog) -> ModelList:
    ids = catalog.model_ids() + catalog.embedding_model_ids()
    return ModelList(data=[ModelCard(id=m, created=catalog.created) for m in ids])


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, catalog: Catalog) -> ModelCard:
    if not catalog.has(model_id):
        raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
    return ModelCard(id=model_id, created=catalog.created)
