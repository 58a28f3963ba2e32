#!/usr/bin/env bash
# The clamped-substrate EqProp figures of docs/eqprop.md §6: the EqProp gradient against the
# implicit-differentiation gradient (thermo check-substrate-eqprop) on the rank-8 compile and on
# the committed trained substrate, then training by both gradients from the same rank-8 compile
# with the same steps (300 and 1,000), the test-split MSE (thermo eval) and sample quality
# (thermo sample-quality). Writes under target/clamped-eqprop-figures/. About 8 minutes on 2
# shared cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p thermo-cli
T=./target/release/thermo
OUT=target/clamped-eqprop-figures
rm -rf "$OUT"; mkdir -p "$OUT"
$T compile --unet models/digits-unet.safetensors --rank 8 --out "$OUT/start.json" > /dev/null

echo "== EqProp vs implicit gradient: rank-8 compile"
$T check-substrate-eqprop --substrate "$OUT/start.json" --json "$OUT/check-start.json"
echo "== EqProp vs implicit gradient: EDM-trained substrate (pixel path, decoder drive)"
$T check-substrate-eqprop --substrate models/digits-clamped-rank8-edm.json --json "$OUT/check-trained.json"

for run in 300:50 1000:100; do
  steps=${run%:*}; every=${run#*:}
  for method in implicit eqprop; do
    echo "== $method, $steps steps from the rank-8 compile"
    $T train-substrate --substrate "$OUT/start.json" --out "$OUT/$method-$steps.json" --steps $steps \
      --val-every $every --method $method > "$OUT/$method-$steps.log"
    grep -E "^step +$steps:|kept" "$OUT/$method-$steps.log" | sed 's/^/    /'
    $T eval --substrate "$OUT/$method-$steps.json" --sigmas 0.5,1 | grep -E "^\| (0.5|1) " | sed 's/^/    /'
  done
  $T sample-quality --unet models/digits-unet.safetensors --substrate "$OUT/start.json" \
    --substrate "$OUT/implicit-$steps.json" --substrate "$OUT/eqprop-$steps.json" --seeds 3 --n 256 \
    --json "$OUT/sample-quality-$steps.json" | grep -E "mean ± sd"
done
