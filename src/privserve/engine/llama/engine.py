"""A llama.cpp text engine: one worker thread owns the context and serves a bounded queue.

Requests are served one at a time in arrival order; the event loop only waits on queues.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence

from privserve.config import LlamaConfig
from privserve.engine.base import EngineStats, GenerationRequest, ModelSpec, PromptMessage
from privserve.engine.llama.generation import run_generation
from privserve.engine.llama.model import LlamaModel
from privserve.engine.streams import GenerationStream
from privserve.errors import EngineError, Overloaded

logger = logging.getLogger(__name__)


class LlamaEngine:
    def __init__(self, model: LlamaModel, *, max_queued_requests: int) -> None:
        self._model = model
        self._jobs: queue.Queue[GenerationStream | None] = queue.Queue(max_queued_requests)
        self._running = 0
        self._completed = 0
        self._generated_tokens = 0
        self._thread = threading.Thread(
            target=self._serve, name=f"llama-{model.spec.model_id}", daemon=True
        )
        self._thread.start()

    @classmethod
    def load(cls, spec: ModelSpec, config: LlamaConfig, *, max_queued_requests: int) -> LlamaEngine:
        return cls(LlamaModel(spec, config), max_queued_requests=max_queued_requests)

    @property
    def model_id(self) -> str:
        return self._model.spec.model_id

    @property
    def context_length(self) -> int:
        return self._model.context_length

    @property
    def vocab_size(self) -> int:
        return self._model.vocab_size

    def render_chat(self, messages: Sequence[PromptMessage]) -> str:
        return self._model.render_chat(messages)

    def tokenize(self, text: str, *, is_chat: bool) -> list[int]:
        return self._model.tokenize(text, is_chat=is_chat)

    def generate(self, request: GenerationRequest) -> GenerationStream:
        stream = GenerationStream(request, asyncio.get_running_loop())
        try:
            self._jobs.put_nowait(stream)
        except queue.Full:
            raise Overloaded(
                f"{self.model_id} has {self._jobs.maxsize} requests waiting; retry shortly"
            ) from None
        return stream

    def stats(self) -> EngineStats:
        return EngineStats(
            queued_requests=self._jobs.qsize(),
            running_requests=self._running,
            completed_requests=self._completed,
            generated_tokens=self._generated_tokens,
        )

    def close(self) -> None:
        """Stops the worker after the current request and frees the model."""
        while True:  # drop waiting work so the sentinel fits in the bounded queue
            try:
                waiting = self._jobs.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                waiting.events.put(EngineError("the server is shutting down"))
        self._jobs.put(None)
        self._thread.join()
        self._model.close()

    def _serve(self) -> None:
        while (stream := self._jobs.get()) is not None:
            if stream.is_cancelled():
                continue
            self._running = 1
            try:
                self._generated_tokens += run_generation(
                    self._model, stream.request, stream.events.put, stream.is_cancelled
                )
            except Exception:
                logger.exception("generation failed for %s", stream.request.request_id)
                stream.events.put(EngineError("generation failed; see the server log"))
            finally:
                self._running = 0
                self._completed += 1
