"""Dynamic batching of embeddings with a fake encoder that records its passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from privserve.engine.embedding.batcher import DynamicBatcher
from privserve.errors import Overloaded


class FakeEncoder:
    """Each text's vector is [its length, pass number]; passes are recorded."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []

    async def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.passes.append(list(texts))
        return np.array([[len(t), len(self.passes)] for t in texts], dtype=np.float32)


@pytest.fixture
async def encoder() -> FakeEncoder:
    return FakeEncoder()


async def started(encoder: FakeEncoder, **kwargs: float) -> AsyncIterator[DynamicBatcher[str]]:
    options = {"window_s": 0.02, "max_batch": 8, "max_queued_texts": 100, **kwargs}
    batcher = DynamicBatcher(
        encoder,
        window_s=options["window_s"],
        max_batch=int(options["max_batch"]),
        max_queued_texts=int(options["max_queued_texts"]),
    )
    batcher.start()
    try:
        yield batcher
    finally:
        await batcher.close()


async def test_concurrent_requests_share_a_pass_and_get_their_own_rows(
    encoder: FakeEncoder,
) -> None:
    async for batcher in started(encoder):
        texts = ["a", "bb", "ccc", "dddd"]
        rows = await asyncio.gather(*(batcher.embed([t]) for t in texts))
        assert [r[0][0] for r in rows] == [1, 2, 3, 4]
        assert len(encoder.passes) == 1
        assert batcher.stats.forward_passes == 1 and batcher.stats.requests == 4


async def test_a_large_request_is_split_so_others_get_in(encoder: FakeEncoder) -> None:
    async for batcher in started(encoder):
        big = [f"t{i}" for i in range(20)]
        rows, small = await asyncio.gather(batcher.embed(big), batcher.embed(["x"]))
        assert rows.shape == (20, 2) and list(rows[:, 0]) == [len(t) for t in big]
        assert all(len(p) <= 8 for p in encoder.passes)
        # The small request rode along in a pass before the big one's last chunk.
        small_pass = int(small[0][1])
        assert small_pass < len(encoder.passes)


async def test_too_many_waiting_texts_is_overloaded(encoder: FakeEncoder) -> None:
    async for batcher in started(encoder, max_queued_texts=5):
        with pytest.raises(Overloaded):
            await batcher.embed(["t"] * 6)
        assert batcher.stats.queued_texts == 0


async def test_an_encoder_error_reaches_every_caller_and_batching_goes_on(
    encoder: FakeEncoder,
) -> None:
    async def failing(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if "boom" in texts:
            raise RuntimeError("boom")
        return await encoder(texts)

    async for batcher in started(failing):  # type: ignore[arg-type]
        results = await asyncio.gather(
            batcher.embed(["boom"]), batcher.embed(["ok"]), return_exceptions=True
        )
        assert all(isinstance(r, RuntimeError) for r in results)
        assert (await batcher.embed(["fine"]))[0][0] == 4


async def test_a_cancelled_caller_is_skipped(encoder: FakeEncoder) -> None:
    async for batcher in started(encoder, window_s=0.2):
        waiting = asyncio.create_task(batcher.embed(["gone"]))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.sleep(0.3)
        assert await batcher.embed(["kept"]) is not None
        assert ["gone"] not in encoder.passes
        assert batcher.stats.queued_texts == 0


class GatedEncoder(FakeEncoder):
    """Holds each pass until released, so requests pile up behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        await self.release.wait()
        self.release.clear()
        return await super().__call__(texts)


async def test_interactive_inputs_pass_batch_ones_that_waited_less_than_the_bound() -> None:
    encoder = GatedEncoder()
    batcher = DynamicBatcher(
        encoder, window_s=0, max_batch=1, max_queued_texts=100, batch_max_wait_s=60
    )
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.embed(["first"]))
        await asyncio.sleep(0.01)  # the first pass is running, held
        later = [asyncio.ensure_future(batcher.embed([f"batch-{i}"], "batch")) for i in range(2)]
        urgent = asyncio.ensure_future(batcher.embed(["interactive"]))
        await asyncio.sleep(0.01)
        for _ in range(4):
            encoder.release.set()
            await asyncio.sleep(0.01)
        await asyncio.gather(first, urgent, *later)
        assert [p[0] for p in encoder.passes] == ["first", "interactive", "batch-0", "batch-1"]
    finally:
        await batcher.close()


async def test_a_batch_input_that_waited_long_enough_goes_first() -> None:
    encoder = GatedEncoder()
    batcher = DynamicBatcher(
        encoder, window_s=0, max_batch=1, max_queued_texts=100, batch_max_wait_s=0.05
    )
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.embed(["first"]))
        await asyncio.sleep(0.01)
        old = asyncio.ensure_future(batcher.embed(["old batch"], "batch"))
        await asyncio.sleep(0.1)  # past the bound
        urgent = asyncio.ensure_future(batcher.embed(["interactive"]))
        await asyncio.sleep(0.01)
        for _ in range(3):
            encoder.release.set()
            await asyncio.sleep(0.01)
        await asyncio.gather(first, old, urgent)
        assert [p[0] for p in encoder.passes] == ["first", "old batch", "interactive"]
    finally:
        await batcher.close()
