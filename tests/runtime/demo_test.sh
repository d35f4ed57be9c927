#!/usr/bin/env bash
# Runs the demo (samples/demo.sh) with the programs of this build and checks what it must show:
# it ends by itself with exit 0, the renewal kept every value good, and the project's event log
# holds the events of the whole run (import, start, connection states, the failure with its
# quarantine, the trust change, the switches, a tag write with its origin, stop).
#   tests/runtime/demo_test.sh BIN_DIR
set -euo pipefail
bin=$(readlink -f "${1:?usage: demo_test.sh BIN_DIR}")
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/scada-demo-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Every failure shows the end of the demo's output and scadad's log: CI keeps nothing else.
fail() {
  [ -f "$work/plain.txt" ] && { echo "--- the demo's output (end)"; tail -n 80 "$work/plain.txt"; }
  [ -f "$work/scadad.log" ] && { echo "--- scadad.log (end)"; tail -n 40 "$work/scadad.log"; }
  echo "demo_test: $*" >&2
  exit 1
}
rc=0
SCADA_DEMO_BIN=$bin SCADA_DEMO_DIR=$work timeout 300 bash samples/demo.sh >"$work/out.txt" 2>&1 || rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$work/out.txt" >"$work/plain.txt"
[ $rc -eq 0 ] || fail "the demo exited $rc"
grep -q "scadad stopped with SIGTERM: exit 0" "$work/plain.txt" || fail "scadad did not stop cleanly"
grep -Eq "^    [0-9]+ values, longest interval [0-9]+ ms \(cycle 500 ms\), 0 not good" "$work/plain.txt" ||
  { grep -n "values, longest" "$work/plain.txt"; fail "values during the renewal were not all good"; }
grep -q "certificate days left: [0-9]* before, 36[45] now" "$work/plain.txt" ||
  { grep -n "days left" "$work/plain.txt"; fail "the renewed certificate is not the one in use"; }

db="$work/project/project.db"
[ -f "$db" ] || fail "no project.db in $work/project"
kinds=$(sqlite3 "$db" "SELECT DISTINCT kind FROM events ORDER BY kind")
for kind in project-init import start connection-state connection-error quarantined \
  snapshot-changed switch tag-write stop; do
  grep -qx "$kind" <<<"$kinds" || { echo "$kinds"; fail "no '$kind' event in the event log"; }
done
sqlite3 "$db" "SELECT detail FROM events WHERE kind = 'connection-error'" | grep -q "untrusted-certificate" ||
  fail "the failed switch's reason is not in the event log"
sqlite3 "$db" "SELECT detail FROM events WHERE kind = 'tag-write'" | grep -q "42.5 by 127.0.0.1:" ||
  fail "the demo's tag write is not in the event log with its origin"
[ "$(sqlite3 "$db" "PRAGMA integrity_check")" = ok ] || fail "project.db integrity check failed"
echo "demo_test: ok ($(sqlite3 "$db" "SELECT count(*) FROM events") events)"
