#!/usr/bin/env bash
# The main job end to end on a fresh machine: install what is missing, build
# Flavorbox (guests included), start a Docker engine (unless one answers) and
# a registry on 127.0.0.1, make a small image locally, register a registry
# component, push the image through the `default` flavor, and show the digest
# (checked against the registry itself with skopeo); then the same through a
# local `flavorbox serve`, with `flavorbox login` making the CLI its client.
#
# Everything it starts is stopped when it ends. State goes to a temporary
# FLAVORBOX_HOME unless you set one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# Only what this job uses: no test tool.
bash scripts/setup.sh --main
echo "== building flavorbox (the built-in flavors are built from guest-flavors/)"
cargo build -p flavorbox --bin flavorbox
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
FLAVORBOX="$TARGET_DIR/debug/flavorbox"

WORK=$(mktemp -d /tmp/fbx-demo-XXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

export FLAVORBOX_HOME="${FLAVORBOX_HOME:-$WORK/home}"

# A Docker engine: the one DOCKER_HOST or the default socket names, else our own.
if ! docker info >/dev/null 2>&1; then
    echo "== starting dockerd (vfs storage, no iptables, no bridge) in $WORK"
    mkdir -p "$WORK/docker"
    echo '{}' >"$WORK/docker/daemon.json"
    PATH="$PATH:/usr/sbin" dockerd --config-file "$WORK/docker/daemon.json" \
        --storage-driver=vfs --iptables=false --bridge=none \
        --data-root "$WORK/docker/data" --exec-root "$WORK/docker/exec" \
        --pidfile "$WORK/docker/docker.pid" -H "unix://$WORK/docker/docker.sock" \
        >"$WORK/docker/dockerd.log" 2>&1 &
    PIDS+=($!)
    export DOCKER_HOST="unix://$WORK/docker/docker.sock"
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 "$WORK/docker/dockerd.log"; exit 1; }
fi

# A registry on a free loopback port.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REGISTRY="127.0.0.1:$PORT"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REGISTRY
EOF
echo "== starting docker-registry on $REGISTRY"
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 30); do curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.5; done

IMAGE="$REGISTRY/demo/hello:1"
echo "== making $IMAGE locally (docker import of a small tarball; nothing is pulled)"
mkdir -p "$WORK/rootfs"
echo "hello from flavorbox $(date -u +%FT%TZ)" >"$WORK/rootfs/hello.txt"
tar -C "$WORK/rootfs" -cf - . | docker import - "$IMAGE" >/dev/null

set -x
"$FLAVORBOX" flavor list
"$FLAVORBOX" registry register demo --flavor default --uri "$REGISTRY"
"$FLAVORBOX" registry describe demo
"$FLAVORBOX" push "$IMAGE" --registry demo --dry-run
"$FLAVORBOX" push "$IMAGE" --registry demo
"$FLAVORBOX" push "$IMAGE" --registry demo --json | tee "$WORK/push.json"
set +x
DIGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$WORK/push.json")
ON_REGISTRY=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$IMAGE")
echo "== flavorbox reported $DIGEST; the registry serves $ON_REGISTRY"
[ "$DIGEST" = "$ON_REGISTRY" ] || { echo "digest mismatch" >&2; exit 1; }
echo "== done: $IMAGE pushed, digest $DIGEST"

# The same workflow against a multi-tenant server: `flavorbox serve` on a
# loopback port (the demo registry on 127.0.0.1 needs an egress allowlist
# entry), a tenant made with the admin token, then the CLI logs in and its
# `registry` and `push` commands go to the server. The push uploads the image
# as a `docker save` tarball; the server pushes it with its own engine.
echo "== starting flavorbox serve (state in $WORK/server-home)"
head -c 32 /dev/urandom >"$WORK/secrets.key"
chmod 600 "$WORK/secrets.key"
ADMIN_TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
FLAVORBOX_ADMIN_TOKEN="$ADMIN_TOKEN" FLAVORBOX_SECRETS_KEY_FILE="$WORK/secrets.key" \
    "$FLAVORBOX" --home "$WORK/server-home" serve --listen 127.0.0.1:0 \
    --allow-registry "$REGISTRY" >"$WORK/server.out" 2>"$WORK/server.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '^listening on ' "$WORK/server.out" 2>/dev/null && break; sleep 0.2; done
SERVER=$(sed -n 's/^listening on //p' "$WORK/server.out")
for _ in $(seq 1 100); do curl -fsS "$SERVER/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
TOKEN=$(curl -fsS -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"name":"demo"}' "$SERVER/v1/tenants" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
REMOTE_IMAGE="$REGISTRY/demo/remote:1"
echo "hello from a flavorbox server $(date -u +%FT%TZ)" >"$WORK/rootfs/hello.txt"
tar -C "$WORK/rootfs" -cf - . | docker import - "$REMOTE_IMAGE" >/dev/null

set -x
echo "$TOKEN" | "$FLAVORBOX" login "$SERVER" --token-stdin
"$FLAVORBOX" registry register remote --flavor default --uri "$REGISTRY"
"$FLAVORBOX" registry list
"$FLAVORBOX" push "$REMOTE_IMAGE" --registry remote --json | tee "$WORK/remote.json"
"$FLAVORBOX" logout
set +x
DIGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$WORK/remote.json")
ON_REGISTRY=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REMOTE_IMAGE")
echo "== the server reported $DIGEST; the registry serves $ON_REGISTRY"
[ "$DIGEST" = "$ON_REGISTRY" ] || { echo "digest mismatch" >&2; exit 1; }
echo "== done: $REMOTE_IMAGE pushed through the server, digest $DIGEST"
