#!/usr/bin/env bash
# Installs the Debian packages the build links against, only if one is missing; and the headless
# browser the `serve` page test drives (chromium, chromium-driver, python3-selenium; the test skips
# without them, and LLMFT_NO_BROWSER=1 skips it on purpose); and Open MPI (openmpi-bin,
# libopenmpi-dev), which `train` links and the data-parallel tests run (docs/distributed.md).
# Swift 6 itself must already be on PATH (https://www.swift.org/install/linux/).
set -euo pipefail
packages=(libopenblas-dev libcurl4-openssl-dev libzip-dev libopenmpi-dev openmpi-bin pkg-config python3 chromium chromium-driver python3-selenium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing missing packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6 first" >&2; exit 1; }
