"""Subprocess entry: `python -m privserve.convert.run_converter TOOLKIT [converter args]`.

Runs llama.cpp's convert_hf_to_gguf.py from the toolkit, in its own process so a
conversion's memory and any crash stay out of the caller.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    root = Path(argv[1])
    sys.path[:0] = [str(root), str(root / "gguf-py")]
    script = root / "convert_hf_to_gguf.py"
    sys.argv = [str(script), *argv[2:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
