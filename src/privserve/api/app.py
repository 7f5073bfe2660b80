"""The ASGI application: engines and the key store start in the lifespan, live on app.state."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from fastapi import APIRouter, Depends, FastAPI

from privserve import __version__
from privserve.api.deps import require_api_key
from privserve.api.errors import install_error_handlers
from privserve.api.routes import chat, completions, health, models
from privserve.auth.keys import open_key_store
from privserve.config import Settings
from privserve.engine.base import TextEngine
from privserve.engine.llama.engine import LlamaEngine
from privserve.models.registry import resolve_chat_model
from privserve.services.catalog import ModelCatalog
from privserve.services.chat import ChatService
from privserve.services.completions import CompletionService

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, text_engines: Mapping[str, TextEngine] | None = None
) -> FastAPI:
    """`text_engines` replaces loading the configured model (tests pass fakes)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key_store, db = await open_key_store(settings)
        loaded: list[LlamaEngine] = []
        engines = text_engines
        if engines is None:
            spec = resolve_chat_model(settings)
            engine = await anyio.to_thread.run_sync(
                lambda: LlamaEngine.load(
                    spec,
                    settings.llama,
                    max_queued_requests=settings.server.max_queued_requests,
                    request_timeout_s=settings.server.request_timeout_s,
                )
            )
            loaded.append(engine)
            engines = {engine.model_id: engine}
        catalog = ModelCatalog(engines)
        app.state.settings = settings
        app.state.key_store = key_store
        app.state.catalog = catalog
        app.state.chat_service = ChatService(catalog)
        app.state.completion_service = CompletionService(catalog)
        try:
            yield
        finally:
            for engine in loaded:
                await anyio.to_thread.run_sync(engine.close)
            await db.dispose()

    app = FastAPI(title="privserve", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
    v1.include_router(models.router)
    v1.include_router(chat.router)
    v1.include_router(completions.router)
    app.include_router(v1)
    return app
