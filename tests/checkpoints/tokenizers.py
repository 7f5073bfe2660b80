"""Tokenizers trained in a second on a tiny corpus of mixed English and Chinese."""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertTokenizerFast

CORPUS = [
    "The river opened the north gate on the first day.",
    "A teacher painted the school roof and repaired two boats.",
    "Our library keeps a map of the old bridge and the park.",
    "Water is the source of life; the city cleaned the river.",
    "水是生命之源，河流穿过城市。",
    "老师修好了学校的屋顶。",
    "图书馆里有一张旧桥的地图。",
]


def bert_wordpiece(vocab_size: int = 300, max_length: int = 128) -> BertTokenizerFast:
    """A BERT tokenizer: lower-cased WordPiece, [CLS] a [SEP] b [SEP] for pairs."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )
