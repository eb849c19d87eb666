//! `POST /api/v1/units` on a running miner: units added (CPU core, GPU adapter), removed and
//! moved to another core while the other units keep hashing, the utility cores moved (the
//! runtime's worker thread with them); refusals name the request field and change nothing; no
//! token, no change.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::{free_port, http, light_config, start_miner, wait_for};

const AUTH: &str = "Authorization: Bearer units-token-9";

/// The units of the status answer (none while the API does not answer yet).
fn units(api: u16) -> Vec<serde_json::Value> {
    http(api, "GET", "/api/v1/status", &[], "")
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|s| s["units"].as_array().cloned())
        .unwrap_or_default()
}

fn unit(api: u16, label: &str) -> Option<serde_json::Value> {
    units(api).into_iter().find(|u| u["unit"] == label)
}

fn labels(api: u16) -> Vec<String> {
    units(api)
        .iter()
        .map(|u| u["unit"].as_str().unwrap().to_string())
        .collect()
}

fn hashes(api: u16, label: &str) -> u64 {
    unit(api, label).map_or(0, |u| u["hashes"].as_u64().unwrap())
}

fn post(api: u16, headers: &[&str], body: &str) -> (u16, serde_json::Value) {
    let (code, text) = http(api, "POST", "/api/v1/units", headers, body).expect("API answers");
    (
        code,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}")),
    )
}

/// The CPUs the runtime's worker thread (`capminer-rt`) of process `pid` may run on.
fn runtime_worker_cpus(pid: u32) -> Vec<usize> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let worker = tasks
        .map(|t| t.unwrap().path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "capminer-rt"))
        .expect("a runtime worker thread");
    let status = std::fs::read_to_string(worker.join("status")).unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    list.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// Waits until `label` hashes more than `after`.
fn hashes_past(api: u16, label: &str, after: u64) {
    wait_for(Duration::from_secs(60), || {
        (hashes(api, label) > after).then_some(())
    })
    .unwrap_or_else(|| panic!("{label} does not hash: {:?}", units(api)));
}

#[test]
fn units_are_added_removed_and_moved_while_the_others_hash() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api.token");
    std::fs::write(&token, "units-token-9\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let api = free_port();
    let config = light_config(
        free_port(),
        &format!(
            "[api]\nlisten = \"127.0.0.1:{api}\"\ntoken_file = \"api.token\"\n\
             [gpu]\nallow_software = true\nbatch = 256\n\
             [network]\ngpu_unit_bytes = 4194304\ngpu_cache_bytes = 65536\n"
        ),
    )
    .replace("[cpu]\n", "[cpu]\nunits = [{ core = 0 }]\n");
    let miner = start_miner(dir.path(), &config, &[]);
    wait_for(Duration::from_secs(60), || {
        (hashes(api, "cpu0") > 0).then_some(())
    })
    .expect("cpu0 hashes");
    let cpu0_id = unit(api, "cpu0").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // No token: refused, nothing added.
    let (code, body) = post(api, &[], r#"{"add": {"core": 1}}"#);
    assert_eq!(code, 401, "{body}");
    let (code, body) = post(
        api,
        &["Authorization: Bearer nope"],
        r#"{"add": {"core": 1}}"#,
    );
    assert_eq!(code, 401, "{body}");
    // Refusals name the field; nothing changes.
    let refusals = [
        (
            r#"{"add": {"core": 7}}"#,
            422,
            "add.core",
            "core 7 does not exist",
        ),
        (
            r#"{"add": {"core": 0}}"#,
            409,
            "add.core",
            "already used by unit cpu0",
        ),
        (
            &format!(r#"{{"add": {{"core": 1, "id": "{cpu0_id}"}}}}"#) as &str,
            409,
            "add.id",
            "already used by unit cpu0",
        ),
        (
            r#"{"add": {"core": 1, "id": "0x12"}}"#,
            400,
            "add.id",
            "0x12",
        ),
        (r#"{"add": {}}"#, 400, "add", "either core"),
        (
            r#"{"add": {"gpu": "no-such-gpu"}}"#,
            422,
            "add.gpu",
            "no GPU adapter",
        ),
        (r#"{"remove": "cpu9"}"#, 404, "remove", "no unit \"cpu9\""),
        (
            r#"{"move": {"unit": "cpu9", "core": 1}}"#,
            404,
            "move.unit",
            "no unit",
        ),
        (
            r#"{"move": {"unit": "cpu0", "core": 9}}"#,
            422,
            "move.core",
            "does not exist",
        ),
    ];
    for (body, code, field, says) in refusals {
        let (got, answer) = post(api, &[AUTH], body);
        assert_eq!(got, code, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    let (code, answer) = post(api, &[AUTH], r#"{"explode": 1}"#);
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("expected"),
        "{answer}"
    );
    assert_eq!(
        labels(api),
        vec!["cpu0"],
        "refused requests changed nothing"
    );

    // Utility cores: not where a unit hashes, not a core that is not there; then core 1,
    // where the runtime's worker thread moves, and where no unit may go until it is released.
    for (body, code, says) in [
        (r#"{"utility_cores": [0]}"#, 409, "used by unit cpu0"),
        (r#"{"utility_cores": [5]}"#, 422, "does not exist"),
    ] {
        let (got, answer) = post(api, &[AUTH], body);
        assert_eq!(got, code, "{body}: {answer}");
        assert_eq!(answer["field"], "utility_cores", "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let (code, answer) = post(api, &[AUTH], r#"{"utility_cores": [1]}"#);
    assert_eq!(code, 200, "{answer}");
    let cpus: Vec<usize> = answer["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(runtime_worker_cpus(miner.0.id()), cpus, "the worker moved");
    let (code, answer) = post(api, &[AUTH], r#"{"add": {"core": 1}}"#);
    assert_eq!(code, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("utility core"),
        "{answer}"
    );
    let (code, answer) = post(api, &[AUTH], r#"{"utility_cores": []}"#);
    assert_eq!(code, 200, "{answer}");

    // Add a CPU unit on core 1: it hashes, and cpu0 never stopped.
    let before = hashes(api, "cpu0");
    let (code, answer) = post(api, &[AUTH], r#"{"add": {"core": 1}}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["added"], "cpu1");
    hashes_past(api, "cpu1", 0);
    assert!(hashes(api, "cpu0") > before, "cpu0 hashed on meanwhile");
    let cpu1_id = unit(api, "cpu1").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(cpu1_id, cpu0_id);

    // Add a GPU unit on adapter 0 (lavapipe): it hashes beside the CPU units.
    let (code, answer) = post(api, &[AUTH], r#"{"add": {"gpu": "0"}}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["added"], "gpu0.0");
    hashes_past(api, "gpu0.0", 0);
    let (code, answer) = post(api, &[AUTH], r#"{"remove": "gpu0.0"}"#);
    assert_eq!(code, 200, "{answer}");

    // Remove cpu0: it goes; cpu1 keeps hashing.
    let before = hashes(api, "cpu1");
    let (code, answer) = post(api, &[AUTH], r#"{"remove": "cpu0"}"#);
    assert_eq!(code, 200, "{answer}");
    wait_for(Duration::from_secs(10), || {
        (labels(api) == vec!["cpu1"]).then_some(())
    })
    .unwrap_or_else(|| panic!("cpu0 and gpu0.0 are gone: {:?}", labels(api)));
    hashes_past(api, "cpu1", before);

    // Move cpu1 to core 0: the same unit id, now labelled cpu0, hashing there.
    let (code, answer) = post(api, &[AUTH], r#"{"move": {"unit": "cpu1", "core": 0}}"#);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["to"], "cpu0");
    wait_for(Duration::from_secs(10), || {
        (labels(api) == vec!["cpu0"]).then_some(())
    })
    .unwrap_or_else(|| panic!("cpu1 became cpu0: {:?}", labels(api)));
    let moved = unit(api, "cpu0").unwrap();
    assert_eq!(moved["id"], cpu1_id.as_str(), "the moved unit keeps its id");
    assert!(
        moved["place"].as_str().unwrap().starts_with("core 0"),
        "{moved}"
    );
    hashes_past(api, "cpu0", 0);
}
