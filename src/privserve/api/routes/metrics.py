"""`GET /metrics`: Prometheus text format. Request counters and histograms come from the
tickets (`metering.metrics`); the gauges of queues, slots and loaded models are read from
the engines at each scrape."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from privserve.api.deps import require_api_key
from privserve.errors import PermissionDenied
from privserve.metering.metrics import Metrics
from privserve.services.catalog import ModelCatalog

router = APIRouter()


class EngineCollector(Collector):
    """The engines' own counters, as they are when Prometheus scrapes."""

    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    def collect(self) -> Iterator[Metric]:
        catalog = self._catalog
        chat = {m: catalog.text_engine(m).stats() for m in catalog.loaded_model_ids()}
        gauges = {
            "privserve_requests_waiting": ("Requests queued for a slot.", "queued_requests"),
            "privserve_requests_running": (
                "Requests decoding, each in a slot of its own.",
                "running_requests",
            ),
            "privserve_slots": ("Sequences the engine decodes together.", "slots"),
            "privserve_kv_cells_used": (
                "KV cache positions the slots hold (a prefix copied between slots counts in each).",
                "kv_cells_used",
            ),
            "privserve_kv_cells": ("KV cache positions of the engine's context.", "kv_cells"),
            "privserve_tokens_per_second": (
                "Output tokens per second over the engine's last steps.",
                "tokens_per_second",
            ),
        }
        for name, (text, field) in gauges.items():
            family = GaugeMetricFamily(name, text, labels=["model"])
            for model, stats in chat.items():
                family.add_metric([model], float(getattr(stats, field)))
            yield family
        counters = {
            "privserve_prefill_tokens": ("Prompt tokens computed (not cached).", "prefill_tokens"),
            "privserve_prefix_cache_hit_tokens": (
                "Prompt tokens taken from a slot's cache.",
                "cached_prompt_tokens",
            ),
            "privserve_engine_steps": ("Forward passes of the chat engine.", "steps"),
            "privserve_draft_tokens": (
                "Tokens drafted from the prompt (prompt lookup) and checked by the model.",
                "draft_tokens",
            ),
            "privserve_draft_accepted_tokens": (
                "Drafted tokens the model kept.",
                "accepted_draft_tokens",
            ),
            "privserve_gathered_sequences": (
                "Answering sequences moved to another slot so that the running slots are "
                "consecutive (split KV streams compute each run of slots in a pass of its own).",
                "gathered_sequences",
            ),
        }
        for name, (text, field) in counters.items():
            counter = CounterMetricFamily(name, text, labels=["model"])
            for model, stats in chat.items():
                counter.add_metric([model], float(getattr(stats, field)))
            yield counter
        yield from self._models(catalog)
        yield from self._embedding(catalog)

    @staticmethod
    def _models(catalog: ModelCatalog) -> Iterator[Metric]:
        loaded = GaugeMetricFamily(
            "privserve_models_loaded", "Models loaded, by kind.", labels=["kind"]
        )
        offered = GaugeMetricFamily(
            "privserve_models_offered", "Models offered, loaded or not, by kind.", labels=["kind"]
        )
        loads = CounterMetricFamily(
            "privserve_model_loads", "Models loaded on demand or at start.", labels=["kind"]
        )
        for kind, models in (
            ("chat", catalog.chat_models),
            ("embedding", catalog.embedding_models),
            ("rerank", catalog.rerank_models),
        ):
            loaded.add_metric([kind], len(models.loaded_ids()))
            offered.add_metric([kind], len(models.offered()))
            loads.add_metric([kind], models.loads)
        yield from (loaded, offered, loads)

    @staticmethod
    def _embedding(catalog: ModelCatalog) -> Iterator[Metric]:
        passes = CounterMetricFamily(
            "privserve_embedding_forward_passes",
            "Batched forward passes of embedding models.",
            labels=["model"],
        )
        texts = CounterMetricFamily(
            "privserve_embedding_texts",
            "Texts embedded; divided by the passes, the mean batch size.",
            labels=["model"],
        )
        queued = GaugeMetricFamily(
            "privserve_embedding_texts_waiting", "Texts waiting for a pass.", labels=["model"]
        )
        last_pass = GaugeMetricFamily(
            "privserve_embedding_last_pass_seconds",
            "The last forward pass's time.",
            labels=["model"],
        )
        busy = CounterMetricFamily(
            "privserve_embedding_busy_seconds",
            "Time spent in forward passes; its rate is the share of time the model is busy.",
            labels=["model"],
        )
        for model in catalog.loaded_embedding_ids():
            stats = catalog.embedding_engine(model).stats()
            busy.add_metric([model], stats.get("busy_s", 0.0))
            passes.add_metric([model], stats.get("forward_passes", 0.0))
            texts.add_metric([model], stats.get("texts", 0.0))
            queued.add_metric([model], stats.get("queued_texts", 0.0))
            last_pass.add_metric([model], stats.get("last_pass_ms", 0.0) / 1000)
        yield from (passes, texts, queued, last_pass, busy)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (without a key unless `server.metrics_need_admin_key`)."""
    if request.app.state.settings.server.metrics_need_admin_key:
        await require_api_key(request)
        if not request.state.access.is_admin:
            raise PermissionDenied("the metrics need an admin key")
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
