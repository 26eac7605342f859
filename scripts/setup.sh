#!/usr/bin/env bash
# Installs what Flavorbox's build and tests need on a fresh Debian 12 machine:
# the wasm32-wasip2 Rust target (guests are built from source), and the real
# services the end-to-end suites run against (Docker engine, CNCF distribution
# registry, htpasswd, skopeo). Idempotent: installs only what is missing.
# It starts no daemon; the test fixture (tests/src/services.rs) does that.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
else
    SUDO=(sudo)
fi

say() { echo "setup: $*"; }

# Rust target for the guest flavors.
if ! command -v rustup >/dev/null 2>&1; then
    say "rustup not found: install a Rust toolchain with rustup first" >&2
    exit 1
fi
if rustup target list --installed | grep -qx 'wasm32-wasip2'; then
    say "rust target wasm32-wasip2 already installed"
else
    say "adding rust target wasm32-wasip2"
    rustup target add wasm32-wasip2
fi

# Binaries the fixture and the tests run, with the Debian package of each.
# dockerd lives in /usr/sbin, which a non-root PATH may lack.
declare -A PACKAGE_OF=(
    [dockerd]=docker.io
    [docker-registry]=docker-registry
    [htpasswd]=apache2-utils
    [skopeo]=skopeo
)
missing=()
for binary in dockerd docker-registry htpasswd skopeo; do
    if command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ] || [ -x "/usr/bin/$binary" ]; then
        say "$binary present"
    else
        say "$binary missing (package ${PACKAGE_OF[$binary]})"
        missing+=("${PACKAGE_OF[$binary]}")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y "${missing[@]}"
else
    say "all system packages present"
fi
# cargo-fuzz, for the fuzz smoke run (scripts/fuzz.sh); installed into
# cargo's bin directory once.
if cargo fuzz --version >/dev/null 2>&1; then
    say "cargo-fuzz present"
else
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
# schemathesis, pinned, in a virtualenv under the cache: the server suite
# runs it against the server's /openapi.json.
VENV="${FLAVORBOX_VENV:-$HOME/.cache/flavorbox/venv}"
SCHEMATHESIS_VERSION=4.32.5
if [ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/pip" show schemathesis 2>/dev/null | grep -qx "Version: $SCHEMATHESIS_VERSION"; then
    say "schemathesis $SCHEMATHESIS_VERSION present in $VENV"
else
    say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    PIP_CACHE_DIR="$HOME/.cache/flavorbox/pip" "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
# zenml, pinned, with the `local` extra (its own SQLite store, no server), in
# a virtualenv of its own: the ZenML suite (tests/tests/zenml.rs) runs ZenML's
# push path through integrations/zenml against the loopback registry.
ZENML_VENV="${FLAVORBOX_ZENML_VENV:-$HOME/.cache/flavorbox/zenml-venv}"
ZENML_VERSION=0.98.0
if [ -x "$ZENML_VENV/bin/python" ] && "$ZENML_VENV/bin/pip" show zenml 2>/dev/null | grep -qx "Version: $ZENML_VERSION"; then
    say "zenml $ZENML_VERSION present in $ZENML_VENV"
else
    say "installing zenml[local] $ZENML_VERSION into $ZENML_VENV"
    python3 -m venv "$ZENML_VENV"
    PIP_CACHE_DIR="$HOME/.cache/flavorbox/pip" "$ZENML_VENV/bin/pip" install --quiet "zenml[local]==$ZENML_VERSION"
fi
say "done"
