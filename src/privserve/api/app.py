"""The ASGI application: the runtime opens in the lifespan, and its parts live on app.state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from privserve import __version__
from privserve.api.body_limits import BodyLimits
from privserve.api.deps import require_api_key
from privserve.api.draining import Drain, DrainGate
from privserve.api.errors import install_error_handlers
from privserve.api.metered import ResponseHeaders
from privserve.api.openapi import install_openapi
from privserve.api.routes import (
    account,
    admin,
    chat,
    completions,
    embeddings,
    health,
    integrations,
    models,
    rerank,
    tokens,
)
from privserve.api.routes import metrics as metrics_route
from privserve.api.routes.console import install_console
from privserve.api.routes.metrics import EngineCollector
from privserve.config import Settings
from privserve.engine.base import EmbeddingEngine, TextEngine
from privserve.metering.metrics import Metrics
from privserve.runtime import open_runtime


def create_app(
    settings: Settings,
    *,
    text_engines: Mapping[str, TextEngine] | None = None,
    embedding_engines: Mapping[str, EmbeddingEngine] | None = None,
) -> FastAPI:
    """`text_engines` replaces loading the configured models (tests pass fakes); then only
    `embedding_engines` are offered for embeddings."""

    drain = Drain(settings.server.shutdown_grace_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings, text_engines=text_engines, embedding_engines=embedding_engines
        ) as runtime:
            catalog = runtime.catalog

            def stop_engines() -> None:
                for model_id in catalog.loaded_model_ids():
                    catalog.text_engine(model_id).stop()

            drain.bind(asyncio.get_running_loop(), stop_engines)
            app.state.settings = settings
            app.state.key_store = runtime.key_store
            app.state.meter = runtime.meter
            app.state.usage = runtime.usage
            app.state.catalog = runtime.catalog
            app.state.chat_service = runtime.chat
            app.state.completion_service = runtime.completions
            app.state.embedding_service = runtime.embeddings
            app.state.rerank_service = runtime.rerank
            app.state.token_service = runtime.tokens
            metrics = runtime.meter.metrics or Metrics()
            metrics.add_collector(EngineCollector(runtime.catalog))
            app.state.metrics = metrics
            yield

    app = FastAPI(title="privserve", version=__version__, lifespan=lifespan)
    app.state.drain = drain
    install_error_handlers(app)
    install_openapi(app)
    # Outermost last: a draining server answers 503 before reading any body.
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.server.max_body_bytes,
        timeout_s=settings.server.body_timeout_s,
    )
    app.add_middleware(DrainGate, drain=drain)
    # Outermost: every response, a 503 or a 413 included, says its request id.
    app.add_middleware(ResponseHeaders)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
    v1.include_router(models.router)
    v1.include_router(chat.router)
    v1.include_router(completions.router)
    v1.include_router(embeddings.router)
    v1.include_router(rerank.router)
    v1.include_router(integrations.router)
    v1.include_router(account.router)
    app.include_router(v1)
    app.include_router(admin.router, prefix="/admin/v1", dependencies=[Depends(require_api_key)])
    # FastGPT's rerank settings take a full URL; many point it at `{base}/rerank`.
    app.include_router(rerank.router, dependencies=[Depends(require_api_key)])
    app.include_router(tokens.router, dependencies=[Depends(require_api_key)])
    if settings.server.console:
        install_console(app)
    return app
