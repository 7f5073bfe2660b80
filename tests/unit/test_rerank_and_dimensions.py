"""Rerank engine choice, cosine scoring, Matryoshka shortening and repacking defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pytest

from privserve.engine.embedding.engine import CosineReranker
from privserve.engine.llama.model import repacking_enabled
from privserve.errors import ModelNotFound
from privserve.services.catalog import ModelCatalog
from privserve.services.embeddings import shortened


class FakeEmbedder:
    """Vectors from a fixed table; every text is one token per character."""

    model_id = "fake-embed"
    dimensions = 2
    shortenable = False
    max_input_tokens = 8
    vocab_size = 10
    prompts: Mapping[str, str] = MappingProxyType({})
    default_prompt_name = None

    def __init__(self, table: dict[str, list[float]]) -> None:
        self._table = table

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in texts]

    def detokenize(self, ids: Sequence[int]) -> str:
        return ""

    async def embed(
        self, texts: Sequence[str], priority: str = "interactive"
    ) -> npt.NDArray[np.float32]:
        rows = np.array([self._table[t] for t in texts], dtype=np.float32)
        result: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return result

    def stats(self) -> dict[str, float]:
        return {}


class FakeCrossEncoder:
    method = "cross-encoder"
    model_id = "fake-ce"
    max_input_tokens = 8

    async def count_tokens(self, query: str, documents: Sequence[str]) -> tuple[int, int]:
        return len(query), 0

    async def score(
        self, query: str, documents: Sequence[str], priority: str = "interactive"
    ) -> list[float]:
        return [0.5] * len(documents)

    def stats(self) -> dict[str, float]:
        return {}


async def test_cosine_reranker_scores_by_vector_angle_and_counts_what_it_reads() -> None:
    embedder = FakeEmbedder({"q": [1, 0], "same": [2, 0], "apart": [0, 1], "longer text": [1, 1]})
    reranker = CosineReranker(embedder)
    scores = await reranker.score("q", ["same", "apart", "longer text"])
    assert scores == pytest.approx([1.0, 0.0, 2**-0.5])
    # "longer text" has 11 tokens, read up to the limit of 8.
    assert await reranker.count_tokens("q", ["same", "longer text"]) == (1, 1 + 4 + 8)


async def test_catalog_prefers_a_cross_encoder_and_keeps_cosine_by_name() -> None:
    embedder = FakeEmbedder({})
    with_ce = ModelCatalog({}, {"fake-embed": embedder}, [FakeCrossEncoder()])
    async with with_ce.using_reranker(None) as default:
        assert default.method == "cross-encoder" and default.model_id == "fake-ce"
    for name in ("fake-embed", "fake-embed-rerank"):
        async with with_ce.using_reranker(name) as cosine:
            assert cosine.method == "cosine" and cosine.model_id == "fake-embed"
    assert with_ce.rerank_model_ids() == ["fake-ce"]
    assert with_ce.reranker_ids() == ["fake-ce", "fake-embed-rerank"]
    assert with_ce.has("fake-ce") and with_ce.has("fake-embed-rerank")
    without = ModelCatalog({}, {"fake-embed": embedder})
    assert without.default_reranker_id() == "fake-embed"
    assert without.rerank_method("fake-embed-rerank") == "cosine"
    with pytest.raises(ModelNotFound):
        ModelCatalog({}).default_reranker_id()


def test_shortened_vectors_are_the_normalized_head() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    short = shortened(vectors, 3)
    assert short.shape == (3, 3) and short.dtype == np.float32
    assert np.allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-6)
    assert np.allclose(
        short * np.linalg.norm(vectors[:, :3], axis=1, keepdims=True), vectors[:, :3]
    )
    assert shortened(vectors, 8) is vectors


@pytest.mark.parametrize(
    ("setting", "features", "expected"),
    [
        (None, "AVX2 = 1 | REPACK = 1 |", True),
        (None, "AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |", False),
        (True, "AMX_INT8 = 1 |", True),
        (False, "AVX2 = 1 |", False),
    ],
)
def test_repacking_is_off_by_default_only_on_amx_builds(
    setting: bool | None, features: str, expected: bool
) -> None:
    assert repacking_enabled(setting, features) is expected
