"""Tiny random checkpoints of the Llama family (Llama, Qwen2, Gemma), each with the kind of
tokenizer its real models use, trained here, and the family's own chat template.

Hidden and FFN sizes are multiples of 256 so that 4-bit files really hold Q4_K blocks:
llama.cpp falls back to other types for rows K-quants cannot split.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from tests.checkpoints.tokenizers import CORPUS

LLAMA2_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)


def sentencepiece_tokens(checkpoint: Path, text: str, chat: bool = False) -> list[int]:
    """SentencePiece itself. A plain text gets the BOS the model expects; a rendered chat
    prompt is split at its special tokens and each piece of text encoded on its own, as
    Llama's reference code builds prompts. (transformers' fast conversion differs from
    SentencePiece on runs of leading spaces and after special tokens.)"""
    processor = spm.SentencePieceProcessor(model_file=str(checkpoint / "tokenizer.model"))
    if not chat:
        return [processor.bos_id(), *processor.encode(text)]
    specials = {processor.id_to_piece(i): i for i in (processor.bos_id(), processor.eos_id())}
    tokens: list[int] = []
    for piece in re.split("(" + "|".join(map(re.escape, specials)) + ")", text):
        if piece in specials:
            tokens.append(specials[piece])
        elif piece:
            tokens += processor.encode(piece)
    return tokens


def sentencepiece_model(vocab_size: int = 512, **options: object) -> bytes:
    """A SentencePiece BPE model over the mixed corpus with byte pieces; by default Llama's
    ids (<unk>=0, <s>=1, </s>=2), `options` override trainer settings."""
    model = io.BytesIO()
    settings: dict[str, object] = {
        "vocab_size": vocab_size,
        "model_type": "bpe",
        "byte_fallback": True,
        "character_coverage": 1.0,
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "pad_id": -1,
        "split_digits": True,
        "allow_whitespace_only_pieces": True,
        "remove_extra_whitespaces": False,
        "normalization_rule_name": "identity",
        "minloglevel": 2,
    }
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_writer=model, **(settings | options)
    )
    return model.getvalue()


def _sentencepiece_tokenizer(
    directory: Path,
    tokenizer_class: str,
    template: str | None,
    model: bytes | None = None,
    **tokens: object,
) -> PreTrainedTokenizerBase:
    (directory / "tokenizer.model").write_bytes(model or sentencepiece_model())
    config = {
        "tokenizer_class": tokenizer_class,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
    } | tokens
    if template is not None:  # a base model's tokenizer has none
        config["chat_template"] = template
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.save_pretrained(directory)  # adds tokenizer.json, as real repositories have
    return tokenizer


def llama(directory: Path, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    return _llama_like(directory, seed, LlamaConfig, LlamaForCausalLM)


def llama_base(directory: Path, seed: int = 0) -> Path:
    """A base model: Llama's layout, and no chat template anywhere."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return _llama_like(directory, seed, LlamaConfig, LlamaForCausalLM, template=None)


def mistral(directory: Path, seed: int = 0) -> Path:
    """Mistral-style: Llama's layout with grouped-query attention and a sliding window."""
    from transformers import MistralConfig, MistralForCausalLM

    return _llama_like(directory, seed, MistralConfig, MistralForCausalLM, sliding_window=256)


def _llama_like(
    directory: Path,
    seed: int,
    config_class: Any,
    model_class: Any,
    template: str | None = LLAMA2_TEMPLATE,
    **extra: object,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _sentencepiece_tokenizer(directory, "LlamaTokenizer", template)
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="float16",
        **extra,
    )
    model_class(config).to(torch.float16).save_pretrained(directory)
    return directory


CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Qwen2's split pattern, as its tokenizer.json carries it.
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def byte_level_bpe(
    pattern: str, specials: list[str], vocab_size: int = 600, corpus: list[str] | None = None
) -> Tokenizer:
    """A byte-level BPE tokenizer splitting text with `pattern`, as Qwen2's and Llama 3's,
    trained on `corpus` (default: the tiny mixed English and Chinese one)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=specials,
    )
    tokenizer.train_from_iterator(CORPUS * 20 if corpus is None else corpus, trainer)
    return tokenizer


def saved_byte_level_tokenizer(
    directory: Path,
    pattern: str,
    specials: list[str],
    *,
    eos_token: str,
    pad_token: str,
    chat_template: str,
) -> PreTrainedTokenizerFast:
    """`byte_level_bpe` wrapped as a transformers tokenizer and saved into `directory`."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(pattern, specials),
        eos_token=eos_token,
        pad_token=pad_token,
        chat_template=chat_template,
        model_max_length=512,
    )
    tokenizer.save_pretrained(directory)
    return tokenizer


def qwen2(directory: Path, seed: int = 0) -> Path:

    directory.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = saved_byte_level_tokenizer(
        directory,
        QWEN2_PATTERN,
        specials,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )
    torch.manual_seed(seed)
    _save_qwen2(directory, tokenizer, bos=None, eos="<|im_end|>")
    return directory


def _save_qwen2(
    directory: Path, tokenizer: PreTrainedTokenizerFast, *, bos: int | None, eos: str
) -> None:
    """A tiny Qwen2 layout with `tokenizer`'s vocabulary, saved in bf16."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=bos,
        eos_token_id=tokenizer.convert_tokens_to_ids(eos),
        torch_dtype="bfloat16",
    )
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)


QWEN3_TEMPLATE = (Path(__file__).parents[1] / "data" / "qwen3-style.jinja").read_text()


def _qwen3_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    """Qwen2's byte-level BPE with Qwen3's thinking tags, added as plain (not special)
    tokens as Qwen3's own tokenizer has them, so the model's output shows them as text."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(
            QWEN2_PATTERN, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        ),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN3_TEMPLATE,
        model_max_length=512,
    )
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.save_pretrained(directory)
    return tokenizer


# The sizes of the tiny decoders with a head size of their own (Qwen3, GLM-4).
TINY_DECODER: dict[str, Any] = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 512,
}


def _qwen3_shape(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """What the tiny Qwen3 and Qwen3-MoE checkpoints share: sizes, norms, ids, dtype."""
    return {
        "vocab_size": len(tokenizer),
        **TINY_DECODER,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "torch_dtype": "bfloat16",
    }


def qwen3(directory: Path, seed: int = 0) -> Path:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = _qwen3_tokenizer(directory)
    torch.manual_seed(seed)
    config = Qwen3Config(**_qwen3_shape(tokenizer))
    Qwen3ForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)
    return directory


def qwen3_moe(directory: Path, seed: int = 0) -> Path:
    """Qwen3's mixture of experts: four experts, two for each token."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    tokenizer = _qwen3_tokenizer(directory)
    torch.manual_seed(seed)
    config = Qwen3MoeConfig(
        **_qwen3_shape(tokenizer),
        moe_intermediate_size=128,
        num_experts=4,
        num_experts_per_tok=2,
        decoder_sparse_step=1,
        norm_topk_prob=True,
    )
    Qwen3MoeForCausalLM(config).to(torch.bfloat16).save_pretrained(directory)
    return directory


R1_TEMPLATE = (Path(__file__).parents[1] / "data" / "r1-style.jinja").read_text()
R1_BOS, R1_EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"


def r1_distill_qwen(directory: Path, seed: int = 0) -> Path:
    """A DeepSeek-R1 distill of Qwen2: Qwen2's layout and split pattern, R1's own special
    tokens with a BOS before every text, the thinking tags as plain tokens, and an R1-style
    template that opens the block in the generation prompt."""

    directory.mkdir(parents=True, exist_ok=True)
    # R1's tokens, and Qwen's own, which the distills keep.
    specials = [R1_BOS, R1_EOS, "<｜User｜>", "<｜Assistant｜>"]
    specials += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = byte_level_bpe(QWEN2_PATTERN, specials)
    bos = backend.token_to_id(R1_BOS)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{R1_BOS} $A", pair=f"{R1_BOS} $A {R1_BOS} $B", special_tokens=[(R1_BOS, bos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=R1_BOS,
        eos_token=R1_EOS,
        pad_token=R1_EOS,
        chat_template=R1_TEMPLATE,
        model_max_length=512,
    )
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.save_pretrained(directory)
    config_file = directory / "tokenizer_config.json"
    config_file.write_text(
        json.dumps(json.loads(config_file.read_text()) | {"add_bos_token": True}, indent=2)
    )
    torch.manual_seed(seed)
    _save_qwen2(directory, tokenizer, bos=bos, eos=R1_EOS)
    return directory


def bos_tokenizer_json_tokens(checkpoint: Path, text: str, chat: bool = False) -> list[int]:
    """tokenizer.json adding its BOS to a plain text; a rendered chat prompt has its BOS
    written by the template."""
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    return list(tokenizer.encode(text, add_special_tokens=not chat).ids)


def tokenizer_json_tokens(checkpoint: Path, text: str, chat: bool = False) -> list[int]:
    """A BPE model's original tokenizer is its tokenizer.json; Qwen2 adds no BOS."""
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    return list(tokenizer.encode(text, add_special_tokens=False).ids)


GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def gemma(directory: Path, seed: int = 0) -> Path:
    from transformers import GemmaConfig, GemmaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    # Gemma's layout: <pad>=0 <eos>=1 <bos>=2 <unk>=3, turn markers as whole pieces, and no
    # space added in front of the text.
    model = sentencepiece_model(
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        add_dummy_prefix=False,
    )
    tokenizer = _sentencepiece_tokenizer(
        directory,
        "GemmaTokenizer",
        GEMMA_TEMPLATE,
        model,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    # Gemma's repositories declare the turn markers special in tokenizer_config.json, which
    # is where converters learn that they are control tokens and never text.
    config_file = directory / "tokenizer_config.json"
    tokenizer_config = json.loads(config_file.read_text())
    tokenizer_config["added_tokens_decoder"] = {
        str(tokenizer.convert_tokens_to_ids(marker)): {
            "content": marker,
            "special": True,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "single_word": False,
        }
        for marker in ("<start_of_turn>", "<end_of_turn>")
    }
    config_file.write_text(json.dumps(tokenizer_config, indent=2))
    torch.manual_seed(seed)
    config = GemmaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        torch_dtype="float32",
    )
    GemmaForCausalLM(config).save_pretrained(directory)
    return directory
