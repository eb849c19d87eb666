#!/usr/bin/env bash
# Installs what capminer needs on a Debian machine, idempotently:
#   - Debian packages: cmake, make and a C++ compiler (RandomX, built by randomx-rs), binutils
#     (objcopy renames the symbols of Fluence's RandomX fork, randomx-fluence-sys), Mesa's Vulkan
#     drivers (lavapipe, the GPU of machines without one), Prometheus (promtool and the server
#     the tests scrape with), Node.js and npm (for anvil and solc), mount (a tmpfs in a test),
#     systemd (only its systemd-analyze, which verifies the unit files in deploy/systemd), chromium
#     (headless, for the live page's browser test);
#   - cargo-nextest, if missing (the test runner);
#   - from npm, into tools/node_modules: anvil (@foundry-rs/anvil-linux-amd64), solcjs (solc),
#     playwright-core (drives chromium in the page test) and uplot (the page's vendored charts,
#     whose hash the page test compares).
# Rust itself (1.95 or newer) must already be installed, e.g. with rustup.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v c++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
command -v objcopy >/dev/null || need_apt+=(binutils) # renames the Fluence RandomX fork's symbols
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || need_apt+=(mesa-vulkan-drivers)
command -v promtool >/dev/null && command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v curl >/dev/null || need_apt+=(curl)
command -v chromium >/dev/null || need_apt+=(chromium) # the live page's browser test
command -v mount >/dev/null || need_apt+=(mount) # the disk-full test mounts a tmpfs
command -v systemd-analyze >/dev/null || need_apt+=(systemd) # verifies deploy/systemd/*.service
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust 1.95 or newer (https://rustup.rs) and run again" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi

tools="$root/tools"
if [ ! -x "$tools/node_modules/.bin/anvil" ] || [ ! -x "$tools/node_modules/.bin/solcjs" ] \
  || [ ! -d "$tools/node_modules/playwright-core" ] || [ ! -d "$tools/node_modules/uplot" ]; then
  echo "setup: installing anvil, solc, playwright-core and uplot from npm into $tools (versions pinned in tools/package-lock.json)"
  (cd "$tools" && npm ci --silent --no-audit --no-fund)
fi
echo "setup: done"
