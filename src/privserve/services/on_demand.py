"""Models offered, loaded on demand and unloaded when idle or to make room: the pattern
chat models and retrieval models (embedding, rerank) share.

Every offered model has a file; a request for one that is not loaded loads it, and
requests that arrive during that load wait for the same load. Loaded models count against
`max_loaded` and a memory budget; the least recently used idle one (no request queued or
running, not pinned) is unloaded to make room. A model idle longer than its keep-alive is
unloaded by `sweep`. Models named at start are pinned: loaded first and never unloaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from privserve.errors import ModelLoadError, ModelNotFound, ModelUnavailable

logger = logging.getLogger(__name__)

ModelState = Literal["loaded", "loading", "unloaded"]
FOREVER = float("inf")


class Offer(Protocol):
    """What a manager needs of an offered model."""

    @property
    def memory_bytes(self) -> int: ...

    @property
    def pinned(self) -> bool: ...


EngineT = TypeVar("EngineT")
OfferT = TypeVar("OfferT", bound=Offer)


@dataclass
class _Loaded(Generic[EngineT, OfferT]):
    engine: EngineT
    offer: OfferT
    pinned: bool
    last_used: float
    keep_alive_s: float
    users: int = 0  # requests between choosing the engine and handing it their work


@dataclass
class Budget:
    max_loaded: int | None = None
    memory_bytes: int | None = None
    keep_alive_s: float = 300.0
    keep_alive_by_model: Mapping[str, float] = field(default_factory=dict)

    def keep_alive(self, model_id: str) -> float:
        return self.keep_alive_by_model.get(model_id, self.keep_alive_s)


class OnDemandModels(Generic[EngineT, OfferT]):
    def __init__(
        self,
        kind: str,
        offers: Callable[[], Mapping[str, OfferT]],
        load: Callable[[OfferT], Awaitable[EngineT]],
        unload: Callable[[EngineT], Awaitable[None]],
        budget: Budget,
        *,
        busy: Callable[[EngineT], bool] = lambda engine: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind  # "chat and completion", "embedding", "rerank": for messages
        self._offers = offers
        self._load = load
        self._unload = unload
        self._budget = budget
        self._busy = busy
        self._clock = clock
        self.loads = self.unloads = 0
        self._loaded: dict[str, _Loaded[EngineT, OfferT]] = {}
        self._loading: dict[str, asyncio.Task[EngineT]] = {}
        self._room = asyncio.Lock()  # one load decides what to unload at a time
        self._known: dict[str, OfferT] = {}

    # What is offered

    def offered(self) -> dict[str, OfferT]:
        """Every offered model, looked up again: a model registered or copied into the
        models directory while the server runs is offered at once."""
        self._known = dict(self._offers())
        # A loaded model stays offered even when its file is gone from the listing.
        for model_id, loaded in self._loaded.items():
            self._known.setdefault(model_id, loaded.offer)
        return dict(self._known)

    def offer(self, model_id: str) -> OfferT | None:
        loaded = self._loaded.get(model_id)
        return loaded.offer if loaded is not None else self._known.get(model_id)

    def state(self, model_id: str) -> ModelState:
        if model_id in self._loaded:
            return "loaded"
        return "loading" if model_id in self._loading else "unloaded"

    def loaded_ids(self) -> list[str]:
        return sorted(self._loaded)

    def loaded(self, model_id: str) -> EngineT | None:
        entry = self._loaded.get(model_id)
        return None if entry is None else entry.engine

    def pinned(self, model_id: str) -> bool:
        entry = self._loaded.get(model_id)
        return entry is not None and entry.pinned

    # Loading

    async def engine(self, model_id: str, keep_alive_s: float | None = None) -> EngineT:
        """The loaded engine of `model_id`, loading it first when it is not; `keep_alive_s`
        (a request's own) replaces how long it stays loaded once idle."""
        entry = self._loaded.get(model_id)
        if entry is None:
            await self._ensure_loaded(model_id)
            entry = self._loaded[model_id]
        entry.last_used = self._clock()
        if keep_alive_s is not None:
            entry.keep_alive_s = FOREVER if keep_alive_s < 0 else keep_alive_s
        return entry.engine

    @asynccontextmanager
    async def use(self, model_id: str, keep_alive_s: float | None = None) -> AsyncIterator[EngineT]:
        """The engine, loaded if need be, kept from being unloaded until the block ends
        (for a chat model, until the request's work is queued in the engine, which then
        keeps it busy)."""
        engine = await self.engine(model_id, keep_alive_s)
        entry = self._loaded.get(model_id)
        if entry is None or entry.engine is not engine:  # unloaded in between: load again
            async with self.use(model_id, keep_alive_s) as again:
                yield again
            return
        entry.users += 1
        try:
            yield engine
        finally:
            entry.users -= 1
            entry.last_used = self._clock()

    async def _ensure_loaded(self, model_id: str) -> None:
        task = self._loading.get(model_id)
        if task is None:
            offer = self._offer(model_id)
            task = asyncio.create_task(self._load_offer(model_id, offer))
            self._loading[model_id] = task
            task.add_done_callback(self._loaded_or_failed)
        # Shielded: one waiter giving up (a client that left) does not stop the load others
        # wait for.
        await asyncio.shield(task)

    def _loaded_or_failed(self, task: asyncio.Task[EngineT]) -> None:
        for model_id, loading in list(self._loading.items()):
            if loading is task:
                del self._loading[model_id]
        # Read here, so a failure that every waiter gave up on is not logged as unread.
        if not task.cancelled():
            task.exception()

    def _offer(self, model_id: str) -> OfferT:
        offer = self._known.get(model_id) or self.offered().get(model_id)
        if offer is None:
            served = ", ".join(sorted(self._known)) or "none"
            raise ModelNotFound(
                f"The model '{model_id}' does not exist; this server's {self.kind} models: "
                f"{served}",
                param="model",
            )
        return offer

    async def _load_offer(self, model_id: str, offer: OfferT) -> EngineT:
        async with self._room:
            if not offer.pinned:  # models named at start load whatever the budget says
                await self._make_room(model_id, offer.memory_bytes)
            logger.info("loading %s %s", self.kind, model_id)
            try:
                engine = await self._load(offer)
            except ModelLoadError as exc:
                if offer.pinned:
                    raise  # the server does not start
                raise ModelUnavailable(
                    f"the model '{model_id}' could not be loaded: {exc.message}"
                ) from exc
            self.loads += 1
            self._loaded[model_id] = _Loaded(
                engine,
                offer,
                offer.pinned,
                self._clock(),
                self._budget.keep_alive(model_id),
            )
        return engine

    async def _make_room(self, model_id: str, memory: int) -> None:
        """Unloads least recently used idle models until `memory` more fits the budget and
        one more model fits `max_loaded`; a model that cannot fit is refused."""
        budget = self._budget
        if budget.memory_bytes is not None and memory > budget.memory_bytes:
            raise ModelUnavailable(
                f"the model '{model_id}' needs about {memory / 2**30:.1f} GiB, more than the "
                f"{budget.memory_bytes / 2**30:.1f} GiB this server may use for models"
            )
        while self._over_budget(memory):
            victim = self._least_recently_used_idle()
            if victim is None:
                loaded = ", ".join(sorted(self._loaded))
                raise ModelUnavailable(
                    f"the model '{model_id}' cannot be loaded now: the loaded models "
                    f"({loaded}) are busy or pinned and fill the budget; retry later",
                    retry_after_s=5,
                )
            await self._drop(victim, "to make room for " + model_id)

    def _over_budget(self, memory: int) -> bool:
        budget = self._budget
        if budget.max_loaded is not None and len(self._loaded) + 1 > budget.max_loaded:
            return True
        used = sum(entry.offer.memory_bytes for entry in self._loaded.values())
        return budget.memory_bytes is not None and used + memory > budget.memory_bytes

    def _least_recently_used_idle(self) -> str | None:
        idle = [
            (entry.last_used, model_id)
            for model_id, entry in self._loaded.items()
            if not entry.pinned and self._idle(entry)
        ]
        return min(idle)[1] if idle else None

    # Unloading

    async def unload(self, model_id: str) -> bool:
        """Unloads `model_id` by hand (requests running on it are cut short); False when it
        was not loaded. A pinned model may be unloaded too; it is then loaded on demand."""
        if model_id not in self._loaded:
            return False
        async with self._room:
            if model_id not in self._loaded:
                return False
            await self._drop(model_id, "by request")
        return True

    async def sweep(self) -> list[str]:
        """Unloads idle models whose keep-alive has run out; returns their ids."""
        now = self._clock()
        expired = [
            model_id
            for model_id, entry in self._loaded.items()
            if not entry.pinned
            and self._idle(entry)
            and now - entry.last_used >= entry.keep_alive_s
        ]
        dropped = []
        async with self._room:
            for model_id in expired:
                entry = self._loaded.get(model_id)
                if entry is not None and self._idle(entry):
                    await self._drop(model_id, "idle")
                    dropped.append(model_id)
        return dropped

    async def _drop(self, model_id: str, why: str) -> None:
        entry = self._loaded.pop(model_id)
        logger.info("unloading %s (%s)", model_id, why)
        self.unloads += 1
        await self._unload(entry.engine)

    async def close(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        for model_id in list(self._loaded):
            await self._drop(model_id, "server stopping")

    # Pinned models

    def _idle(self, entry: _Loaded[EngineT, OfferT]) -> bool:
        return entry.users == 0 and not self._busy(entry.engine)

    async def pin(self, model_id: str) -> EngineT:
        """Loads `model_id` (at start) and keeps it loaded."""
        engine = await self.engine(model_id)
        self._loaded[model_id].pinned = True
        return engine

    def add_pinned(self, model_id: str, engine: EngineT, offer: OfferT) -> None:
        """An engine loaded elsewhere (tests' fakes), pinned."""
        self._loaded[model_id] = _Loaded(engine, offer, True, self._clock(), FOREVER)
