#!/usr/bin/env bash
# install.sh: installs the interoperability test's Node.js client (nodes7, pinned in
# package-lock.json) into tests/interop/node_modules with `npm ci`.
#
# Does nothing when node_modules was installed from the current package.json and
# package-lock.json (a stamp in node_modules records the hash of both) and `npm ls` finds it
# complete; otherwise (missing, stale or damaged) reinstalls. Needs network access only then.
# Called by samples/setup.sh and by run_interop.sh. Exit 0 when node_modules is ready.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stamp="$here/node_modules/.installed-from"

die() {
  echo "install.sh: $*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 ||
  die "'node' not found: install Node.js (on Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 ||
  die "'npm' not found: install npm (on Debian: apt-get install npm)"
[[ -f "$here/package-lock.json" ]] || die "$here/package-lock.json is missing"

# Two callers at once (setup.sh and a test run) must not both run `npm ci`, which deletes
# node_modules first; the lock is on the directory itself, so no lock file is left behind.
exec 9<"$here"
flock -w 300 9 || die "timed out after 300 s waiting for another install in $here"

wanted=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]] &&
  (cd "$here" && npm ls --all >/dev/null 2>&1); then
  exit 0
fi

echo "install.sh: installing the packages of $here/package-lock.json (npm ci)" >&2
# --ignore-scripts: nothing pinned here needs install scripts, so none get to run.
(cd "$here" && timeout 300 npm ci --no-audit --no-fund --ignore-scripts) ||
  die "npm ci failed in $here (network or registry unreachable?)"
echo "$wanted" >"$stamp"
