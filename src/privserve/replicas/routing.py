"""Which replica should take a request: a key from the request's leading blocks, placed on
a consistent-hash ring with a load bound (so a hot prefix spills over rather than piling on
one replica). Pure logic, no Ray: the router and the tests use it alike."""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Paths whose prompts a replica's prefix cache can reuse.
PROMPT_PATHS = ("/v1/chat/completions", "/v1/completions", "/chat/completions", "/completions")
VIRTUAL_NODES = 256  # points per replica on the ring: within ~10% of an even share each


def routing_key(path: str, body: bytes, prefix_chars: int = 4096) -> str | None:
    """The key of a chat or completion request: its model and leading blocks (its system
    prompt, or the first turn when it has none), cut at `prefix_chars`. None for other
    requests and bodies that are not JSON objects."""
    if not path.rstrip("/").endswith(PROMPT_PATHS):
        return None
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(request, dict):
        return None
    model = str(request.get("model", ""))
    if isinstance(request.get("messages"), list):
        leading = _leading_blocks(request["messages"])
    elif "prompt" in request:
        prompt = request["prompt"]
        leading = prompt[0] if isinstance(prompt, list) and prompt else prompt
        leading = leading if isinstance(leading, str) else json.dumps(leading)
    else:
        return None
    text = f"{model}\n{leading}"[:prefix_chars]
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def _leading_blocks(messages: Sequence[Any]) -> str:
    """The system messages at the start (what a knowledge-base app sends with every
    question), or, without any, the first message (what a conversation's later requests
    repeat)."""
    blocks: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            break
        role = message.get("role")
        if role not in ("system", "developer") and blocks:
            break
        blocks.append(f"{role}: {_text(message.get('content'))}")
        if role not in ("system", "developer"):
            break
    return "\n".join(blocks)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _point(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class HashRing:
    """Replicas placed on a ring of hash points; a key goes to the first replica after its
    point that is under the load bound: at most `bound` times the mean load (rounded up,
    counting this request), after Mirrokni, Thorup and Zadimoghaddam's bounded loads, and
    never below `slots`, the requests a replica runs at once: while its home replica has a
    free slot, a key stays where its cache is."""

    def __init__(self, replicas: Iterable[str], bound: float = 1.25, slots: int = 1) -> None:
        self.bound = bound
        self.slots = slots  # a replica below this load never spills: it has a free slot
        self._points: list[tuple[int, str]] = sorted(
            (_point(f"{replica}#{i}"), replica)
            for replica in set(replicas)
            for i in range(VIRTUAL_NODES)
        )
        self._keys = [point for point, _ in self._points]
        self.replicas = sorted({replica for _, replica in self._points})

    def order(self, key: str) -> list[str]:
        """Every replica, in the order the ring meets them after the key's point."""
        if not self._points:
            return []
        start = bisect.bisect(self._keys, _point(key))
        seen: list[str] = []
        for i in range(len(self._points)):
            replica = self._points[(start + i) % len(self._points)][1]
            if replica not in seen:
                seen.append(replica)
                if len(seen) == len(self.replicas):
                    break
        return seen

    def choose(self, key: str, loads: Mapping[str, int]) -> list[str]:
        """The replicas to try, best first: the key's own replica when it is under the
        bound, else the next one on the ring that is; then the others, least loaded first."""
        ordered = self.order(key)
        if not ordered:
            return []
        total = sum(loads.get(replica, 0) for replica in ordered)
        capacity = max(self.slots, math.ceil(self.bound * (total + 1) / len(ordered)))
        first = next((r for r in ordered if loads.get(r, 0) < capacity), None)
        rest = sorted((r for r in ordered if r != first), key=lambda r: loads.get(r, 0))
        return ([first] if first is not None else []) + rest
