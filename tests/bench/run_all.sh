#!/usr/bin/env bash
# Runs every benchmark (tests/bench/README.md) with the programs of BIN_DIR and ends with one
# table of their headline figures. Each benchmark's own output is kept in OUT_DIR.
#   tests/bench/run_all.sh [BIN_DIR [OUT_DIR]]    # default build/bin, a temporary folder
# Build first, optimised: cmake -S . -B build -G Ninja && ninja -C build
#   (planner_bench handshake_bench tags_bench scale_bench scadactl scadad plcsim).
# Takes about 7 minutes on a 2-core machine. Exit 1 when a benchmark fails its checks.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(cd "${1:-$here/../../build/bin}" && pwd)
out=${2:-$(mktemp -d /tmp/scada-bench.XXXXXX)}
mkdir -p "$out"
status=0
run() {  # NAME COMMAND...: runs it, output to OUT_DIR/NAME.txt
  local name=$1
  shift
  echo "== $name" >&2
  if ! "$@" >"$out/$name.txt" 2>&1; then
    echo "run_all: $name failed (see $out/$name.txt)" >&2
    status=1
  fi
}
run planner "$bin/planner_bench"
run handshake "$bin/handshake_bench"
run tags "$bin/tags_bench"
run bench_read "$here/bench_read.sh" "$bin"
run scale "$bin/scale_bench"

# field FILE PATTERN N: the Nth whitespace-separated field of the first line matching PATTERN.
field() { awk -v n="$3" "/$2/ { print \$n; exit }" "$1" 2>/dev/null; }
row() { printf '%-44s %-14s %s\n' "$1" "$2" "$3"; }
echo
echo "Benchmarks on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ); details in $out"
row "figure" "value" "target / note"
row "planner: checks passed" "$(grep -c '^OK' "$out/planner.txt") of $(grep -cE '^(OK|FAIL)' "$out/planner.txt")" "every check OK"
row "handshake tls full, p50 ms" "$(field "$out/handshake.txt" '^tls +full' 3)" ""
row "handshake tls resumed, p50 ms" "$(field "$out/handshake.txt" '^tls +resumed' 3)" ""
row "handshake s7-secure full, p50 ms" "$(field "$out/handshake.txt" '^s7-secure +full' 3)" ""
row "trust reaction tls, p50 ms" "$(field "$out/handshake.txt" '^tls +quarantined' 7)" "no regression"
row "dead peer noticed tls, max ms" "$(field "$out/handshake.txt" '^tls +PLC stalls' 10)" "bound 1000 ms"
row "switch gap tls (three writes), p50 ms" "$(field "$out/tags.txt" '^tls +three-write' 5)" "no regression"
row "make-before-break tls, largest interval ms" "$(field "$out/tags.txt" '^tls +make-before-break: largest' 5)" "= cycle (100 ms)"
row "bench read 1k tags packed AmQ 1, tags/s" "$(field "$out/bench_read.txt" '^packed +1000 +1 ' 5)" ">= 500000"
row "bench read 1k tags sparse AmQ 1, tags/s" "$(field "$out/bench_read.txt" '^sparse +1000 +1 ' 5)" ">= 500000"
row "bench read 10k tags packed max AmQ, tags/s" "$(awk '/^packed +10000/ { v = $5 } END { print v }' "$out/bench_read.txt")" ""
row "scale tls 1000 conns: scadad CPU %" "$(field "$out/scale.txt" '^tls +1000' 5)" "< 25"
row "scale tls 1000 conns: RSS MiB" "$(field "$out/scale.txt" '^tls +1000' 6)" "< 200"
row "scale tls 1000 conns: lateness p99" "$(awk '/^tls +1000/ { print $12, $13; exit }' "$out/scale.txt")" "< 50 ms"
row "scale tls 1000 conns: handshakes/s (cold)" "$(field "$out/scale.txt" '^tls +1000' 4)" ""
row "scale s7-secure 1000 conns: CPU %, RSS MiB" "$(field "$out/scale.txt" '^s7-secure +1000' 5), $(field "$out/scale.txt" '^s7-secure +1000' 6)" ""
row "scale both (1000 tls + 1000 s7-secure): CPU %" "$(field "$out/scale.txt" '^both +2000' 5)" ""
row "scale both: RSS MiB, lateness p99" "$(field "$out/scale.txt" '^both +2000' 6), $(awk '/^both +2000/ { print $12, $13; exit }' "$out/scale.txt")" ""
row "scale both: handshakes/s (cold)" "$(field "$out/scale.txt" '^both +2000' 4)" ""
exit $status
