//! The live page at `/` of the control API, in a real browser: Debian's chromium (headless),
//! driven by playwright-core from `tests/page/page.mjs` against a real node (light mode, a
//! CPU unit and a GPU unit on lavapipe). The script checks the live rows and rates, the epoch bar, the pipeline against
//! `/api/v1/status`, the GPU device, the alert of a paused unit, pause refused without the token (and the same
//! 401 as curl with a wrong one), working with it, the phone width and the "node unreachable"
//! state once the node stops; it writes screenshots to `target/tmp/page/`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::common::{capminer, free_port, http, light_config, text, wait_for, write_config};

#[test]
fn the_live_page_shows_the_node_live_in_a_real_browser() {
    let root = env!("CARGO_MANIFEST_DIR");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: deploy/setup.sh installs Debian's chromium"
    );
    let dir = tempfile::tempdir().unwrap();
    let token = "page-token-5f3a";
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let api = free_port();
    // One CPU unit on core 0 and one small GPU unit on adapter 0 (lavapipe in CI).
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:{api}\"\ntoken_file = \"api.token\"\n\
         [gpu]\nenabled = true\nallow_software = true\nbatch = 256\n\
         devices = [{{ select = \"0\", units = 1 }}]\n\
         [network]\ngpu_unit_bytes = 4194304\ngpu_cache_bytes = 65536\n"
    );
    let config =
        light_config(free_port(), &extra).replace("[cpu]\n", "[cpu]\nunits = [{ core = 0 }]\n");
    let config = write_config(dir.path(), &config);
    let mut node = capminer()
        .args(["run", "-c", config.to_str().unwrap()])
        .spawn()
        .unwrap();
    let hashing = wait_for(Duration::from_secs(90), || {
        let (_, body) = http(api, "GET", "/api/v1/status", &[], "")?;
        let s: serde_json::Value = serde_json::from_str(&body).ok()?;
        let units = s["units"].as_array()?;
        (units.len() == 2 && units.iter().all(|u| u["state"] == "hashing")).then_some(())
    });
    if hashing.is_none() {
        let _ = node.kill();
        panic!("the node never hashed");
    }
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page");
    let out = Command::new("node")
        .arg(format!("{root}/tests/page/page.mjs"))
        .env("PAGE_PORT", api.to_string())
        .env("API_TOKEN", token)
        .env("NODE_PID", node.id().to_string())
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .current_dir(root)
        .output()
        .expect("node runs (tools/node_modules has playwright-core: deploy/setup.sh)");
    let _ = node.kill();
    let _ = node.wait();
    assert!(
        out.status.success(),
        "the browser checks failed:\n{}",
        text(&out)
    );
    for shot in [
        "page-desktop.png",
        "page-paused.png",
        "page-phone.png",
        "page-unreachable.png",
    ] {
        let size = std::fs::metadata(shots.join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
}
