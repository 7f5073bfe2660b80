"""Subprocess entry: `python -m privserve.convert.run_quantize SRC DST TYPE THREADS`.

llama.cpp's quantizer (`llama_model_quantize`) writes the K-quants the converter cannot.
"""

from __future__ import annotations

import sys

import llama_cpp

FILE_TYPES = {
    "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
}


def main(argv: list[str]) -> int:
    source, target, kind, threads = argv[1], argv[2], argv[3], int(argv[4])
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[kind]
    params.nthread = threads
    return int(llama_cpp.llama_model_quantize(source.encode(), target.encode(), params))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
