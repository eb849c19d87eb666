//! The systemd units: hardening settings, `systemd-analyze verify` and its offline security
//! exposure level.

use std::collections::BTreeMap;
use std::process::Command;

use super::read;
use crate::common::text;

/// `systemd-analyze verify` and `systemd-analyze security --offline` of both units, with
/// ExecStart pointed at the built binary (verify requires it to exist). Warnings count as
/// failures: systemd only warns, exit status 0, about an unknown key or a bad value.
#[test]
fn systemd_units_verify_and_are_hardened() {
    let has = Command::new("systemd-analyze").arg("--version").output();
    if !has.is_ok_and(|o| o.status.success()) {
        eprintln!("systemd-analyze is not installed: the systemd units are not verified here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (unit, subcommand) in [
        ("capminer.service", "run"),
        ("capminer-verifier.service", "verifier"),
    ] {
        let unit_text = read(&format!("systemd/{unit}"));
        let service: BTreeMap<&str, &str> = unit_text
            .split("[Service]")
            .nth(1)
            .unwrap()
            .split("[Install]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        for (key, value) in [
            ("Restart", "on-failure"),
            ("LimitMEMLOCK", "infinity"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", ""),
            ("User", "capminer"),
        ] {
            assert_eq!(service.get(key), Some(&value), "{unit}: {key}");
        }
        let exec = service["ExecStart"];
        let config = exec
            .strip_prefix(&format!("/usr/local/bin/capminer {subcommand} -c "))
            .unwrap_or_else(|| panic!("{unit}: ExecStart={exec}"));
        assert!(config.starts_with("/etc/capminer/"), "{unit}: {config}");
        let state = format!("/var/lib/{}", service["StateDirectory"]);
        assert_eq!(
            service.get("ReadWritePaths"),
            Some(&state.as_str()),
            "{unit}"
        );

        let copy = dir.path().join(unit);
        std::fs::write(
            &copy,
            unit_text.replace("/usr/local/bin/capminer", env!("CARGO_BIN_EXE_capminer")),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
            "systemd-analyze verify {unit}: {}",
            text(&out)
        );
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=40"])
            .arg(&copy)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let level = report
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split_once(": "))
            .and_then(|(_, v)| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{unit}: {}", text(&out)));
        eprintln!("{unit}: exposure level {level}");
        assert!(out.status.success(), "{unit}: {}", text(&out));
        assert!(level < 4.0, "{unit} exposure {level} (below 4.0 is 'OK')");
    }
}
