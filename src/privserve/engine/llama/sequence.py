"""One request inside a slot: its prompt progress, its sampler, and its text so far."""

from __future__ import annotations

import codecs
from concurrent.futures import Future

import numpy as np
import numpy.typing as npt

from privserve.engine.base import FinishReason, TokenEvent, TokenLogprob
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
    ) -> None:
        """`grammar` is the request's llama.cpp grammar sampler, owned from here on."""
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
        self._sampler = TokenSampler(model, request.sampling, grammar)
        # The grammar's slow pass, running off the engine thread, and the logits it reads.
        self.held: Future[int] | None = None
        self.held_logits: npt.NDArray[np.float32] | None = None
        self._budget = min(request.sampling.max_tokens, context_length - len(self.prompt))
        # Incomplete UTF-8 sequences wait in the decoder until a later token completes them.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stops = StopMatcher(request.sampling.stop)
        self._logprobs: list[TokenLogprob] = []
        self.produced = 0

    @property
    def prefilling(self) -> bool:
        return len(self.slot.cached) < len(self.prompt)

    def choose(
        self, context_handle: object, row: int, logits: npt.NDArray[np.float32]
    ) -> int | None:
        """The next token from batch row `row`; None when only the grammar's slow pass over
        the whole vocabulary can choose it (see `choose_held`)."""
        if self._sampler.is_constrained:
            return self._sampler.choose_quickly(logits)
        return self._sampler.sample(context_handle, row, logits)

    def choose_held(self, logits: npt.NDArray[np.float32]) -> int:
        return self._sampler.choose_held(logits)

    def take(self, token: int, logits: npt.NDArray[np.float32]) -> TokenEvent | None:
        """Takes the chosen token; returns the event to send, if any."""
        self.produced += 1
        if self._sampling.logprobs:
            self._logprobs.append(
                token_logprob(self._model, logits, token, self._sampling.top_logprobs)
            )
        if self._model.is_end_of_generation(token):
            return self._finish(self._drain(), "stop")
        text = self._stops.feed(self._decoder.decode(self._model.piece(token)))
        if self._stops.stopped:
            return self._finish(text, "stop")
        if self.produced >= self._budget:
            return self._finish(text + self._drain(), "length")
        self.next_token = token
        if not text and not self._logprobs:
            return None
        return self._event(text)

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
