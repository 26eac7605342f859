#!/usr/bin/env bash
# wkg (crates.io, bytecodealliance/wasm-pkg-tools), pinned, for the OCI
# interop suite (tests/tests/all/oci.rs): installed once into the tools cache,
# so reruns and later CI runs on this machine find it and build nothing.
# A debug build without debug info: it only moves a few small artifacts in
# the tests, and it compiles in about half the time of a release build.
#
# It is the longest install on a fresh machine (about 10 minutes of
# compiling), so .ci/run starts it in the background before anything else
# and scripts/setup.sh calls it again: a lock makes the second call wait for
# the first and then find wkg installed.
set -euo pipefail
WKG_VERSION=0.16.1
TOOLS="$HOME/.cache/flavorbox/tools"
say() { echo "setup: $*"; }
mkdir -p "$TOOLS"
exec 9>"$TOOLS/.install-wkg.lock"
flock 9
if [ -x "$TOOLS/bin/wkg" ] && [ "$("$TOOLS/bin/wkg" --version 2>/dev/null)" = "wkg $WKG_VERSION" ]; then
    say "wkg $WKG_VERSION present in $TOOLS"
else
    say "installing wkg $WKG_VERSION into $TOOLS"
    (unset CARGO_TARGET_DIR; CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=0 cargo install wkg --version "$WKG_VERSION" \
        --locked --debug --root "$TOOLS" --quiet)
fi
