"""One request's decode loop on the engine thread: sampling, detokenizing, stop strings."""

from __future__ import annotations

import codecs
import secrets
from collections.abc import Callable

from privserve.engine.base import FinishReason, GenerationRequest, TokenEvent
from privserve.engine.llama.model import LlamaModel
from privserve.engine.stops import StopMatcher


def run_generation(
    model: LlamaModel,
    request: GenerationRequest,
    emit: Callable[[TokenEvent], None],
    is_cancelled: Callable[[], bool],
) -> int:
    """Generates until EOG, a stop string, `max_tokens` or the context end; returns tokens made.

    Returns early, emitting nothing more, once `is_cancelled()` turns true.
    """
    sampling = request.sampling
    prompt = list(request.prompt_tokens)
    budget = min(sampling.max_tokens, model.context_length - len(prompt))
    # Without a seed each request draws its own, as OpenAI does; with one, runs repeat.
    # llama.cpp seeds are 32-bit and 0xFFFFFFFF means "random": fold any int64 below that.
    seed = secrets.randbits(31) if sampling.seed is None else sampling.seed % 0xFFFFFFFF
    model.llm.set_seed(seed)
    # Incomplete UTF-8 sequences wait in the decoder until a later token completes them.
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    stops = StopMatcher(sampling.stop)
    produced = 0
    finish: FinishReason = "length"
    tokens = model.llm.generate(
        prompt,
        # OpenAI's sampling has no top-k, min-p or typical-p: disable llama.cpp's defaults.
        top_k=0,
        min_p=0.0,
        typical_p=1.0,
        top_p=sampling.top_p,
        temp=sampling.temperature,
        repeat_penalty=1.0,
        frequency_penalty=sampling.frequency_penalty,
        presence_penalty=sampling.presence_penalty,
    )
    try:
        for token in tokens:
            if is_cancelled():
                return produced
            produced += 1
            if model.is_end_of_generation(token):
                finish = "stop"
                break
            text = stops.feed(decoder.decode(model.piece(token)))
            if stops.stopped:
                emit(TokenEvent(text, produced, "stop"))
                return produced
            if produced >= budget:
                emit(TokenEvent(text + _drain(decoder, stops), produced, "length"))
                return produced
            if text:
                emit(TokenEvent(text, produced))
    finally:
        tokens.close()
    tail = _drain(decoder, stops)
    emit(TokenEvent(tail, produced, "stop" if stops.stopped else finish))
    return produced


def _drain(decoder: codecs.IncrementalDecoder, stops: StopMatcher) -> str:
    text = stops.feed(decoder.decode(b"", final=True))
    return text + stops.flush()
