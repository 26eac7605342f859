#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing
# (scripts/setup.sh), then runs every test. The push tests start their own
# Docker daemon (unless one is reachable) and registries on 127.0.0.1, and
# stop them when they finish.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --all-targets "$@"
