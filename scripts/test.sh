#!/usr/bin/env bash
# The test command: install what the tests need (Debian and PyPI packages), then run every test
# of the workspace in release mode (the engines and simulators are too slow in debug builds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --release --workspace "$@"
