"""A tiny random BERT cross-encoder: what a downloaded reranker directory holds."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

from tests.checkpoints.tokenizers import bert_wordpiece

MAX_LENGTH = 64


def cross_encoder(directory: Path, seed: int = 0) -> Path:
    """Writes config.json, model.safetensors and the tokenizer files into `directory`.

    The weights are drawn wide (initializer_range 0.5) so scores spread out and orderings
    are stable, rather than all sitting near 0.5 after the sigmoid."""
    torch.manual_seed(seed)
    tokenizer = bert_wordpiece(max_length=MAX_LENGTH)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH,
        num_labels=1,
        initializer_range=0.5,
    )
    model = BertForSequenceClassification(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def reference_scores(
    directory: Path,
    query: str,
    documents: list[str],
    max_length: int = MAX_LENGTH,
    dtype: torch.dtype = torch.float32,
) -> list[float]:
    """The sigmoid of a cross-encoder checkpoint's logit for each pair, straight from
    transformers, whatever its architecture, with the weights in `dtype`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(directory).eval().to(dtype)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encoded = tokenizer(
        [query] * len(documents),
        documents,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    with torch.inference_mode():
        logits = model(**encoded).logits.reshape(-1).float()
    return [float(s) for s in torch.sigmoid(logits)]
