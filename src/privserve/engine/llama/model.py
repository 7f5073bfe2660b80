"""A GGUF file loaded through llama.cpp: weights, vocabulary, metadata and chat format.

The weights are shared by every context made from them; reading the vocabulary (tokenize,
detokenize) is safe from any thread, so request handlers do that work off the engine thread.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from privserve.config import LlamaConfig
from privserve.engine.base import ModelSpec, PromptMessage, TemplateThinking
from privserve.engine.llama.chat_format import ChatFormat, no_chat_format, select_chat_format
from privserve.engine.llama.offload import Offload, free_gpu, llama_offloads, plan_offload
from privserve.engine.llama.slots import configured_slots
from privserve.errors import ModelLoadError

logger = logging.getLogger(__name__)

_METADATA_VALUE_BYTES = 1 << 16  # chat templates run to a few kB; this leaves room


_llama_logger = logging.getLogger("llama.cpp")
_GGML_LOG_LEVEL_ERROR = 4


def _forward_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp narrates every load at INFO and WARN; only its errors matter to an operator.
    severity = logging.ERROR if level == _GGML_LOG_LEVEL_ERROR else logging.DEBUG
    if _llama_logger.isEnabledFor(severity):
        _llama_logger.log(severity, text.decode("utf-8", "replace").rstrip())


@functools.cache
def _log_callback() -> Any:
    # Cached: llama.cpp keeps the pointer, so the ctypes callback must live as long as we do.
    import llama_cpp

    return llama_cpp.llama_log_callback(_forward_log)


def quiet_llama_cpp_logs() -> None:
    """Sends llama.cpp's log to Python logging instead of stderr."""
    import llama_cpp

    llama_cpp.llama_log_set(_log_callback(), ctypes.c_void_p(0))


def system_info(llama_cpp: Any) -> str:
    """llama.cpp's build features, e.g. `AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1`."""
    return bytes(llama_cpp.llama_print_system_info()).decode("utf-8", "replace")


def repacking_enabled(setting: bool | None, features: str) -> bool:
    """Whether llama.cpp may repack weights into its extra buffer types (faster kernels).

    By default not when the build uses AMX: its AMX matrix kernels crashed on a Xeon whose
    kernel granted AMX, and plain AVX-512 kernels serve small models about as well."""
    if setting is not None:
        return setting
    return "AMX_INT8 = 1" not in features


def _metadata(llama_cpp: Any, handle: Any) -> dict[str, str]:
    buffer = ctypes.create_string_buffer(_METADATA_VALUE_BYTES)
    metadata = {}
    for i in range(llama_cpp.llama_model_meta_count(handle)):
        n = llama_cpp.llama_model_meta_key_by_index(handle, i, buffer, len(buffer))
        key = buffer.value.decode("utf-8", "replace") if n >= 0 else ""
        n = llama_cpp.llama_model_meta_val_str_by_index(handle, i, buffer, len(buffer))
        if key and n >= 0:
            metadata[key] = buffer.value.decode("utf-8", "replace")
    return metadata


def read_gguf_metadata(path: Path) -> dict[str, str]:
    """A GGUF file's metadata, read without loading its weights (vocabulary only)."""
    import llama_cpp

    quiet_llama_cpp_logs()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    handle = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not handle:
        raise ModelLoadError(f"{path} is not a GGUF file llama.cpp can read")
    try:
        return _metadata(llama_cpp, handle)
    finally:
        llama_cpp.llama_model_free(handle)


def template_thinking(path: Path, chat_template: str | None = None) -> TemplateThinking:
    """How the chat format a GGUF would be served with thinks, without loading weights."""
    chat_format = select_chat_format(
        read_gguf_metadata(path), override=chat_template, bos_token="", eos_token=""
    )
    return TemplateThinking() if chat_format is None else chat_format.thinking


def offload_for(path: Path, config: LlamaConfig) -> Offload:
    """Where the model at `path` runs with these settings (the GPU is asked only when
    llama.cpp can offload and the layers are left to "auto")."""
    offloads = llama_offloads()
    gpu = free_gpu() if offloads else None
    auto_on_gpu = config.n_gpu_layers == "auto" and gpu is not None
    return plan_offload(
        config.n_gpu_layers,
        offloads=offloads,
        gpu=gpu,
        file_bytes=path.stat().st_size if path.is_file() else 0,
        metadata=read_gguf_metadata(path) if auto_on_gpu and path.is_file() else {},
        context_cells=config.n_ctx * configured_slots(config),
    )


class LlamaModel:
    def __init__(self, spec: ModelSpec, config: LlamaConfig) -> None:
        import llama_cpp

        if not spec.path.is_file():
            raise ModelLoadError(f"model file not found: {spec.path}")
        quiet_llama_cpp_logs()
        llama_cpp.llama_backend_init()
        self.spec = spec
        self.lib: Any = llama_cpp
        params = llama_cpp.llama_model_default_params()
        self.offload = offload_for(spec.path, config)
        params.n_gpu_layers = self.offload.gpu_layers
        params.use_extra_bufts = repacking_enabled(config.repack, system_info(llama_cpp))
        self.handle = llama_cpp.llama_model_load_from_file(str(spec.path).encode(), params)
        if not self.handle:
            raise ModelLoadError(f"cannot load {spec.path}: llama.cpp rejected the file")
        self.vocab = llama_cpp.llama_model_get_vocab(self.handle)
        self.vocab_size: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.metadata = self._read_metadata()
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        bos = self.piece(llama_cpp.llama_vocab_bos(self.vocab), special=True)
        eos = self.piece(llama_cpp.llama_vocab_eos(self.vocab), special=True)
        self.chat_format: ChatFormat | None = select_chat_format(
            self.metadata,
            override=spec.chat_template,
            bos_token=bos.decode("utf-8", "replace"),
            eos_token=eos.decode("utf-8", "replace"),
        )
        logger.info(
            "loaded %s from %s on %s: chat format %s",
            spec.model_id,
            spec.path,
            self.offload.device,
            "none (text completions only)" if self.chat_format is None else self.chat_format.name,
        )

    def _read_metadata(self) -> dict[str, str]:
        return _metadata(self.lib, self.handle)

    def render_chat(
        self,
        messages: Sequence[PromptMessage],
        tools: Sequence[dict[str, Any]] | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        if self.chat_format is None:
            architecture = self.metadata.get("general.architecture", "")
            raise no_chat_format(self.spec.model_id, architecture)
        return self.chat_format.render(messages, tools, variables)

    def tokenize(self, text: str, *, is_chat: bool, add_special: bool = True) -> list[int]:
        # Chat prompts carry their own special tokens, BOS included where the format has it;
        # adding another BOS would feed the model a sequence it never saw in training.
        bos_text = self.chat_format.bos_token if self.chat_format is not None else ""
        add_bos = (
            add_special
            and self._add_bos
            and not (is_chat and bos_text and text.startswith(bos_text))
        )
        # A lone surrogate (`\ud800` in JSON) cannot be UTF-8: replace it, do not fail.
        data = text.encode("utf-8", errors="replace")
        capacity = len(data) + 8
        while True:
            tokens = (self.lib.llama_token * capacity)()
            n = self.lib.llama_tokenize(
                self.vocab, data, len(data), tokens, capacity, add_bos, True
            )
            if n >= 0:
                return list(tokens[:n])
            capacity = -n

    def detokenize(self, ids: Sequence[int]) -> str:
        return b"".join(self.piece(t, special=True) for t in ids).decode("utf-8", "replace")

    @property
    def can_rewind(self) -> bool:
        """Whether the end of a sequence's cache can be dropped (not in recurrent layers,
        whose state has no positions)."""
        lib = self.lib
        return not (
            lib.llama_model_is_recurrent(self.handle) or lib.llama_model_is_hybrid(self.handle)
        )

    @property
    def sliding_window(self) -> int:
        """The window of its sliding-window attention layers in tokens; 0 without them."""
        return int(self.lib.llama_model_n_swa(self.handle))

    def is_end_of_generation(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_is_eog(self.vocab, token))

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token; llama-cpp-python's own helper truncates pieces past 32 bytes."""
        size = 64
        while True:
            buffer = ctypes.create_string_buffer(size)
            n = self.lib.llama_token_to_piece(self.vocab, token, buffer, size, 0, special)
            if n >= 0:
                return buffer.raw[:n]
            size = -n

    def close(self) -> None:
        if self.handle:
            self.lib.llama_model_free(self.handle)
            self.handle = None
