"""A GGUF file loaded through llama-cpp-python: tokenizer, chat format and the context."""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence

from privserve.config import LlamaConfig
from privserve.engine.base import ModelSpec, PromptMessage
from privserve.engine.llama.chat_format import ChatFormat, select_chat_format
from privserve.errors import ModelLoadError

logger = logging.getLogger(__name__)


class LlamaModel:
    """Owns one `llama_cpp.Llama`; only the engine's worker thread may decode with it.

    Tokenizing and detokenizing read the vocabulary only, which llama.cpp allows from any
    thread, so request handlers do that work off the engine thread.
    """

    def __init__(self, spec: ModelSpec, config: LlamaConfig) -> None:
        import llama_cpp

        if not spec.path.is_file():
            raise ModelLoadError(f"model file not found: {spec.path}")
        self.spec = spec
        self._llama_cpp = llama_cpp
        threads = config.n_threads or os.cpu_count() or 1
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(spec.path),
                n_ctx=config.n_ctx,
                n_batch=config.n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=config.n_gpu_layers,
                logits_all=False,
                verbose=False,
            )
        except ValueError as exc:
            raise ModelLoadError(f"cannot load {spec.path}: {exc}") from exc
        self._vocab = self.llm._model.vocab
        self.context_length: int = self.llm.n_ctx()
        self.vocab_size: int = self.llm.n_vocab()
        metadata: dict[str, str] = dict(self.llm.metadata)
        self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "true") != "false"
        bos = self.piece(self.llm.token_bos(), special=True).decode("utf-8", "replace")
        eos = self.piece(self.llm.token_eos(), special=True).decode("utf-8", "replace")
        self.chat_format: ChatFormat = select_chat_format(
            metadata, override=spec.chat_template, bos_token=bos, eos_token=eos
        )
        logger.info(
            "loaded %s from %s: context %d, chat format %s",
            spec.model_id,
            spec.path,
            self.context_length,
            self.chat_format.name,
        )

    def render_chat(self, messages: Sequence[PromptMessage]) -> str:
        return self.chat_format.render(messages)

    def tokenize(self, text: str, *, is_chat: bool) -> list[int]:
        # Chat prompts carry their own special tokens, BOS included where the format has it;
        # adding another BOS would feed the model a sequence it never saw in training.
        bos_text = self.chat_format.bos_token
        add_bos = self._add_bos and not (is_chat and bos_text and text.startswith(bos_text))
        # A lone surrogate (`\ud800` in JSON) cannot be UTF-8: replace it, do not fail.
        data = text.encode("utf-8", errors="replace")
        tokens: list[int] = self.llm.tokenize(data, add_bos=add_bos, special=True)
        return tokens

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token; llama-cpp-python's own helper truncates pieces past 32 bytes."""
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buffer, size, 0, special)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def close(self) -> None:
        self.llm.close()
