//! `capminer ccp`'s status (`GET /api/v1/status` on the JSON-RPC listener) and `capminer status`
//! in the Fluence profile, against the real binary in light mode driven over raw JSON-RPC as
//! Fluence's node drives it: the commitment, each CU's fields, the utility CPUs; a CU paused
//! and resumed through the control API (bearer token); the live page's data on the same
//! listener (`GET /api/v1/live` in this profile: its CUs and alerts).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{capminer, free_port, http, text, wait_for, write_config};

pub(crate) const GLOBAL_NONCE: &str =
    "13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6";
pub(crate) const CU: &str = "21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f";

/// The token of [`Ccp`]'s control API.
pub(crate) const TOKEN: &str = "s3cret";

/// A running `capminer ccp` (one thread a CU), its control API behind [`TOKEN`]; killed when
/// dropped.
pub(crate) struct Ccp {
    child: Child,
    /// `ccp.listen`'s port: JSON-RPC, the status, the control API and the live page.
    pub port: u16,
    /// Its configuration file.
    pub path: PathBuf,
    log: PathBuf,
}

impl Ccp {
    /// Starts it in `dir` with `ccp.listen` on a free port, `metrics` as the keys of its
    /// `[metrics]` section and full datasets or light mode; returns once it listens.
    pub(crate) fn start(dir: &Path, metrics: &str, full_memory: bool) -> Ccp {
        let port = free_port();
        let path = write_config(
            dir,
            &format!(
                "[network]\nprofile = \"fluence\"\n\n[ccp]\nlisten = \"127.0.0.1:{port}\"\n\n\
                 [miner]\nstate_dir = \"state\"\n\n[metrics]\n{metrics}\n\n\
                 [api]\ntoken_file = \"token\"\n\n\
                 [cpu]\nthreads_per_core = 1\nmemory_reserve_mib = 0\n\n\
                 [cpu.randomx]\nfull_memory = {full_memory}\nlarge_pages = false\n"
            ),
        );
        let token = dir.join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let log = dir.join("ccp.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_capminer"))
            .current_dir(dir)
            .args(["ccp", "--config", path.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let ccp = Ccp {
            child,
            port,
            path,
            log,
        };
        wait_for(Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .unwrap_or_else(|| panic!("capminer ccp does not listen; log:\n{}", ccp.log()));
        ccp
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ccp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON-RPC call to `ccp.listen`; its result (panics on an error).
pub(crate) fn call(port: u16, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let (code, body) = http(
        port,
        "POST",
        "/",
        &["Content-Type: application/json"],
        &body,
    )
    .expect("the JSON-RPC server answers");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

pub(crate) fn status(port: u16) -> Value {
    let (code, body) = http(port, "GET", "/api/v1/status", &[], "").expect("status answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// `GET /api/v1/live`, and its alerts' names.
fn live(port: u16) -> (Value, Vec<String>) {
    let (code, body) = http(port, "GET", "/api/v1/live", &[], "").expect("live answers");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let names = v["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("alerts: {v}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    (v, names)
}

pub(crate) fn commit(port: u16, difficulty: &str) {
    call(
        port,
        "ccp_on_active_commitment",
        json!({"global_nonce": GLOBAL_NONCE, "difficulty": difficulty, "cu_allocation": {"0": CU}}),
    );
}

/// Waits until the CU hashes and `done` holds for the status.
pub(crate) fn wait_until(port: u16, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(Duration::from_secs(120), || {
        let s = status(port);
        done(&s).then_some(s)
    })
    .unwrap_or_else(|| panic!("{what} within 120 s: {}", status(port)))
}

#[test]
fn ccp_serves_its_status_and_capminer_status_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let ccp = Ccp::start(dir.path(), "enabled = false", false);
    let (port, path) = (ccp.port, &ccp.path);

    // No commitment yet: no CU.
    let s = status(port);
    assert_eq!(s["profile"], "fluence");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["commitment"], Value::Null);
    assert_eq!(s["units"], json!([]));
    assert_eq!(s["utility_cpus"], json!([]));
    assert_eq!(s["proofs_served"], 0);
    let fields: Vec<&String> = s.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "commitment",
            "profile",
            "proofs_served",
            "units",
            "uptime_seconds",
            "utility_cpus",
            "version"
        ]
    );
    // The live page's data: no CU, and the alert that says why.
    let (l, alerts) = live(port);
    let fields: Vec<&String> = l.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["alerts", "now", "profile", "units"], "{l}");
    assert_eq!(
        (&l["profile"], &l["units"]),
        (&json!("fluence"), &json!([]))
    );
    assert_eq!(alerts, ["CapminerCcpNoCommitment"], "{l}");

    // A difficulty no hash meets: the CU hashes and finds nothing.
    let zero = "00".repeat(32);
    commit(port, &zero);
    let s = wait_until(port, "the CU hashes", |s| {
        s["units"][0]["state"] == "hashing" && s["units"][0]["hashes"].as_u64() > Some(0)
    });
    assert_eq!(
        s["commitment"],
        json!({"global_nonce": GLOBAL_NONCE, "difficulty": zero})
    );
    let unit = &s["units"][0];
    assert_eq!(s["units"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(
        (
            &unit["cu"],
            &unit["core"],
            &unit["threads"],
            &unit["reason"],
            &unit["proofs_found"],
            &unit["last_proof_index"]
        ),
        (
            &json!(CU),
            &json!(0),
            &json!(1),
            &Value::Null,
            &json!(0),
            &Value::Null
        ),
        "{s}"
    );
    let hashes = unit["hashes"].as_u64().unwrap();
    let later = wait_until(port, "more hashes", |s| {
        s["units"][0]["hashes"].as_u64() > Some(hashes)
    });
    assert_eq!(later["units"][0]["state"], "hashing");
    // The live data: the CU by its id and label, its rate once the sampler has seen it twice
    // (10 s apart), no build progress in light mode, nothing to alert about.
    let (l, alerts) = wait_for(Duration::from_secs(60), || {
        let (l, alerts) = live(port);
        (l["units"][0]["hashrate"]["10s"].as_f64() > Some(0.0)).then_some((l, alerts))
    })
    .unwrap_or_else(|| panic!("a 10 s hashrate within 60 s: {}", live(port).0));
    let cu = &l["units"][0];
    let fields: Vec<&String> = cu.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["build", "cu", "hashrate", "proofs_per_hour", "unit"],
        "{l}"
    );
    assert_eq!(
        (&cu["cu"], &cu["unit"], &cu["build"]),
        (&json!(CU), &json!(CU[..8]), &Value::Null),
        "{l}"
    );
    let windows: Vec<&String> = cu["hashrate"].as_object().unwrap().keys().collect();
    assert_eq!(windows, ["10s", "15m", "60s"], "{l}");
    assert!(alerts.is_empty(), "{l}");
    // The history holds the CU's samples under its label, with the proofs it found (none).
    let (_, body) = http(port, "GET", "/api/v1/history", &[], "").unwrap();
    let h: Value = serde_json::from_str(&body).unwrap();
    let newest = h["history"]["fine"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (&newest["units"][0]["unit"], &newest["units"][0]["found"]),
        (&json!(CU[..8]), &json!(0)),
        "{h}"
    );

    // A difficulty every hash meets: a new epoch, the same CU (its key is unchanged).
    let all = "ff".repeat(32);
    commit(port, &all);
    let s1 = wait_until(port, "3 proofs", |s| {
        s["commitment"]["difficulty"] == json!(all)
            && s["units"][0]["last_proof_index"].as_u64() >= Some(3)
    });
    let proofs = call(
        port,
        "ccp_get_proofs_after",
        json!({"last_known_proofs": {}, "limit": 1000}),
    );
    let served = proofs[0]["proof_batches"].as_array().unwrap();
    let s2 = status(port);
    let idx = |p: &Value| p["id"]["idx"].as_u64().unwrap();
    let last = served.iter().map(idx).max().unwrap();
    let (before, after) = (
        s1["units"][0]["last_proof_index"].as_u64().unwrap(),
        s2["units"][0]["last_proof_index"].as_u64().unwrap(),
    );
    assert!(before <= last && last <= after, "{s1} {proofs} {s2}");
    assert_eq!(served.len() as u64, last, "indices 1..=last: {proofs}");
    assert_eq!(s2["proofs_served"], json!(served.len()), "{s2}");

    // The node moves the runtime's threads.
    call(
        port,
        "ccp_realloc_utility_cores",
        json!({"utility_core_ids": [0]}),
    );
    assert_eq!(status(port)["utility_cpus"], json!([0]));

    // Pause and resume: the token first, then the CU named.
    let post = |path: &str, headers: &[&str]| http(port, "POST", path, headers, "").unwrap();
    let bearer = "Authorization: Bearer s3cret";
    let refused = |(code, body): (u16, String), want: u16, error: &str| {
        assert_eq!(code, want, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v, json!({ "error": error }));
    };
    refused(
        post("/api/v1/pause", &[]),
        401,
        "no token: send Authorization: Bearer <the token in api.token_file>",
    );
    refused(
        post("/api/v1/pause", &["Authorization: Bearer wrong"]),
        401,
        "wrong token",
    );
    refused(
        post("/api/v1/pause?cu=zz", &[bearer]),
        400,
        "query field cu: \"zz\" is not a CU id (32 bytes of hex)",
    );
    let other = "ab".repeat(32);
    refused(
        post(&format!("/api/v1/pause?cu={other}"), &[bearer]),
        404,
        &format!("query field cu: CU {other} is not allocated here"),
    );
    let (code, body) = post(&format!("/api/v1/pause?cu=0x{CU}"), &[bearer]);
    assert_eq!(
        (code, body.as_str()),
        (200, &*json!({"paused": [CU]}).to_string())
    );
    // Paused: the state says so and the hashes stop (after the batch under way).
    let still = wait_for(Duration::from_secs(30), || {
        let a = status(port);
        std::thread::sleep(Duration::from_millis(700));
        let b = status(port);
        (a["units"][0] == b["units"][0]).then_some(b)
    })
    .expect("a paused CU stops hashing");
    assert_eq!(still["units"][0]["state"], "paused", "{still}");
    let (l, alerts) = live(port);
    assert_eq!(alerts, ["CapminerCcpUnitPaused"], "{l}");
    assert_eq!(l["alerts"][0]["subject"], CU, "{l}");
    // Found across epochs, none in the first: every index of this epoch, once quiet.
    assert_eq!(
        still["units"][0]["proofs_found"], still["units"][0]["last_proof_index"],
        "{still}"
    );
    // `capminer ctl` speaks to `capminer ccp` in this profile: no live reload, resume by CU.
    let ctl = |args: &[&str]| {
        capminer()
            .args(["ctl", "--config", path.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let out = ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`capminer ccp` has no live reload"),
        "{out:?}"
    );
    let out = ctl(&["resume", "--unit", CU]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        json!({"resumed": [CU]}).to_string()
    );
    let paused_at = still["units"][0]["hashes"].as_u64();
    wait_until(port, "hashing again", |s| {
        s["units"][0]["state"] == "hashing" && s["units"][0]["hashes"].as_u64() > paused_at
    });

    // `capminer status` reads the same, as a table and as JSON.
    let out = capminer()
        .args(["status", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!(
            "commitment: global nonce {GLOBAL_NONCE}  difficulty {all}"
        )),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with(CU))
        .unwrap_or_else(|| panic!("a row for the CU: {table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["0", "1", "hashing"], "{table}");
    assert!(table.contains("utility CPUs: 0"), "{table}");
    let out = capminer()
        .args(["status", "--json", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["commitment"]["global_nonce"], GLOBAL_NONCE);
    assert_eq!(json["units"][0]["cu"], CU);

    // No commitment: every CU stops.
    call(port, "ccp_on_no_active_commitment", json!(null));
    let s = status(port);
    assert_eq!(s["commitment"], Value::Null);
    assert_eq!(s["units"], json!([]));
    let (l, alerts) = live(port);
    assert_eq!(
        (&l["units"], alerts),
        (&json!([]), vec!["CapminerCcpNoCommitment".to_string()])
    );
}

/// A CU with a full dataset (Fluence's 4 GiB) shows its build on the live page's data and in
/// its status while it builds: items done of the fork's item count, moving forward. The test
/// stops the process long before the dataset is whole.
#[test]
fn a_cu_building_its_full_dataset_shows_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let ccp = Ccp::start(dir.path(), "enabled = false", true);
    commit(ccp.port, &"00".repeat(32));
    let items = capminer_protocol::RandomxFlavor::Fluence.dataset_bytes() / 64;
    assert_eq!(items, 67_633_151);
    let progress = |what: &str, after: u64| {
        wait_for(Duration::from_secs(60), || {
            let (l, _) = live(ccp.port);
            let build = l["units"][0]["build"].as_array()?.clone();
            let done = build[0].as_u64()?;
            (done > after).then_some((done, build[1].as_u64(), l))
        })
        .unwrap_or_else(|| {
            panic!(
                "{what} within 60 s: {}; log:\n{}",
                live(ccp.port).0,
                ccp.log()
            )
        })
    };
    let (first, total, l) = progress("build progress", 0);
    assert_eq!(total, Some(items), "{l}");
    assert!(first < items, "{l}");
    assert_eq!(status(ccp.port)["units"][0]["state"], "building");
    let (later, total, l) = progress("more items built", first);
    assert_eq!(total, Some(items), "{l}");
    assert!(
        later < items,
        "the test stops before the dataset is whole: {l}"
    );
}
