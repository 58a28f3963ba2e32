#!/usr/bin/env bash
# The EqProp figures of docs/eqprop.md: estimator slopes and protocol cosines (thermo
# eqprop-check) and training runs (thermo train-eqprop) on held-out task seeds 11-13 (the
# command's defaults were chosen on task seed 3). Writes under target/eqprop-figures/ and prints
# one summary line per run; copies the plots shown in docs/eqprop.md to docs/results/. About a
# minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p thermo-cli
T=./target/release/thermo
OUT=target/eqprop-figures
rm -rf "$OUT"; mkdir -p "$OUT"
$T example --seed 7 -o "$OUT/random64-s7.toml" 2>/dev/null

echo "== eqprop-check: shipped example (examples/three-module.toml)"
$T eqprop-check --out "$OUT/check-shipped"
echo "== eqprop-check: shipped example, teacher biases also perturbed (a larger gradient)"
$T eqprop-check --bias-perturbation 0.3 --out "$OUT/check-shipped-bias"
echo "== eqprop-check: random 64-unit substrate with a rank-2 bus (thermo example --seed 7)"
$T eqprop-check --config "$OUT/random64-s7.toml" --out "$OUT/check-random64"

summary() { grep -E "train loss|reference =|deployed|refused" "$1" | sed 's/^/    /'; }
for seed in 11 12 13; do
  echo "== task seed $seed: EqProp on the fixed engine (defaults: bias nudge, symmetric, same key, 100+400 sweeps, Q1.14 stochastic)"
  $T train-eqprop --task-seed $seed --out "$OUT/fixed-$seed" > "$OUT/fixed-$seed.log"; summary "$OUT/fixed-$seed.log"
  echo "== task seed $seed: exact gradient, Q1.14 codes, stochastic rounding"
  $T train-eqprop --task-seed $seed --engine exact-gradient --out "$OUT/q14-$seed" > "$OUT/q14-$seed.log"; summary "$OUT/q14-$seed.log"
  for r in "nearest 10" "stochastic 10"; do
    set -- $r
    echo "== task seed $seed: exact gradient, Q1.$2 codes, $1 rounding, couplings and buses only, lr 0.05 constant"
    $T train-eqprop --task-seed $seed --engine exact-gradient --rounding $1 --coupling-frac $2 \
      --groups couplings,buses --lr 0.05 --lr-final 1 --batch 8 --out "$OUT/q$2-$1-$seed" > "$OUT/q$2-$1-$seed.log"
    summary "$OUT/q$2-$1-$seed.log"
  done
done
for m in 1 2 3; do
  echo "== mismatch seed $m (gain 5%, coupling 10%), task seed 11: EqProp on the mismatched substrate"
  $T train-eqprop --task-seed 11 --mismatch-gain 0.05 --mismatch-coupling 0.1 --mismatch-seed $m \
    --out "$OUT/mismatch-$m" > "$OUT/mismatch-$m.log"; summary "$OUT/mismatch-$m.log"
done
cp "$OUT/check-shipped/eqprop-slopes.png" docs/results/eqprop-slopes.png
cp "$OUT/check-shipped/eqprop-cosines.png" docs/results/eqprop-cosines.png
cp "$OUT/check-shipped-bias/eqprop-cosines.png" docs/results/eqprop-cosines-bias-task.png
cp "$OUT/fixed-11/curve.png" docs/results/eqprop-train.png
cp "$OUT/mismatch-1/curve.png" docs/results/eqprop-train-mismatch.png
echo "plots copied to docs/results/eqprop-*.png"
