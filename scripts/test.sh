#!/usr/bin/env bash
# The test command: install what the tests need (Debian and PyPI packages), then run every test
# of the workspace in release mode (the engines and simulators are too slow in debug builds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --release --workspace "$@"
# The engines' fast paths use the widest vector instructions the CPU has (thermo_sim::isa); on a
# CPU with AVX-512 run the engine equivalence tests again on the AVX2 paths, and on the scalar
# ones, so every path is checked against the single-chain and checked updates wherever CI runs.
if [ $# -eq 0 ]; then
  for isa in avx2 scalar; do
    echo "== engine tests with THERMO_ISA=$isa"
    THERMO_ISA=$isa cargo test --release -p thermo-sim --test batch --test shift --test threads --test engines
  done
fi
