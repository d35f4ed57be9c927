#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
# Seeds come from tests/fuzz/corpus/<target>/ (test vectors and frames of the real captures);
# new inputs found go to build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/.
# Exits non-zero when a target finds a crash, leak or timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_frame fuzz_address fuzz_capture fuzz_planner fuzz_certificate fuzz_psk fuzz_alternative_address fuzz_value fuzz_bundle fuzz_api fuzz_ws fuzz_server)

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=clang++ -DSCADA_FUZZ=ON >/dev/null
mkdir -p build-fuzz
if ! ninja -C build-fuzz "${targets[@]}" >build-fuzz/build.log 2>&1; then
  cat build-fuzz/build.log >&2
  echo "fuzz: build failed" >&2
  exit 1
fi

mkdir -p build-fuzz/artifacts
status=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  seeds=()
  [ -d "tests/fuzz/corpus/$t" ] && seeds=("tests/fuzz/corpus/$t")
  [ "$t" = fuzz_capture ] && seeds+=("../shared/testdata/pcaps")
  log=build-fuzz/$t.log
  if build-fuzz/bin/$t -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/$t- \
       "$corpus" "${seeds[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
  printf 'fuzz %-14s %-6s %10s executions  coverage %5s  corpus %5s files  (%ss, log %s)\n' \
    "$t" "$result" "$runs" "$cov" "$(ls "$corpus" | wc -l)" "$seconds" "$log"
  [ $result = ok ] || grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5
done
exit $status
