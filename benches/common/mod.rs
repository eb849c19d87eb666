//! Shared by the benchmarks: the reference `randomx-benchmark`, built from the RandomX sources
//! `randomx-rs` vendors.
// Each benchmark uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The RandomX source directory vendored by the randomx-rs this workspace locks.
pub(crate) fn randomx_sources() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "randomx-rs")
        .expect("randomx-rs is a dependency")["manifest_path"]
        .as_str()
        .unwrap()
        .to_string();
    Path::new(&manifest).parent().unwrap().join("RandomX")
}

/// Builds `randomx-benchmark` (cached under target/) and returns its path.
pub(crate) fn build_reference() -> PathBuf {
    let target = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let build = target.join("randomx-reference");
    let binary = build.join("randomx-benchmark");
    if !binary.exists() {
        let src = randomx_sources();
        eprintln!(
            "building the reference randomx-benchmark from {}",
            src.display()
        );
        let ok = Command::new("cmake")
            .args([
                "-S",
                src.to_str().unwrap(),
                "-B",
                build.to_str().unwrap(),
                "-DCMAKE_BUILD_TYPE=Release",
            ])
            .status()
            .expect("cmake runs")
            .success()
            && Command::new("cmake")
                .args([
                    "--build",
                    build.to_str().unwrap(),
                    "--target",
                    "randomx-benchmark",
                    "-j",
                    "2",
                ])
                .status()
                .expect("cmake --build runs")
                .success();
        assert!(ok, "building randomx-benchmark failed");
    }
    binary
}

/// The reference miner as both benchmarks run it: `randomx-benchmark --mine --auto --threads 1
/// --init <init_threads> --nonces <nonces>` (4 KiB pages, its own flag detection).
pub(crate) fn reference_mine(binary: &Path, init_threads: u64, nonces: u64) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(["--mine", "--auto", "--threads", "1", "--init"])
        .arg(init_threads.to_string())
        .arg("--nonces")
        .arg(nonces.to_string());
    cmd
}

/// The seconds of a reference output line `Memory initialized in <s> s` (cache keying plus
/// dataset allocation and build).
pub(crate) fn reference_init_seconds(line: &str) -> Option<f64> {
    line.strip_prefix("Memory initialized in ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether a head-to-head bench runs both sides on reserved 2 MiB pages
/// (`CAPMINER_BENCH_LARGE_PAGES=1`; needs `vm.nr_hugepages` set first) rather than 4 KiB pages.
#[allow(dead_code)] // not every bench including this module compares page sizes
pub(crate) fn large_pages() -> bool {
    std::env::var("CAPMINER_BENCH_LARGE_PAGES").is_ok_and(|v| v == "1")
}

/// An integer from the environment, or `default`.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
