"""The ASGI application: engines and the key store start in the lifespan, live on app.state."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from fastapi import APIRouter, Depends, FastAPI

from privserve import __version__
from privserve.api.deps import require_api_key
from privserve.api.errors import install_error_handlers
from privserve.api.routes import (
    chat,
    completions,
    embeddings,
    health,
    integrations,
    models,
    rerank,
)
from privserve.auth.keys import open_key_store
from privserve.config import Settings
from privserve.engine.base import EmbeddingEngine, TextEngine
from privserve.engine.embedding.engine import BatchedCrossEncoder, BatchedEmbedder
from privserve.engine.embedding.torch_thread import TorchThread
from privserve.engine.llama.engine import LlamaEngine
from privserve.errors import ModelLoadError
from privserve.models.registry import (
    resolve_chat_models,
    resolve_embedding_model,
    resolve_rerank_model,
)
from privserve.services.catalog import ModelCatalog
from privserve.services.chat import ChatService
from privserve.services.completions import CompletionService
from privserve.services.embeddings import EmbeddingService
from privserve.services.rerank import RerankService

logger = logging.getLogger(__name__)


async def load_chat_engines(settings: Settings) -> list[LlamaEngine]:
    """One started engine per configured chat model; on a failure, those loaded are closed."""
    loaded: list[LlamaEngine] = []
    try:
        for spec in resolve_chat_models(settings):
            load = functools.partial(
                LlamaEngine.load,
                spec,
                settings.llama,
                max_queued_requests=settings.server.max_queued_requests,
                request_timeout_s=settings.server.request_timeout_s,
            )
            loaded.append(await anyio.to_thread.run_sync(load))
    except BaseException:
        for engine in loaded:
            await anyio.to_thread.run_sync(engine.close)
        raise
    return loaded


async def load_embedder(settings: Settings, thread: TorchThread) -> BatchedEmbedder | None:
    """The configured embedding model, started; None when there is none.

    The default model is skipped with a warning when its packages are missing (the server
    still serves chat); a model the user named must load."""
    try:
        resolved = resolve_embedding_model(settings)
        if resolved is None:
            return None
        model_id, path = resolved
        embedder = await anyio.to_thread.run_sync(
            lambda: BatchedEmbedder.load(model_id, path, settings.embedding, thread)
        )
    except ModelLoadError as exc:
        if "model" in settings.embedding.model_fields_set:
            raise
        logger.warning("serving no embedding model: %s", exc)
        return None
    embedder.start()
    return embedder


async def load_reranker(settings: Settings, thread: TorchThread) -> BatchedCrossEncoder | None:
    """The configured cross-encoder, started; None when there is none."""
    resolved = resolve_rerank_model(settings)
    if resolved is None:
        return None
    model_id, path = resolved
    reranker = await anyio.to_thread.run_sync(
        lambda: BatchedCrossEncoder.load(model_id, path, settings.rerank, thread)
    )
    reranker.start()
    return reranker


def create_app(
    settings: Settings,
    *,
    text_engines: Mapping[str, TextEngine] | None = None,
    embedding_engines: Mapping[str, EmbeddingEngine] | None = None,
) -> FastAPI:
    """`text_engines` replaces loading the configured models (tests pass fakes); then only
    `embedding_engines` are offered for embeddings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key_store, db = await open_key_store(settings)
        loaded: list[LlamaEngine] = []
        engines = text_engines
        if engines is None:
            loaded = await load_chat_engines(settings)
            engines = {engine.model_id: engine for engine in loaded}
        embedders = dict(embedding_engines or {})
        torch_thread = TorchThread(settings.embedding.threads)
        embedder = reranker = None
        if text_engines is None:
            embedder = await load_embedder(settings, torch_thread)
            reranker = await load_reranker(settings, torch_thread)
        if embedder is not None:
            embedders[embedder.model_id] = embedder
        catalog = ModelCatalog(engines, embedders, [] if reranker is None else [reranker])
        app.state.settings = settings
        app.state.key_store = key_store
        app.state.catalog = catalog
        fit = settings.server.fit_max_tokens
        app.state.chat_service = ChatService(catalog, fit_max_tokens=fit)
        app.state.completion_service = CompletionService(catalog, fit_max_tokens=fit)
        app.state.embedding_service = EmbeddingService(catalog, settings.embedding)
        app.state.rerank_service = RerankService(catalog)
        try:
            yield
        finally:
            for batched in (embedder, reranker):
                if batched is not None:
                    await batched.close()
            await anyio.to_thread.run_sync(torch_thread.close)
            for engine in loaded:
                await anyio.to_thread.run_sync(engine.close)
            key_store.close()
            await db.dispose()

    app = FastAPI(title="privserve", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
    v1.include_router(models.router)
    v1.include_router(chat.router)
    v1.include_router(completions.router)
    v1.include_router(embeddings.router)
    v1.include_router(rerank.router)
    v1.include_router(integrations.router)
    app.include_router(v1)
    # FastGPT's rerank settings take a full URL; many point it at `{base}/rerank`.
    app.include_router(rerank.router, dependencies=[Depends(require_api_key)])
    return app
