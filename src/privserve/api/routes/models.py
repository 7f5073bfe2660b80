"""`GET /v1/models` and `GET /v1/models/{id}`."""

from __future__ import annotations

from fastapi import APIRouter

from privserve.api.deps import Access, Catalog
from privserve.api.metered import require_model
from privserve.errors import ModelNotFound
from privserve.protocol.models import ModelCard, ModelList
from privserve.services.catalog import ModelCatalog

router = APIRouter()


COSINE_NOTE = (
    "Embedding model; /v1/rerank with it scores documents by the cosine similarity of "
    "their vectors with the query's."
)
COSINE_RERANK_NOTE = (
    "Reranks with an embedding model: the cosine similarity of each document's vector with "
    "the query's. Its own id, for model tables that need ids to be unique."
)
NO_CHAT_FORMAT_NOTE = (
    "Has no chat format (no template in the file, none known for its architecture): serves "
    "/v1/completions only. Start it with --chat-template to chat with it."
)
QUERY_PROMPT_NOTE = (
    ' Trained with an instruction before queries: send input_type "query" with questions '
    'and "document" with passages, and privserve adds it.'
)
CROSS_ENCODER_NOTE = (
    "Cross-encoder rerank model; /v1/rerank reads the query and each document together."
)


def card(catalog: ModelCatalog, model_id: str) -> ModelCard:
    capabilities, description = _what(catalog, model_id)
    model = ModelCard(
        id=model_id,
        created=catalog.created,
        capabilities=capabilities,
        description=description,
    )
    for models in (catalog.embedding_models, catalog.rerank_models):
        retrieval = models.offer(model_id)
        if retrieval is not None:
            return model.model_copy(
                update={
                    "state": models.state(model_id),
                    "pinned": models.pinned(model_id) or retrieval.pinned,
                    "size_bytes": retrieval.memory_bytes or None,
                }
            )
    offer = catalog.chat_models.offer(model_id)
    if offer is None:
        return model
    return model.model_copy(
        update={
            "state": catalog.chat_models.state(model_id),
            "pinned": catalog.chat_models.pinned(model_id) or offer.pinned,
            "size_bytes": offer.size_bytes or None,
            "precision": offer.precision,
            "context_length": catalog.context_length(model_id) or None,
        }
    )


def _what(catalog: ModelCatalog, model_id: str) -> tuple[list[str], str | None]:
    """What a model serves, and how, when that needs saying."""
    if model_id in catalog.model_ids():
        engine = catalog.chat_models.loaded(model_id)
        offer = catalog.chat_models.offer(model_id)
        if engine is not None:
            chats = engine.has_chat_format
        else:  # read from its file; a file that says nothing may still chat
            chats = offer is None or offer.has_chat_format is not False
        if not chats:
            return ["completions"], NO_CHAT_FORMAT_NOTE
        return ["chat", "completions"], None
    if model_id in catalog.cosine_rerank_ids():
        return ["rerank"], COSINE_RERANK_NOTE
    if model_id in catalog.rerank_model_ids():
        return ["rerank"], CROSS_ENCODER_NOTE
    retrieval = catalog.embedding_offer(model_id)
    if retrieval is not None and retrieval.prompts.get("query"):
        return ["embeddings", "rerank"], COSINE_NOTE + QUERY_PROMPT_NOTE
    return ["embeddings", "rerank"], COSINE_NOTE


@router.get("/models")
async def list_models(catalog: Catalog, access: Access) -> ModelList:
    """The models this key may use."""
    ids = (
        catalog.model_ids()
        + catalog.embedding_model_ids()
        + catalog.rerank_model_ids()
        + catalog.cosine_rerank_ids()
    )
    return ModelList(data=[card(catalog, m) for m in ids if access.allows_model(m)])


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, catalog: Catalog, access: Access) -> ModelCard:
    require_model(access, model_id)
    if not catalog.has(model_id):
        raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
    return card(catalog, model_id)
