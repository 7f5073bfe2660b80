"""Tiny random retrieval models of today's knowledge bases, saved as downloaded:

- a Qwen3-Embedding-style embedder: Qwen3's decoder read by last-token pooling (the
  tokenizer appends <|endoftext|> to every text), normalized, with a query instruction
  among its sentence-transformers prompts;
- a bge-reranker-v2-m3-style cross-encoder: XLM-RoBERTa with a SentencePiece-like unigram
  tokenizer, one relevance logit per query-document pair.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from tests.checkpoints import bert
from tests.checkpoints.llama_family import QWEN2_PATTERN, byte_level_bpe
from tests.checkpoints.tokenizers import CORPUS

QUERY_PROMPT = (
    "Instruct: Given a question, retrieve passages of the knowledge base that answer it\nQuery:"
)
MAX_LENGTH = 128


def qwen3_embedding(directory: Path, seed: int = 0) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as st_models
    from transformers import Qwen3Config, Qwen3Model

    base = directory.parent / f"{directory.name}-decoder"
    base.mkdir(parents=True, exist_ok=True)
    backend = byte_level_bpe(QWEN2_PATTERN, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    end = backend.token_to_id("<|endoftext|>")
    # Qwen3-Embedding's tokenizer ends every text with <|endoftext|>: the token pooled.
    backend.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>",
        pair="$A <|endoftext|> $B:1 <|endoftext|>:1",
        special_tokens=[("<|endoftext|>", end)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=MAX_LENGTH,
    )
    tokenizer.save_pretrained(base)
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=MAX_LENGTH,
        rms_norm_eps=1e-6,
        pad_token_id=end,
        initializer_range=0.5,  # wide weights: vectors of different texts differ clearly
    )
    Qwen3Model(config).eval().save_pretrained(base)
    transformer = st_models.Transformer(str(base), max_seq_length=MAX_LENGTH)
    pooling = st_models.Pooling(config.hidden_size, pooling_mode="lasttoken")
    model = SentenceTransformer(
        modules=[transformer, pooling, st_models.Normalize()],
        prompts={"query": QUERY_PROMPT, "document": ""},
        device="cpu",
    )
    model.save(str(directory))
    return directory


def last_token_vectors(directory: Path, texts: list[str]) -> list[list[float]]:
    """Straight from transformers: the decoder's last hidden state at each text's final
    token (its <|endoftext|>), normalized."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    vectors = []
    for text in texts:
        encoded = tokenizer(text, return_tensors="pt")
        assert encoded["input_ids"][0, -1] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state[0, -1]
        vectors.append((hidden / hidden.norm()).tolist())
    return vectors


XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def xlm_roberta_tokenizer() -> PreTrainedTokenizerFast:
    """XLM-RoBERTa's kind: a unigram model over Metaspace pieces, <s>=0 <pad>=1 </s>=2
    <unk>=3, <mask> last, and pairs as <s> A </s></s> B </s>."""
    from transformers import XLMRobertaTokenizerFast

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=400, special_tokens=XLMR_SPECIALS, unk_token="<unk>"
    )
    backend.train_from_iterator(CORPUS * 20, trainer)
    backend.add_special_tokens(["<mask>"])
    bos, eos = backend.token_to_id("<s>"), backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MAX_LENGTH,
    )


def xlm_roberta_reranker(directory: Path, seed: int = 0) -> Path:
    """As bge-reranker-v2-m3 is downloaded: XLMRobertaForSequenceClassification with one
    label, its tokenizer, and no sentence-transformers files."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    tokenizer = xlm_roberta_tokenizer()
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH + 2,  # RoBERTa's positions start after padding
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=1,
        initializer_range=0.5,
    )
    directory.mkdir(parents=True, exist_ok=True)
    XLMRobertaForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def xlm_roberta_scores(directory: Path, query: str, documents: list[str]) -> list[float]:
    """The sigmoid of the checkpoint's logit for each pair, straight from transformers."""
    return bert.reference_scores(directory, query, documents, MAX_LENGTH)
