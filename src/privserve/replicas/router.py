"""Ray Serve's request-router extension point, filled with the prefix-affinity policy of
`routing.py`: a chat or completion request goes to the replica its leading blocks hash to,
within the load bound; every other request to the least loaded replica."""

from __future__ import annotations

from typing import Any

from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

from privserve.replicas.routing import HashRing

ROUTING_KEY = "routing_key"  # the keyword argument the ingress passes the key in


class PrefixAffinityRouter(RequestRouter):
    """Requests are matched to their own routing result (the default, not FIFO): the
    replica chosen for a prefix must serve that prefix's request."""

    def initialize_state(self, **kwargs: Any) -> None:
        self._bound = float(kwargs.get("bound", 1.25))
        self._slots = int(kwargs.get("slots", 1))
        self._ring = HashRing([], self._bound, self._slots)

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        key = None if pending_request is None else pending_request.kwargs.get(ROUTING_KEY)
        if not key:
            # Ray probes each and takes the one with the shortest queue.
            return [list(candidate_replicas)]
        by_id = {replica.replica_id.unique_id: replica for replica in candidate_replicas}
        if sorted(by_id) != self._ring.replicas:
            self._ring = HashRing(by_id, self._bound, self._slots)
        cache = self.replica_queue_len_cache
        loads = {uid: cache.get(replica.replica_id) or 0 for uid, replica in by_id.items()}
        # Only the chosen replica: were others offered as a second rank, Ray would take
        # them whenever the chosen one's queue-length probe is slow to answer (a busy
        # replica), and the prefix would lose its cache. Ray retries it with backoff and
        # drops it from the candidates if it dies; the load bound already sent the key on
        # when the replica was too busy.
        return [[by_id[self._ring.choose(key, loads)[0]]]]
