"""Subprocess entry: `python -m privserve.convert.run_converter TOOLKIT [converter args]`.

Runs llama.cpp's convert_hf_to_gguf.py from the toolkit, in its own process so a
conversion's memory and any crash stay out of the caller, with privserve's additions
installed first: vocabularies and fixes for what the converter gets wrong or refuses.
"""

from __future__ import annotations

import logging
import runpy
import sys
from pathlib import Path
from typing import Any

from privserve.convert import chatglm, pretokenizers

logger = logging.getLogger("privserve.convert")


def install_additions() -> None:
    from conversion.base import TextModel  # type: ignore[import-not-found]  # the toolkit
    from conversion.chatglm import ChatGLMModel  # type: ignore[import-not-found]

    recognise = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return str(recognise(self, tokenizer))
        except NotImplementedError:
            architecture = (self.hparams.get("architectures") or [""])[0]
            named = pretokenizers.identify(Path(self.dir_model), architecture)
            if named is None:
                raise
            logger.warning("pre-tokenizer recognised by its split pattern: %s", named)
            return named

    TextModel.get_vocab_base_pre = get_vocab_base_pre

    glm_vocab = ChatGLMModel.set_vocab

    def set_vocab(self: Any) -> None:
        if chatglm.uses_sentencepiece(Path(self.dir_model)):
            chatglm.set_vocab(self)  # ChatGLM2 and ChatGLM3
        else:
            glm_vocab(self)  # GLM-4's BPE vocabulary: the converter's own

    ChatGLMModel.set_vocab = set_vocab

    glm_parameters = ChatGLMModel.set_gguf_parameters

    def set_gguf_parameters(self: Any) -> None:
        # GLM-4's -hf configs call the context max_position_embeddings; without seq_length
        # the converter would write the hidden size as the context length.
        if "seq_length" not in self.hparams and "max_position_embeddings" in self.hparams:
            self.hparams["seq_length"] = self.hparams["max_position_embeddings"]
        glm_parameters(self)

    ChatGLMModel.set_gguf_parameters = set_gguf_parameters


def main(argv: list[str]) -> None:
    root = Path(argv[1])
    sys.path[:0] = [str(root), str(root / "gguf-py")]
    install_additions()
    script = root / "convert_hf_to_gguf.py"
    sys.argv = [str(script), *argv[2:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
