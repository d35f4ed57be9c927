#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time, as many at once as
# there are cores (FUZZ_JOBS to change that).
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, all targets)
#   tests/fuzz/run.sh --build-only [TARGET...]             only build them
# Seeds come from tests/fuzz/corpus/<target>/ (test vectors and frames of the real captures);
# new inputs found go to build-fuzz/corpus/<target>/, crashes to build-fuzz/artifacts/.
# Exits non-zero when a target finds a crash, leak or timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
build_only=0
if [ "${1:-}" = --build-only ]; then
  build_only=1
  shift
  seconds=0
else
  seconds=${1:-60}
  shift || true
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_frame fuzz_address fuzz_capture fuzz_planner fuzz_certificate fuzz_psk fuzz_alternative_address fuzz_value fuzz_bundle fuzz_api fuzz_ws fuzz_server)

mkdir -p build-fuzz
if ! { cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release \
         -DCMAKE_CXX_COMPILER=clang++ -DSCADA_FUZZ=ON >/dev/null &&
       ninja -C build-fuzz "${targets[@]}"; } >build-fuzz/build.log 2>&1; then
  cat build-fuzz/build.log >&2
  echo "fuzz: build failed" >&2
  exit 1
fi
[ $build_only = 0 ] || exit 0

# One target: its log in build-fuzz/<target>.log, its one-line result in build-fuzz/<target>.result.
fuzz_one() {
  local t=$1 corpus=build-fuzz/corpus/$1 log=build-fuzz/$1.log result
  mkdir -p "$corpus"
  local seeds=()
  [ -d "tests/fuzz/corpus/$t" ] && seeds=("tests/fuzz/corpus/$t")
  [ "$t" = fuzz_capture ] && seeds+=("../shared/testdata/pcaps")
  if build-fuzz/bin/$t -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/$t- \
       "$corpus" "${seeds[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
  fi
  local runs cov
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
  {
    printf 'fuzz %-24s %-6s %10s executions  coverage %5s  corpus %5s files  (%ss, log %s)\n' \
      "$t" "$result" "$runs" "$cov" "$(ls "$corpus" | wc -l)" "$seconds" "$log"
    [ $result = ok ] || grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5
  } >"build-fuzz/$t.result"
}

mkdir -p build-fuzz/artifacts
jobs_max=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  rm -f "build-fuzz/$t.result"
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
status=0
for t in "${targets[@]}"; do
  cat "build-fuzz/$t.result" 2>/dev/null || echo "fuzz $t: no result"
  grep -q ' ok ' "build-fuzz/$t.result" 2>/dev/null || status=1
done
exit $status
