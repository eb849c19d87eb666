#!/usr/bin/env bash
# The README's first command: set up this machine, build capminer, and run its main job.
# Today that is the miner alone on the fixed epoch of config/solo.toml (every physical core a
# CPU unit with its own RandomX dataset, proofs in ./state, metrics on 127.0.0.1:9477).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/deploy/setup.sh"
cd "$root"
cargo build --release --locked
exec target/release/capminer run --config config/solo.toml "$@"
