"""The models a server offers, looked up again on each call. Chat models: those named at
start (pinned), the registered ones, and every GGUF file in the models directory; what a
file says of itself (precision, chat format, thinking, KV cache size) is read once per
version of the file, from its metadata, without loading its weights. Embedding and rerank
models: the one named at start and the registered ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from privserve.config import Settings
from privserve.engine.base import ModelSpec, TemplateThinking
from privserve.engine.embedding.facts import DirectoryFacts, read_directory_facts
from privserve.engine.embedding.model import trained_to_shorten
from privserve.engine.llama.chat_format import select_chat_format
from privserve.engine.llama.model import read_gguf_metadata
from privserve.engine.memory import kv_cache_bytes
from privserve.errors import ModelLoadError
from privserve.models.bundled import BUNDLED_MODELS
from privserve.models.registry import ChatModelFile
from privserve.models.store import ModelStore
from privserve.services.chat_models import ChatOffer
from privserve.services.retrieval_models import RetrievalOffer

logger = logging.getLogger(__name__)

# llama.cpp's file types (general.file_type) by the names `convert` and `models` use.
FILE_TYPES = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    3: "q4_1",
    7: "q8_0",
    8: "q5_0",
    9: "q5_1",
    10: "q2_k",
    12: "q3_k_m",
    14: "q4_k_s",
    15: "q4_k_m",
    16: "q5_k_s",
    17: "q5_k_m",
    18: "q6_k",
    32: "bf16",
}
ASSUMED_PARALLEL = 4  # sequences a KV cache is sized for when the settings leave it open


@dataclass(frozen=True)
class _FileFacts:
    precision: str | None
    has_chat_format: bool | None
    thinking: TemplateThinking | None
    kv_bytes: int


class ChatOffers:
    def __init__(self, settings: Settings, pinned: list[ChatModelFile]) -> None:
        self._settings = settings
        self._pinned = pinned
        self._facts: dict[tuple[Path, int, float, str | None], _FileFacts] = {}

    def __call__(self) -> dict[str, ChatOffer]:
        offers: dict[str, ChatOffer] = {}
        claimed: set[Path] = set()

        def offer(spec: ModelSpec, *, pinned: bool = False, precision: str | None = None) -> None:
            if spec.model_id in offers or spec.path.resolve() in claimed:
                return
            claimed.add(spec.path.resolve())
            offers[spec.model_id] = self._offer(spec, pinned, precision)

        for file in self._pinned:
            offer(ModelSpec(file.model_id, file.path, file.chat_template), pinned=True)
        models_dir = self._settings.models_dir
        for model in ModelStore(models_dir).all():
            if model.kind == "chat" and model.path.is_file():
                offer(ModelSpec(model.name, model.path), precision=model.precision)
        bundled_files = {b.filename: name for name, b in BUNDLED_MODELS.items()}
        for path in sorted(models_dir.glob("*.gguf")) if models_dir.is_dir() else []:
            offer(ModelSpec(bundled_files.get(path.name, path.stem), path))
        return offers

    def _offer(self, spec: ModelSpec, pinned: bool, precision: str | None) -> ChatOffer:
        size = spec.path.stat().st_size if spec.path.is_file() else 0
        facts = self._facts_of(spec)
        return ChatOffer(
            spec,
            size_bytes=size,
            memory_bytes=size + facts.kv_bytes,
            precision=precision or facts.precision,
            context_length=self._settings.llama.n_ctx,
            has_chat_format=facts.has_chat_format,
            thinking=facts.thinking,
            pinned=pinned,
        )

    def _facts_of(self, spec: ModelSpec) -> _FileFacts:
        try:
            stat = spec.path.stat()
        except OSError:
            return _FileFacts(None, None, None, 0)
        key = (spec.path.resolve(), stat.st_size, stat.st_mtime, spec.chat_template)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = self._read_facts(spec)
        return facts

    def _read_facts(self, spec: ModelSpec) -> _FileFacts:
        try:
            metadata = read_gguf_metadata(spec.path)
            chat_format = select_chat_format(
                metadata, override=spec.chat_template, bos_token="", eos_token=""
            )
        except ModelLoadError as exc:
            # Offered all the same: its first request says why it cannot load.
            logger.warning("%s: %s", spec.path, exc.message)
            return _FileFacts(None, None, None, 0)
        file_type = metadata.get("general.file_type", "")
        llama = self._settings.llama
        cells = llama.n_ctx * (llama.parallel or ASSUMED_PARALLEL)
        return _FileFacts(
            precision=FILE_TYPES.get(int(file_type)) if file_type.isdigit() else None,
            has_chat_format=chat_format is not None,
            thinking=None if chat_format is None else chat_format.thinking,
            kv_bytes=kv_cache_bytes(metadata, cells),
        )


class RetrievalOffers:
    """The embedding (or rerank) models offered: the one named at start, pinned, and every
    registered model of that kind; what each directory says of itself is read once per
    version of its files."""

    def __init__(
        self,
        settings: Settings,
        kind: Literal["embedding", "rerank"],
        pinned: tuple[str, Path] | None,
        shortenable: bool | None = None,
    ) -> None:
        self._settings = settings
        self._kind = kind
        self.pinned = pinned
        self._shortenable = shortenable
        self._facts: dict[tuple[Path, float], tuple[DirectoryFacts, bool]] = {}

    def __call__(self) -> dict[str, RetrievalOffer]:
        offers: dict[str, RetrievalOffer] = {}
        if self.pinned is not None:
            offers[self.pinned[0]] = self._offer(*self.pinned, pinned=True)
        for model in ModelStore(self._settings.models_dir).all():
            if model.kind == self._kind and model.path.is_dir() and model.name not in offers:
                offers[model.name] = self._offer(model.name, model.path, pinned=False)
        return offers

    def _offer(self, model_id: str, path: Path, *, pinned: bool) -> RetrievalOffer:
        facts, trained_short = self._facts_of(path)
        shortenable = self._shortenable
        return RetrievalOffer(
            model_id,
            path,
            memory_bytes=facts.weight_bytes,
            pinned=pinned,
            dimensions=facts.dimensions,
            max_input_tokens=facts.max_input_tokens,
            shortenable=trained_short if shortenable is None else shortenable,
            prompts=facts.prompts,
        )

    def _facts_of(self, path: Path) -> tuple[DirectoryFacts, bool]:
        """The directory's facts, and whether its card says it was trained to shorten."""
        try:
            key = (path.resolve(), path.stat().st_mtime)
        except OSError:
            return DirectoryFacts(), False
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = (read_directory_facts(path), trained_to_shorten(path))
        return facts
