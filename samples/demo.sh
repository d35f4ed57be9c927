#!/usr/bin/env bash
# The demo: installs what is missing, builds scadactl and runs the most complete end-to-end
# path the product has today: decoding real S7comm captures and planning the demo plant's reads.
# (The runtime against simulated PLCs replaces this once scadad and plcsim exist.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash samples/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build scadactl >/dev/null
captures=../shared/testdata/pcaps

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -d "$captures" ]; then
  step "Decode a real capture: libnodave demo client reading and writing an S7-300"
  build/bin/scadactl decode "$captures/s7comm_varservice_libnodavedemo.pcap"
  step "Decode an engineering tool reading CPU status (SZL answers in several pieces)"
  build/bin/scadactl decode "$captures/s7comm_reading_plc_status.pcap" | tail -n 12
  step "The same as JSON for scripts (last line: the summary)"
  build/bin/scadactl decode --json "$captures/s7comm_reading_plc_status.pcap" | tail -n 1
else
  echo "demo: $captures not found; skipping the capture decoding part" >&2
fi

step "Plan the demo plant's tag reads at PDU 240 (S7-300/1200)"
build/bin/scadactl plan --pdu 240 samples/tags/demo-plant.tags
step "The same tags at PDU 960 (S7-1500), JSON summary"
build/bin/scadactl plan --pdu 960 --json samples/tags/demo-plant.tags | tail -n 1
