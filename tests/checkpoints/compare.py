"""What llama.cpp makes of a converted file, next to what transformers makes of the
checkpoint: token ids for a text, and the next-token logits for a prompt."""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp
import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoModelForCausalLM


class GgufModel:
    """A GGUF file loaded through llama.cpp's low-level API, weights repacking off (as the
    server decides on AMX machines) so results do not depend on the machine's kernels."""

    def __init__(self, path: Path, gpu_layers: int = 0) -> None:
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.use_extra_bufts = False
        params.n_gpu_layers = gpu_layers  # -1: every layer, on a GPU build (bench/gpu_check.sh)
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        assert self._model, f"llama.cpp cannot load {path}"
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        tokens = (llama_cpp.llama_token * (len(data) + 16))()
        n = llama_cpp.llama_tokenize(
            self._vocab, data, len(data), tokens, len(tokens), add_special, False
        )
        assert n >= 0
        return list(tokens[:n])

    def last_logits(self, ids: list[int]) -> npt.NDArray[np.float32]:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = max(64, len(ids) + 8)
        params.n_batch = params.n_ctx
        context = llama_cpp.llama_init_from_model(self._model, params)
        try:
            array = (llama_cpp.llama_token * len(ids))(*ids)  # kept alive through the decode
            assert (
                llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(array, len(ids))) == 0
            )
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            row = llama_cpp.llama_get_logits_ith(context, -1)
            return np.ctypeslib.as_array(
                ctypes.cast(row, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)
            ).copy()
        finally:
            llama_cpp.llama_free(context)

    def close(self) -> None:
        llama_cpp.llama_model_free(self._model)


def torch_last_logits(checkpoint: Path, ids: list[int]) -> npt.NDArray[np.float32]:
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, -1]
    return logits.numpy()
