"""ChatGLM2 and ChatGLM3 vocabularies and chat templates, which llama.cpp's converter lacks.

Both keep a SentencePiece model plus tokens appended after it (ChatGLM2: [MASK] [gMASK]
[sMASK] sop eop; ChatGLM3 adds its role tokens), padded to `padded_vocab_size`. The stock
converter builds this only for a checkpoint named THUDM/chatglm3-6b, and only through the
model's remote tokenizer code; privserve reads tokenizer.model itself and runs no remote
code. `sop` and `eop` are stored as `<sop>` and `<eop>`, so a user's text containing "sop"
can never become a control token, and llama.cpp's own template detection (which takes any
template with "[gMASK]sop" for ChatGLM3) never misreads ChatGLM2's.

This module runs inside the converter's process, where `gguf` and `conversion` import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATGLM2_SPECIALS = ["[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>"]
CHATGLM3_ROLES = ["<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]

# ChatGLM2's prompt: `[Round N]\n\n问：{question}\n\n答：{answer}\n\n` per round, after its two
# prefix tokens. It has no system role: system text opens the first question.
CHATGLM2_TEMPLATE = (
    "{%- set ns = namespace(system='', round=0) -%}"
    "[gMASK]<sop>"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = ns.system + message['content'] + '\\n\\n' -%}"
    "{%- elif message['role'] == 'user' -%}"
    "{%- set ns.round = ns.round + 1 -%}"
    "{{ '[Round ' ~ ns.round ~ ']\\n\\n问：' ~ (ns.system if ns.round == 1 else '') "
    "~ message['content'] ~ '\\n\\n答：' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ message['content'] ~ '\\n\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# ChatGLM3's prompt: `<|role|>\n{content}` per message, `<|assistant|>` to answer.
CHATGLM3_TEMPLATE = (
    "[gMASK]<sop>"
    "{%- for message in messages -%}"
    "{{ '<|' ~ message['role'] ~ '|>\\n' ~ message['content'] }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}"
)


def uses_sentencepiece(model_dir: Path) -> bool:
    """ChatGLM2 and ChatGLM3 ship tokenizer.model; GLM-4 ships tokenizer.json (BPE)."""
    return (model_dir / "tokenizer.model").is_file() and not (
        model_dir / "tokenizer.json"
    ).is_file()


def generation(model_dir: Path, hparams: dict[str, Any]) -> int:
    """3 when the checkpoint is ChatGLM3 (its tokenizer code or name says so), else 2."""
    code = model_dir / "tokenization_chatglm.py"
    if code.is_file() and "<|observation|>" in code.read_text(encoding="utf-8", errors="ignore"):
        return 3
    return 3 if "chatglm3" in str(hparams.get("_name_or_path", "")).lower() else 2


def set_vocab(model: Any) -> None:
    """Writes the vocabulary, special token ids and chat template into the GGUF."""
    import gguf  # type: ignore[import-not-found]
    from conversion.base import SentencePieceTokenTypes  # type: ignore[import-not-found]
    from sentencepiece import SentencePieceProcessor

    processor = SentencePieceProcessor()
    processor.LoadFromFile(str(model.dir_model / "tokenizer.model"))
    third = generation(model.dir_model, model.hparams) == 3
    specials = CHATGLM2_SPECIALS + (CHATGLM3_ROLES if third else [])
    size = int(model.hparams.get("padded_vocab_size", processor.vocab_size() + len(specials)))
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []
    for token_id in range(processor.vocab_size()):
        kind = SentencePieceTokenTypes.NORMAL
        if processor.IsUnknown(token_id):
            kind = SentencePieceTokenTypes.UNKNOWN
        elif processor.IsControl(token_id):
            kind = SentencePieceTokenTypes.CONTROL
        elif processor.IsUnused(token_id):
            kind = SentencePieceTokenTypes.UNUSED
        elif processor.IsByte(token_id):
            kind = SentencePieceTokenTypes.BYTE
        tokens.append(processor.IdToPiece(token_id).encode("utf-8"))
        scores.append(processor.GetScore(token_id))
        types.append(kind)
    for special in specials:
        tokens.append(special.encode("utf-8"))
        scores.append(0.0)
        types.append(SentencePieceTokenTypes.CONTROL)
    while len(tokens) < size:
        tokens.append(f"[PAD{len(tokens)}]".encode())
        scores.append(0.0)
        types.append(SentencePieceTokenTypes.UNUSED)
    writer = model.gguf_writer
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    special_vocab = gguf.SpecialVocab(model.dir_model, n_vocab=len(tokens))
    special_vocab.add_to_gguf(writer)
    if third:  # a turn ends where the next role begins
        writer.add_eot_token_id(processor.vocab_size() + specials.index("<|user|>"))
    writer.add_chat_template(CHATGLM3_TEMPLATE if third else CHATGLM2_TEMPLATE)
