#!/usr/bin/env bash
# One-call GPU check of a machine: no Rust toolchain needed, only a prebuilt capminer binary
# and the GPU's Vulkan driver.
#
#   deploy/gpu-check.sh BINARY OUTDIR [--lavapipe]
#
# Writes to OUTDIR, within 6 minutes in all (each step has its own time limit and a step is
# skipped, and said so, when the budget is spent):
#   system.txt                  the machine, the GPU and its driver (nvidia-smi, vulkaninfo, lspci)
#   devices.txt                 `capminer devices`
#   selftest.json / .log        `capminer bench --selftest`: every kernel's hashes against the CPU
#                               reference on this device (a small unit, then the network's)
#   selftest-unchecked.json     the same with gpu.runtime_checks = false (trusted shader modules)
#   bench-one-<kernel>.json     `capminer bench --json` with one unit, for kernel thread and lanes,
#                               and lanes-unchecked: lanes without wgpu's runtime checks;
#   bench-full-<kernel>.json    ... and with the device full of units (units = "fill": as many as
#                               fit its memory less the reserve and the shared light cache), with
#                               the time to fill it and the build's seconds per GiB; each bench
#                               also runs the device bandwidth probe (stream, gather) and a copy,
#                               with the ratios
#   bench-easy-hard.json        `capminer bench --easy-hard 3` with one unit: the GPU's hashes/s at
#                               the epoch's (hard) target and at an easy one (about 100 hits/s,
#                               each re-checked on the CPU and stored), alternated, medians and
#                               their ratio (1.0: the GPU never waits for the re-check)
#   *.log                       each step's stderr
#   summary.json                each step's exit status and seconds; passed: all steps succeeded
#
# --lavapipe (or GPU_CHECK_LAVAPIPE=1): on Mesa's CPU Vulkan driver, with small sizes (4 MiB
# units, 3 units as the "full device"), for CI and machines without a GPU.
#
# Environment (all optional):
#   GPU_CHECK_DEVICE      adapter to use, as gpu.devices' select ("0", "pci:<bus id>", a name part); 0
#   GPU_CHECK_SECONDS     seconds each bench measures; 20 (lavapipe 2)
#   GPU_CHECK_UNIT_BYTES  bytes of a unit; the network's 1073741824 (lavapipe 4194304)
#   GPU_CHECK_CACHE_BYTES bytes of the light cache; the network's 16777216 (lavapipe 65536)
#   GPU_CHECK_MEMORY_MIB  the device's memory; when absent, what the adapter reports (Vulkan's
#                         device-local heap, as `capminer devices` shows it; lavapipe: 3 units)
#   GPU_CHECK_RESERVE_MIB device memory kept free; 4096 (lavapipe 512): the driver's own use and
#                         the probe's buffers after the bench
#   GPU_CHECK_BUDGET      seconds for the whole check; 360
set -uo pipefail

usage() {
    echo "usage: $0 BINARY OUTDIR [--lavapipe]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
BIN=$1
OUT=$2
LAVAPIPE=${GPU_CHECK_LAVAPIPE:-0}
[ "${3:-}" = "--lavapipe" ] && LAVAPIPE=1
[ $# -le 3 ] || usage
if [ ! -x "$BIN" ]; then
    echo "$0: $BIN is not an executable capminer binary" >&2
    exit 2
fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

BUDGET=${GPU_CHECK_BUDGET:-360}
DEVICE=${GPU_CHECK_DEVICE:-0}
if [ "$LAVAPIPE" = 1 ]; then
    RESERVE=${GPU_CHECK_RESERVE_MIB:-512}
    export WGPU_BACKEND=vulkan
    for icd in /usr/share/vulkan/icd.d/lvp_icd.x86_64.json /usr/share/vulkan/icd.d/lvp_icd.json; do
        if [ -f "$icd" ]; then
            export VK_ICD_FILENAMES=$icd
            break
        fi
    done
    SECONDS_EACH=${GPU_CHECK_SECONDS:-2}
    UNIT_BYTES=${GPU_CHECK_UNIT_BYTES:-4194304}
    CACHE_BYTES=${GPU_CHECK_CACHE_BYTES:-65536}
    UNIT_MIB=$(( (UNIT_BYTES + 1048575) / 1048576 ))
    # 3 units, the light cache (at most 1 MiB here) and the reserve.
    MEMORY_MIB=${GPU_CHECK_MEMORY_MIB:-$(( 3 * UNIT_MIB + 1 + RESERVE ))}
    SOFTWARE=true
else
    RESERVE=${GPU_CHECK_RESERVE_MIB:-4096}
    SECONDS_EACH=${GPU_CHECK_SECONDS:-20}
    UNIT_BYTES=${GPU_CHECK_UNIT_BYTES:-1073741824}
    CACHE_BYTES=${GPU_CHECK_CACHE_BYTES:-16777216}
    UNIT_MIB=$(( (UNIT_BYTES + 1048575) / 1048576 ))
    MEMORY_MIB=${GPU_CHECK_MEMORY_MIB:-}
    SOFTWARE=false
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
START=$(date +%s)
STEPS=()
FAILED=0

elapsed() { echo $(( $(date +%s) - START )); }

# step NAME LIMIT_S STDOUT_FILE COMMAND...: runs COMMAND with at most LIMIT_S seconds (less when
# the budget has less left), stdout to STDOUT_FILE and stderr to NAME.log.
step() {
    local name=$1 limit=$2 stdout=$3
    shift 3
    local left=$(( BUDGET - $(elapsed) ))
    if [ "$left" -lt 5 ]; then
        echo "skipped: the ${BUDGET} s budget is spent" >"$OUT/$name.log"
        STEPS+=("{\"step\": \"$name\", \"status\": null, \"seconds\": 0, \"skipped\": true}")
        FAILED=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0
    t0=$(date +%s)
    echo "== $name (at most ${limit} s)" >&2
    timeout --kill-after=10 "$limit" "$@" >"$stdout" 2>"$OUT/$name.log"
    local rc=$?
    local took=$(( $(date +%s) - t0 ))
    [ "$rc" -ne 0 ] && FAILED=1 && echo "   $name failed with status $rc; see $OUT/$name.log" >&2
    STEPS+=("{\"step\": \"$name\", \"status\": $rc, \"seconds\": $took}")
}

# config FILE UNITS [MEMORY_MIB]: a bench configuration of UNITS units (a number or "fill") on
# the device.
config() {
    local memory=""
    [ -n "${3:-}" ] && memory=", memory_mib = $3"
    cat >"$1" <<EOF
[miner]
state_dir = "$OUT/state"
[cpu]
enabled = false
[gpu]
enabled = true
allow_software = $SOFTWARE
memory_reserve_mib = $RESERVE
devices = [{ select = "$DEVICE", units = $2$memory }]
[network]
gpu_unit_bytes = $UNIT_BYTES
gpu_cache_bytes = $CACHE_BYTES
[metrics]
enabled = false
[log]
level = "info"
EOF
}

system_info() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -a)"
    echo "binary: $BIN"
    "$BIN" --version 2>&1 | sed 's/^/capminer: /'
    echo "lavapipe mode: $LAVAPIPE"
    [ -r /proc/cpuinfo ] && grep -m1 'model name' /proc/cpuinfo
    grep -m1 MemTotal /proc/meminfo 2>/dev/null
    if command -v nvidia-smi >/dev/null 2>&1; then
        echo "--- nvidia-smi"
        timeout 20 nvidia-smi --query-gpu=index,name,driver_version,memory.total,pci.bus_id,clocks.max.sm,clocks.max.mem --format=csv 2>&1
        timeout 20 nvidia-smi 2>&1
    fi
    if command -v vulkaninfo >/dev/null 2>&1; then
        echo "--- vulkaninfo --summary"
        timeout 20 vulkaninfo --summary 2>&1
    fi
    if command -v lspci >/dev/null 2>&1; then
        echo "--- lspci (display)"
        lspci 2>/dev/null | grep -Ei 'vga|3d|display'
    fi
    ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | sed 's/^/icd: /'
    true
}

t0=$(date +%s)
system_info >"$OUT/system.txt" 2>"$OUT/system.log"
STEPS+=("{\"step\": \"system\", \"status\": 0, \"seconds\": $(( $(date +%s) - t0 ))}")
step devices 30 "$OUT/devices.txt" "$BIN" devices

config "$OUT/config-one.toml" 1
step selftest 90 "$OUT/selftest.json" "$BIN" bench -c "$OUT/config-one.toml" --selftest
step selftest-unchecked 90 "$OUT/selftest-unchecked.json" \
    env CAPMINER_GPU__RUNTIME_CHECKS=false "$BIN" bench -c "$OUT/config-one.toml" --selftest

# Each bench: building the datasets, the measured seconds, then the probe and copy.
BENCH_LIMIT=$(( SECONDS_EACH + 60 ))
for kernel in thread lanes; do
    step "bench-one-$kernel" "$BENCH_LIMIT" "$OUT/bench-one-$kernel.json" \
        env CAPMINER_GPU__KERNEL=$kernel "$BIN" bench -c "$OUT/config-one.toml" --seconds "$SECONDS_EACH" --json
done
step bench-one-lanes-unchecked "$BENCH_LIMIT" "$OUT/bench-one-lanes-unchecked.json" \
    env CAPMINER_GPU__KERNEL=lanes CAPMINER_GPU__RUNTIME_CHECKS=false \
    "$BIN" bench -c "$OUT/config-one.toml" --seconds "$SECONDS_EACH" --json

# Easy against hard target, one unit: 3 rounds of 2 phases, a quarter of SECONDS_EACH each.
EH_SECONDS=$(( SECONDS_EACH / 4 ))
[ "$EH_SECONDS" -lt 2 ] && EH_SECONDS=2
step bench-easy-hard $(( BENCH_LIMIT + 6 * (EH_SECONDS + 15) )) "$OUT/bench-easy-hard.json" \
    "$BIN" bench -c "$OUT/config-one.toml" --seconds "$EH_SECONDS" --easy-hard 3 --json

# The full device: units = "fill", from GPU_CHECK_MEMORY_MIB when set, else from the memory the
# adapter reports (a device that reports none fails the step, naming the key to set).
echo "full device: units = \"fill\" in ${MEMORY_MIB:-the adapter-reported} MiB less $RESERVE MiB" >&2
config "$OUT/config-full.toml" '"fill"' "$MEMORY_MIB"
for kernel in thread lanes; do
    step "bench-full-$kernel" $(( BENCH_LIMIT + 60 )) "$OUT/bench-full-$kernel.json" \
        env CAPMINER_GPU__KERNEL=$kernel "$BIN" bench -c "$OUT/config-full.toml" --seconds "$SECONDS_EACH" --json
done
rm -rf "$OUT/state"

{
    echo "{"
    echo "  \"passed\": $([ "$FAILED" = 0 ] && echo true || echo false),"
    echo "  \"seconds\": $(elapsed),"
    echo "  \"lavapipe\": $([ "$LAVAPIPE" = 1 ] && echo true || echo false),"
    echo "  \"steps\": ["
    for i in "${!STEPS[@]}"; do
        sep=","
        [ "$i" -eq $(( ${#STEPS[@]} - 1 )) ] && sep=""
        echo "    ${STEPS[$i]}$sep"
    done
    echo "  ]"
    echo "}"
} >"$OUT/summary.json"
echo "gpu-check: $([ "$FAILED" = 0 ] && echo passed || echo FAILED) in $(elapsed) s; results in $OUT" >&2
[ "$FAILED" = 0 ]
