"""Conversion planning without converting: checkpoint checks, memory estimates, --bits auto,
the converter's extraction from a source release, and the model registry."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from privserve.convert import pretokenizers
from privserve.convert.checkpoint import read_checkpoint
from privserve.convert.estimate import GB, choose_bits, estimate, shape_of
from privserve.convert.toolkit import ensure_toolkit, runtime_version
from privserve.errors import ConversionError
from privserve.models.store import ModelStore, RegisteredModel

# ChatGLM2-6B's config.json, the fields that set its size.
CHATGLM2_6B = {
    "architectures": ["ChatGLMModel"],
    "model_type": "chatglm",
    "padded_vocab_size": 65024,
    "hidden_size": 4096,
    "num_layers": 28,
    "num_attention_heads": 32,
    "multi_query_attention": True,
    "multi_query_group_num": 2,
    "kv_channels": 128,
    "ffn_hidden_size": 13696,
    "seq_length": 32768,
    "torch_dtype": "float16",
}
# The memory the old tutorial publishes for ChatGLM2-6B, in GB.
PUBLISHED = {"f16": 12.8, "q8_0": 8.1, "q4_k_m": 5.1}


def test_chatglm2_6b_has_its_six_billion_parameters() -> None:
    assert shape_of(CHATGLM2_6B).parameter_count() == pytest.approx(6.24e9, rel=0.01)


@pytest.mark.parametrize("label", sorted(PUBLISHED))
def test_estimates_land_within_15_percent_of_the_published_table(label: str) -> None:
    total = estimate(shape_of(CHATGLM2_6B), label, context_tokens=8192).total / GB
    assert total == pytest.approx(PUBLISHED[label], rel=0.15)


def test_estimates_grow_with_precision_and_context() -> None:
    shape = shape_of(CHATGLM2_6B)
    totals = [estimate(shape, label, 8192).total for label in ("q4_k_m", "q8_0", "f16")]
    assert totals == sorted(totals)
    assert estimate(shape, "f16", 32768).kv_cache == 4 * estimate(shape, "f16", 8192).kv_cache


@pytest.mark.parametrize(
    ("free_gb", "bits"), [(24.0, 16), (12.0, 8), (6.0, 4)], ids=["24GB", "12GB", "6GB"]
)
def test_auto_picks_the_highest_precision_that_fits(free_gb: float, bits: int) -> None:
    choice = choose_bits(shape_of(CHATGLM2_6B), "f16", 8192, int(free_gb * GB), "GPU")
    assert choice.bits == bits
    assert f"{bits}-bit needs about" in choice.reason and "GPU has" in choice.reason


def test_auto_says_what_to_do_when_nothing_fits() -> None:
    with pytest.raises(ConversionError, match="--ctx-size"):
        choose_bits(shape_of(CHATGLM2_6B), "f16", 8192, 2 * 10**9, "RAM")


def write_checkpoint(
    directory: Path, config: dict[str, object], *, weights: bool = True, tokenizer: bool = True
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    if weights:
        (directory / "model.safetensors").write_bytes(b"")
    if tokenizer:
        (directory / "tokenizer.model").write_bytes(b"")
    return directory


@pytest.mark.parametrize(
    ("config", "weights", "tokenizer", "message"),
    [
        ({"architectures": ["BertModel"]}, True, True, "not supported; privserve converts"),
        ({"architectures": ["LlamaForCausalLM"]}, False, True, "has no weights"),
        ({"architectures": ["LlamaForCausalLM"]}, True, False, "has no tokenizer files"),
    ],
)
def test_a_checkpoint_missing_something_is_refused_with_what_to_do(
    tmp_path: Path, config: dict[str, object], weights: bool, tokenizer: bool, message: str
) -> None:
    write_checkpoint(tmp_path / "ckpt", config, weights=weights, tokenizer=tokenizer)
    with pytest.raises(ConversionError, match=message):
        read_checkpoint(tmp_path / "ckpt")


def test_a_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="no config.json"):
        read_checkpoint(tmp_path)


def fake_release(path: Path, version: str) -> Path:
    """A source release with the converter's files and some the toolkit must leave out."""
    vendor = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    files = {
        "convert_hf_to_gguf.py": b"print('converter')",
        "conversion/__init__.py": b"",
        "gguf-py/gguf/__init__.py": b"",
        "LICENSE": b"MIT",
        "src/llama.cpp": b"not needed",
        "gguf-py/tests/test.py": b"not needed",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(vendor + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_converter_is_kept_alone_with_its_licence(tmp_path: Path) -> None:
    version = runtime_version()
    toolkit = ensure_toolkit(tmp_path / "tools", fake_release(tmp_path / "r.tar.gz", version))
    kept = sorted(
        p.relative_to(toolkit.root).as_posix() for p in toolkit.root.rglob("*") if p.is_file()
    )
    assert kept == [
        ".complete",
        "LICENSE",
        "conversion/__init__.py",
        "convert_hf_to_gguf.py",
        "gguf-py/gguf/__init__.py",
    ]
    # Fetched once: a second call reuses it without a release.
    assert ensure_toolkit(tmp_path / "tools").root == toolkit.root


def test_a_wrong_archive_is_refused(tmp_path: Path) -> None:
    archive = fake_release(tmp_path / "other.tar.gz", "0.0.1")
    with pytest.raises(ConversionError, match="not the llama-cpp-python"):
        ensure_toolkit(tmp_path / "tools", archive)


def test_the_registry_keeps_models_by_name(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    model = RegisteredModel(name="m", kind="chat", path=tmp_path / "m.gguf", precision="q4_k_m")
    store.put(model)
    assert ModelStore(tmp_path).get("m") == model
    assert [m.name for m in store.all()] == ["m"]
    assert store.remove("m") == model and store.get("m") is None and store.remove("m") is None


def test_too_little_disk_is_refused_before_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    from privserve.convert import pipeline

    directory = write_checkpoint(tmp_path / "ckpt", {"architectures": ["LlamaForCausalLM"]})
    (directory / "model.safetensors").write_bytes(b"\0" * 2_000_000)  # a million f16 weights
    checkpoint = read_checkpoint(directory)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 1_000_000))
    with pytest.raises(ConversionError, match="not enough disk"):
        pipeline._check_disk(checkpoint, pipeline.precision_for(4, checkpoint), tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 10**9))
    pipeline._check_disk(checkpoint, pipeline.precision_for(4, checkpoint), tmp_path)


def test_the_serving_device_is_the_gpu_only_when_llama_cpp_can_offload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess

    from privserve.convert import device
    from privserve.engine.llama import offload

    smi = subprocess.CompletedProcess([], 0, stdout="NVIDIA A10, 11264\n", stderr="")
    monkeypatch.setattr(offload.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(offload.subprocess, "run", lambda *a, **k: smi)
    monkeypatch.setattr(device, "llama_offloads", lambda: True)
    gpu = device.serving_device()
    assert gpu.name == "GPU (NVIDIA A10)" and gpu.free_bytes == 11264 * 1024 * 1024
    monkeypatch.setattr(device, "llama_offloads", lambda: False)  # a CPU build of llama.cpp
    ram = device.serving_device()
    assert ram.name == "RAM" and ram.free_bytes > 0


def test_a_pre_tokenizer_is_named_by_its_split_pattern_and_the_architecture(
    tmp_path: Path,
) -> None:
    pattern = pretokenizers.KNOWN_PATTERNS["llama-bpe"]
    split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated"}
    (tmp_path / "tokenizer.json").write_text(
        json.dumps({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [split]}})
    )
    assert pretokenizers.identify(tmp_path) == "llama-bpe"
    assert pretokenizers.identify(tmp_path, "LlamaForCausalLM") == "llama-bpe"
    # GLM-4-0414 splits as Llama 3 does, under llama.cpp's own name, which adds no BOS.
    assert pretokenizers.identify(tmp_path, "Glm4ForCausalLM") == "glm4"
