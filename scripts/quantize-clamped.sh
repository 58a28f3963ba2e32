#!/usr/bin/env bash
# Quantisation of a clamped substrate on the bit-exact fixed engine: compile at each (coupling
# bits, state bits), evaluate the fixed engine on the first N test images at sigma 0.5 and 1 and
# print a Markdown table of MSE (and its ratio to the exact float fixed point), dec0 R^2 against
# the U-Net and saturations. With a third argument `shifts` every compile gives each module a
# state shift from its own range (`thermo compile --state-shifts`). Usage:
#   scripts/quantize-clamped.sh [RANK] [N] [shifts] > docs/results/quantize-clamped-RANK[-shifts].md
set -euo pipefail
cd "$(dirname "$0")/.."
rank=${1:-dense}
n=${2:-64}
shifts=${3:-}
flag=()
if [ "$shifts" = shifts ]; then
  flag=(--state-shifts)
elif [ -n "$shifts" ]; then
  echo "third argument: 'shifts' or nothing, got '$shifts'" >&2
  exit 2
fi
bin=target/release/thermo
cargo build --release -q -p thermo-cli
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$bin compile --unet models/digits-unet.safetensors --rank "$rank" --out "$tmp/ref.json" >/dev/null
exact=$($bin eval --substrate "$tmp/ref.json" --engine exact --sigmas 0.5,1 --inputs "$n")
e05=$(echo "$exact" | awk -F'|' '$2 ~ /^ 0.5 /{print $3}' | tr -d ' ')
e1=$(echo "$exact" | awk -F'|' '$2 ~ /^ 1 /{print $3}' | tr -d ' ')
echo "Clamp compile ($rank skips) of models/digits-unet.safetensors on the fixed engine, first $n test images;"
echo "exact float fixed point: MSE $e05 (sigma 0.5), $e1 (sigma 1). Command: \`scripts/quantize-clamped.sh $rank $n${shifts:+ $shifts}\`."
if [ -n "$shifts" ]; then
  echo "Each module keeps its states with a state shift chosen from its own range (\`thermo compile --state-shifts\`; the shifts column lists enc0 .. dec0)."
fi
echo
echo "| coupling bits | state bits | state format | shifts | MSE sigma 0.5 (x exact) | MSE sigma 1 (x exact) | dec0 R^2 (0.5 / 1) | saturations |"
echo "|---|---|---|---|---|---|---|---|"
for cb in 16 12 10 8; do
  for sb in 16 14 12 10; do
    $bin compile --unet models/digits-unet.safetensors --rank "$rank" --coupling-bits "$cb" \
        --state-bits "$sb" "${flag[@]}" --out "$tmp/q.json" > "$tmp/c.txt"
    fmt=$(grep -o 'states Q[-0-9.]*' "$tmp/c.txt" | head -1 | cut -d' ' -f2)
    ks=$(python3 -c 'import json,sys; print(" ".join(str(m.get("shift", 0)) for m in json.load(open(sys.argv[1]))["modules"]))' "$tmp/q.json.sim.json")
    out=$($bin eval --substrate "$tmp/q.json" --engine fixed --sigmas 0.5,1 --inputs "$n")
    r05=$(echo "$out" | awk -F'|' '$2 ~ /^ 0.5 /')
    r1=$(echo "$out" | awk -F'|' '$2 ~ /^ 1 /')
    m05=$(echo "$r05" | cut -d'|' -f3 | tr -d ' ')
    m1=$(echo "$r1" | cut -d'|' -f3 | tr -d ' ')
    q05=$(echo "$r05" | cut -d'|' -f9 | cut -d/ -f1 | tr -d ' ')
    q1=$(echo "$r1" | cut -d'|' -f9 | cut -d/ -f1 | tr -d ' ')
    s=$(( $(echo "$r05" | cut -d'|' -f10 | tr -d ' ') + $(echo "$r1" | cut -d'|' -f10 | tr -d ' ') ))
    printf '| %s | %s | %s | %s | %s (%.2f) | %s (%.2f) | %s / %s | %s |\n' "$cb" "$sb" "$fmt" "$ks" \
        "$m05" "$(awk -v a="$m05" -v b="$e05" 'BEGIN{print a/b}')" \
        "$m1" "$(awk -v a="$m1" -v b="$e1" 'BEGIN{print a/b}')" "$q05" "$q1" "$s"
  done
done
