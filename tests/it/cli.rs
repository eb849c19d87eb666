//! The command line: config errors with clear messages and non-zero exits, `config print`,
//! `bench`, `proofs export` and `verify` on good and tampered proofs.

use crate::common::{free_port, light_config, run, text, write_config};

fn assert_refused(config: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), config);
    let out = run(&["config", "check", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
    // `run` refuses the same file the same way, before mining anything.
    let out = run(&["run", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        !dir.path().join("state").exists(),
        "refused before touching the proof store"
    );
}

#[test]
fn an_unknown_key_is_refused() {
    assert_refused(
        "[cpu]\nround_ms = 150\nhuge_pages = true\n",
        &[
            "line 3",
            "key `cpu.huge_pages`",
            "unknown field `huge_pages`",
        ],
    );
}

#[test]
fn a_wrong_type_is_refused() {
    assert_refused(
        "[metrics]\nlisten = 9477\n",
        &["line 2", "key `metrics.listen`", "invalid type"],
    );
}

#[test]
fn a_missing_core_is_refused() {
    assert_refused(
        "[cpu]\nunits = [{ core = 0 }, { core = 64 }]\n",
        &[
            "line 2",
            "key `cpu.units[1].core`",
            "core 64 does not exist",
        ],
    );
}

#[test]
fn more_datasets_than_memory_are_refused() {
    // Two full datasets cannot fit when almost all memory is reserved for something else.
    let total_mib = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024;
    let config = format!("[cpu]\nunits = [{{ core = 0 }}]\nmemory_reserve_mib = {total_mib}\n");
    assert_refused(
        &config,
        &[
            "key `cpu.units`",
            "RandomX datasets need",
            "MiB is available",
        ],
    );
}

#[test]
fn config_print_shows_the_effective_config_with_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[cpu]\nround_ms = 150\n");
    let out = crate::common::capminer()
        .args(["config", "print", "-c", path.to_str().unwrap()])
        .env("CAPMINER_METRICS__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("round_ms = 150"), "{printed}");
    assert!(printed.contains("listen = \"127.0.0.1:9999\""), "{printed}");
    assert!(printed.contains("units = \"auto\""), "{printed}");
}

#[test]
fn bench_reports_every_unit_with_flags_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    // Neither reserved nor transparent huge pages: every page a 4 KiB one, exactly.
    let config = light_config(free_port(), "").replace(
        "large_pages = false\n",
        "large_pages = false\ntransparent_huge_pages = false\n",
    );
    let path = write_config(dir.path(), &config);
    let out = run(&[
        "bench",
        "-c",
        path.to_str().unwrap(),
        "--seconds",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let units = report["units"].as_array().unwrap();
    assert_eq!(
        units.len(),
        capminer_miner::topology::Topology::detect()
            .unwrap()
            .cores
            .len()
    );
    for u in units {
        assert!(u["hashrate"].as_f64().unwrap() > 1.0, "{u}");
        assert_eq!(
            u["huge_pages"], 0.0,
            "large_pages = false, transparent_huge_pages = false: no huge page"
        );
    }
    let flags = report["randomx_flags"].as_str().unwrap();
    assert!(
        flags.contains("jit") && !flags.contains("full_mem"),
        "{flags}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "bench writes no proofs to the real store"
    );
}

#[test]
fn verify_accepts_mined_proofs_and_names_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &light_config(free_port(), ""));
    let mut child = crate::common::capminer()
        .args(["run", "-c", path.to_str().unwrap()])
        .spawn()
        .unwrap();
    let state = dir.path().join("state");
    let found = crate::common::wait_for(std::time::Duration::from_secs(60), || {
        let out = run(&["proofs", "export", "--store", state.to_str().unwrap()]);
        let file: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (file["proofs"].as_array()?.len() >= 6).then_some(())
    });
    // SAFETY: plain kill(2) of our child; SIGTERM asks for a clean stop.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(found.is_some(), "the miner stored proofs");
    assert!(
        status.success(),
        "SIGTERM stops the miner cleanly: {status:?}"
    );

    let out = run(&["proofs", "export", "-c", path.to_str().unwrap()]);
    let mut file: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = file["proofs"].as_array().unwrap().len();
    assert!(n >= 6);
    let out = run(&["verify", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("verified {n} proofs: {n} valid, 0 invalid")),
        "every stored proof recomputed, none skipped: {}",
        text(&out)
    );

    let nonce = file["proofs"][2]["nonce"].as_u64().unwrap();
    file["proofs"][2]["nonce"] = (nonce + 1_000_000).into();
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_vec(&file).unwrap()).unwrap();
    let out = run(&[
        "verify",
        "-c",
        path.to_str().unwrap(),
        "--file",
        tampered.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "INVALID unit {} epoch 7 nonce {}",
            file["proofs"][2]["unit"].as_str().unwrap(),
            nonce + 1_000_000
        )),
        "{stdout}"
    );
    assert_eq!(stdout.matches("INVALID").count(), 1, "{stdout}");
    assert!(
        stdout.contains(&format!("verified {n} proofs: {} valid, 1 invalid", n - 1)),
        "{stdout}"
    );
}

/// Logs carry no colour codes when stderr is not a terminal, and `--log-format json` makes
/// every line one JSON object.
#[test]
fn logs_are_plain_text_or_json_lines_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &light_config(free_port(), ""));
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "-c", path.to_str().unwrap(), "--seconds", "1"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stderr).unwrap()
    };
    let plain = bench(&[]);
    assert!(plain.lines().count() > 0, "the bench logs: {plain}");
    assert!(!plain.contains('\x1b'), "no escape codes: {plain:?}");
    let json = bench(&["--log-format", "json"]);
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}

/// RPC credentials (in the URL's user info, path or query) and the signer's key never reach
/// the logs, while the node keeps failing to reach the endpoint and says so.
#[test]
fn rpc_credentials_and_keys_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let key = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    let path = write_config(
        dir.path(),
        &light_config(
            free_port(),
            &format!(
                "[chain]\nenabled = true\nrpc_url = \"http://operator:s3cretpass@127.0.0.1:{closed}/v3/APIKEY0123456789?token=QUERYSECRET\"\n\
                 contract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n"
            ),
        )
        // The key's own address: units a chain run can own.
        .replace(
            "[miner]\n",
            "[miner]\nprovider = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n",
        ),
    );
    let log = dir.path().join("run.log");
    let mut child = crate::common::capminer()
        .args(["run", "-c", path.to_str().unwrap()])
        .env("CAPMINER_PRIVATE_KEY", key)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Wait until it has failed to connect at least twice (it retries), then stop it.
    let tried = crate::common::wait_for(std::time::Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches("connecting again").count() >= 2).then_some(text)
    });
    // SAFETY: kill(2) of our own child with SIGTERM.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(tried.is_some(), "it retried the endpoint: {text}");
    assert!(
        text.contains(&format!("127.0.0.1:{closed}")),
        "the endpoint is named (redacted): {text}"
    );
    for secret in [
        "s3cretpass",
        "operator:",
        "APIKEY0123456789",
        "QUERYSECRET",
        key,
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}
