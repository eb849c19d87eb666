//! The control API of a running miner: status for anyone on loopback; pause and resume, of all
//! units or one, only with the token; bad requests answered with a 4xx JSON error that changes
//! nothing; `capminer status` and `capminer ctl` talking to it.

use std::os::unix::fs::PermissionsExt;
use std::process::Child;
use std::time::Duration;

use crate::common::{capminer, free_port, http, light_config, text, wait_for, write_config};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status(port: u16) -> serde_json::Value {
    let (code, body) = http(port, "GET", "/api/v1/status", &[], "").expect("status answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status is JSON")
}

fn unit(port: u16) -> serde_json::Value {
    status(port)["units"][0].clone()
}

/// The unit's hash count, once it has stopped moving for a second (or `None` if it moves).
fn settled_hashes(port: u16) -> Option<u64> {
    let a = unit(port)["hashes"].as_u64()?;
    std::thread::sleep(Duration::from_millis(1000));
    let b = unit(port)["hashes"].as_u64()?;
    (a == b).then_some(b)
}

#[test]
fn the_control_api_reports_and_pauses_only_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api.token");
    std::fs::write(&token, "test-token-123\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let api = free_port();
    let extra = format!("[api]\nlisten = \"127.0.0.1:{api}\"\ntoken_file = \"api.token\"\n");
    let config = write_config(dir.path(), &light_config(free_port(), &extra));
    let cfg = config.to_str().unwrap();
    let mut miner = Kill(capminer().args(["run", "-c", cfg]).spawn().unwrap());

    let u = wait_for(Duration::from_secs(90), || {
        let u = http(api, "GET", "/api/v1/status", &[], "")
            .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())?["units"][0]
            .clone();
        (u["state"] == "hashing" && u["hashes"].as_u64()? > 0).then_some(u)
    })
    .expect("the unit hashes and the API says so");
    assert_eq!(u["unit"], "cpu0");
    assert_eq!(u["kind"], "cpu");
    let s = status(api);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["epoch"], 7);
    assert!(s["chain"].is_null(), "no chain client runs: {s}");

    // The table.
    let out = capminer().args(["status", "-c", cfg]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("cpu0") && table.contains("hashing") && table.contains("epoch 7"),
        "{table}"
    );

    // No token, a wrong one, a bad query, an unknown unit or endpoint: refused, nothing changes.
    for (headers, path, code, says) in [
        (vec![], "/api/v1/pause", 401, "missing header Authorization"),
        (
            vec!["Authorization: Bearer nope"],
            "/api/v1/pause",
            401,
            "wrong token",
        ),
        (
            vec!["Authorization: Bearer test-token-123"],
            "/api/v1/pause?units=cpu0",
            400,
            "query",
        ),
        (
            vec!["Authorization: Bearer test-token-123"],
            "/api/v1/pause?unit=cpu9",
            404,
            "no unit \"cpu9\"",
        ),
        (
            vec!["Authorization: Bearer test-token-123"],
            "/api/v1/explode",
            404,
            "no such endpoint",
        ),
    ] {
        let (got, body) = http(api, "POST", path, &headers, "").unwrap();
        assert_eq!(got, code, "{path} {headers:?}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(error["error"].as_str().unwrap().contains(says), "{body}");
    }
    let (code, _) = http(
        api,
        "POST",
        "/api/v1/pause",
        &["Authorization: Bearer test-token-123"],
        &"x".repeat(10_000),
    )
    .unwrap();
    assert_eq!(code, 413, "bodies are size-limited");
    let (code, body) = http(
        api,
        "POST",
        "/api/v1/pause",
        &["Authorization: Bearer test-token-123"],
        "unit=cpu0",
    )
    .unwrap();
    assert_eq!(code, 400, "pause takes no body: {body}");
    assert!(
        settled_hashes(api).is_none(),
        "refused calls paused nothing"
    );
    assert_eq!(unit(api)["state"], "hashing");

    // Paused with the token, through the CLI: the unit stops within a round and says why.
    let out = capminer()
        .args(["ctl", "-c", cfg, "pause", "--unit", "cpu0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let paused = wait_for(Duration::from_secs(10), || settled_hashes(api)).expect("hashing stops");
    let u = unit(api);
    assert_eq!(u["state"], "paused", "{u}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(unit(api)["hashes"].as_u64(), Some(paused), "still paused");
    let out = capminer()
        .args(["ctl", "-c", cfg, "pause", "--unit", "cpu7"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no unit \"cpu7\""), "{}", text(&out));

    // Resumed (all units): hashing again.
    let out = capminer()
        .args(["ctl", "-c", cfg, "resume"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    wait_for(Duration::from_secs(30), || {
        (unit(api)["hashes"].as_u64()? > paused).then_some(())
    })
    .expect("hashing resumes");
    assert_eq!(unit(api)["state"], "hashing");

    // SIGTERM: the API goes away with the node, which exits cleanly.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(miner.0.id() as i32, libc::SIGTERM) };
    let status = miner.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_token_file_others_can_read_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api.token");
    std::fs::write(&token, "t0ken-visible\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:{}\"\ntoken_file = \"api.token\"\n",
        free_port()
    );
    let config = write_config(dir.path(), &light_config(free_port(), &extra));
    let out = capminer()
        .args(["run", "-c", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("api.token_file") && all.contains("chmod 600"),
        "{all}"
    );
    assert!(
        !all.contains("t0ken-visible"),
        "the token never shows: {all}"
    );
}
