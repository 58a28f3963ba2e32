#!/usr/bin/env bash
# The clamped digits substrate (models/digits-clamped-rank8.json: the application's denoiser,
# 416 clamp units, 16 lanes; its engine description models/digits-clamped-rank8.json.sim.json)
# sampled through its RTL, on demand (not in `cargo test`: the cold Verilator build of this
# design takes about 4 minutes and the simulated board runs far slower than a ULX3S):
#
#   `thermo emulate --backend verilator` (the board's RTL at 25 MHz / 3 Mbaud behind a
#   pseudo-terminal) and `thermo sample-substrate --engine board --port` against it: every
#   denoiser call a RUN with RUN_RHO (the readout sums rho(x)), the head applied on the host;
#   a grid of 16 samples (8 noise levels, the substrate's calibrated 60 + 200 sweeps per call)
#   written to docs/results/digits-clamped-rtl-verilator-samples.png and checked byte for byte
#   (samples and PNG) against `--engine fixed` (the fixed-point engine).
#
# Verilator builds are cached in $THERMO_VERILATOR_CACHE (default <tmp>/thermo-verilator).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p thermo-cli

sub=models/digits-clamped-rank8.json
png=docs/results/digits-clamped-rtl-verilator-samples.png
dir=$(mktemp -d)
start=$(date +%s)
./target/release/thermo emulate --config "$sub.sim.json" --backend verilator --clock-mhz 25 \
  --baud 3000000 --link "$dir/board" --idle-exit 30 > "$dir/emulate.log" &
emu=$!
trap 'kill "$emu" 2> /dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 1800); do
  [ -e "$dir/board" ] && break
  kill -0 "$emu" || { echo "thermo emulate exited" >&2; cat "$dir/emulate.log" >&2; exit 1; }
  sleep 1
done
echo "RTL board up after $(( $(date +%s) - start )) s (Verilator build included)"
grid=(--substrate "$sub" --samples 16 --steps 8 --seed 1)
t0=$(date +%s)
./target/release/thermo sample-substrate "${grid[@]}" --engine board --port "$dir/board" \
  --png "$png" --npy "$dir/rtl.npy"
echo "sampling through the RTL took $(( $(date +%s) - t0 )) s"
./target/release/thermo sample-substrate "${grid[@]}" --engine fixed \
  --png "$dir/fixed.png" --npy "$dir/fixed.npy"
cmp "$dir/rtl.npy" "$dir/fixed.npy"
cmp "$dir/fixed.png" "$png"
echo "RTL sample grid of the clamped substrate equals the fixed engine's byte for byte: $png"
