//! GPU measurement through the real binary on lavapipe: `capminer bench --json` with every GPU
//! field and the device probe, `bench --selftest` against the CPU reference, and
//! `deploy/gpu-check.sh` end to end in its lavapipe mode.

use std::path::Path;
use std::process::Command;

use crate::common::{run, text, write_config};

/// One 4 MiB GPU unit on adapter 0 (lavapipe), CPU units off, an easy GPU target (2^-14) so
/// hits are found and re-checked within seconds.
fn gpu_bench_config(dir: &Path, units: u32) -> String {
    let path = write_config(
        dir,
        &format!(
            r#"
[miner]
state_dir = "state"
[epoch]
gpu_target = "0x0003ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
[cpu]
enabled = false
[gpu]
enabled = true
allow_software = true
devices = [{{ select = "0", units = {units} }}]
[network]
gpu_unit_bytes = 4194304
gpu_cache_bytes = 65536
[metrics]
enabled = false
[log]
level = "warn"
"#
        ),
    );
    path.to_str().unwrap().to_string()
}

fn f64_of(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is a number in {v}"))
}

#[test]
fn bench_json_reports_every_gpu_field_and_the_probe_of_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = gpu_bench_config(dir.path(), 1);
    for (kernel, name) in [("auto", "lanes/subgroup"), ("thread", "thread")] {
        let out = Command::new(env!("CARGO_BIN_EXE_capminer"))
            .args(["bench", "-c", &config, "--seconds", "3", "--json"])
            .env("CAPMINER_GPU__KERNEL", kernel)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let units = report["units"].as_array().unwrap();
        assert_eq!(units.len(), 1, "{report}");
        let u = &units[0];
        let g = &u["gpu"];
        assert_eq!(g["kernel"], name, "{g}");
        assert_eq!(g["device"], 0);
        assert!(g["adapter"].as_str().unwrap().contains("llvmpipe"), "{g}");
        assert!(g["driver"].as_str().unwrap().contains("Mesa"), "{g}");
        assert_eq!(g["backend"], "Vulkan");
        assert_eq!(g["subgroup_size"], 8, "lavapipe at 256 bits");
        assert_eq!(g["subgroup_size_max"], 8);
        assert_eq!(g["device_memory_bytes"], 4 << 20);
        let (found, refuted) = (
            g["hits_found"].as_u64().unwrap(),
            g["hits_refuted"].as_u64().unwrap(),
        );
        let hashes = u["hashes"].as_u64().unwrap();
        assert!(hashes > 10_000, "{u}");
        // 2^-14 of the hashes meet the target: far more than none, far fewer than all.
        assert!(
            found > 0 && found < hashes / 1000,
            "{found} hits of {hashes}"
        );
        assert_eq!(refuted, 0, "lavapipe computes what the CPU does");
        assert_eq!(g["dispatch_overflows"], 0, "{g}");
        // lavapipe has timestamp queries: the batch follows the dispatches' GPU time, which
        // also says how busy the unit kept the GPU.
        assert_eq!(g["batch_tuning"], "gpu timestamps", "{g}");
        assert!(g["batch"].as_u64().unwrap() >= 64, "{g}");
        // (Credited per round, and a round's first dispatches ran before it began: over a
        // few seconds it can read above 1.)
        let busy = f64_of(g, "gpu_busy");
        assert!(busy > 0.0 && busy < 3.0, "{g}");
        assert_eq!(g["runtime_checks"], true);
        assert!(f64_of(g, "cache_seconds") > 0.0);
        let build = f64_of(g, "dataset_build_seconds");
        assert!(build > 0.0 && build < 60.0, "{g}");
        let hashrate = f64_of(u, "hashrate");
        let read = f64_of(u, "bytes_read_per_second");
        assert!((read - hashrate * 64.0 * 128.0).abs() < 1e-6 * read, "{u}");

        let devices = report["gpu_devices"].as_array().unwrap();
        assert_eq!(devices.len(), 1, "{report}");
        let d = &devices[0];
        assert_eq!(d["units"], 1);
        assert_eq!(
            d["probe_bytes"],
            4 << 20,
            "the probe covers what the units hold"
        );
        assert_eq!(d["device_memory_bytes"], 4 << 20);
        assert!(
            d["device_memory_reported_bytes"].as_u64().unwrap() >= 128 << 20,
            "{d}"
        );
        // Filling the device: its one light cache, then the unit's dataset (4 MiB: 1/256 GiB).
        let (fill, cache) = (f64_of(d, "fill_seconds"), f64_of(d, "cache_seconds"));
        assert!(
            fill >= build && cache > 0.0 && fill > cache && fill < 60.0,
            "{d}"
        );
        assert_eq!(cache, f64_of(g, "cache_seconds"));
        assert!(
            (f64_of(d, "fill_seconds_per_gib") - fill * 256.0).abs() < 1e-6,
            "{d}"
        );
        let per_gib = f64_of(d, "dataset_build_seconds_per_gib");
        assert!((per_gib - (fill - cache) * 256.0).abs() < 1e-6, "{d}");
        assert_eq!(f64_of(d, "bytes_read_per_second"), read);
        for (probe, ratio) in [
            ("probe_stream_bytes_per_second", "ratio_to_stream"),
            ("probe_gather_bytes_per_second", "ratio_to_gather"),
            ("copy_bytes_per_second", "ratio_to_copy"),
        ] {
            let p = f64_of(d, probe);
            assert!(p > 1e6 && p < 1e13, "{probe}: {d}");
            assert!((f64_of(d, ratio) - read / p).abs() < 1e-9, "{ratio}: {d}");
        }
    }
}

#[test]
fn bench_selftest_checks_every_kernel_against_the_cpu_reference() {
    let dir = tempfile::tempdir().unwrap();
    let config = gpu_bench_config(dir.path(), 2);
    let out = run(&["bench", "-c", &config, "--selftest"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], true);
    let devices = report["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "one device, however many units: {report}");
    let checks = devices[0]["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["what"].as_str().unwrap()).collect();
    // The small unit (dataset + 3 kernels), then the network's 4 MiB unit (3 kernels).
    assert_eq!(
        names,
        [
            "dataset",
            "thread",
            "lanes/workgroup",
            "lanes/subgroup",
            "thread",
            "lanes/workgroup",
            "lanes/subgroup"
        ]
    );
    assert_eq!(checks[0]["compared"], 65536);
    assert_eq!(checks[1]["compared"], 4096);
    assert_eq!(checks[4]["compared"], 256);
    assert!(checks.iter().all(|c| c["mismatches"] == 0), "{report}");
}

#[test]
fn with_subgroups_of_4_auto_runs_the_workgroup_fallback_and_the_selftest_passes() {
    // lavapipe at 128-bit vectors has subgroups of 4: too small for a group of 8 lanes.
    let dir = tempfile::tempdir().unwrap();
    let config = gpu_bench_config(dir.path(), 1);
    let devices = Command::new(env!("CARGO_BIN_EXE_capminer"))
        .arg("devices")
        .env("LP_NATIVE_VECTOR_WIDTH", "128")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&devices.stdout);
    assert!(listing.contains("lanes/workgroup"), "{listing}");
    let out = Command::new(env!("CARGO_BIN_EXE_capminer"))
        .args(["bench", "-c", &config, "--selftest"])
        .env("LP_NATIVE_VECTOR_WIDTH", "128")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["devices"][0]["subgroup_sizes"][0], 4, "{report}");
    let checks = report["devices"][0]["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["what"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "dataset",
            "thread",
            "lanes/workgroup",
            "thread",
            "lanes/workgroup"
        ]
    );
    assert!(checks.iter().all(|c| c["mismatches"] == 0), "{report}");
}

#[test]
fn gpu_check_script_runs_end_to_end_on_lavapipe() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/gpu-check.sh"))
        .arg(env!("CARGO_BIN_EXE_capminer"))
        .arg(&out_dir)
        .arg("--lavapipe")
        .env("GPU_CHECK_SECONDS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let read = |name: &str| {
        std::fs::read_to_string(out_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", text(&out)))
    };
    assert!(
        read("system.txt").contains("capminer"),
        "{}",
        read("system.txt")
    );
    assert!(read("devices.txt").contains("llvmpipe"));
    let selftest: serde_json::Value = serde_json::from_str(&read("selftest.json")).unwrap();
    assert_eq!(selftest["passed"], true);
    for (scope, units) in [("one", 1), ("full", 3)] {
        for kernel in ["thread", "lanes"] {
            let name = format!("bench-{scope}-{kernel}.json");
            let bench: serde_json::Value = serde_json::from_str(&read(&name)).unwrap();
            let all = bench["units"].as_array().unwrap();
            assert_eq!(all.len(), units, "{name}");
            let want = if kernel == "lanes" {
                "lanes/subgroup"
            } else {
                "thread"
            };
            assert!(all.iter().all(|u| u["gpu"]["kernel"] == want), "{name}");
            let device = &bench["gpu_devices"][0];
            assert!(f64_of(device, "ratio_to_gather") > 0.0);
            assert_eq!(device["units"], units, "{name}");
            assert!(f64_of(device, "fill_seconds") > 0.0, "{name}");
        }
    }
    let unchecked: serde_json::Value =
        serde_json::from_str(&read("selftest-unchecked.json")).unwrap();
    assert_eq!(unchecked["passed"], true, "{unchecked}");
    assert_eq!(unchecked["devices"][0]["runtime_checks"], false);
    assert_eq!(selftest["devices"][0]["runtime_checks"], true);
    let bench: serde_json::Value =
        serde_json::from_str(&read("bench-one-lanes-unchecked.json")).unwrap();
    let g = &bench["units"][0]["gpu"];
    assert_eq!(
        (g["kernel"].as_str(), g["runtime_checks"].as_bool()),
        (Some("lanes/subgroup"), Some(false)),
        "{bench}"
    );
    let easy_hard: serde_json::Value = serde_json::from_str(&read("bench-easy-hard.json")).unwrap();
    let e = &easy_hard["easy_hard"];
    assert_eq!(e["rounds"], 3, "{easy_hard}");
    assert!(f64_of(e, "ratio") > 0.0 && e["hits_refuted"] == 0, "{e}");
    let summary: serde_json::Value = serde_json::from_str(&read("summary.json")).unwrap();
    assert_eq!(summary["passed"], true, "{summary}");
    assert!(summary["seconds"].as_u64().unwrap() < 360, "{summary}");
    let steps = summary["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == 0), "{summary}");
}

#[test]
fn bench_easy_hard_reports_both_targets_medians_and_their_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let config = gpu_bench_config(dir.path(), 1);
    let out = run(&[
        "bench",
        "-c",
        &config,
        "--seconds",
        "1",
        "--json",
        "--easy-hard",
        "2",
        "--easy-hits",
        "2000",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &report["easy_hard"];
    assert_eq!(e["rounds"], 2, "{e}");
    assert_eq!(
        e["hard_target"],
        "0x0003ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    );
    // The easy target: a hit in every (measured GPU hashrate / 2000) hashes, about 200 hits
    // in a dispatch of the auto-tuned 100 ms, which overflowed the 64-hit result buffers
    // dispatches had before they were cut to the target.
    let rate = f64_of(&report["units"][0], "hashrate");
    let expected = e["easy_expected_hashes"].as_u64().unwrap();
    assert_eq!(expected, (rate / 2000.0).max(1.0) as u64, "{e}");
    let median = |key: &str| {
        let mut v: Vec<f64> = e[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(v.len(), 2, "{key}: {e}");
        v.sort_by(f64::total_cmp);
        (v[0] + v[1]) / 2.0
    };
    let (hard, easy) = (median("hard_hashrates"), median("easy_hashrates"));
    // (JSON's decimal floats read back within an ulp or so.)
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
    assert!(close(f64_of(e, "hard_hashrate"), hard), "{e}");
    assert!(close(f64_of(e, "easy_hashrate"), easy), "{e}");
    assert!(hard > 0.0 && easy > 0.0, "{e}");
    assert!(close(f64_of(e, "ratio"), easy / hard), "{e}");
    assert!(f64_of(e, "easy_hits_per_second") > 0.0, "{e}");
    for busy in ["hard_gpu_busy", "easy_gpu_busy"] {
        assert!(
            f64_of(e, busy) > 0.0 && f64_of(e, busy) < 3.0,
            "{busy}: {e}"
        );
    }
    assert_eq!(e["hits_refuted"], 0);
    // At the easy target a dispatch is cut to expect a quarter of a result buffer's hits:
    // none overflows (and none is redone in halves while the GPU waits).
    assert_eq!(e["dispatch_overflows"], 0, "{e}");
}
