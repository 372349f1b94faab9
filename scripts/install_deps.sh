#!/usr/bin/env bash
# Installs the Debian 12 packages splitinfer needs, only those that are missing.
# Used by scripts/test.sh and scripts/demo.sh; safe to run again (it does nothing then).
#   scripts/install_deps.sh            build + test dependencies
#   scripts/install_deps.sh --plots    also python3-matplotlib (scripts/plot_*.py)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libtorch-dev                       # LibTorch 1.13 (CPU) with its CMake config
  libboost-dev                       # Boost.Asio (header-only)
  libprotobuf-dev protobuf-compiler  # wire metadata
  libeigen3-dev                      # decision-core numerics
  libzstd-dev                        # lossless stage of the wire codecs (common/codec.h)
  zlib1g-dev                         # reads data/digits/digits.csv.gz (common/exits/digits.h)
  libssl-dev                         # SHA-256 of model repository files (common/model_repo.h)
  libstb-dev                         # PNG/JPEG decoding of codec_fidelity's image inputs
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc  # optional gRPC comparison benchmark (bench/grpc_bench.cc)
  clang libclang-rt-14-dev           # libFuzzer targets (tests/fuzz, scripts/fuzz.sh)
  libcli11-dev libspdlog-dev nlohmann-json3-dev
  libtomlplusplus-dev                # strict TOML --config files (common/config_file.h)
  python3-torch python3-torchvision  # scripts/export_torchscript.py (model export only)
)
if [[ "${1:-}" == "--plots" ]]; then packages+=(python3-matplotlib); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install_deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
    echo "install_deps: need root (or sudo) to apt-get install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_deps: done" >&2
