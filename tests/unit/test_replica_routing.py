"""The replica router's policy: keys from a request's leading blocks, and a consistent-hash
ring with bounded loads."""

from __future__ import annotations

import json
import random
from collections import Counter

from privserve.replicas.routing import HashRing, routing_key


def chat_body(system: str, *turns: str, model: str = "m") -> bytes:
    messages = [{"role": "system", "content": system}]
    messages += [{"role": "user", "content": turn} for turn in turns]
    return json.dumps({"model": model, "messages": messages}).encode()


def test_the_key_is_the_model_and_the_system_prompt_else_the_first_turn() -> None:
    key = routing_key("/v1/chat/completions", chat_body("Answer from the notes.", "Q1"))
    # Another question, or a later turn, with the same instructions: the same replica.
    assert key == routing_key("/v1/chat/completions", chat_body("Answer from the notes.", "Q2"))
    assert key == routing_key(
        "/v1/chat/completions", chat_body("Answer from the notes.", "Q1", "more")
    )
    assert key != routing_key("/v1/chat/completions", chat_body("Other notes.", "Q1"))
    assert key != routing_key(
        "/v1/chat/completions", chat_body("Answer from the notes.", "Q1", model="n")
    )
    parts = json.dumps({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Answer from the notes."}]},
        {"role": "user", "content": "Q1"}]}).encode()  # fmt: skip
    assert routing_key("/v1/chat/completions", parts) == key

    # No system prompt: a conversation is keyed by its first turn.
    def turns(*texts: str) -> bytes:
        return json.dumps({"model": "m", "messages": [
            {"role": "user", "content": t} for t in texts]}).encode()  # fmt: skip

    assert routing_key("/v1/chat/completions", turns("Hello", "And?")) == routing_key(
        "/v1/chat/completions", turns("Hello")
    )
    assert routing_key("/v1/chat/completions", turns("Hi")) != routing_key(
        "/v1/chat/completions", turns("Hello")
    )


def test_completions_are_keyed_by_their_prompt_and_the_rest_not_at_all() -> None:
    body = json.dumps({"model": "m", "prompt": "Once upon a time"}).encode()
    assert routing_key("/v1/completions", body) is not None
    assert routing_key("/v1/embeddings", body) is None
    assert routing_key("/v1/chat/completions", b"not json") is None
    assert routing_key("/v1/chat/completions", b"[1, 2]") is None


def test_a_long_prompt_is_keyed_by_its_start() -> None:
    start = "x" * 5000
    one = routing_key("/v1/completions", json.dumps({"model": "m", "prompt": start + "a"}).encode())
    two = routing_key("/v1/completions", json.dumps({"model": "m", "prompt": start + "b"}).encode())
    assert one == two


def test_keys_spread_over_the_replicas_and_each_stays_put() -> None:
    ring = HashRing(["a", "b", "c"])
    rng = random.Random(7)
    keys = [f"{rng.random():.12f}" for _ in range(3000)]
    owners = Counter(ring.choose(key, {})[0] for key in keys)
    assert set(owners) == {"a", "b", "c"} and min(owners.values()) > 850
    assert all(ring.choose(key, {})[0] == ring.order(key)[0] for key in keys[:50])


def test_a_replica_added_moves_only_its_share_of_keys() -> None:
    keys = [str(i) for i in range(2000)]
    before = HashRing(["a", "b", "c"])
    after = HashRing(["a", "b", "c", "d"])
    moved = [k for k in keys if before.order(k)[0] != after.order(k)[0]]
    assert all(after.order(k)[0] == "d" for k in moved)
    assert len(moved) < len(keys) * 0.4


def test_a_hot_key_spills_to_the_next_replica_past_the_load_bound() -> None:
    ring = HashRing(["a", "b"], bound=1.25)
    key = "hot"
    home, other = ring.order(key)
    assert ring.choose(key, {home: 2, other: 2})[0] == home  # balanced: stays
    assert ring.choose(key, {home: 6, other: 1})[0] == other  # home is past 1.25x the mean
    assert ring.choose(key, {home: 6, other: 1}) == [other, home]


def test_a_key_stays_home_while_its_replica_has_a_free_slot() -> None:
    ring = HashRing(["a", "b"], bound=1.25, slots=4)
    home, other = ring.order("hot")
    assert ring.choose("hot", {home: 3, other: 0})[0] == home  # 3 of 4 slots busy
    assert ring.choose("hot", {home: 4, other: 0})[0] == other


def test_the_kuberay_manifests_serve_config_builds_the_application() -> None:
    from pathlib import Path

    import yaml
    from ray.serve import Application

    from privserve.replicas.deployments import build

    manifest = Path(__file__).parents[2] / "deploy" / "kuberay" / "rayservice.yaml"
    serve_config = yaml.safe_load(yaml.safe_load(manifest.read_text())["spec"]["serveConfigV2"])
    [app] = serve_config["applications"]
    assert app["import_path"] == "privserve.replicas.deployments:build"
    assert isinstance(build(app["args"]), Application)
    assert isinstance(build({"ray__replicas": 3, "ray__router": "default"}), Application)


def test_the_replicas_metrics_pages_merge_with_a_replica_label() -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from privserve.replicas.metrics import merge_pages

    pages = {}
    for name, count in (("a", 2), ("b", 3)):
        registry = CollectorRegistry()
        requests = Counter("privserve_requests", "Requests.", ["endpoint"], registry=registry)
        requests.labels("chat").inc(count)
        Histogram("privserve_ttft_seconds", "TTFT.", registry=registry).observe(0.1 * count)
        pages[name] = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(merge_pages(pages).decode())}
    totals = {
        s.labels["replica"]: s.value
        for s in families["privserve_requests"].samples
        if s.name == "privserve_requests_total"
    }
    assert totals == {"a": 2.0, "b": 3.0}
    counts = [s for s in families["privserve_ttft_seconds"].samples if s.name.endswith("_count")]
    assert sorted(s.labels["replica"] for s in counts) == ["a", "b"]
