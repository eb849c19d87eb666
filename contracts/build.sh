#!/usr/bin/env bash
# Compiles the capacity contract into contracts/artifacts/Capacity.json with solcjs (npm
# package solc, pinned in tools/package-lock.json). `--check` recompiles into a temporary file
# and fails if it differs from the committed artifact.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
[ -d "$root/tools/node_modules/solc" ] || (cd "$root/tools" && npm ci --silent --no-audit --no-fund)
artifact="$here/artifacts/Capacity.json"
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
NODE_PATH="$root/tools/node_modules" node "$here/compile.js" > "$fresh"
if [ "${1:-}" = "--check" ]; then
  if ! cmp -s "$fresh" "$artifact"; then
    echo "contracts/artifacts/Capacity.json is stale: recompiling src/Capacity.sol gives a different artifact; run contracts/build.sh and commit it" >&2
    diff <(head -c 2000 "$artifact") <(head -c 2000 "$fresh") >&2 || true
    exit 1
  fi
  echo "contracts: artifact matches the source"
else
  mkdir -p "$here/artifacts"
  cp "$fresh" "$artifact"
  echo "contracts: wrote $artifact"
fi
