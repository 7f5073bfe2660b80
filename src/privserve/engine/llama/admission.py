"""Admission: waiting requests into free slots, with the prompt cache they can reuse.

Each engine step takes the whole waiting list at once (its lock is held only for that),
drops what was cancelled or has expired, places the rest (`slots.py`), copies or keeps the
cached prefix, and builds each request's sampler, its grammar included. A request that
cannot start gets its own error, a client's 400 as itself; those that find no slot go back
to the front of the list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from privserve.engine.base import GenerationRequest, OutputConstraint
from privserve.engine.llama.context import LlamaContext
from privserve.engine.llama.drafting import LookupShape
from privserve.engine.llama.grammar import init_grammar_sampler
from privserve.engine.llama.model import LlamaModel
from privserve.engine.llama.sequence import RunningSequence
from privserve.engine.llama.slots import Placement, Slot, SlotTable
from privserve.engine.llama.waiting import Waiting, WaitingList
from privserve.engine.streams import Outbox
from privserve.errors import EngineError, PrivserveError

logger = logging.getLogger(__name__)


class Admission:
    def __init__(
        self,
        model: LlamaModel,
        context: LlamaContext,
        slots: SlotTable,
        grammar_of: Callable[[OutputConstraint], str],
        lookup: LookupShape | None = None,
    ) -> None:
        self._model = model
        self._lookup = lookup
        self._context = context
        self._slots = slots
        self._grammar_of = grammar_of

    def admit(
        self, waiting: WaitingList, outbox: Outbox, timed_out: Callable[[], PrivserveError]
    ) -> tuple[list[RunningSequence], int]:
        """The requests started this step, and how many prompt tokens they found cached."""
        now = time.monotonic()
        started: list[RunningSequence] = []
        reused_tokens = 0
        kept: list[Waiting] = []
        for item in waiting.take_all():
            if item.stream.is_cancelled():
                continue
            if item.has_expired(now):
                outbox.put(item.stream, timed_out())
                continue
            placement = self._slots.place(item.stream.request.prompt_tokens, self._floor)
            if placement is None:
                kept.append(item)
                continue
            sequence, reused = self._start(item, placement, outbox)
            reused_tokens += reused
            if sequence is not None:
                started.append(sequence)
        if kept:
            waiting.put_back(kept)
        return started, reused_tokens

    def _floor(self, slot: Slot) -> int:
        return self._context.reuse_floor(slot.sequence, len(slot.cached))

    def hold(self, slot: Slot, length: int) -> None:
        """Copies the first `length` cached tokens of `slot` into a holder, for later
        prompts that start the same way."""
        holder = self._slots.holder_to_fill()
        self._context.copy_prefix(slot.sequence, holder.sequence, length)
        holder.cached = slot.cached[:length]
        self._slots.touch(holder)
        slot.hold_at = 0

    def _start(
        self, item: Waiting, placement: Placement, outbox: Outbox
    ) -> tuple[RunningSequence | None, int]:
        stream = item.stream
        slot, reused = placement.slot, placement.reused
        source = placement.copy_from
        if source is not None:
            self._context.copy_prefix(source.sequence, slot.sequence, reused)
            slot.cached = source.cached[:reused]
            if source.holder:
                self._slots.touch(source)
        else:
            if not self._context.keep_prefix(slot.sequence, reused):
                self._context.clear(slot.sequence)
                reused = 0
            del slot.cached[reused:]
        slot.prompt = stream.request.prompt_tokens
        try:
            sequence = RunningSequence(
                stream,
                self._model,
                slot,
                cached_tokens=reused,
                context_length=self._context.shape.tokens_per_sequence,
                deadline=item.deadline,
                grammar=self._grammar_sampler(stream.request),
                lookup=self._lookup,
            )
        except PrivserveError as exc:  # the client's to read, as itself
            slot.prompt = ()
            outbox.put(stream, exc)
            return None, reused
        except Exception:
            model_id = self._model.spec.model_id
            logger.exception("%s: cannot start %s", model_id, stream.request.request_id)
            slot.prompt = ()
            outbox.put(stream, EngineError("cannot start generation; see the server log"))
            return None, reused
        if placement.hold_at and placement.hold_at == reused:
            self.hold(slot, reused)
        elif placement.hold_at > reused:
            slot.hold_at = placement.hold_at
        return sequence, reused

    def _grammar_sampler(self, request: GenerationRequest) -> Any:
        constraint = request.sampling.constraint
        if constraint is None:
            return None
        grammar = self._grammar_of(constraint)
        return init_grammar_sampler(
            self._model.lib, self._model.vocab, grammar, param=constraint.param
        )
