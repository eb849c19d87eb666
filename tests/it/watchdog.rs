//! The per-unit watchdog, through the real binary with injected faults (`CAPMINER_FAULT`, read
//! only by builds with the `fault-injection` feature, which this test build turns on): a unit
//! that panics or stalls is restarted alone, with a backoff that doubles, while the other unit
//! hashes the whole time; with `watchdog.enabled = false` the first fault stops the process
//! with an error instead. GPU faults (compute errors, a lost device) on lavapipe.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Kill, free_port, light_config, log_text as log, metric, wait_for};

fn hashes(port: u16, unit: &str) -> Option<f64> {
    metric(port, "capminer_hashes_total", &[("unit", unit)])
}

fn restarts(port: u16, unit: &str, reason: &str) -> Option<f64> {
    metric(
        port,
        "capminer_unit_restarts_total",
        &[("unit", unit), ("reason", reason)],
    )
}

/// Two light-mode CPU units (cores 0 and 1), a fast watchdog that calls `stall_rounds` rounds
/// (100 ms each) without a hash a stall, with `extra` keys. Only the stall test asks for a short
/// stall: on a machine shared with builds, a store fsync alone can hold a unit for a second.
fn two_units(metrics: u16, stall_rounds: u32, extra: &str) -> String {
    let config = light_config(
        metrics,
        &format!(
            "[watchdog]\nstall_rounds = {stall_rounds}\nbackoff_initial_ms = 300\nbackoff_max_ms = 5000\n{extra}"
        ),
    );
    let two = "[cpu]\nround_ms = 100\nunits = [{ core = 0 }, { core = 1 }]\n";
    assert!(config.contains("[cpu]\nround_ms = 100\n"));
    config.replace("[cpu]\nround_ms = 100\n", two)
}

/// How often `unit` keyed a dataset (or light cache), from the log.
fn keyed(log: &str, unit: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("keyed in") && l.contains(&format!("unit={unit} ")))
        .count()
}

/// Seconds since midnight of a log line's RFC 3339 timestamp (`2026-12-01T16:39:46.296921Z`).
fn seconds_of(line: &str) -> f64 {
    let time = line.split('T').nth(1).unwrap().split('Z').next().unwrap();
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// Samples `unit`'s hash counter until `done` holds (or `timeout`), asserting that it rises
/// in every window of `window`.
fn keeps_hashing(
    port: u16,
    unit: &str,
    window: Duration,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) {
    let end = Instant::now() + timeout;
    let mut last = (Instant::now(), hashes(port, unit).unwrap());
    while !done() {
        assert!(Instant::now() < end, "timed out");
        std::thread::sleep(Duration::from_millis(100));
        if last.0.elapsed() >= window {
            let now = hashes(port, unit).unwrap();
            assert!(
                now > last.1,
                "{unit} stopped hashing for {window:?} ({} → {now})",
                last.1
            );
            last = (Instant::now(), now);
        }
    }
}

#[test]
fn a_panicking_unit_alone_restarts_with_growing_backoff_while_the_other_keeps_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _miner = start(dir.path(), &two_units(port, 300, ""), "panic@cpu0x3");
    wait_for(Duration::from_secs(60), || {
        (hashes(port, "cpu1")? > 0.0 && hashes(port, "cpu0")? > 0.0).then_some(())
    })
    .expect("both units hash");
    assert_eq!(
        restarts(port, "cpu0", "stall"),
        Some(0.0),
        "every reason exported at 0"
    );

    // Three panics of cpu0, three restarts; cpu1 hashes in every 3 s meanwhile (a window a
    // machine shared with builds can keep; that cpu1 was never stopped is checked below from
    // its log: keyed once).
    let mut saw_down = false;
    let mut first_restart = None;
    keeps_hashing(
        port,
        "cpu1",
        Duration::from_secs(3),
        Duration::from_secs(90),
        || {
            saw_down |= metric(port, "capminer_unit_up", &[("unit", "cpu0")]) == Some(0.0);
            let n = restarts(port, "cpu0", "panic").unwrap_or(0.0);
            if n >= 1.0 && first_restart.is_none() {
                first_restart = hashes(port, "cpu0");
            }
            n >= 3.0
        },
    );
    assert!(
        saw_down,
        "capminer_unit_up{{unit=\"cpu0\"}} went 0 while it was down"
    );
    assert!(first_restart.is_some());
    // Hashing again after the last restart, up again; cpu1 never restarted.
    let after = hashes(port, "cpu0").unwrap();
    wait_for(Duration::from_secs(30), || {
        (hashes(port, "cpu0")? > after).then_some(())
    })
    .expect("cpu0 hashes again after its third restart");
    wait_for(Duration::from_secs(5), || {
        (metric(port, "capminer_unit_up", &[("unit", "cpu0")])? == 1.0).then_some(())
    })
    .expect("cpu0 is up again");
    for reason in ["panic", "stall", "error", "device_lost", "compute_errors"] {
        assert_eq!(restarts(port, "cpu1", reason), Some(0.0), "{reason}");
    }
    assert_eq!(restarts(port, "cpu0", "panic"), Some(3.0));

    // The log names the unit and the reason; the waits double (300, 600, 1200 ms) and each
    // restart came no sooner than its wait (less the time a busy machine may take between
    // deciding the wait and writing its log line).
    let text = log(dir.path());
    let stopped: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("restarting it in") && l.contains("unit=cpu0"))
        .collect();
    let waits: Vec<u64> = stopped
        .iter()
        .map(|l| {
            assert!(l.contains("reason=panic") && l.contains("panicked"), "{l}");
            l.split("restart_in_ms=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(waits, vec![300, 600, 1200], "{text}");
    let restarted: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("unit restarted") && l.contains("unit=cpu0"))
        .collect();
    assert_eq!(restarted.len(), 3, "{text}");
    for ((stop, start), wait) in stopped.iter().zip(&restarted).zip(&waits) {
        let observed = seconds_of(start) - seconds_of(stop);
        assert!(
            observed * 1000.0 >= *wait as f64 - 150.0 && observed * 1000.0 < *wait as f64 + 3000.0,
            "waited {observed} s for a backoff of {wait} ms"
        );
    }
    assert!(
        !text.contains("unit=cpu1 reason"),
        "cpu1 never faulted: {text}"
    );
    assert_eq!(
        keyed(&text, "cpu1"),
        1,
        "cpu1 was never stopped nor re-keyed: {text}"
    );
    assert_eq!(
        keyed(&text, "cpu0"),
        4,
        "cpu0 keyed at start and after each restart"
    );

    // Every proof found was stored, across the restarts.
    let found = metric(port, "capminer_proofs_found_total", &[("unit", "cpu0")]).unwrap();
    let stored = wait_for(Duration::from_secs(5), || {
        let s = metric(port, "capminer_proofs_stored_total", &[("unit", "cpu0")])?;
        (s >= found).then_some(s)
    });
    assert!(stored.is_some(), "found {found}, not all stored");
}

#[test]
fn a_stalled_unit_is_restarted_with_reason_stall() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _miner = start(dir.path(), &two_units(port, 30, ""), "stall@cpu0");
    wait_for(Duration::from_secs(60), || {
        (hashes(port, "cpu1")? > 0.0).then_some(())
    })
    .expect("cpu1 hashes");
    keeps_hashing(
        port,
        "cpu1",
        Duration::from_secs(3),
        Duration::from_secs(60),
        || restarts(port, "cpu0", "stall") == Some(1.0),
    );
    let after = hashes(port, "cpu0").unwrap();
    wait_for(Duration::from_secs(30), || {
        (hashes(port, "cpu0")? > after).then_some(())
    })
    .expect("cpu0 hashes again after the stall");
    let text = log(dir.path());
    assert!(
        text.lines()
            .any(|l| l.contains("unit faulted (stall)") && l.contains("unit=cpu0")),
        "{text}"
    );
    assert_eq!(restarts(port, "cpu0", "panic"), Some(0.0));
    assert_eq!(keyed(&text, "cpu1"), 1, "cpu1 was never stopped: {text}");
}

#[test]
fn without_the_watchdog_a_unit_fault_stops_the_process_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut miner = start(
        dir.path(),
        &two_units(port, 300, "enabled = false\n"),
        "panic@cpu1",
    );
    let status = wait_for(Duration::from_secs(60), || miner.0.try_wait().unwrap())
        .expect("the process exits");
    assert!(!status.success(), "{status:?}");
    let text = log(dir.path());
    assert!(
        text.contains("unit cpu1 failed and watchdog.enabled = false"),
        "{text}"
    );
}

/// Two tiny GPU units on adapter 0 (lavapipe in CI), no CPU unit, a fast watchdog.
fn two_gpu_units(metrics: u16) -> String {
    light_config(
        metrics,
        r#"[gpu]
enabled = true
allow_software = true
batch = 256
devices = [{ select = "0", units = 2 }]
[network]
gpu_unit_bytes = 4194304
gpu_cache_bytes = 65536
[watchdog]
stall_rounds = 50
max_compute_errors = 5
backoff_initial_ms = 200
"#,
    )
    .replace("[cpu]\n", "[cpu]\nenabled = false\n")
}

#[test]
fn gpu_compute_errors_beyond_the_threshold_restart_the_gpu_unit_alone() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _miner = start(dir.path(), &two_gpu_units(port), "compute@gpu0.0x6");
    wait_for(Duration::from_secs(90), || {
        (hashes(port, "gpu0.1")? > 0.0 && hashes(port, "gpu0.0")? > 0.0).then_some(())
    })
    .expect("the GPU units hash");
    // Six refuted results: over the threshold of five, so gpu0.0 restarts; gpu0.1 hashes on
    // (in windows of 10 s: the restarted unit's dataset build shares the device's queue, which
    // on a busy lavapipe holds gpu0.1's dispatches for seconds).
    keeps_hashing(
        port,
        "gpu0.1",
        Duration::from_secs(10),
        Duration::from_secs(60),
        || restarts(port, "gpu0.0", "compute_errors") == Some(1.0),
    );
    assert_eq!(
        metric(port, "capminer_compute_errors_total", &[("unit", "gpu0.0")]),
        Some(6.0)
    );
    let after = hashes(port, "gpu0.0").unwrap();
    wait_for(Duration::from_secs(60), || {
        (hashes(port, "gpu0.0")? > after).then_some(())
    })
    .expect("gpu0.0 hashes again");
    assert_eq!(restarts(port, "gpu0.1", "compute_errors"), Some(0.0));
    let text = log(dir.path());
    assert!(
        text.lines()
            .any(|l| l.contains("reason=compute_errors") && l.contains("unit=gpu0.0")),
        "{text}"
    );
}

#[test]
fn a_lost_gpu_device_is_opened_again_and_its_units_hash_again() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _miner = start(dir.path(), &two_gpu_units(port), "device_lost@gpu0.0");
    wait_for(Duration::from_secs(90), || {
        (restarts(port, "gpu0.0", "device_lost")? >= 1.0).then_some(())
    })
    .unwrap_or_else(|| panic!("no device_lost restart: {}", log(dir.path())));
    // Both units lived on the lost device; each hashes again on the adapter opened anew.
    for unit in ["gpu0.0", "gpu0.1"] {
        let after = hashes(port, unit).unwrap();
        wait_for(Duration::from_secs(60), || {
            (hashes(port, unit)? > after).then_some(())
        })
        .unwrap_or_else(|| panic!("{unit} does not hash again: {}", log(dir.path())));
    }
    assert_eq!(
        restarts(port, "gpu0.0", "panic"),
        Some(0.0),
        "a lost device is told from a panic"
    );
    let text = log(dir.path());
    assert!(text.contains("lost (Destroyed)"), "{text}");
}

/// Starts `capminer run` on `config` with `CAPMINER_FAULT=fault`, its log in `dir/miner.log`.
fn start(dir: &Path, config: &str, fault: &str) -> Kill {
    crate::common::start_miner(dir, config, &[("CAPMINER_FAULT", fault)])
}

#[test]
fn the_backoff_starts_again_after_healthy_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Hashing 500 ms after a restart resets the backoff; the second panic comes after 20 rounds
    // (2 s) of hashing, so it waits as the first did.
    let _miner = start(
        dir.path(),
        &two_units(port, 300, "backoff_reset_ms = 500\n"),
        "panic@cpu0x2/20",
    );
    wait_for(Duration::from_secs(90), || {
        (restarts(port, "cpu0", "panic")? >= 2.0).then_some(())
    })
    .expect("two panics, two restarts");
    let text = log(dir.path());
    let waits: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("restarting it in") && l.contains("unit=cpu0"))
        .map(|l| l.split("restart_in_ms=").nth(1).unwrap().trim())
        .collect();
    assert_eq!(waits, vec!["300", "300"], "{text}");
    assert!(text.contains("backoff reset"), "{text}");
}
