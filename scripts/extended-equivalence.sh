#!/usr/bin/env bash
# The ignored long checks of the hardware crate, run on demand:
#
#   scripts/extended-equivalence.sh          hdl_equivalence_extended: 40 more random
#                                            configurations (20 plain, 20 saturating), each
#                                            engine = rust-hdl = Verilator (about 5 minutes on
#                                            a 2-core machine, Verilator builds cached)
#   scripts/extended-equivalence.sh --all    also the ignored resource measurements
#                                            (yosys: one lane, the link; several minutes more)
#
# Verilator builds go to $THERMO_VERILATOR_CACHE (default <tmp>/thermo-verilator).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p thermo-hdl --test equivalence -- --ignored --nocapture hdl_equivalence_extended
if [ "${1:-}" = "--all" ]; then
  cargo test --release -p thermo-hdl --test synth -- --ignored --nocapture
  cargo test --release -p thermo-hdl --test link_command -- --ignored --nocapture
fi
