#!/usr/bin/env bash
# bench_read.sh: what one connection reads per second (issue 8), with one command. Starts plcsim
# (tls, PDU 960, AmQ up to BENCH_MAX_AMQ), generates tag files into a temporary folder, runs
# `scadactl bench read` for each case and prints one table; cleans up whatever happens.
#
#   tests/bench/bench_read.sh [BIN_DIR]      # default build/bin; e.g. BENCH_SECONDS=10
#
# Cases: 1,000 and 10,000 tags, AmQ 1 and the maximum, in two layouts (see README.md):
#   packed  Words and DInts alternating, back to back (HMI structs read whole), spread evenly
#           over 4 data blocks (1,000 tags) or 10 (10,000 tags)
#   sparse  the same tags 40 bytes apart (one value out of each 40-byte struct)
# Every run is bounded (timeout); a run with errors or without a session fails the script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "${1:-$here/../../build/bin}" && pwd)
seconds=${BENCH_SECONDS:-5}
max_amq=${BENCH_MAX_AMQ:-64}  # plcsim's largest --amq
for program in scadactl plcsim; do
  [ -x "$bin/$program" ] || { echo "bench_read: no $bin/$program (ninja -C build $program)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/scada-bench-read.XXXXXX)
plcsim_pid=
cleanup() {
  if [ -n "$plcsim_pid" ]; then kill "$plcsim_pid" 2>/dev/null || true; wait "$plcsim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The PLC's certificate: self-signed EC P-256 for 127.0.0.1, pinned with --partner-cert.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=plcsim-bench" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/plc.key" -out "$work/plc.pem" 2>/dev/null
chmod 600 "$work/plc.key"
mkdir -p "$work/project/device-certificate-store" "$work/project/pki/roots"

# gen LAYOUT TAGS DBS: the tag file, tags spread evenly over DB1..DBn.
gen() {
  awk -v layout="$1" -v n="$2" -v dbs="$3" 'BEGIN {
    per = n / dbs
    for (i = 0; i < n; i++) {
      db = 1 + int(i / per); k = i % per
      if (k == 0) offset = 0
      word = i % 2 == 0
      printf "DB%d.%s%d %s\n", db, word ? "DBW" : "DBD", offset, word ? "Word" : "DInt"
      offset += layout == "sparse" ? 40 : (word ? 2 : 4)
    }
  }' > "$work/$1-$2.tags"
}
gen packed 1000 4
gen sparse 1000 4
gen packed 10000 10
gen sparse 10000 10

"$bin/plcsim" --listen 127.0.0.1:0 --mode tls --cert "$work/plc.pem" --key "$work/plc.key" \
  --pdu 960 --amq "$max_amq" $(for d in 1 2 3 4 5 6 7 8 9 10; do echo --db $d:40000; done) \
  > "$work/plcsim.log" 2>&1 &
plcsim_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*plcsim ready: .* first on port \([0-9]*\).*/\1/p' "$work/plcsim.log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "bench_read: plcsim did not start:" >&2; cat "$work/plcsim.log" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
# CPU seconds plcsim used so far (user + sys, from /proc).
plcsim_cpu() { awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$plcsim_pid/stat"; }
# json_value LINE KEY: a number or string value of a flat JSON line.
json_value() { sed -E 's/.*"'"$2"'": ("[^"]*"|[^,}]*).*/\1/' <<< "$1" | tr -d '"'; }

printf '%-7s %6s %4s %8s %11s %10s %8s %8s %10s %11s %6s\n' layout tags AmQ req/loop tags/s \
  requests/s p50_us p99_us bench_CPU plcsim_CPU errors
failed=0
for tags in 1000 10000; do
  for layout in packed sparse; do
    for amq in 1 "$max_amq"; do
      before=$(plcsim_cpu)
      rc=0
      output=$(timeout $((seconds + 30)) "$bin/scadactl" bench read --address 127.0.0.1 \
        --port "$port" --mode tls --store "$work/project/device-certificate-store" \
        --partner-cert "$work/plc.pem" --tags "$work/$layout-$tags.tags" --seconds "$seconds" \
        --amq "$amq" --json 2>&1) || rc=$?
      after=$(plcsim_cpu)
      detail=$(head -n 1 <<< "$output")
      summary=$(tail -n 1 <<< "$output")
      if [ $rc -ne 0 ] || ! grep -q '"errors": 0' <<< "$summary"; then
        echo "bench_read: $layout $tags tags AmQ $amq failed (exit $rc):" >&2
        echo "$output" | tail -n 5 >&2
        failed=1
        continue
      fi
      run_s=$(json_value "$detail" seconds)
      cpu=$(awk -v u="$(json_value "$detail" cpu_user_s)" -v s="$(json_value "$detail" cpu_sys_s)" \
        -v t="$run_s" 'BEGIN { printf "%.2fs/%d%%", u + s, 100 * (u + s) / t }')
      sim=$(awk -v a="$before" -v b="$after" -v t="$run_s" \
        'BEGIN { printf "%.2fs/%d%%", b - a, 100 * (b - a) / t }')
      printf '%-7s %6s %4s %8s %11.0f %10.0f %8s %8s %10s %11s %6s\n' "$layout" "$tags" \
        "$(json_value "$detail" amq)" "$(json_value "$detail" plan_requests)" \
        "$(json_value "$summary" tags_per_s)" "$(json_value "$summary" requests_per_s)" \
        "$(json_value "$summary" rtt_p50_us)" "$(json_value "$summary" rtt_p99_us)" \
        "$cpu" "$sim" "$(json_value "$summary" errors)"
    done
  done
done
echo "tls, PDU 960, $seconds s per row; CPU: seconds and % of one core (bench: getrusage of"
echo "scadactl; plcsim: /proc, its whole process); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
exit $failed
