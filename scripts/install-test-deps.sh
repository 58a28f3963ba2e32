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
if [ ${#py_need[@]} -gt 0 ]; then
  echo "installing Python packages: ${py_need[*]}"
  python3 -m pip install -q --disable-pip-version-check "${py_need[@]}"
fi
