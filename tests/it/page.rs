//! The live page at `/` of the control API, in a real browser: Debian's chromium (headless),
//! driven by playwright-core from `tests/page/page.mjs` against a real node (light mode, a
//! CPU unit and a GPU unit on lavapipe). The script checks the live rows and rates, the epoch bar, the pipeline against
//! `/api/v1/status`, the GPU device, the alert of a paused unit, pause refused without the token (and the same
//! 401 as curl with a wrong one), working with it, the phone width and the "node unreachable"
//! state once the node stops; it writes screenshots to `target/tmp/page/`. A second test runs
//! `tests/page/chain.mjs` against a devnet: the epoch's progress, proofs against the epoch's
//! minimum and maximum, final proofs and gas. A third runs `tests/page/ccp.mjs` against
//! `capminer ccp` (the Fluence profile, light mode, two CUs): the same page on `ccp.listen`,
//! showing the commitment, the CUs and the proofs served as `/api/v1/status` says, pause and
//! resume by CU with the token, and "no active commitment".

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{
    Kill, Term, capminer, free_port, http, light_config, text, wait_for, write_config,
};
use crate::fluence_status::{CU, Ccp, GLOBAL_NONCE, TOKEN};

/// Where the screenshots go: `target/tmp/page/`.
fn shots() -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page")
}

/// The browser, Debian's chromium unless `CHROMIUM` names another.
fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: deploy/setup.sh installs Debian's chromium"
    );
    chromium
}

/// Runs `tests/page/<script>` with Node against the page on `port`, `env` added.
fn run_script(script: &str, port: u16, env: &[(&str, String)]) -> Output {
    let root = env!("CARGO_MANIFEST_DIR");
    Command::new("node")
        .arg(format!("{root}/tests/page/{script}"))
        .env("PAGE_PORT", port.to_string())
        .env("SHOTS", shots())
        .env("CHROMIUM", chromium())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(root)
        .output()
        .expect("node runs (tools/node_modules has playwright-core: deploy/setup.sh)")
}

#[test]
fn the_live_page_shows_the_node_live_in_a_real_browser() {
    chromium();
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
    let node = Kill(
        capminer()
            .args(["run", "-c", config.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );
    let hashing = wait_for(Duration::from_secs(90), || {
        let (_, body) = http(api, "GET", "/api/v1/status", &[], "")?;
        let s: serde_json::Value = serde_json::from_str(&body).ok()?;
        let units = s["units"].as_array()?;
        (units.len() == 2 && units.iter().all(|u| u["state"] == "hashing")).then_some(())
    });
    assert!(hashing.is_some(), "the node never hashed");
    // Nothing the page reads names a file or carries the token.
    let dir_name = dir.path().to_str().unwrap();
    for path in ["/", "/page/app.js", "/api/v1/live", "/api/v1/history"] {
        let (code, body) = http(api, "GET", path, &[], "").unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            !body.contains(dir_name) && !body.contains(token) && !body.contains("token_file = "),
            "{path} leaks a path or the token: {body}"
        );
    }
    let out = run_script(
        "page.mjs",
        api,
        &[
            ("API_TOKEN", token.to_string()),
            ("NODE_PID", node.0.id().to_string()),
            // The config leaves `gpu_accesses` at the network's.
            (
                "BYTES_PER_HASH",
                capminer_protocol::GpuChallenge::NETWORK
                    .bytes_per_hash()
                    .to_string(),
            ),
        ],
    );
    drop(node);
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
        let size = std::fs::metadata(shots().join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
}

#[test]
fn the_live_page_follows_a_devnets_chain() {
    chromium();
    let dir = tempfile::tempdir().unwrap();
    let api = free_port();
    let config = light_config(
        free_port(),
        &format!(
            "[api]\nlisten = \"127.0.0.1:{api}\"\n\
             [chain]\nconfirmations = 1\npoll_ms = 300\n[chain.batch]\nmax_wait_ms = 500\n"
        ),
    )
    .replace("[cpu]\n", "[cpu]\nunits = [{ core = 0 }]\n");
    let path = write_config(dir.path(), &config);
    let (min, max) = ("3", "40");
    let _devnet = Term(
        capminer()
            .args(["devnet", "-c", path.to_str().unwrap()])
            .args(["--port", &free_port().to_string()])
            .args(["--epoch-seconds", "30", "--grace-seconds", "4"])
            .args(["--verify-seconds", "60", "--verifiers", "1"])
            .args(["--min-proofs", min, "--max-proofs", max])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("devnet.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(dir.path().join("devnet.log")).unwrap_or_default();
    wait_for(Duration::from_secs(120), || {
        log()
            .contains(&format!("live page: http://127.0.0.1:{api}/"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the devnet never printed its page's address:\n{}", log()));
    let out = run_script(
        "chain.mjs",
        api,
        &[("MIN_PROOFS", min.into()), ("MAX_PROOFS", max.into())],
    );
    assert!(
        out.status.success(),
        "the browser checks failed:\n{}\n{}",
        text(&out),
        log()
    );
    let size = std::fs::metadata(shots().join("page-chain.png")).map_or(0, |m| m.len());
    assert!(size > 10_000, "page-chain.png: {size} bytes");
}

/// Stops `capminer ccp`, then fails with its log if the browser script's run `out` failed.
fn stop_and_check(ccp: Ccp, out: &Output) {
    let log = ccp.log();
    drop(ccp);
    assert!(
        out.status.success(),
        "the browser checks failed:\n{}\n--- capminer ccp's log\n{log}",
        text(out),
    );
}

/// A CU building Fluence's full 4 GiB dataset, in a real browser: its row's state, a progress
/// bar of the fork's items that moves forward, the percentage and the time left. The test
/// stops the process long before the dataset is whole.
#[test]
fn the_live_page_shows_a_cus_full_dataset_build_in_a_real_browser() {
    chromium();
    let dir = tempfile::tempdir().unwrap();
    let ccp = Ccp::start(dir.path(), "enabled = false", true);
    let items = capminer_protocol::RandomxFlavor::Fluence.dataset_bytes() / 64;
    let out = run_script(
        "ccp-build.mjs",
        ccp.port,
        &[
            ("CU", CU.to_string()),
            ("GLOBAL_NONCE", GLOBAL_NONCE.to_string()),
            ("ITEMS", items.to_string()),
        ],
    );
    stop_and_check(ccp, &out);
    let shot = shots().join("page-ccp-building.png");
    let size = std::fs::metadata(&shot).map_or(0, |m| m.len());
    assert!(size > 10_000, "{}: {size} bytes", shot.display());
}

#[test]
fn the_live_page_shows_capminer_ccp_in_a_real_browser() {
    chromium();
    let dir = tempfile::tempdir().unwrap();
    let ccp = Ccp::start(dir.path(), "enabled = false", false);
    let (port, token) = (ccp.port, TOKEN);
    // Nothing the page reads names a file or carries the token.
    let dir_name = dir.path().to_str().unwrap();
    for path in [
        "/",
        "/page/app.js",
        "/page/app-fluence.js",
        "/api/v1/live",
        "/api/v1/history",
    ] {
        let (code, body) = http(port, "GET", path, &[], "").unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            !body.contains(dir_name) && !body.contains(token),
            "{path} leaks a path or the token: {body}"
        );
    }
    // Two CUs, one a core (threads_per_core = 1), and a difficulty about one hash in 16 meets.
    let cus = [
        "21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f",
        "9a0c41d2e5b7f8361c2d4e5f60718293a4b5c6d7e8f90112233445566778899a",
    ];
    let out = run_script(
        "ccp.mjs",
        port,
        &[
            ("API_TOKEN", token.to_string()),
            ("CUS", cus.join(",")),
            (
                "GLOBAL_NONCE",
                "13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6".into(),
            ),
            ("DIFFICULTY", format!("0f{}", "ff".repeat(31))),
        ],
    );
    stop_and_check(ccp, &out);
    for shot in [
        "page-ccp.png",
        "page-ccp-paused.png",
        "page-ccp-phone.png",
        "page-ccp-none.png",
    ] {
        let size = std::fs::metadata(shots().join(shot)).map_or(0, |m| m.len());
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
}
