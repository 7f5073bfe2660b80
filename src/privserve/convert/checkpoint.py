"""A Hugging Face checkpoint directory as downloaded: config, weights, tokenizer files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privserve.errors import ConversionError

# Architectures (config.json `architectures`) privserve converts and tests end to end.
SUPPORTED_ARCHITECTURES = {
    "LlamaForCausalLM": "Llama",
    "MistralForCausalLM": "Mistral",
    "Qwen2ForCausalLM": "Qwen2",
    "Qwen3ForCausalLM": "Qwen3",
    "Qwen3MoeForCausalLM": "Qwen3-MoE",
    "GemmaForCausalLM": "Gemma",
    "Gemma2ForCausalLM": "Gemma 2",
    "Gemma3ForCausalLM": "Gemma 3",
    "ChatGLMModel": "ChatGLM2/ChatGLM3",
    "ChatGLMForConditionalGeneration": "ChatGLM2/ChatGLM3",
    "GlmForCausalLM": "GLM-4",
    "Glm4ForCausalLM": "GLM-4-0414/GLM-Z1",
}
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: dict[str, Any]
    architecture: str
    weight_files: tuple[Path, ...]

    @property
    def torch_dtype(self) -> str:
        """The weights' dtype as config.json states it (float16, bfloat16, float32)."""
        return str(self.config.get("torch_dtype") or self.config.get("dtype") or "float16")

    def weight_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.weight_files)


def read_checkpoint(path: Path) -> Checkpoint:
    """Checks that `path` holds everything a conversion needs; says what is missing."""
    if not path.is_dir():
        raise ConversionError(f"{path} is not a directory; give the checkpoint's directory")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConversionError(f"{path} has no config.json: is it a Hugging Face checkpoint?")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConversionError(f"cannot read {config_file}: {exc}") from exc
    architectures = config.get("architectures") or []
    architecture = next((a for a in architectures if a in SUPPORTED_ARCHITECTURES), None)
    if architecture is None:
        known = ", ".join(sorted(set(SUPPORTED_ARCHITECTURES.values())))
        raise ConversionError(
            f"{path}: architecture {', '.join(architectures) or '(none given)'} is not "
            f"supported; privserve converts {known}"
        )
    weights = tuple(sorted(path.glob("*.safetensors"))) or tuple(
        sorted(path.glob("pytorch_model*.bin"))
    )
    if not weights:
        raise ConversionError(
            f"{path} has no weights (*.safetensors or pytorch_model*.bin); "
            "was the download complete?"
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ConversionError(
            f"{path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
            "copy them from the model's repository"
        )
    return Checkpoint(path, config, architecture, weights)
