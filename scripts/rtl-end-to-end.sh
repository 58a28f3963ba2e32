#!/usr/bin/env bash
# The digits substrate (models/digits-unet-rank8.substrate.json: 416 units, 16 lanes, two rank-8
# buses) end to end through its RTL, on demand (not in `cargo test`: the cold Verilator build of
# this design takes about 4 minutes, and the simulated board runs about 50-100 times slower than
# a ULX3S at 25 MHz):
#
#   1. `thermo emulate --backend verilator` + `thermo infer` (the ignored test
#      emulate_verilator_digits_then_infer_without_time_outs): four inferences, no time-out, no
#      retransmission, results bit for bit Fixed::run_codes;
#   2. `thermo sample-substrate --engine board --port` against the same RTL board: a grid of
#      16 samples (8 noise levels), written to docs/results/digits-rtl-verilator-samples.png and
#      checked byte for byte against the grid of `--engine fixed` (the fixed-point engine).
#
# About 10 minutes on a 2-core machine with the Verilator build cached ($THERMO_VERILATOR_CACHE,
# default <tmp>/thermo-verilator), 14 without.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p thermo-cli
cargo test --release -p thermo-cli --test cli_link -- --ignored --nocapture \
  emulate_verilator_digits_then_infer_without_time_outs

model=models/digits-unet-rank8.substrate.json
dir=$(mktemp -d)
./target/release/thermo emulate --config "$model" --backend verilator --clock-mhz 25 \
  --baud 3000000 --link "$dir/board" --idle-exit 30 > /dev/null &
emu=$!
trap 'kill "$emu" 2> /dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 1800); do
  [ -e "$dir/board" ] && break
  kill -0 "$emu" || { echo "thermo emulate exited" >&2; exit 1; }
  sleep 1
done
grid=(--substrate "$model" --samples 16 --steps 8 --seed 1)
./target/release/thermo sample-substrate "${grid[@]}" --engine board --port "$dir/board" \
  --png docs/results/digits-rtl-verilator-samples.png --npy "$dir/rtl.npy"
./target/release/thermo sample-substrate "${grid[@]}" --engine fixed \
  --png "$dir/fixed.png" --npy "$dir/fixed.npy"
cmp "$dir/rtl.npy" "$dir/fixed.npy"
cmp "$dir/fixed.png" docs/results/digits-rtl-verilator-samples.png
echo "RTL sample grid equals the fixed engine's byte for byte: docs/results/digits-rtl-verilator-samples.png"
