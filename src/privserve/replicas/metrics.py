"""One `/metrics` page for all replicas: each replica's Prometheus text, its samples
labelled with the replica's name, as one exposition (a scrape through the ingress would
otherwise see whichever replica it reached)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

REPLICA_LABEL = "replica"


class _Merged(Collector):
    def __init__(self, pages: Mapping[str, str]) -> None:
        self._pages = pages

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for replica, text in sorted(self._pages.items()):
            for family in text_string_to_metric_families(text):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    labels = {**sample.labels, REPLICA_LABEL: replica}
                    into.add_sample(sample.name, labels, sample.value, sample.timestamp)
        yield from merged.values()


def merge_pages(pages: Mapping[str, str]) -> bytes:
    """The replicas' pages (replica name to its text) as one page in the text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(pages))
    return generate_latest(registry)
