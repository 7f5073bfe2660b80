"""Choosing each sequence's next token, and the log-probabilities OpenAI clients ask for.

Greedy requests take the argmax of the logits row (plus any logit bias) in numpy: no candidate
array of the whole vocabulary is built. Every other request gets its own llama.cpp sampler
chain, seeded so a request with a `seed` repeats.

A constrained request keeps its grammar apart from the chain, as llama.cpp's own server
does: the chain picks a token, and only when the grammar refuses that one token is the
grammar applied to the whole vocabulary, which costs a pass over it per grammar stack (3.4 s
for a 1,000-value enum over a 262k-token vocabulary). That slow pass runs off the engine
thread (`choose_held`), so it never holds up the other sequences' step.
"""

from __future__ import annotations

import ctypes
import secrets
from typing import Any

import numpy as np
import numpy.typing as npt

from privserve.engine.base import SamplingParams, TokenLogprob, TopLogprob
from privserve.engine.llama.model import LlamaModel

# Presence and frequency penalties see the whole answer, up to this many tokens back.
_PENALTY_WINDOW = 8192


def llama_seed(seed: int | None) -> int:
    # llama.cpp seeds are 32-bit and 0xFFFFFFFF means "random": fold any int64 below that.
    return secrets.randbits(31) if seed is None else seed % 0xFFFFFFFF


# llama.cpp's llama_token_data, so a numpy array can be handed to it as candidates.
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


class TokenSampler:
    def __init__(
        self,
        model: LlamaModel,
        params: SamplingParams,
        grammar: Any = None,
        *,
        grammar_later: bool = False,
    ) -> None:
        """`grammar` is a llama.cpp grammar sampler, owned from here on; with
        `grammar_later` it holds the output only once `start_grammar` is called."""
        self._lib: Any = model.lib
        self._grammar = grammar
        self._grammar_on = not grammar_later
        self._chain: Any = None
        try:
            if not params.is_greedy:
                self._chain = self._build_chain(model, params)
        except BaseException:
            self.close()
            raise
        self._bias_tokens = np.array([t for t, _ in params.logit_bias], dtype=np.intp)
        self._bias_values = np.array([b for _, b in params.logit_bias], dtype=np.float32)
        self._candidates: npt.NDArray[np.void] | None = None

    @property
    def is_constrained(self) -> bool:
        return self._grammar is not None and self._grammar_on

    def start_grammar(self) -> None:
        """From the next token on, the grammar holds the output (from its start)."""
        self._grammar_on = True

    def force(self, token: int) -> bool:
        """Takes a token the engine chose itself, as if sampled; False (nothing taken) when
        the grammar does not allow it here (llama.cpp aborts on a grammar fed a token it
        refuses)."""
        if self.is_constrained:
            single = np.array([(token, 0.0, 0.0)], dtype=_TOKEN_DATA)
            check = self._lib.llama_token_data_array(_pointer(single), 1, -1, False)
            self._lib.llama_sampler_apply(self._grammar, ctypes.byref(check))
            if not np.isfinite(single[0]["logit"]):
                return False
            self._lib.llama_sampler_accept(self._grammar, token)
        if self._chain is not None:
            self._lib.llama_sampler_accept(self._chain, token)
        return True

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
        """The next token from batch row `row`, whose logits are `logits` (unconstrained)."""
        if self._chain is None:
            if self._bias_tokens.size:
                logits = logits.copy()
                np.add.at(logits, self._bias_tokens, self._bias_values)
            return int(np.argmax(logits))
        return int(self._lib.llama_sampler_sample(self._chain, context_handle, row))

    def choose_quickly(self, logits: npt.NDArray[np.float32]) -> int | None:
        """The chain's pick when the grammar allows it (then taken); None when the grammar
        refuses it and `choose_held` must apply the grammar to every token."""
        lib = self._lib
        candidates, array = self._fill(logits)
        lib.llama_sampler_apply(self._chain, ctypes.byref(array))
        token = int(candidates[array.selected]["id"])
        single = np.array([(token, 0.0, 0.0)], dtype=_TOKEN_DATA)
        check = lib.llama_token_data_array(_pointer(single), 1, -1, False)
        lib.llama_sampler_apply(self._grammar, ctypes.byref(check))
        if not np.isfinite(single[0]["logit"]):
            return None
        self._take(token)
        return token

    def choose_held(self, logits: npt.NDArray[np.float32]) -> int:
        """The next token among those the grammar allows: slow for large grammars, and safe
        on any thread while the engine leaves this sampler alone."""
        lib = self._lib
        candidates, array = self._fill(logits)
        lib.llama_sampler_apply(self._grammar, ctypes.byref(array))
        lib.llama_sampler_apply(self._chain, ctypes.byref(array))
        token = int(candidates[array.selected]["id"])
        self._take(token)
        return token

    def _fill(self, logits: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.void], Any]:
        if self._candidates is None or len(self._candidates) != len(logits):
            self._candidates = np.empty(len(logits), dtype=_TOKEN_DATA)
        candidates = self._candidates
        candidates["id"] = np.arange(len(logits), dtype=np.int32)
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = self._lib.llama_token_data_array(_pointer(candidates), len(candidates), -1, False)
        return candidates, array

    def _take(self, token: int) -> None:
        self._lib.llama_sampler_accept(self._grammar, token)
        self._lib.llama_sampler_accept(self._chain, token)

    def close(self) -> None:
        for name in ("_chain", "_grammar"):
            sampler = getattr(self, name)
            if sampler is not None:
                self._lib.llama_sampler_free(sampler)
                setattr(self, name, None)


def _pointer(candidates: npt.NDArray[np.void]) -> Any:
    import llama_cpp

    return candidates.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))


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
