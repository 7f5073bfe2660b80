"""A model of a published size for the benches, built here and converted as a user's would be.

No model hub is reachable from the bench machines, so the largest real chat model on them is
the bundled Gemma 3 270M. Speed depends on a model's shape, not on what its weights learned:
this builds a checkpoint with a published model's exact sizes (config.json as released) and
random weights (seeded), with a byte-level BPE tokenizer trained on the bench's own English
and Chinese prose, then converts it with `privserve convert` (llama.cpp's converter and
quantizer), the path a downloaded checkpoint takes. The GGUF is cached in the bench cache.

The vocabulary is the trained tokenizer's 24,000 tokens, not the model's own (151,936 for
Qwen3): padded rows would be predicted as often as real ones by random weights, and they
decode to no text at all. That leaves a smaller output layer (25M parameters where Qwen3-0.6B
has 156M): the rest of the network is the published model's, layer for layer.

What random weights cannot show: answers that copy the quotes (drafts from the prompt are
accepted only where the model repeats itself), and answers that end early (almost every one
runs to its token limit).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from privserve.models.bundled import BUNDLED_MODELS, materialize
from rag_prompts import CACHE, chinese_chunks, english_chunks

# The tokenizer and template come from the test checkpoints' builders, in the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Sizes from each model's released config.json, less its vocabulary (see above).
QWEN3_0_6B: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "tie_word_embeddings": True,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 40960,
}
SHAPES: dict[str, dict[str, Any]] = {
    "qwen3-0.6b": QWEN3_0_6B,
    "qwen3-1.7b": {**QWEN3_0_6B, "hidden_size": 2048, "intermediate_size": 6144},
}
# Trained on the bench's prose, this many tokens put a question at about the token count of
# the bundled Gemma 3's 262k-token vocabulary (2.1k), rather than a tiny vocabulary's 3-4×.
TOKENIZER_VOCAB = 24000
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The benches' choice of model: a bundled one, or a published shape converted here."""
    parser.add_argument("--model", default="gemma3-270m", choices=sorted(BUNDLED_MODELS))
    parser.add_argument(
        "--converted", choices=sorted(SHAPES),
        help="instead of --model: a published model's shape with random weights, converted "
        "by `privserve convert` (bench/random_checkpoint.py)",
    )  # fmt: skip
    parser.add_argument("--bits", type=int, default=4, choices=[16, 8, 4], help="for --converted")


def chosen_model(args: argparse.Namespace, directory: Path) -> Path:
    """The GGUF that `add_model_arguments`' arguments name: the converted shape, or the
    bundled model materialized into `directory`."""
    if args.converted:
        return converted_model(args.converted, args.bits)
    return materialize(BUNDLED_MODELS[args.model], directory)


def converted_model(shape: str, bits: int, seed: int = 0) -> Path:
    """The GGUF of `shape` at `bits`, built and converted once into the bench cache."""
    name = f"{shape}-random-{bits}bit"
    home = CACHE / "converted"
    target = home / "models" / f"{name}.gguf"
    if target.exists():
        return target
    checkpoint = home / "checkpoints" / f"{shape}-random"
    if not (checkpoint / "config.json").exists():
        build_checkpoint(shape, checkpoint, seed)
    done = subprocess.run(
        [sys.executable, "-m", "privserve", "convert", str(checkpoint), "--bits", str(bits)]
        + ["--name", name],
        env={**os.environ, "PRIVSERVE_HOME": str(home), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not target.exists():
        raise RuntimeError(f"privserve convert failed:\n{done.stdout}\n{done.stderr}")
    return target


def build_checkpoint(shape: str, directory: Path, seed: int) -> None:
    """A Qwen3 checkpoint of `shape`'s sizes with seeded random weights, in bfloat16."""
    import torch
    from tests.checkpoints.llama_family import CHATML_TEMPLATE
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    # transformers' own annotations reject these calls, which it documents and runs.
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=_trained_tokenizer(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=SHAPES[shape]["max_position_embeddings"],
    )
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = Qwen3Config(  # type: ignore[call-arg]
        **SHAPES[shape],
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        torch_dtype="bfloat16",
    )
    Qwen3ForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)  # type: ignore[arg-type]


def _trained_tokenizer() -> Any:
    from tests.checkpoints.llama_family import QWEN2_PATTERN, byte_level_bpe

    texts = [chunk.text for chunk in english_chunks() + chinese_chunks()]
    return byte_level_bpe(QWEN2_PATTERN, SPECIALS, TOKENIZER_VOCAB, corpus=texts)
