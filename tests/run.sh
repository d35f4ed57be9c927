#!/usr/bin/env bash
# Builds and runs the whole test suite: a normal build, an ASan+UBSan build and a
# ThreadSanitizer build, each running every CTest test, then a short run of every fuzz target,
# the planner benchmark's request-count check, the handshake and tags benchmarks. Installs missing
# packages first.
#   tests/run.sh                 everything (what CI runs)
#   FUZZ_SECONDS=N tests/run.sh  fuzz each target for N seconds (default 10)
#   BUILDS="normal" tests/run.sh only some of: normal address thread
#
# On two cores most of the time is compiling. While one tree's tests run (they mostly wait on
# sockets), the next tree compiles beside them at the lowest CPU priority (nice 19), so the
# tests keep the CPU whenever they want it. The benchmarks run last, alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash samples/setup.sh

builds=${BUILDS:-"normal address thread"}
fuzz_seconds=${FUZZ_SECONDS:-10}
passed=0
failed=0
started=$SECONDS

echo "== format check (clang-format, .clang-format at the root)"
if git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror; then
  passed=$((passed + 1))
else
  echo "format: run 'git ls-files \"*.cpp\" \"*.h\" | xargs clang-format -i'" >&2
  failed=$((failed + 1))
fi

tree_dir() {
  case $1 in normal) echo build ;; address) echo build-asan ;; thread) echo build-tsan ;; esac
}
tree_name() {
  case $1 in normal) echo normal ;; address) echo ASan+UBSan ;; thread) echo ThreadSanitizer ;; esac
}

# Configures and builds one tree; its output goes to DIR/build.log, printed when it fails.
# Release (-O2, no debug information: see CMakeLists.txt). The sanitizer trees leave the
# benchmark programs out (a sanitizer measures itself) and build at -O1 (TSan) or -O0
# (ASan+UBSan: UBSan's checks make -O1 twice as slow to compile, and the tests mostly wait).
build_tree() {
  local b=$1 dir sanitize="" flags=()
  dir=$(tree_dir "$b")
  case $b in
    address) sanitize=address flags=(-DCMAKE_CXX_FLAGS_RELEASE=-O0 -DSCADA_BENCHMARKS=OFF) ;;
    thread) sanitize=thread flags=(-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DSCADA_BENCHMARKS=OFF) ;;
  esac
  mkdir -p "$dir"
  local t0=$SECONDS
  if { cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSCADA_SANITIZE="$sanitize" \
         "${flags[@]}" >/dev/null && ninja -C "$dir"; } >"$dir/build.log" 2>&1; then
    echo "$(tree_name "$b") build: done in $((SECONDS - t0)) s ($dir/build.log)" >"$dir/build.result"
  else
    cat "$dir/build.log"
    echo "$(tree_name "$b") build: FAILED ($dir/build.log)" >"$dir/build.result"
  fi
}

# Runs one tree's CTest tests and counts them.
test_tree() {
  local b=$1 dir status=0 line total bad
  dir=$(tree_dir "$b")
  echo "== $(tree_name "$b") tests ($dir)"
  case $b in
    address) export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ;;
    thread) export TSAN_OPTIONS=halt_on_error=1 ;;
  esac
  (cd "$dir" && ctest --output-on-failure --timeout 900 -j "$(nproc)") | tee "$dir/ctest.log" ||
    status=$?
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$dir/ctest.log" | tail -1)
  total=${line##* }
  bad=$(echo "$line" | grep -Eo '[0-9]+ tests failed' | grep -Eo '^[0-9]+' || echo 1)
  passed=$((passed + ${total:-0} - bad))
  failed=$((failed + bad))
  [ "$status" -eq 0 ] || failed=$((failed + (bad == 0 ? 1 : 0)))
}

# Waits for a background build and says how it went; 1 when it failed.
finish_build() {
  local b=$1 pid=$2 dir
  dir=$(tree_dir "$b")
  wait "$pid" || true
  cat "$dir/build.result"
  grep -q FAILED "$dir/build.result" && { failed=$((failed + 1)); return 1; }
  return 0
}

steps=()
for b in $builds; do
  case $b in
    normal | address | thread) steps+=("$b") ;;
    *) echo "unknown build '$b' (normal, address, thread)" >&2; exit 2 ;;
  esac
done
[ "$fuzz_seconds" -le 0 ] || steps+=(fuzz)

# Step i builds in the background (niced) while step i-1's tests run; its process is $pid.
start_build() {
  if [ "$1" = fuzz ]; then
    nice -n 19 tests/fuzz/run.sh --build-only >/dev/null 2>&1 &
  else
    (renice -n 19 -p "$BASHPID" >/dev/null; build_tree "$1") &
  fi
  pid=$!
}

normal_ok=0
pid=""
if [ ${#steps[@]} -gt 0 ]; then
  echo "== $(tree_name "${steps[0]}") build"
  start_build "${steps[0]}"
fi
for i in "${!steps[@]}"; do
  b=${steps[$i]}
  [ "$b" = fuzz ] && break
  ok=1
  finish_build "$b" "$pid" || ok=0
  [ "$b" = normal ] && normal_ok=$ok
  next=${steps[$((i + 1))]:-}
  if [ -n "$next" ]; then
    echo "== $([ "$next" = fuzz ] && echo fuzz || tree_name "$next") build, in the background"
    start_build "$next"
  fi
  [ $ok = 0 ] || test_tree "$b"
done

if [ "$fuzz_seconds" -gt 0 ]; then
  [ -z "$pid" ] || wait "$pid" || true
  echo "== fuzz targets, ${fuzz_seconds}s each"
  if tests/fuzz/run.sh "$fuzz_seconds"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

if [ $normal_ok = 1 ]; then
  echo "== planner benchmark (request counts against the reference strategies)"
  if build/bin/planner_bench; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "== handshake benchmark (figures; fails only when a session does not come up)"
  if build/bin/handshake_bench; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "== tags benchmark (figures; fails only when switching or acquisition does not work)"
  if build/bin/tags_bench; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
fi

echo "suite: $passed passed, $failed failed, $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"
[ "$failed" -eq 0 ]
