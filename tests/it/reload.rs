//! Reloading the configuration of a running miner: through the API (token required), on
//! SIGHUP and with `capminer ctl reload`; live keys applied (watchdog settings, the log filter),
//! the others named as needing a restart; a bad file refused, naming file, line and key, with
//! nothing changed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::common::{
    capminer, free_port, http, light_config, log_text, metric, start_miner, text, wait_for,
};

const TOKEN: &str = "reload-token-1";

fn config(metrics: u16, api: u16, stall_rounds: u32, level: &str, extra: &str) -> String {
    light_config(
        metrics,
        &format!(
            "[api]\nlisten = \"127.0.0.1:{api}\"\ntoken_file = \"api.token\"\n\
             [watchdog]\nstall_rounds = {stall_rounds}\nbackoff_initial_ms = 100\n{extra}"
        ),
    )
    .replace("[cpu]\n", "[cpu]\nunits = [{ core = 0 }, { core = 1 }]\n")
    .replace("level = \"info\"", &format!("level = \"{level}\""))
}

fn reload(api: u16, headers: &[&str]) -> (u16, serde_json::Value) {
    let (code, body) = http(api, "POST", "/api/v1/reload", headers, "").expect("API answers");
    (code, serde_json::from_str(&body).expect("JSON"))
}

fn stall_restarts(port: u16) -> f64 {
    metric(
        port,
        "capminer_unit_restarts_total",
        &[("unit", "cpu0"), ("reason", "stall")],
    )
    .unwrap_or(-1.0)
}

fn proof_lines(dir: &Path) -> usize {
    log_text(dir).matches("proof found").count()
}

#[test]
fn a_reload_applies_live_keys_names_the_others_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (port, api) = (free_port(), free_port());
    // cpu0 stalls after two rounds (a watchdog that waits 100000 rounds does not notice);
    // cpu1 hashes and logs its proofs.
    let mut miner = start_miner(
        dir.path(),
        &config(port, api, 100_000, "info", ""),
        &[("CAPMINER_FAULT", "stall@cpu0")],
    );
    let path = dir.path().join("capminer.toml");
    wait_for(Duration::from_secs(60), || {
        (proof_lines(dir.path()) > 0 && http(api, "GET", "/api/v1/status", &[], "").is_some())
            .then_some(())
    })
    .expect("the miner runs and finds proofs");
    let auth = format!("Authorization: Bearer {TOKEN}");

    // The file now asks for a watchful watchdog, a quieter log and another metrics address.
    let quick = config(port, api, 20, "warn", "").replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", free_port()),
    );
    std::fs::write(&path, &quick).unwrap();
    // Without the token: refused, nothing applied.
    let (code, body) = reload(api, &[]);
    assert_eq!(code, 401, "{body}");
    let (code, body) = reload(api, &["Authorization: Bearer wrong"]);
    assert_eq!(code, 401, "{body}");
    // Had it applied, cpu0 (stalled) would restart within 2 s (20 rounds).
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stall_restarts(port), 0.0, "no reload happened");

    // A bad file: refused with file, line and key; the running configuration stays.
    std::fs::write(
        &path,
        quick.replace("stall_rounds = 20", "stall_rounds = 1"),
    )
    .unwrap();
    let (code, body) = reload(api, &[&auth]);
    assert_eq!(code, 422, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("capminer.toml, line")
            && message.contains("key `watchdog.stall_rounds`")
            && message.contains("nothing changed"),
        "{message}"
    );
    std::fs::write(&path, quick.replace("[watchdog]", "[watchdog]\nbogus = 3")).unwrap();
    let (code, body) = reload(api, &[&auth]);
    assert_eq!(code, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bogus"), "{body}");
    let before = proof_lines(dir.path());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stall_restarts(port), 0.0, "the old watchdog settings hold");
    assert!(
        proof_lines(dir.path()) >= before,
        "the old log filter holds"
    );

    // The good file: live keys applied, the metrics address named as needing a restart.
    std::fs::write(&path, &quick).unwrap();
    let (code, body) = reload(api, &[&auth]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["applied"],
        serde_json::json!(["log.level", "watchdog.stall_rounds"]),
        "{body}"
    );
    assert_eq!(
        body["restart_required"],
        serde_json::json!(["metrics.listen"]),
        "{body}"
    );
    // The stalled unit is now noticed and restarted; the log filter is `warn`.
    wait_for(Duration::from_secs(30), || {
        (stall_restarts(port) >= 1.0).then_some(())
    })
    .expect("the new stall_rounds applies live");
    let quiet = proof_lines(dir.path());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        proof_lines(dir.path()),
        quiet,
        "info lines are filtered out"
    );

    // SIGHUP: the log level back to info, live.
    std::fs::write(&path, quick.replace("level = \"warn\"", "level = \"info\"")).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(miner.0.id() as i32, libc::SIGHUP) };
    wait_for(Duration::from_secs(30), || {
        let log = log_text(dir.path());
        (log.contains("configuration reloaded") && log.contains("applied=[\"log.level\"]"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("SIGHUP reloads: {}", log_text(dir.path())));

    // `capminer ctl reload --unit cpu0`: reloaded, and cpu0 restarted at once.
    let cfg = path.to_str().unwrap();
    let out = capminer()
        .args(["ctl", "-c", cfg, "reload", "--unit", "cpu0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["restarted"], "cpu0", "{answer}");
    assert_eq!(
        answer["restart_required"],
        serde_json::json!(["metrics.listen"])
    );
    wait_for(Duration::from_secs(10), || {
        log_text(dir.path())
            .contains("unit stopped for a restart asked by the operator")
            .then_some(())
    })
    .expect("cpu0 restarted");
    let out = capminer()
        .args(["ctl", "-c", cfg, "reload", "--unit", "cpu7"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("no unit \"cpu7\""), "{}", text(&out));
    let _ = miner.0.kill();
}
