"""Prometheus metrics of the requests a server answers: what every ticket records when it
settles, and the limits and quotas that turned requests away. Each server has its own
registry (no process-global state); the live gauges (queues, slots, loaded models) are
collected at scrape time by the web layer, which knows the engines."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.registry import Collector

from privserve import __version__
from privserve.storage.usage import UsageEntry

# Seconds: from a cached short prompt on a small model to a long answer on a big one.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOKEN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


@dataclass(frozen=True)
class _Series:
    """The children one (endpoint, model, status) settles into."""

    requests: Counter
    duration: Histogram
    prompt_tokens: Counter
    cached_tokens: Counter
    completion_tokens: Counter
    first_token: Histogram
    per_token: Histogram


class Metrics:
    def __init__(self) -> None:
        # `labels()` takes a lock and checks its arguments each call: a cost every request
        # paid several times over. Its children are looked up once per label set.
        self._series: dict[tuple[str, str, int], _Series] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "privserve_requests",
            "Requests answered, by endpoint, model and HTTP status.",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "privserve_request_duration_seconds",
            "Time from a request's start to its last byte.",
            ["endpoint", "model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "privserve_time_to_first_token_seconds",
            "Time from a request's start to its first output token.",
            ["model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.per_token = Histogram(
            "privserve_time_per_output_token_seconds",
            "Time between output tokens after the first, per request.",
            ["model"],
            buckets=TOKEN_TIME_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "privserve_prompt_tokens", "Prompt tokens read.", ["model"], registry=r
        )
        self.cached_tokens = Counter(
            "privserve_cached_prompt_tokens",
            "Prompt tokens found in the prefix cache, not computed again.",
            ["model"],
            registry=r,
        )
        self.completion_tokens = Counter(
            "privserve_completion_tokens", "Output tokens generated.", ["model"], registry=r
        )
        self.rejections = Counter(
            "privserve_rejections",
            "Requests turned away by a key's limits or quota (kind: requests, tokens, quota).",
            ["key_id", "kind"],
            registry=r,
        )
        Info("privserve_build", "The server's version.", registry=r).info({"version": __version__})

    def observe(self, entry: UsageEntry) -> None:
        """A settled request, from its ledger entry."""
        series = self._series_of(entry.endpoint, entry.model, entry.status_code)
        series.requests.inc()
        series.duration.observe(entry.duration_ms / 1000)
        series.prompt_tokens.inc(entry.prompt_tokens)
        series.cached_tokens.inc(entry.cached_tokens)
        series.completion_tokens.inc(entry.completion_tokens)
        if entry.ttft_ms is not None:
            series.first_token.observe(entry.ttft_ms / 1000)
            if entry.completion_tokens > 1:
                decoding = (entry.duration_ms - entry.ttft_ms) / 1000
                series.per_token.observe(max(0.0, decoding) / (entry.completion_tokens - 1))

    def _series_of(self, endpoint: str, model: str, status: int) -> _Series:
        key = (endpoint, model, status)
        series = self._series.get(key)
        if series is None:
            series = _Series(
                requests=self.requests.labels(endpoint, model, str(status)),
                duration=self.duration.labels(endpoint, model),
                prompt_tokens=self.prompt_tokens.labels(model),
                cached_tokens=self.cached_tokens.labels(model),
                completion_tokens=self.completion_tokens.labels(model),
                first_token=self.first_token.labels(model),
                per_token=self.per_token.labels(model),
            )
            self._series[key] = series
        return series

    def rejected(self, key_id: int, kind: str) -> None:
        self.rejections.labels(str(key_id), kind).inc()

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)
