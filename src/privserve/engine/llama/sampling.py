"""Choosing each sequence's next token, and the log-probabilities OpenAI clients ask for.

Greedy requests take the argmax of the logits row (plus any logit bias) in numpy: no candidate
array of the whole vocabulary is built. Every other request gets its own llama.cpp sampler
chain, seeded so a request with a `seed` repeats.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import numpy.typing as npt

from privserve.engine.base import SamplingParams, TokenLogprob, TopLogprob
from privserve.engine.llama.model import LlamaModel
from privserve.errors import InvalidRequest

# Presence and frequency penalties see the whole answer, up to this many tokens back.
_PENALTY_WINDOW = 8192


def llama_seed(seed: int | None) -> int:
    # llama.cpp seeds are 32-bit and 0xFFFFFFFF means "random": fold any int64 below that.
    return secrets.randbits(31) if seed is None else seed % 0xFFFFFFFF


class TokenSampler:
    def __init__(self, model: LlamaModel, params: SamplingParams) -> None:
        self._lib: Any = model.lib
        self._chain: Any = None if params.is_greedy else self._build_chain(model, params)
        self._bias_tokens = np.array([t for t, _ in params.logit_bias], dtype=np.intp)
        self._bias_values = np.array([b for _, b in params.logit_bias], dtype=np.float32)

    def _build_chain(self, model: LlamaModel, params: SamplingParams) -> Any:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            lib.llama_sampler_chain_add(chain, sampler)

        if params.logit_bias:
            biases = (lib.llama_logit_bias * len(params.logit_bias))(
                *(lib.llama_logit_bias(token, bias) for token, bias in params.logit_bias)
            )
            add(lib.llama_sampler_init_logit_bias(model.vocab_size, len(biases), biases))
        if params.presence_penalty or params.frequency_penalty or params.repetition_penalty != 1.0:
            window = min(params.max_tokens, _PENALTY_WINDOW)
            add(
                lib.llama_sampler_init_penalties(
                    model.vocab_size,
                    window,
                    params.repetition_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                )
            )
        if params.grammar is not None:
            # First of the choosing samplers: tokens the grammar forbids never compete.
            grammar = lib.llama_sampler_init_grammar(
                model.vocab, params.grammar.encode("utf-8"), b"root"
            )
            if not grammar:
                lib.llama_sampler_free(chain)
                raise InvalidRequest("llama.cpp could not parse the output grammar")
            add(grammar)
        if params.temperature == 0.0:
            add(lib.llama_sampler_init_greedy())
            return chain
        # OpenAI's order: temperature reshapes the distribution, then it is truncated.
        add(lib.llama_sampler_init_temp(params.temperature))
        if params.top_k > 0:
            add(lib.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            add(lib.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            add(lib.llama_sampler_init_min_p(params.min_p, 1))
        add(lib.llama_sampler_init_dist(llama_seed(params.seed)))
        return chain

    def sample(self, context_handle: Any, row: int, logits: npt.NDArray[np.float32]) -> int:
        """The next token from batch row `row`, whose logits are `logits`."""
        if self._chain is None:
            if self._bias_tokens.size:
                logits = logits.copy()
                np.add.at(logits, self._bias_tokens, self._bias_values)
            return int(np.argmax(logits))
        return int(self._lib.llama_sampler_sample(self._chain, context_handle, row))

    def close(self) -> None:
        if self._chain is not None:
            self._lib.llama_sampler_free(self._chain)
            self._chain = None


def token_logprob(
    model: LlamaModel, logits: npt.NDArray[np.float32], token: int, top: int
) -> TokenLogprob:
    """The model's own log-probabilities (before penalties or bias), as OpenAI reports them."""
    shifted = logits - logits.max()
    log_probs = shifted - np.log(np.exp(shifted).sum())
    best: list[TopLogprob] = []
    if top:
        candidates = np.argpartition(log_probs, -top)[-top:]
        for candidate in sorted(candidates, key=lambda t: -log_probs[t]):
            piece = model.piece(int(candidate))
            best.append(TopLogprob(_text(piece), tuple(piece), float(log_probs[candidate])))
    piece = model.piece(token)
    return TokenLogprob(_text(piece), tuple(piece), float(log_probs[token]), tuple(best))


def _text(piece: bytes) -> str:
    # A token may hold part of a character; OpenAI shows those bytes escaped in `token`.
    return piece.decode("utf-8", errors="backslashreplace")
