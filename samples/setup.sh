#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds, tests and demos with.
# Idempotent and non-interactive; run as root (or through sudo). Installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format git
  libssl-dev openssl
  libboost1.74-dev libboost-filesystem1.74-dev libboost-program-options1.74-dev
  libsqlite3-dev sqlite3 libpugixml-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  tshark
)

self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js runs the third-party S7 client of the interop test (tests/interop); any Node.js
# already on the PATH will do, else Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  bash tests/interop/install.sh
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then exec sudo "$self" "$@"; fi
  echo "setup: missing packages (${missing[*]}); run this script as root" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
bash tests/interop/install.sh
echo "setup: done"
