#!/usr/bin/env bash
# Builds and runs the whole test suite: a normal build, an ASan+UBSan build and a
# ThreadSanitizer build, each running every CTest test, then a short run of every fuzz target,
# the planner benchmark's request-count check, the handshake and tags benchmarks. Installs missing
# packages first.
#   tests/run.sh                 everything (what CI runs)
#   FUZZ_SECONDS=N tests/run.sh  fuzz each target for N seconds (default 10)
#   BUILDS="normal" tests/run.sh only some of: normal address thread
set -euo pipefail
cd "$(dirname "$0")/.."
bash samples/setup.sh

builds=${BUILDS:-"normal address thread"}
fuzz_seconds=${FUZZ_SECONDS:-10}
passed=0
failed=0

echo "== format check (clang-format, .clang-format at the root)"
if git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror; then
  passed=$((passed + 1))
else
  echo "format: run 'git ls-files \"*.cpp\" \"*.h\" | xargs clang-format -i'" >&2
  failed=$((failed + 1))
fi

run_build() {
  local name=$1 dir=$2 sanitize=$3
  echo "== $name build ($dir)"
  # Release (-O2, no debug information: see CMakeLists.txt). Sanitizer trees build at -O1:
  # enough for the sanitizers, and it keeps three builds on two cores well inside CI's time.
  local flags=()
  # They leave the benchmark programs out: a sanitizer measures itself.
  [ -z "$sanitize" ] || flags=(-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DSCADA_BENCHMARKS=OFF)
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSCADA_SANITIZE="$sanitize" \
    "${flags[@]}" >/dev/null
  ninja -C "$dir"
  local log="$dir/ctest.log"
  local status=0
  (cd "$dir" && ctest --output-on-failure --timeout 900 -j "$(nproc)") | tee "$log" || status=$?
  local line
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  local total=${line##* }
  local bad
  bad=$(echo "$line" | grep -Eo '[0-9]+ tests failed' | grep -Eo '^[0-9]+')
  passed=$((passed + total - bad))
  failed=$((failed + bad))
  [ "$status" -eq 0 ] || failed=$((failed + (bad == 0 ? 1 : 0)))
}

for b in $builds; do
  case $b in
    normal) run_build "normal" build "" ;;
    address) ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_build "ASan+UBSan" build-asan address ;;
    thread) TSAN_OPTIONS=halt_on_error=1 run_build "ThreadSanitizer" build-tsan thread ;;
    *) echo "unknown build '$b' (normal, address, thread)" >&2; exit 2 ;;
  esac
done

if [ "$fuzz_seconds" -gt 0 ]; then
  echo "== fuzz targets, ${fuzz_seconds}s each"
  if tests/fuzz/run.sh "$fuzz_seconds"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

if [[ " $builds " == *" normal "* ]]; then
  echo "== planner benchmark (request counts against the reference strategies)"
  if build/bin/planner_bench; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "== handshake benchmark (figures; fails only when a session does not come up)"
  if build/bin/handshake_bench; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "== tags benchmark (figures; fails only when switching or acquisition does not work)"
  if build/bin/tags_bench; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

echo "suite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
