#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/): `scripts/fuzz.sh [SECONDS] [TARGET...]`
# runs each target (default: all) for SECONDS (default 10) and fails on a
# crash. The corpus of `load` is seeded with the built-in flavors built by
# the main build (run `cargo build` or the tests first). Crashes land in
# fuzz/artifacts/<target>/; reproduce with `cargo fuzz run <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(reference config load)
fi
export RUSTC_BOOTSTRAP=1
main_target="${FLAVORBOX_MAIN_TARGET_DIR:-${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/flavorbox/target}}"
# Instrumented code differs from the main build's: its own target dir, kept
# outside the clone so repeated runs are warm.
export CARGO_TARGET_DIR="${FLAVORBOX_FUZZ_TARGET_DIR:-${HOME:-/root}/.cache/flavorbox/fuzz-target}"

mkdir -p fuzz/corpus/load fuzz/corpus/reference fuzz/corpus/config
find "$main_target" -path '*/build/flavorbox-*/out/*.wasm' -exec cp -f {} fuzz/corpus/load/ \; 2>/dev/null || true
printf 'localhost:5000\nlocalhost:5000/team/app:1' > fuzz/corpus/reference/seed-1
printf 'docker.io/library\nubuntu:22.04' > fuzz/corpus/reference/seed-2
printf '{"uri":"registry.io/team/","default_repository":"x"}' > fuzz/corpus/config/seed-1

for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s"
    # No sanitizer: the host is Rust (memory-safe outside wasmtime's own
    # unsafe code), and ASan's shadow memory does not mix with the pooling
    # allocator's large reservations; libFuzzer still catches every panic,
    # abort and timeout.
    cargo fuzz run --fuzz-dir fuzz --sanitizer none "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1
done
