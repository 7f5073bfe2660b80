"""Subprocess entry: `python -m privserve.convert.run_inspect TOOLKIT FILE` prints, as JSON,
a GGUF file's tensor types (with counts) and its scalar metadata, read with gguf-py."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(Path(argv[1]) / "gguf-py"))
    import gguf  # type: ignore[import-not-found]  # llama.cpp's gguf-py, from the toolkit

    reader = gguf.GGUFReader(argv[2])
    types = Counter(gguf.GGMLQuantizationType(t.tensor_type).name for t in reader.tensors)
    metadata: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if name.startswith("tokenizer.ggml.") and name != "tokenizer.ggml.model":
            continue  # vocabularies are long; the caller needs scalars
        try:
            value = field.contents()
        except Exception:  # a field gguf-py cannot render is left out, not fatal
            continue
        if isinstance(value, str | int | float | bool):
            metadata[name] = value
    parameters = sum(int(t.n_elements) for t in reader.tensors)
    json.dump(
        {"tensor_types": dict(types), "metadata": metadata, "parameters": parameters}, sys.stdout
    )


if __name__ == "__main__":
    main(sys.argv)
