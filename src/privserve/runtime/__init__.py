"""Everything a running server holds, opened as one async context manager.

The database (keys, ledger, quotas), the rate limiter and the ledger's writer, every chat
engine, the torch thread and the embedding and
rerank models are entered on one AsyncExitStack: when anything fails to open (a later model
that cannot load), what was already opened is closed, in reverse order, and so it is on a
normal stop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio

from privserve.auth.keys import KeyStore, open_key_store
from privserve.config import Settings
from privserve.engine.base import EmbeddingEngine, ModelSpec, RerankEngine, TextEngine
from privserve.engine.embedding.engine import BatchedCrossEncoder, BatchedEmbedder
from privserve.engine.embedding.torch_thread import TorchThread
from privserve.engine.llama.engine import LlamaEngine
from privserve.engine.memory import free_ram_bytes
from privserve.errors import ModelLoadError, StorageUnavailable
from privserve.metering.leases import QuotaLeases
from privserve.metering.meter import Meter
from privserve.metering.metrics import Metrics
from privserve.metering.rates import RateLimiter
from privserve.metering.writer import LedgerWriter
from privserve.models.bundled import BUNDLED_MODELS, materialize, with_bundled_sampling
from privserve.models.registry import (
    resolve_chat_models,
    resolve_embedding_model,
    resolve_rerank_model,
)
from privserve.runtime.offers import ChatOffers, RetrievalOffers
from privserve.services.catalog import ModelCatalog
from privserve.services.chat import ChatService
from privserve.services.chat_models import ChatModels, chat_models
from privserve.services.completions import CompletionService
from privserve.services.embeddings import EmbeddingService
from privserve.services.on_demand import Budget, OnDemandModels
from privserve.services.rerank import RerankService
from privserve.services.retrieval_models import (
    EmbeddingModels,
    RerankModels,
    RetrievalOffer,
)
from privserve.services.tokens import TokenService
from privserve.storage.db import open_database, open_sqlite_writer
from privserve.storage.usage import UsageRepo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    key_store: KeyStore
    meter: Meter
    usage: UsageRepo
    catalog: ModelCatalog
    chat: ChatService
    completions: CompletionService
    embeddings: EmbeddingService
    rerank: RerankService
    tokens: TokenService


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    text_engines: Mapping[str, TextEngine] | None = None,
    embedding_engines: Mapping[str, EmbeddingEngine] | None = None,
) -> AsyncIterator[Runtime]:
    """`text_engines` replaces loading the configured models (tests pass fakes); then only
    `embedding_engines` are offered for embeddings."""
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(open_database(settings.database_url))
        key_store = await stack.enter_async_context(open_key_store(settings, db))
        sqlite_writer = await stack.enter_async_context(open_sqlite_writer(settings.database_url))
        usage = UsageRepo(db, sqlite_writer)
        meter = await _open_meter(settings, usage, stack)
        offered_chat: ChatModels | dict[str, TextEngine] = dict(text_engines or {})
        embedders: EmbeddingModels | dict[str, EmbeddingEngine] = dict(embedding_engines or {})
        cross_encoders: RerankModels | list[RerankEngine] = []
        if text_engines is None:
            chats = await _open_chat_models(settings, stack)
            torch_thread = TorchThread(settings.embedding.threads)
            stack.push_async_callback(_in_thread, torch_thread.close)
            embedding = await _open_embedding_models(settings, torch_thread, stack)
            rerank = await _open_rerank_models(settings, torch_thread, stack)
            await _sweep_each_second([chats, embedding, rerank], stack)
            offered_chat, embedders, cross_encoders = chats, embedding, rerank
        catalog = ModelCatalog(offered_chat, embedders, cross_encoders)
        fit = settings.server.fit_max_tokens
        models = with_bundled_sampling(settings.models)
        chat = ChatService(
            catalog,
            fit_max_tokens=fit,
            reasoning_format=settings.reasoning_format,
            model_settings=models,
        )
        yield Runtime(
            settings=settings,
            key_store=key_store,
            meter=meter,
            usage=usage,
            catalog=catalog,
            chat=chat,
            completions=CompletionService(
                catalog,
                fit_max_tokens=fit,
                sampling={model_id: model.sampling for model_id, model in models.items()},
            ),
            embeddings=EmbeddingService(catalog, settings.embedding),
            rerank=RerankService(catalog),
            tokens=TokenService(catalog, chat),
        )


async def _open_meter(settings: Settings, usage: UsageRepo, stack: AsyncExitStack) -> Meter:
    """The rate limiter (its storage reached once now, so a wrong Redis URL fails the start,
    not every request) and the ledger's writer, closed last so every row is committed."""
    limiter = RateLimiter(settings.limits.storage_url, settings.limits.key_prefix)
    try:
        await limiter.check()
    except Exception as exc:
        raise StorageUnavailable(
            f"cannot reach the rate-limit storage {settings.limits.storage_url}: {exc}"
        ) from exc
    if not settings.ledger.enabled:
        return Meter(limiter, None, metrics=Metrics())
    writer = LedgerWriter(usage)
    writer.start()
    stack.push_async_callback(writer.close)
    leases = QuotaLeases(writer, settings.ledger.hold_s)
    stack.push_async_callback(leases.close)  # before the writer closes
    return Meter(limiter, writer, leases, Metrics())


async def _in_thread(close: Callable[[], None]) -> None:
    await anyio.to_thread.run_sync(close)


async def _open_chat_models(settings: Settings, stack: AsyncExitStack) -> ChatModels:
    """Every offered chat model, those named at start loaded and pinned; the others load on
    their first request and unload when idle (a sweep each second) or to make room."""
    pinned = resolve_chat_models(settings)
    memory = settings.max_model_memory_gb
    budget = replace(
        _keep_alive_budget(settings),
        max_loaded=settings.max_loaded_models,
        memory_bytes=int(memory * 2**30) if memory else int(free_ram_bytes() * 0.9),
    )

    async def load(spec: ModelSpec) -> TextEngine:
        bundled = BUNDLED_MODELS.get(spec.model_id)
        if bundled is not None and not spec.path.is_file():
            await anyio.to_thread.run_sync(materialize, bundled, settings.models_dir)
        engine: LlamaEngine = await anyio.to_thread.run_sync(
            functools.partial(
                LlamaEngine.load,
                spec,
                settings.llama,
                max_queued_requests=settings.server.max_queued_requests,
                request_timeout_s=settings.server.request_timeout_s,
                batch_max_wait_s=settings.server.batch_max_wait_s,
            )
        )
        return engine

    async def unload(engine: TextEngine) -> None:
        assert isinstance(engine, LlamaEngine)
        await anyio.to_thread.run_sync(engine.close)

    models = chat_models(ChatOffers(settings, pinned), load, unload, budget)
    stack.push_async_callback(models.close)
    for file in pinned:
        await models.pin(file.model_id)
    return models


async def _sweep_each_second(
    managers: list[OnDemandModels[Any, Any]], stack: AsyncExitStack
) -> None:
    """Unloads idle models past their keep-alive, once a second, until the stack closes."""
    stop_sweeping = anyio.Event()

    async def sweep() -> None:
        while not stop_sweeping.is_set():
            with anyio.move_on_after(1):
                await stop_sweeping.wait()
            for models in managers:
                if not stop_sweeping.is_set():
                    await models.sweep()

    sweeper = asyncio.create_task(sweep())

    async def stop() -> None:
        # Between sweeps, never inside an unload.
        stop_sweeping.set()
        await sweeper

    stack.push_async_callback(stop)


def _keep_alive_budget(settings: Settings) -> Budget:
    """How long idle models stay loaded, and nothing more: embedding and rerank models
    are small beside chat models; chat models add their count and memory bounds."""
    return Budget(
        keep_alive_s=_forever_if_negative(settings.keep_alive),
        keep_alive_by_model={
            model_id: _forever_if_negative(model.keep_alive)
            for model_id, model in settings.models.items()
            if model.keep_alive is not None
        },
    )


def _forever_if_negative(seconds: float) -> float:
    return float("inf") if seconds < 0 else seconds


async def _open_embedding_models(
    settings: Settings, thread: TorchThread, stack: AsyncExitStack
) -> EmbeddingModels:
    """The configured embedding model, loaded and pinned, and every registered one, loaded
    on demand. The default model is skipped with a warning when its packages are missing
    (the server still serves chat); a model the user named must load."""
    try:
        pinned = resolve_embedding_model(settings)
    except ModelLoadError as exc:
        if "model" in settings.embedding.model_fields_set:
            raise
        logger.warning("serving no embedding model: %s", exc)
        pinned = None
    offers = RetrievalOffers(settings, "embedding", pinned, settings.embedding.shortenable)
    load, unload = _on_torch_thread(BatchedEmbedder, settings.embedding, thread, settings)
    models: EmbeddingModels = OnDemandModels(
        "embedding", offers, load, unload, _keep_alive_budget(settings)
    )
    stack.push_async_callback(models.close)
    if pinned is not None:
        try:
            await models.pin(pinned[0])
        except ModelLoadError as exc:
            if "model" in settings.embedding.model_fields_set:
                raise
            logger.warning("serving no embedding model: %s", exc)
            offers.pinned = None
    return models


async def _open_rerank_models(
    settings: Settings, thread: TorchThread, stack: AsyncExitStack
) -> RerankModels:
    """The configured cross-encoder, loaded and pinned, and every registered one, loaded
    on demand."""
    pinned = resolve_rerank_model(settings)
    offers = RetrievalOffers(settings, "rerank", pinned)
    load, unload = _on_torch_thread(BatchedCrossEncoder, settings.rerank, thread, settings)
    models: RerankModels = OnDemandModels(
        "rerank", offers, load, unload, _keep_alive_budget(settings)
    )
    stack.push_async_callback(models.close)
    if pinned is not None:
        await models.pin(pinned[0])
    return models


Batched = TypeVar("Batched", BatchedEmbedder, BatchedCrossEncoder)


def _on_torch_thread(
    kind: type[Batched], config: Any, thread: TorchThread, settings: Settings
) -> tuple[Callable[[RetrievalOffer], Awaitable[Batched]], Callable[[Any], Awaitable[None]]]:
    """How an embedding or rerank model of `kind` is loaded (on the torch thread, then its
    batcher started) and unloaded (its batcher closed)."""

    async def load(offer: RetrievalOffer) -> Batched:
        engine = await anyio.to_thread.run_sync(
            lambda: kind.load(
                offer.model_id, offer.path, config, thread, settings.server.batch_max_wait_s
            )
        )
        engine.start()
        return engine

    async def unload(engine: Any) -> None:
        assert isinstance(engine, kind)
        await engine.close()

    return load, unload
