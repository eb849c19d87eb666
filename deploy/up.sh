#!/usr/bin/env bash
# The README's first command: set up this machine, build capminer, and run its main job
# against a local chain it starts itself: `capminer devnet` starts anvil, deploys the capacity
# contract, registers every physical core as a CPU unit, funds the reward pool, starts a
# verifier, and mines: proofs found, submitted, accepted, attested, rewards claimed.
# State in ./state/devnet, metrics on 127.0.0.1:9477, anvil on 127.0.0.1:8545, the live page on
# http://127.0.0.1:9478/ (the control API's listener; capminer devnet logs its address).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/deploy/setup.sh"
cd "$root"
cargo build --release --locked
export PATH="$root/tools/node_modules/.bin:$PATH"
rm -rf state/devnet # every devnet starts a fresh chain, so it starts a fresh store too
exec target/release/capminer devnet --config config/devnet.toml "$@"
