#!/usr/bin/env bash
# Install every Debian package dd2 needs (build, tests, Slurm tests, Python reference tools).
# Idempotent: when everything is already installed it only checks and returns (< 1 s).
# Usage: tools/install-deps.sh [--no-python]   (--no-python skips the torch/numpy/h5py tools)
set -euo pipefail

pkgs=(libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools libyaml-dev libopenblas-dev
      liblapacke-dev libpng-dev zlib1g-dev pkg-config dataset-fashion-mnist slurm-wlm munge)
py_pkgs=(python3-numpy python3-h5py python3-torch)

if [ "${1:-}" != "--no-python" ]; then pkgs+=("${py_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"ok installed"*) ;;
    *) missing+=("$p") ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "install-deps: not root and no passwordless sudo; as root run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
