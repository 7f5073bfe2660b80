"""How many layers go to the GPU, from its free memory, the file and the KV cache."""

from __future__ import annotations

from privserve.engine.llama.offload import ALL_LAYERS, Gpu, plan_offload

GB = 1024**3
# A 28-layer model's shape: the KV cache of 8192 cells is 28 * 8192 * 2 * 128 * 2 * 2 B.
METADATA = {
    "general.architecture": "chatglm",
    "chatglm.block_count": "28",
    "chatglm.embedding_length": "4096",
    "chatglm.attention.head_count": "32",
    "chatglm.attention.head_count_kv": "2",
}
KV_8192 = 28 * 8192 * 2 * (128 + 128) * 2


def plan(free_gb: float, file_gb: float, *, offloads: bool = True, cells: int = 8192) -> int:
    return plan_offload(
        "auto",
        offloads=offloads,
        gpu=Gpu("NVIDIA A10", int(free_gb * GB)),
        file_bytes=int(file_gb * GB),
        metadata=METADATA,
        context_cells=cells,
    ).gpu_layers


def test_every_layer_goes_to_a_gpu_the_model_and_cache_fit() -> None:
    assert KV_8192 < 0.3 * GB
    assert plan(24, 12.5) == ALL_LAYERS  # ChatGLM2-6B at 16 bits on a 24 GB card


def test_as_many_layers_as_fit_leaving_headroom() -> None:
    layers = plan(8, 12.5)  # 16 bits on an 8 GB card
    per_layer = (12.5 * GB + KV_8192) / 29  # the output layer counts as one more
    room = 8 * GB - max(768 * 1024**2, 0.05 * 8 * GB)
    assert 0 < layers < 28 and layers == int(room // per_layer)


def test_no_layers_without_a_gpu_build_or_a_gpu_or_room() -> None:
    assert plan(24, 4, offloads=False) == 0
    assert plan(0.5, 4) == 0
    none = plan_offload(
        "auto", offloads=True, gpu=None, file_bytes=GB, metadata=METADATA, context_cells=1
    )
    assert none.gpu_layers == 0 and none.device.startswith("CPU")


def test_a_number_in_the_settings_is_taken_as_given() -> None:
    forced = plan_offload(
        12, offloads=True, gpu=None, file_bytes=GB, metadata=METADATA, context_cells=1
    )
    assert forced.gpu_layers == 12
    assert plan_offload(
        -1, offloads=False, gpu=None, file_bytes=0, metadata={}, context_cells=1
    ).device.startswith("CPU")
