#!/usr/bin/env bash
# The demo: installs what is missing, builds, and runs the most complete end-to-end path the
# product has today: secure connections to simulated PLCs (plcsim) through the device
# certificate store, with a quarantined certificate trusted by moving its file; then decoding
# real S7comm captures and planning the demo plant's reads. The project comes from the demo
# plant's bundle (scadactl import). (scadad with tags and connection changes through system
# tags replaces the probes once it exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash samples/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build scadactl plcsim >/dev/null
captures=../shared/testdata/pcaps

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A demo project with fresh certificates (made now, so nothing committed ever expires): the
# demo plant's bundles (a plant CA that issued PLC1's certificate), and a self-signed
# certificate on PLC2.
demo=$(mktemp -d /tmp/scada-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$demo"
}
trap cleanup EXIT
bash samples/make_bundles.sh "$demo/bundles" 41102
mkdir -p "$demo/plc"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -keyout "$demo/plc/plc2.key" -out "$demo/plc/plc2.crt" -subj /CN=PLC2 \
  -addext subjectAltName=IP:127.0.0.1 2>/dev/null

step "A new project, and the demo plant's bundle from engineering: first a dry run"
build/bin/scadactl project init "$demo/project"
build/bin/scadactl import --project "$demo/project" --dry-run "$demo/bundles/bundle-inline"
step "Import it (--yes answers the question about trusting its certificates)"
build/bin/scadactl import --project "$demo/project" --yes "$demo/bundles/bundle-folder" | tail -n 1
step "The same bundle again, in its other form: nothing to change"
build/bin/scadactl import --project "$demo/project" "$demo/bundles/bundle-inline" | tail -n 1

build/bin/plcsim --listen 127.0.0.1:41102 --mode s7-secure --name PLC1 \
  --cert "$demo/bundles/plc/plc1.crt" --key "$demo/bundles/plc/plc1.key" >"$demo/plc1.log" 2>&1 &
pids+=($!)
build/bin/plcsim --listen 127.0.0.1:41103 --mode tls --name PLC2 \
  --cert "$demo/plc/plc2.crt" --key "$demo/plc/plc2.key" >"$demo/plc2.log" 2>&1 &
pids+=($!)
build/bin/plcsim --listen 127.0.0.1:41104 --mode none --name PLC3 >"$demo/plc3.log" 2>&1 &
pids+=($!)
for log in "$demo/plc1.log" "$demo/plc2.log" "$demo/plc3.log"; do
  for _ in $(seq 50); do grep -q "plcsim ready" "$log" && break; sleep 0.1; done
done
store="$demo/project/device-certificate-store"
probe() { build/bin/scadactl probe --address 127.0.0.1 --store "$store" "$@" || true; }

step "PLC1 (s7-secure): its certificate was issued by the plant CA the import put in pki/roots"
probe --port 41102 --mode s7-secure
step "PLC2 (tls) presents an unknown self-signed certificate: refused and quarantined"
probe --port 41103 --mode tls
ls -l "$store/untrusted"
step "An administrator trusts it by moving the file into trusted/; the next connect works"
mv "$store"/untrusted/*.der "$store/trusted/"
probe --port 41103 --mode tls --json
step "PLC3 speaks only plaintext: a secure connection refuses it (no downgrade, ever)"
probe --port 41104 --mode s7-secure

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
