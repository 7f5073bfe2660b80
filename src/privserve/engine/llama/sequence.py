"""One request inside a slot: its prompt progress, its sampler, and its text so far."""

from __future__ import annotations

import codecs
from concurrent.futures import Future

import numpy as np
import numpy.typing as npt

from privserve.engine.base import FinishReason, ThinkingControl, TokenEvent, TokenLogprob
from privserve.engine.llama.drafting import LookupShape, PromptLookup
from privserve.engine.llama.model import LlamaModel
from privserve.engine.llama.sampling import TokenSampler, token_logprob
from privserve.engine.llama.slots import Slot
from privserve.engine.stops import StopMatcher
from privserve.engine.streams import GenerationStream


class RunningSequence:
    def __init__(
        self,
        stream: GenerationStream,
        model: LlamaModel,
        slot: Slot,
        *,
        cached_tokens: int,
        context_length: int,
        deadline: float | None,
        grammar: object = None,
        lookup: LookupShape | None = None,
    ) -> None:
        """`grammar` is the request's llama.cpp grammar sampler, owned from here on; with
        `lookup`, the sequence drafts from its prompt (never under a grammar, whose slow
        pass cannot check a run of drafted tokens)."""
        request = stream.request
        self.stream = stream
        self.slot = slot
        self.prompt = list(request.prompt_tokens)
        self.cached_tokens = cached_tokens
        self.deadline = deadline  # time.monotonic() past which the request is dropped
        self.finished = False
        self.next_token: int | None = None  # sampled, not yet in the KV cache
        self._model = model
        self._sampling = request.sampling
        self._thinking = None if request.thinking is None else ThinkingBlock(request.thinking)
        self._sampler = TokenSampler(
            model,
            request.sampling,
            grammar,
            grammar_later=request.thinking is not None and request.thinking.grammar_after_block,
        )
        self._forced: list[int] = []  # tokens the engine writes itself (the block's close)
        if self._thinking is not None and self._thinking.over_budget():
            self._forced = list(self._thinking.control.close_tokens)  # a budget of (nearly) 0
        # The grammar's slow pass, running off the engine thread, and the logits it reads.
        self.held: Future[int] | None = None
        self.held_logits: npt.NDArray[np.float32] | None = None
        self._budget = min(request.sampling.max_tokens, context_length - len(self.prompt))
        # Incomplete UTF-8 sequences wait in the decoder until a later token completes them.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stops = StopMatcher(request.sampling.stop)
        self._logprobs: list[TokenLogprob] = []
        self.produced = 0
        self.lookup = (
            PromptLookup(self.prompt, lookup) if lookup is not None and grammar is None else None
        )

    @property
    def prefilling(self) -> bool:
        return len(self.slot.cached) < len(self.prompt)

    def draft(self, limit: int) -> list[int]:
        """Tokens that may follow `next_token`, to check in the same step; never more than
        the answer may still produce after it."""
        return [] if self.lookup is None else self.lookup.draft(self.draft_room(limit))

    def draft_room(self, limit: int) -> int:
        """How many tokens may be checked after `next_token` this step (0: none)."""
        if self.lookup is None or self._forced:
            return 0
        return max(0, min(limit, self._budget - self.produced - 1))

    def choose(
        self, context_handle: object, row: int, logits: npt.NDArray[np.float32]
    ) -> int | None:
        """The next token from batch row `row`; None when only the grammar's slow pass over
        the whole vocabulary can choose it (see `choose_held`)."""
        if self._forced:
            if self._sampler.force(self._forced[0]):
                return self._forced.pop(0)
            self._forced.clear()  # the grammar does not allow the tag here: it decides
        if self._sampler.is_constrained:
            return self._sampler.choose_quickly(logits)
        return self._sampler.sample(context_handle, row, logits)

    def choose_held(self, logits: npt.NDArray[np.float32]) -> int:
        return self._sampler.choose_held(logits)

    def take(self, token: int, logits: npt.NDArray[np.float32]) -> TokenEvent | None:
        """Takes the chosen token; returns the event to send, if any."""
        self.produced += 1
        if self.lookup is not None:
            self.lookup.extend((token,))
        if self._sampling.logprobs:
            self._logprobs.append(
                token_logprob(self._model, logits, token, self._sampling.top_logprobs)
            )
        if self._model.is_end_of_generation(token):
            return self._finish(self._drain(), "stop")
        decoded = self._decoder.decode(self._model.piece(token))
        if self._thinking is not None:
            self._follow_thinking(decoded)
        text = self._stops.feed(decoded)
        if self._stops.stopped:
            return self._finish(text, "stop")
        if self.produced >= self._budget:
            return self._finish(text + self._drain(), "length")
        self.next_token = token
        if not text and not self._logprobs:
            return None
        return self._event(text)

    def _follow_thinking(self, decoded: str) -> None:
        """Ends the reasoning block at its budget; holds the answer after it to the grammar."""
        block = self._thinking
        assert block is not None
        if block.feed(decoded):
            self._sampler.start_grammar()
        elif block.over_budget() and not self._forced:
            self._forced = list(block.control.close_tokens)

    def _event(self, text: str, finish: FinishReason | None = None) -> TokenEvent:
        logprobs, self._logprobs = tuple(self._logprobs), []
        return TokenEvent(
            text,
            self.produced,
            finish,
            logprobs=logprobs,
            cached_tokens=self.cached_tokens if finish else 0,
        )

    def _finish(self, text: str, reason: FinishReason) -> TokenEvent:
        self.finished = True
        self.next_token = None
        return self._event(text, "stop" if self._stops.stopped else reason)

    def _drain(self) -> str:
        text = self._stops.feed(self._decoder.decode(b"", final=True))
        return text + self._stops.flush()

    def close(self) -> None:
        self._sampler.close()


class ThinkingBlock:
    """Where an answer stands with its reasoning block: before it (it may open one), inside
    it, or past it; and how many tokens it has made up to the block's end."""

    def __init__(self, control: ThinkingControl) -> None:
        self.control = control
        self.tokens = 0
        self._state = "inside" if control.starts_inside else "before"
        self._seen = ""  # before: all the text; inside: its end, to find a split tag

    def feed(self, text: str) -> bool:
        """Takes one token's text; whether the block ended with it (or there is none)."""
        if self._state == "after":
            return False
        self.tokens += 1
        seen = self._seen + text
        if self._state == "before":
            start = seen.lstrip()
            opening = self.control.open_text
            if start.startswith(opening):
                self._state, seen = "inside", start[len(opening) :]
            elif not start or opening.startswith(start):
                self._seen = seen
                return False
            else:
                self._state = "after"  # no block: the answer began
                return True
        close = self.control.close_text
        if close in seen:
            self._state = "after"
            return True
        self._seen = seen[-(len(close) - 1) :]
        return False

    def over_budget(self) -> bool:
        """Whether the closing tag must be written now for the block to end at its budget
        (the tag's own tokens counted in it)."""
        budget = self.control.budget
        if budget is None or self._state != "inside":
            return False
        return self.tokens + len(self.control.close_tokens) >= budget
