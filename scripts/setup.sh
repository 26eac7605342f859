#!/usr/bin/env bash
# Installs what Flavorbox's build and tests need on a fresh Debian 12 machine:
# the wasm32-wasip2 Rust target (guests are built from source), and the real
# services the end-to-end suites run against (Docker engine, CNCF distribution
# registry, htpasswd, skopeo). Idempotent: installs only what is missing.
# It starts no daemon; the test fixture (tests/src/services.rs) does that.
#
#   scripts/setup.sh          everything the test suite needs
#   scripts/setup.sh --main   only what the main job (scripts/demo.sh) uses:
#                             the Rust target and the system packages; no
#                             test tool (cargo-fuzz, wkg, schemathesis,
#                             zenml, componentize-py/js)
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
    [openssl]=openssl
    [initdb]=postgresql
    [haproxy]=haproxy
)
missing=()
# initdb lives in /usr/lib/postgresql/N/bin (the replica tests' private server).
for binary in dockerd docker-registry htpasswd skopeo openssl initdb haproxy; do
    if command -v "$binary" >/dev/null 2>&1 || [ -x "/usr/sbin/$binary" ] || [ -x "/usr/bin/$binary" ] \
        || compgen -G "/usr/lib/postgresql/*/bin/$binary" >/dev/null; then
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
if [ "${1:-}" = --main ]; then
    say "done (the main job's needs; the test command installs the test tools)"
    exit 0
fi
# cargo-fuzz, for the fuzz smoke run (scripts/fuzz.sh); installed into
# cargo's bin directory once.
if cargo fuzz --version >/dev/null 2>&1; then
    say "cargo-fuzz present"
else
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
# wkg, for the OCI interop suite: scripts/install-wkg.sh (CI starts it early,
# in the background, and this waits for it).
if [ "${FLAVORBOX_SETUP_SKIP_WKG:-}" = 1 ]; then
    say "wkg: left to the install already running (scripts/install-wkg.sh)"
else
    bash "$(dirname "$0")/install-wkg.sh"
fi
# Installs pinned PyPI package PACKAGE==VERSION (with EXTRAS, e.g. `[local]`)
# into the virtualenv VENV, unless that version is already there.
pip_venv() {
    local venv=$1 package=$2 version=$3 extras=${4:-}
    # sed reads all of `pip show` (a `grep -q` that quits at the match
    # would kill pip with SIGPIPE, fail the pipeline and reinstall each run).
    if [ -x "$venv/bin/python" ] &&
        [ "$("$venv/bin/pip" show "$package" 2>/dev/null | sed -n 's/^Version: //p')" = "$version" ]; then
        say "$package $version present in $venv"
    else
        say "installing $package$extras $version into $venv"
        python3 -m venv "$venv"
        PIP_CACHE_DIR="$HOME/.cache/flavorbox/pip" "$venv/bin/pip" install --quiet "$package$extras==$version"
    fi
}
# schemathesis, in a virtualenv under the cache: the server suite runs it
# against the server's /openapi.json.
pip_venv "${FLAVORBOX_VENV:-$HOME/.cache/flavorbox/venv}" schemathesis 4.32.5
# zenml with the `local` extra (its own SQLite store, no server), in a
# virtualenv of its own: the ZenML suite (tests/tests/all/zenml.rs) runs ZenML's
# push path through integrations/zenml against the loopback registry.
pip_venv "${FLAVORBOX_ZENML_VENV:-$HOME/.cache/flavorbox/zenml-venv}" zenml 0.98.0 "[local]"
# The integration's build backend, beside ZenML: the suite builds the
# `flavorbox_zenml` wheel offline (--no-build-isolation) into a temp dir.
pip_venv "${FLAVORBOX_ZENML_VENV:-$HOME/.cache/flavorbox/zenml-venv}" hatchling 1.33.0
# pytest, beside ZenML: the integration's own tests (integrations/zenml/tests),
# run by the ZenML suite against the real CLI, server, registry and engine.
pip_venv "${FLAVORBOX_ZENML_VENV:-$HOME/.cache/flavorbox/zenml-venv}" pytest 9.0.2
# moto's S3 server, in a virtualenv of its own: the replica suite
# (tests/tests/all/replicas.rs) shares uploads between replicas through it.
pip_venv "$HOME/.cache/flavorbox/moto-venv" moto 5.2.6 "[server]"
# componentize-py, in a virtualenv of its own: `flavorbox flavor build` and
# the suites build Python flavors with it (tests/src/polyglot.rs).
pip_venv "$HOME/.cache/flavorbox/componentize-py-venv" componentize-py 0.25.1
# componentize-js into a local npm prefix, for JavaScript flavors. It runs on
# the machine's Node.js (20 here).
componentize_js_version=0.23.0
npm_prefix="$HOME/.cache/flavorbox/npm"
npm_package="$npm_prefix/node_modules/@bytecodealliance/componentize-js/package.json"
if ! command -v npm >/dev/null 2>&1; then
    say "npm missing: installing Debian's nodejs and npm"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
fi
if [ -f "$npm_package" ] &&
    [ "$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$npm_package" | head -n 1)" = "$componentize_js_version" ]; then
    say "componentize-js $componentize_js_version present in $npm_prefix"
else
    say "installing @bytecodealliance/componentize-js $componentize_js_version into $npm_prefix"
    mkdir -p "$npm_prefix"
    npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error \
        "@bytecodealliance/componentize-js@$componentize_js_version"
fi
say "done"
