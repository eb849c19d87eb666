#!/usr/bin/env bash
# The README's second command: set up this machine and run the whole test suite, with the
# checks CI applies (format, lints, benchmarks built).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/deploy/setup.sh"
cd "$root"
export PATH="$root/tools/node_modules/.bin:$PATH"
# Lavapipe: Mesa's Vulkan driver on the CPU, the GPU of machines without one.
export WGPU_BACKEND=vulkan
export VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" # Mesa's loader complains without one
# One clean build: incremental state would only double the disk a build takes.
export CARGO_INCREMENTAL=0

step() { printf '\n== %s\n' "$*"; }
step "contract artifact matches its source"; bash contracts/build.sh --check
step "format"; cargo fmt --all --check
step "lints"; cargo clippy --locked --workspace --all-targets -- -D warnings
step "tests"; cargo nextest run --locked --workspace --no-fail-fast
step "doc tests"; cargo test --locked --workspace --doc
step "benchmarks build"; cargo bench --locked --no-run
echo; echo "all checks passed"
