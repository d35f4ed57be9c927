#!/usr/bin/env bash
# run_interop.sh PLCSIM                       interoperability test in security mode none
# run_interop.sh PLCSIM --tls CLIENT          the same capture checks in mode tls
#
# With --tls, plcsim serves TLS with a certificate made for this run (openssl req), CLIENT
# (tls_keylog_client, the project's test client) writes and reads back DB1 items verifying the
# server against that certificate and writes a TLS key log, and tshark decrypts the capture with
# the key log before running the same checks on the S7comm inside.
#
# nodes7, an S7 client written independently of this project (npm, pinned in
# package-lock.json), writes and reads back DB, M, I and Q items on plcsim while dumpcap records
# the traffic; then tshark's own S7comm dissector must decode every frame of the capture:
#   - the client exits 0 (every write acknowledged, every value read back as written);
#   - the capture holds the whole conversation: COTP CR and CC, Setup Communication, and Write
#     Var and Read Var jobs, each answered by an Ack_Data (as many replies as jobs);
#   - every data item of every Ack_Data has return code 0xff, and no Ack_Data has a header error;
#   - no frame is malformed and no expert info is at error severity (TCP notes and chats are
#     expected; warnings are listed but do not fail the test).
# Prints what it checked; exits 0 only when all of it holds. Needs root (or capture
# capabilities) for dumpcap on lo, and node/npm, dumpcap and tshark on PATH. Keeps its working
# directory (logs and capture) when it fails.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() {
  echo "run_interop.sh: FAIL: $*" >&2
  exit 1
}

usage() { echo "usage: run_interop.sh PATH/TO/plcsim [--tls PATH/TO/tls_keylog_client]" >&2; exit 2; }
(($# == 1 || $# == 3)) || usage
plcsim=$1
tls_client=""
if (($# == 3)); then
  [[ "$2" == --tls ]] || usage
  tls_client=$3
  [[ -x "$tls_client" ]] || fail "TLS client '$tls_client' is not an executable file"
fi
[[ -x "$plcsim" ]] || fail "plcsim '$plcsim' is not an executable file"
for tool in dumpcap tshark timeout flock openssl; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' not found (Debian: apt-get install tshark coreutils util-linux openssl)"
done
[[ -n "$tls_client" ]] || "$here/install.sh" || fail "could not install the node client (see above)"

work=$(mktemp -d "${TMPDIR:-/tmp}/interop_${tls_client:+tls_}nodes7.XXXXXX")
capture="$work/capture.pcapng"
plcsim_pid="" dumpcap_pid="" passed=0

stop() {  # stop PID SIGNAL: signal a process we started, SIGKILL it after 5 s, reap it
  local pid=$1 sig=$2
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "run_interop.sh: pid $pid ignored SIG$sig for 5 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop "$dumpcap_pid" INT
  stop "$plcsim_pid" TERM
  if ((passed)); then
    rm -rf "$work"
  else
    echo "run_interop.sh: logs and capture kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_us() { echo "${EPOCHREALTIME/./}"; }  # wall clock in microseconds (bash 5)

# poll SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds; fail after SECONDS.
poll() {
  local deadline=$(($(now_us) + $1 * 1000000))
  shift
  until "$@"; do
    (($(now_us) < deadline)) || return 1
    sleep 0.1
  done
}

# 1. plcsim on a port the kernel picks (listen port 0), so there is no window in which another
#    process could take a port we probed as free. plcsim logs the port it got.
mode_args=(--mode none)
if [[ -n "$tls_client" ]]; then
  # A certificate for this run only (never a committed one), valid for a day.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=plcsim-interop -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/plc.key" -out "$work/plc.pem" >"$work/openssl.log" 2>&1 ||
    fail "openssl could not make the test certificate: $(cat "$work/openssl.log")"
  mode_args=(--mode tls --cert "$work/plc.pem" --key "$work/plc.key")
fi
"$plcsim" --listen 127.0.0.1:0 "${mode_args[@]}" --db 1:256 >"$work/plcsim.log" 2>&1 &
plcsim_pid=$!
plcsim_ready() {
  kill -0 "$plcsim_pid" 2>/dev/null || fail "plcsim exited: $(cat "$work/plcsim.log")"
  port=$(sed -n 's/.*plcsim ready: .* first on port \([0-9][0-9]*\).*/\1/p' "$work/plcsim.log")
  [[ -n "$port" ]]
}
port=""
poll 10 plcsim_ready || fail "plcsim did not report ready within 10 s: $(cat "$work/plcsim.log")"
echo "run_interop.sh: plcsim (pid $plcsim_pid) listening on 127.0.0.1:$port"

# 2. dumpcap, with both ends of the capture proven rather than waited for:
#    - its "Capturing on" line comes before packets are really recorded (a connection opened
#      right after that line was missing from the file in 7 of 20 trials), so after it we open
#      empty TCP connections to the port ("probes") until one shows up in the capture file;
#    - on SIGINT it loses what the kernel has queued for it but it has not yet written (a
#      connection opened right before the signal was missing in 20 of 20 trials), so after the
#      client we probe again and stop dumpcap only once that probe is in the file: packets are
#      written in order, so everything before it is there too.
#    Probes carry no payload, so they add only TCP frames to the capture.
dumpcap -i lo -f "tcp port $port" -w "$capture" >"$work/dumpcap.log" 2>&1 &
dumpcap_pid=$!
dumpcap_started() {
  kill -0 "$dumpcap_pid" 2>/dev/null || fail "dumpcap exited: $(cat "$work/dumpcap.log")"
  grep -q '^Capturing on' "$work/dumpcap.log"
}
poll 10 dumpcap_started || fail "dumpcap did not start capturing within 10 s: $(cat "$work/dumpcap.log")"

# probe: open and close one TCP connection to the port. A refused attempt is recorded as well,
# so this works with nothing listening.
probe() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null || true
}
# syn_recorded_since T: true when the capture file holds a connection attempt (SYN without ACK)
# stamped at or after T (seconds since the epoch, as $EPOCHREALTIME; the kernel stamps loopback
# packets with the same clock). The file is being written while we read it, so tshark may complain
# about a cut-short last packet, which is fine here.
syn_recorded_since() {
  kill -0 "$dumpcap_pid" 2>/dev/null || fail "dumpcap exited: $(cat "$work/dumpcap.log")"
  tshark -r "$capture" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' -T fields -e frame.time_epoch \
    2>/dev/null | awk -v since="$1" '$1 >= since { found = 1 } END { exit !found }'
}
# mark SECONDS: probe (again every 2 s) until a probe made from now on is in the capture file;
# counts the probes in $probes.
probes=0
mark() {
  local since=$EPOCHREALTIME deadline=$(($(now_us) + $1 * 1000000))
  probes=0
  while (($(now_us) < deadline)); do
    probe
    probes=$((probes + 1))
    poll 2 syn_recorded_since "$since" && return 0
  done
  return 1
}
mark 15 || fail "no probe connection appeared in the capture within 15 s"
echo "run_interop.sh: dumpcap (pid $dumpcap_pid) recording tcp port $port ($probes probe(s) to see it)"

# 3. The client, bounded twice: by its own deadline and by timeout(1).
client_rc=0
if [[ -n "$tls_client" ]]; then
  client_name="TLS test client"
  timeout 30 "$tls_client" "$port" "$work/plc.pem" "$work/keys.log" >"$work/client.json" \
    2>"$work/client.log" || client_rc=$?
else
  client_name="nodes7"
  timeout 30 node "$here/nodes7_client.js" 127.0.0.1 "$port" >"$work/client.json" \
    2>"$work/client.log" || client_rc=$?
fi

# 4. All of the client's traffic in the file before stopping dumpcap.
mark 10 || fail "the capture did not catch up with the end probe within 10 s"
echo "run_interop.sh: capture complete ($probes end probe(s) to see it)"
stop "$dumpcap_pid" INT
dumpcap_pid=""
# dumpcap's last line: "Packets received/dropped on interface 'Loopback: lo': R/D (...)".
dropped=$(sed -n 's#^Packets received/dropped on interface .*: [0-9]*/\([0-9]*\) .*#\1#p' "$work/dumpcap.log")
[[ "$dropped" == 0 ]] || fail "dumpcap dropped packets or did not report its counts: $(cat "$work/dumpcap.log")"

problems=()
if ((client_rc != 0)); then
  problems+=("$client_name exited $client_rc: $(tail -n 5 "$work/client.log")")
else
  echo "run_interop.sh: $client_name wrote and read back: $(cat "$work/client.json")"
fi

# 5. Decode with tshark's S7comm dissector and check every frame.
# In mode tls the key log lets tshark decrypt; TPKT is then found inside TLS (WIRE.md §6).
decode=(-d "tcp.port==$port,tpkt")
if [[ -n "$tls_client" ]]; then
  [[ -s "$work/keys.log" ]] || problems+=("the TLS client wrote no key log")
  decode=(-o "tls.keylog_file:$work/keys.log" -d "tcp.port==$port,tls" -d "tls.port==$port,tpkt")
fi
tshark -r "$capture" "${decode[@]}" -T fields \
  -e frame.number -e s7comm.header.rosctr -e s7comm.param.func -e s7comm.data.returncode \
  -e _ws.malformed -e _ws.expert.severity -e cotp.type -e s7comm.header.errcls \
  -e s7comm.header.errcod >"$work/fields.tsv" 2>"$work/tshark.log" ||
  fail "tshark could not read the capture: $(cat "$work/tshark.log")"

# One line per frame, tab-separated, repeated fields joined by ",". A client sends only Jobs
# (ROSCTR 1) and a server only Ack_Data (3), besides userdata (7) for SZL reads; a TCP segment
# may carry several PDUs of one side.
# Jobs' data items carry a reserved 0x00 in the return code position, so only replies' codes
# count.
summary=$(awk -F'\t' '
  function count(list, value,   n, i, parts, c) {
    n = split(list, parts, ",")
    for (i = 1; i <= n; i++) if (parts[i] == value) c++
    return c
  }
  function number(text,   i, v) {  # tshark prints severities in decimal; accept 0x... too
    if (text !~ /^0[xX]/) return text + 0
    for (i = 3; i <= length(text); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(text, i, 1))) - 1
    return v
  }
  {
    frames++
    if ($5 != "") malformed = malformed " " $1
    n = split($6, sev, ",")
    for (i = 1; i <= n; i++) {
      s = number(sev[i])
      if (s >= 8388608) errors = errors " " $1; else if (s >= 6291456) warnings = warnings " " $1
      else if (s >= 4194304) notes++; else if (s > 0) chats++
    }
    cr += count($7, "0x0e"); cc += count($7, "0x0d")
    if ($2 == "") next
    n = split($2, rosctr, ","); split($3, func, ",")
    for (i = 1; i <= n; i++) {
      if (rosctr[i] == 1) job[func[i]]++
      else if (rosctr[i] == 3) ack[func[i]]++
      else if (rosctr[i] == 7) userdata++  # SZL reads (the TLS client reads one)
      else other = other " " $1
      if (rosctr[i] != rosctr[1]) mixed = mixed " " $1
    }
    if (rosctr[1] != 3) next
    if ($8 != "" && $8 !~ /^(0x00,?)+$/ || $9 != "" && $9 !~ /^(0x00,?)+$/) header_errors = header_errors " " $1
    m = split($4, rc, ",")
    for (i = 1; i <= m; i++) {
      if (rc[i] == "") continue
      if (rc[i] == "0xff") good++; else bad = bad " " $1 "(" rc[i] ")"
      replied_items[func[1]]++
    }
  }
  END {
    print "frames=" frames + 0; print "cr=" cr + 0; print "cc=" cc + 0
    print "job_setup=" job["0xf0"] + 0; print "job_write=" job["0x05"] + 0; print "job_read=" job["0x04"] + 0
    print "ack_setup=" ack["0xf0"] + 0; print "ack_write=" ack["0x05"] + 0; print "ack_read=" ack["0x04"] + 0
    print "write_items=" replied_items["0x05"] + 0; print "read_items=" replied_items["0x04"] + 0
    print "good=" good + 0; print "notes=" notes + 0; print "chats=" chats + 0
    print "userdata=" userdata + 0
    print "bad_returncodes=" bad; print "malformed=" malformed; print "expert_errors=" errors
    print "expert_warnings=" warnings; print "header_errors=" header_errors
    print "other_rosctr=" other mixed
  }' "$work/fields.tsv")
declare -A got
while IFS='=' read -r key value; do got[$key]=$value; done <<<"$summary"

echo "run_interop.sh: tshark: ${got[frames]} frames; COTP CR ${got[cr]}, CC ${got[cc]};" \
  "jobs: setup ${got[job_setup]}, write var ${got[job_write]}, read var ${got[job_read]};" \
  "ack_data: setup ${got[ack_setup]}, write var ${got[ack_write]} (${got[write_items]} items)," \
  "read var ${got[ack_read]} (${got[read_items]} items); userdata ${got[userdata]};" \
  "return codes 0xff: ${got[good]};" \
  "expert: ${got[notes]} notes, ${got[chats]} chats"

((got[cr] >= 1 && got[cc] >= 1)) || problems+=("no COTP connection request/confirm in the capture")
((got[job_setup] >= 1 && got[ack_setup] == got[job_setup])) ||
  problems+=("Setup Communication: ${got[job_setup]} jobs, ${got[ack_setup]} Ack_Data")
((got[job_write] >= 1 && got[ack_write] == got[job_write])) ||
  problems+=("Write Var: ${got[job_write]} jobs, ${got[ack_write]} Ack_Data")
((got[job_read] >= 1 && got[ack_read] == got[job_read])) ||
  problems+=("Read Var: ${got[job_read]} jobs, ${got[ack_read]} Ack_Data")
((got[write_items] >= 1 && got[read_items] >= 1)) || problems+=("Ack_Data without data items")
[[ -z "${got[bad_returncodes]}" ]] || problems+=("return codes other than 0xff in frames:${got[bad_returncodes]}")
[[ -z "${got[header_errors]}" ]] || problems+=("Ack_Data with a header error in frames:${got[header_errors]}")
[[ -z "${got[malformed]}" ]] || problems+=("malformed frames:${got[malformed]}")
[[ -z "${got[expert_errors]}" ]] || problems+=("expert info at error severity in frames:${got[expert_errors]}")
[[ -z "${got[other_rosctr]}" ]] || problems+=("unexpected ROSCTR in frames:${got[other_rosctr]}")
[[ -z "${got[expert_warnings]}" ]] ||
  echo "run_interop.sh: note: expert warnings (not failing) in frames:${got[expert_warnings]}"

if ((${#problems[@]} > 0)); then
  printf 'run_interop.sh: FAIL: %s\n' "${problems[@]}" >&2
  tshark -r "$capture" "${decode[@]}" >"$work/decoded.txt" 2>/dev/null || true
  exit 1
fi
passed=1
echo "run_interop.sh: PASS"
