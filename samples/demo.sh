#!/usr/bin/env bash
# The demo (README command one): installs what is missing, builds, then runs the runtime
# against two simulated PLCs and narrates what an operator sees:
#   1. engineering's bundle imported into a fresh project (dry run, then for real);
#   2. scadad started: a secure (s7-secure) connection to PLC1, whose certificate the plant CA
#      from the bundle issued; live values with their quality, certificate days left;
#   3. a hardware swap to PLC2 (an unknown self-signed certificate) through the system tags:
#      quarantined, trusted by moving its file, connected; then back to PLC1 without a gap;
#   4. a certificate renewal on PLC1 taken into use without a missed cycle;
#   5. a summary from the event log and the metrics, and how to keep exploring.
# It ends by itself. DEMO_KEEP=1 leaves scadad and the PLCs running at the end (Ctrl-C stops).
# For the test suite (tests/runtime/demo_test.sh): SCADA_DEMO_BIN=DIR uses the programs there
# (no setup, no build); SCADA_DEMO_DIR=DIR works in DIR and leaves it (project, logs) behind.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SCADA_DEMO_BIN:-}
if [ -z "$bin" ]; then
  bash samples/setup.sh
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C build scadactl scadad plcsim >/dev/null
  bin=build/bin
fi

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
say() { printf '\033[2m# %s\033[0m\n' "$*"; }
# Shows a command, then runs it; a failing command does not end the demo (its exit is shown).
run() {
  printf '\033[32m$ %s\033[0m\n' "$*"
  local rc=0
  "$@" || rc=$?
  [ $rc -eq 0 ] || printf '\033[33m(exit %d)\033[0m\n' "$rc"
  return 0
}

demo=${SCADA_DEMO_DIR:-$(mktemp -d /tmp/scada-demo.XXXXXX)}
mkdir -p "$demo"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${SCADA_DEMO_DIR:-}" ] || rm -rf "$demo"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports: PLC1 21102, PLC2 21103, the API 21180 (the next free one if taken). They lie below
# Linux's ephemeral range (32768-60999), so no outgoing connection can hold one meanwhile.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
p1=$(free_port 21102)
p2=$(free_port $((p1 + 1)))
api_port=$(free_port 21180)
api="http://127.0.0.1:$api_port"
ctl() { "$bin/scadactl" "$@" --api "$api"; }

# Fresh certificates (made now, so nothing committed ever expires): the plant CA and PLC1's
# certificate (in the bundle), and PLC2's self-signed one (unknown to the project).
bash samples/make_bundles.sh "$demo/bundles" "$p1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -keyout "$demo/bundles/plc/plc2.key" -out "$demo/bundles/plc/plc2.crt" \
  -subj "/O=Replacement/CN=PLC2" -addext subjectAltName=IP:127.0.0.1 2>/dev/null
chmod 600 "$demo/bundles/plc/plc2.key"
plc="$demo/bundles/plc"

step "1. Engineering's bundle into a new project"
run "$bin/scadactl" project init "$demo/project"
say "a dry run shows the plan: the connection, its tags, every certificate (nothing changes)"
run "$bin/scadactl" import --project "$demo/project" --dry-run "$demo/bundles/bundle-inline"
say "the real import (--yes answers the question about trusting the bundle's certificates)"
run "$bin/scadactl" import --project "$demo/project" --yes "$demo/bundles/bundle-folder"
store="$demo/project/device-certificate-store"

step "2. Two simulated PLCs and scadad"
"$bin/plcsim" --listen "127.0.0.1:$p1" --mode s7-secure --name PLC1 --pdu 960 \
  --cert "$plc/plc1.crt" --key "$plc/plc1.key" >"$demo/plc1.log" 2>&1 &
pids+=($!)
"$bin/plcsim" --listen "127.0.0.1:$p2" --mode s7-secure --name PLC2 --pdu 960 \
  --cert "$plc/plc2.crt" --key "$plc/plc2.key" >"$demo/plc2.log" 2>&1 &
pids+=($!)
for log in "$demo/plc1.log" "$demo/plc2.log"; do
  for _ in $(seq 100); do grep -q "plcsim ready" "$log" && break; sleep 0.1; done
  grep -q "plcsim ready" "$log" || { cat "$log"; echo "demo: a simulated PLC did not start" >&2; exit 1; }
done
say "PLC1 on port $p1 presents a certificate from the plant CA; PLC2 on port $p2 (the"
say "replacement CPU) a self-signed one nobody has trusted yet. Both speak s7-secure (TLS 1.3)."
"$bin/scadad" --project "$demo/project" --api "127.0.0.1:$api_port" >"$demo/scadad.log" 2>&1 &
scadad=$!
pids+=($scadad)
ready=0
for _ in $(seq 100); do
  if "$bin/scadactl" tag wait @PLC1@ConnectionState == 2 --timeout 200ms --api "$api" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
[ $ready -eq 1 ] || { cat "$demo/scadad.log"; echo "demo: scadad did not connect to PLC1" >&2; exit 1; }
say "scadad's log so far (one line per event, no secrets):"
sed 's/^/    /' "$demo/scadad.log"

say "the connection, its system tags and the certificate's days left:"
run ctl conn list
say "live values with their quality (the counter moves +1 every 100 ms in the PLC):"
run ctl tag get PLC1/Process.Counter PLC1/Process.Sawtooth PLC1/Line1.Setpoint
run ctl tag watch PLC1/Process.Counter --count 4
say "a write goes to the PLC and into the event log with who asked:"
run ctl tag set PLC1/Line1.Setpoint 42.5
say "and comes back with the next read (this tag's cycle is 1 s):"
run ctl tag wait PLC1/Line1.Setpoint == 42.5 --timeout 5s

step "3. Hardware swap to the replacement CPU (PLC2) through the system tags"
say "scadactl conn switch performs the documented sequence: ForceConnectionState 0,"
say "AlternativeAddress, UseAlternativeAddress 1, ForceConnectionState 1, then waits."
run ctl conn switch PLC1 --to alternative --address "IPAddress=127.0.0.1;Port=$p2;" --timeout 5s
say "refused: PLC2's certificate is unknown, so it went to quarantine:"
run ctl cert list --kind quarantined
run ls -l "$store/untrusted"
say "an administrator checks the fingerprint with the replacement CPU's display and trusts it"
say "by moving the file into trusted/ (scadactl cert trust FINGERPRINT does the same):"
run mv "$store"/untrusted/*.der "$store/trusted/"
run ctl tag wait @PLC1@ConnectionState == 2 --timeout 15s
run ctl conn list
say "the values now come from PLC2 (its own counter):"
run ctl tag get PLC1/Process.Counter @PLC1@CurrentAddress @PLC1@PeerCertificate
say "back to PLC1, make-before-break (--hot): the new session is up and read before the old"
say "one closes, so no cycle is lost"
run ctl conn switch PLC1 --to original --hot --timeout 15s

step "4. Certificate renewal on PLC1 without a missed cycle"
old_days=$(ctl tag get @PLC1@CertificateDaysLeft --json | sed -n 's/.*"value": \([-0-9]*\).*/\1/p')
say "PLC1's certificate has $old_days days left. The plant CA issues a new one (365 days) and"
say "PLC1 gets it; the live session is not touched (a session never ends for a certificate):"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=Demo Plant/CN=PLC1" \
  -keyout "$plc/plc1-new.key" -out "$plc/plc1-new.csr" 2>/dev/null
openssl x509 -req -in "$plc/plc1-new.csr" -CA "$plc/ca.pem" -CAkey "$plc/ca.key" \
  -CAcreateserial -days 365 -out "$plc/plc1-new.crt" \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n') 2>/dev/null
chmod 600 "$plc/plc1-new.key"
mv "$plc/plc1-new.key" "$plc/plc1.key"
mv "$plc/plc1-new.crt" "$plc/plc1.crt"
say "to take it into use, scadad opens a second session to the same PLC make-before-break"
say "(the alternative address set to PLC1 itself) while the tags keep coming every cycle:"
"$bin/scadactl" tag watch PLC1/Process.Counter --json --for 5s --api "$api" >"$demo/watch.jsonl" &
watch=$!
sleep 1.5
run ctl conn switch PLC1 --to alternative --address "IPAddress=127.0.0.1;Port=$p1;" --hot --timeout 15s
wait $watch || true
# Every fresh value of the 500 ms cycle: the longest interval between two, and any bad one.
awk -F'"server_time": "' 'NF > 1 {
    split(substr($2, 12, 12), t, ":"); ms = (t[1] * 3600 + t[2] * 60 + t[3]) * 1000
    if (n++ > 0 && ms - last > gap) gap = ms - last
    last = ms
    if ($0 !~ /"quality": "good"/) bad++
  }
  END { printf "    %d values, longest interval %d ms (cycle 500 ms), %d not good\n", n, gap, bad }' \
  "$demo/watch.jsonl"
new_days=$(ctl tag get @PLC1@CertificateDaysLeft --json | sed -n 's/.*"value": \([-0-9]*\).*/\1/p')
run ctl tag get @PLC1@PeerCertificate @PLC1@CertificateDaysLeft @PLC1@CurrentAddress
say "certificate days left: $old_days before, $new_days now"

step "5. Summary"
say "the event log (project.db) of this run, newest last:"
run ctl events --last 40
say "Prometheus metrics (GET $api/metrics), a few of them:"
curl_metrics() {
  exec 3<>"/dev/tcp/127.0.0.1/$api_port"
  printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  cat <&3
  exec 3<&-
}
curl_metrics | grep -E '^scada_(connection_state|connection_sessions_total|connection_switches_total|quarantined_certificates|certificate_days_left\{kind="peer")' |
  sed 's/^/    /'

bold ""
bold "Summary: one s7-secure connection imported from engineering's bundle; a hardware swap to"
bold "a replacement CPU (quarantine, trust by moving the file, connected) and back without a gap;"
bold "PLC1's certificate renewed and taken into use without a missed cycle."
echo
echo "Keep exploring (DEMO_KEEP=1 bash samples/demo.sh leaves everything running):"
echo "  API:        $api/api/tags   $api/api/connections   $api/api/certificates   $api/metrics"
echo "  scadactl:   build/bin/scadactl tag watch PLC1/Process.Sawtooth --api $api"
echo "              build/bin/scadactl conn switch PLC1 --to original --hot --api $api"
echo "              build/bin/scadactl cert list --api $api;  build/bin/scadactl events --follow --api $api"
if [ "${DEMO_KEEP:-0}" = 1 ]; then
  echo "Running until Ctrl-C (project: $demo/project)."
  wait "$scadad" || true
else
  kill -TERM "$scadad"
  rc=0
  wait "$scadad" || rc=$?
  tail -n 2 "$demo/scadad.log" | sed 's/^/    /'
  echo "scadad stopped with SIGTERM: exit $rc"
fi
