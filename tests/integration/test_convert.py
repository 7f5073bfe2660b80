"""`privserve convert` end to end, per architecture: a tiny random checkpoint built here is
converted at 16, 8 and 4 bits; the files hold those types; llama.cpp reads the f16 file as
transformers reads the checkpoint (logits and tokens); the 4-bit file is served by name."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from privserve.config import LlamaConfig
from privserve.convert.pipeline import inspect
from privserve.convert.toolkit import ensure_toolkit
from privserve.engine.base import ModelSpec, PromptMessage
from privserve.engine.llama.model import LlamaModel
from tests.checkpoints import llama_family
from tests.checkpoints.compare import GgufModel
from tests.checkpoints.families import FAMILIES, Family
from tests.integration.cli import run_privserve
from tests.integration.server import start_server

pytestmark = pytest.mark.model

BITS = (16, 8, 4)
MIXED_TEXTS = [
    "The river opened the north gate on day 12.",
    "水是生命之源，河流穿过城市。",
    "  two  spaces,\ttab\nand newline  ",
    "Mixed 中文 and English 123",
    "Aesop's sop and eop stay text",  # ChatGLM's control words, as plain words
]


@dataclass(frozen=True)
class Converted:
    family: Family
    checkpoint: Path
    files: dict[int, Path]
    home: Path


@pytest.fixture(scope="session")
def convert_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PRIVSERVE_HOME for every conversion: the converter is fetched into it once."""
    return tmp_path_factory.mktemp("convert-home")


privserve = run_privserve


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda f: f.name)
def converted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, convert_home: Path
) -> Converted:
    family: Family = request.param
    checkpoint = family.build(tmp_path_factory.mktemp("checkpoints") / f"tiny-{family.name}")
    files = {}
    for bits in BITS:
        name = f"tiny-{family.name}-{bits}"
        done = privserve(
            convert_home, "convert", str(checkpoint), "--bits", str(bits), "--name", name
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Registered as {name}" in done.stdout
        files[bits] = convert_home / "models" / f"{name}.gguf"
    return Converted(family, checkpoint, files, convert_home)


def test_each_file_holds_its_precisions_tensor_types(converted: Converted) -> None:
    toolkit = ensure_toolkit(converted.home / "tools")
    types = {
        bits: set(inspect(toolkit, path)["tensor_types"]) for bits, path in converted.files.items()
    }
    # 16 bits keep the checkpoint's own half type: bf16 stays bf16.
    sixteen = "BF16" if "bfloat16" in (converted.checkpoint / "config.json").read_text() else "F16"
    assert sixteen in types[16] and types[16] <= {sixteen, "F32"}
    assert "Q8_0" in types[8] and types[8] <= {"Q8_0", "F32"}
    # Q4_K_M: most matrices Q4_K, the output and some attn_v/ffn_down Q6_K.
    assert {"Q4_K", "Q6_K"} <= types[4] and "F16" not in types[4]
    sizes = [converted.files[b].stat().st_size for b in BITS]
    assert sizes == sorted(sizes, reverse=True)


def test_llama_cpp_reads_the_f16_file_as_transformers_reads_the_checkpoint(
    converted: Converted,
) -> None:
    family = converted.family
    gguf = GgufModel(converted.files[16])
    try:
        for text in MIXED_TEXTS:
            assert gguf.tokenize(text) == family.original_tokens(
                converted.checkpoint, text, False
            ), text
        ids = family.original_tokens(converted.checkpoint, MIXED_TEXTS[0], False)
        ours, theirs = gguf.last_logits(ids), family.reference_logits(converted.checkpoint, ids)
    finally:
        gguf.close()
    assert int(np.argmax(ours)) == int(np.argmax(theirs))
    assert np.abs(ours - theirs).max() < 0.05  # f16 weights against f32 arithmetic


def test_the_4_bit_file_is_listed_and_served_with_its_chat_template(
    converted: Converted,
) -> None:
    listed = json.loads(privserve(converted.home, "models", "list", "--json").stdout)
    name = f"tiny-{converted.family.name}-4"
    [entry] = [m for m in listed if m["name"] == name]
    assert entry["precision"] == "q4_k_m" and entry["kind"] == "chat"
    assert entry["context_length"] == 512 and entry["chat_template"] == "embedded"
    server = start_server(
        converted.home,
        args=["--model", name, "--ctx-size", "512", "--parallel", "2", "--embedding-model", ""],
        env={"PRIVSERVE_API_KEY": "sk-test-convert"},
    )
    try:
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test-convert") as client:
            messages = [
                {"role": "user", "content": "Where is the river?"},
                {"role": "assistant", "content": "By the north gate."},
                # "sop" in a user's text must stay text, never ChatGLM's control token.
                {"role": "user", "content": "水在哪里？Aesop said sop."},
            ]
            reply = client.chat.completions.create(
                model=name,
                messages=messages,
                max_tokens=4,
                temperature=0,  # type: ignore[arg-type]
            )
    finally:
        server.stop()
    # The file's own template gives exactly the prompt the family's format makes.
    expected_prompt = converted.family.chat_prompt(converted.checkpoint, messages)
    model = LlamaModel(ModelSpec(model_id=name, path=converted.files[4]), LlamaConfig())
    assert model.render_chat([PromptMessage(m["role"], m["content"]) for m in messages]) == (
        expected_prompt
    )
    expected = converted.family.original_tokens(converted.checkpoint, expected_prompt, True)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(expected)
    assert reply.usage.completion_tokens >= 1
    if converted.family.opens_thinking:
        # The output starts inside the block the prompt opened: it is reasoning.
        message = reply.choices[0].message
        assert getattr(message, "reasoning_content", None), message
        assert reply.usage.completion_tokens_details is not None
        assert reply.usage.completion_tokens_details.reasoning_tokens >= 1


def test_one_server_serves_several_registered_models_each_with_its_engine(
    tmp_path_factory: pytest.TempPathFactory, convert_home: Path
) -> None:
    names = []
    for family in [f for f in FAMILIES if f.name in ("llama", "chatglm2")]:
        checkpoint = family.build(tmp_path_factory.mktemp("several") / f"{family.name}-ckpt")
        name = f"several-{family.name}"
        done = privserve(convert_home, "convert", str(checkpoint), "--bits", "4", "--name", name)
        assert done.returncode == 0, done.stdout + done.stderr
        names.append((family, checkpoint, name))
    args = [a for _, _, name in names for a in ("--model", name)]
    server = start_server(
        convert_home,
        args=[*args, "--ctx-size", "512", "--parallel", "1", "--embedding-model", ""],
        env={"PRIVSERVE_API_KEY": "sk-test-several"},
    )
    messages = [{"role": "user", "content": "Where is the river?"}]
    try:
        with openai.OpenAI(base_url=server.base_url, api_key="sk-test-several") as client:
            served = {m.id for m in client.models.list()}
            replies = {
                name: client.chat.completions.create(
                    model=name,
                    messages=messages,
                    max_tokens=2,  # type: ignore[arg-type]
                )
                for _, _, name in names
            }
        health = httpx.get(server.root_url + "/health").json()["models"]
        # FastGPT's entries for the converted models, from the same flags `serve` took.
        printed = privserve(
            convert_home,
            "fastgpt-config",
            "--format",
            "model-json",
            *args,
            "--ctx-size",
            "512",
            "--embedding-model",
            "",
            "--base-url",
            server.root_url,
            "--key",
            "sk-test-several",
        )
        assert printed.returncode == 0, printed.stderr
        entries = [e["metadata"] for e in json.loads(printed.stdout)]
        for meta in entries:
            reply = httpx.post(
                meta["requestUrl"],
                headers={"Authorization": f"Bearer {meta['requestAuth']}"},
                json={"model": meta["model"], "messages": messages, "max_tokens": 2},
                timeout=60,
            )
            assert reply.status_code == 200, reply.text
    finally:
        server.stop()
    assert [(m["type"], m["model"], m["maxContext"]) for m in entries] == [
        ("llm", name, 512) for _, _, name in names
    ]
    assert {name for _, _, name in names} <= served
    for family, checkpoint, name in names:
        usage = replies[name].usage
        expected = family.original_tokens(
            checkpoint, family.chat_prompt(checkpoint, messages), True
        )
        assert usage is not None and usage.prompt_tokens == len(expected), name
        assert health[name]["completed_requests"] == 1  # each model answered on its own engine


def test_models_add_show_and_remove_a_gguf_file(
    tmp_path_factory: pytest.TempPathFactory, convert_home: Path
) -> None:
    checkpoint = llama_family.llama(tmp_path_factory.mktemp("registry") / "llama-ckpt")
    done = privserve(convert_home, "convert", str(checkpoint), "--bits", "16", "--name", "reg")
    assert done.returncode == 0, done.stdout + done.stderr
    home, source = convert_home, convert_home / "models" / "reg.gguf"
    added = privserve(home, "models", "add", "hand-added", str(source))
    assert added.returncode == 0, added.stdout + added.stderr
    shown = privserve(home, "models", "show", "hand-added").stdout
    for line in ("kind: chat", "precision: f16", "context_length: 512", "architecture: llama"):
        assert line in shown, shown
    assert "chat_template: embedded" in shown
    assert privserve(home, "models", "remove", "hand-added").returncode == 0
    assert privserve(home, "models", "show", "hand-added").returncode == 1
    assert source.is_file()  # removing forgets; the file stays
    refused = privserve(home, "models", "add", "bad", str(checkpoint / "config.json"))
    assert refused.returncode == 1 and "error" in refused.stdout


def test_a_base_model_without_a_chat_template_serves_completions_and_says_how_to_chat(
    tmp_path_factory: pytest.TempPathFactory, convert_home: Path
) -> None:
    """No template in the checkpoint and none known for Llama: the model loads, completes
    text, and a chat request is a 400 naming --chat-template; nothing is guessed."""
    checkpoint = llama_family.llama_base(tmp_path_factory.mktemp("base") / "llama-base")
    done = privserve(convert_home, "convert", str(checkpoint), "--bits", "4", "--name", "base")
    assert done.returncode == 0, done.stdout + done.stderr
    server = start_server(
        convert_home,
        args=["--model", "base", "--ctx-size", "512", "--parallel", "2", "--embedding-model", ""],
        env={"PRIVSERVE_API_KEY": "sk-test-base"},
    )
    try:
        with openai.OpenAI(
            base_url=server.base_url, api_key="sk-test-base", max_retries=0
        ) as client:
            completion = client.completions.create(
                model="base", prompt="The river", max_tokens=4, temperature=0
            )
            assert completion.usage is not None and completion.usage.completion_tokens >= 1
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(
                    model="base", messages=[{"role": "user", "content": "hi"}], max_tokens=2
                )
            body = refused.value.body
            assert isinstance(body, dict) and "--chat-template" in body["message"]
            card = client.models.retrieve("base").model_dump()
            assert card["capabilities"] == ["completions"]
            assert "--chat-template" in card["description"]
    finally:
        server.stop()
