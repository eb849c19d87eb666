//! Hostile and careless inputs (issue 26): each gets a clear answer naming what is wrong and
//! where (exit status 2 for bad input, a 4xx JSON from the control API), and nothing stored is
//! lost. Each test here failed on the code before the fix.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use capminer_miner::verify::{Claim, Verdict, Verifier};
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, Hash, Proof, Seed, Target, UnitId, UnitKind};

use crate::common::{
    capminer, free_port, http, light_config, log_text, start_miner, text, wait_for, write_config,
};

/// The seed the tests' stores record epoch 7 under.
const SEED: [u8; 32] = [0x5e; 32];

/// Epoch 7 under `seed`, with targets every hash meets.
fn epoch7(seed: [u8; 32]) -> Epoch {
    Epoch {
        number: 7,
        seed: Seed(seed),
        targets: [Target([0xff; 32]), Target([0xff; 32])],
    }
}

/// A light-mode config in `dir` (store `dir/state`) whose `[epoch]` has `seed`.
fn config_with_seed(dir: &Path, seed: [u8; 32]) -> PathBuf {
    let text = light_config(free_port(), "").replace(
        "number = 7\n",
        &format!("number = 7\nseed = \"0x{}\"\n", hex::encode(seed)),
    );
    write_config(dir, &text)
}

/// `n` proofs of one CPU unit in epoch 7 (under [`SEED`]), with their true hashes when `valid`
/// (computed here in light mode, as `capminer verify` does), else a made-up hash.
fn proofs(config: &Path, n: u64, valid: bool) -> Vec<Proof> {
    let unit = UnitId([0x42; 32]);
    let mut proofs: Vec<Proof> = (0..n)
        .map(|nonce| Proof {
            unit,
            kind: UnitKind::Cpu,
            epoch: 7,
            nonce,
            hash: Hash([0x01; 32]),
        })
        .collect();
    if valid {
        let config = capminer_config::load(Some(config), std::iter::empty()).unwrap();
        let verifier = Verifier::new(
            capminer_miner::randomx_options(&config),
            capminer_miner::gpu_params(&config).unwrap(),
        )
        .unwrap();
        let claims: Vec<Claim> = proofs
            .iter()
            .map(|p| Claim {
                unit,
                kind: UnitKind::Cpu,
                epoch: epoch7(SEED),
                nonce: p.nonce,
                hash: None,
            })
            .collect();
        for (p, verdict) in proofs.iter_mut().zip(verifier.verify(&claims).unwrap()) {
            let Verdict::Valid { hash } = verdict else {
                panic!("every hash meets an all-ones target: {verdict:?}");
            };
            p.hash = hash;
        }
    }
    proofs
}

/// A store in `dir` holding epoch 7 under [`SEED`] and `proofs`, one record each.
fn store(dir: &Path, proofs: &[Proof]) {
    let (store, _) = ProofStore::open(dir).unwrap();
    store.record_epoch(&epoch7(SEED)).unwrap();
    for p in proofs {
        store.append(std::slice::from_ref(p)).unwrap();
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn capminer_out(args: &[&str]) -> Output {
    capminer()
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn a_new_seed_under_a_recorded_epoch_number_is_refused_by_config_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let stored = proofs(Path::new("/nonexistent"), 3, false);
    store(&state, &stored);
    let other = [0x77; 32];
    let config = config_with_seed(dir.path(), other);
    let cfg = config.to_str().unwrap();

    for command in ["config check", "run"] {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.extend(["-c", cfg]);
        let started = Instant::now();
        let out = capminer_out(&args);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{command} refuses before starting anything"
        );
        let err = stderr(&out);
        for needle in [
            "[epoch].seed",
            "[epoch].number",
            cfg,
            &state.display().to_string(),
            &Seed(SEED).to_string(),
            &Seed(other).to_string(),
        ] {
            assert!(err.contains(needle), "{command}: {needle} named: {err}");
        }
    }
    // Nothing was re-recorded: the epoch keeps its seed, every proof is there.
    let read = ProofStore::open_read_only(&state).unwrap();
    assert_eq!(read.epoch(7), Some(epoch7(SEED)));
    assert_eq!(read.proofs(|_| true).unwrap().len(), 3);

    // The recorded seed passes.
    let config = config_with_seed(dir.path(), SEED);
    let out = capminer_out(&["config", "check", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Runs `capminer args` with its standard output a pipe whose reader is gone before it writes.
fn into_closed_pipe(args: &[&str]) -> Output {
    let mut child = capminer()
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// Runs `capminer args` with its standard output on a full disk (`/dev/full`).
fn into_full_disk(args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    capminer()
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(full)
        .output()
        .unwrap()
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_is_an_error_naming_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = config_with_seed(dir.path(), SEED);
    let cfg = config.to_str().unwrap();
    store(&state, &proofs(&config, 300, false));
    let s = state.to_str().unwrap();
    let exported = capminer_out(&["proofs", "export", "--store", s]);
    assert!(exported.status.success(), "{}", text(&exported));
    assert!(exported.stdout.len() > 64 << 10, "more than a pipe holds");
    // verify reads a small store and a small file (it hashes each proof).
    let small = dir.path().join("small");
    store(&small, &proofs(&config, 2, false));
    let small = small.to_str().unwrap();
    let exported = capminer_out(&["proofs", "export", "--store", small]);
    let file = dir.path().join("proofs.json");
    std::fs::write(&file, &exported.stdout).unwrap();
    let f = file.to_str().unwrap();

    // `| head`: the reader reads a little and goes.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' proofs export --store '{s}' | head -c 100 >/dev/null; exit ${{PIPESTATUS[0]}}",
            capminer().get_program().to_str().unwrap()
        ))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stderr(&out), "", "quiet");

    for args in [
        &["proofs", "export", "--store", s][..],
        &["verify", "-c", cfg, "--store", small],
        &["verify", "-c", cfg, "--file", f],
    ] {
        let out = into_closed_pipe(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            text(&out)
        );

        let out = into_full_disk(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("cannot write to standard output")
                && err.contains("No space left on device")
                && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn verify_counts_a_repeated_proof_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = config_with_seed(dir.path(), SEED);
    let cfg = config.to_str().unwrap();
    store(&state, &proofs(&config, 2, true));
    let exported = capminer_out(&["proofs", "export", "--store", state.to_str().unwrap()]);
    let mut json: serde_json::Value = serde_json::from_slice(&exported.stdout).unwrap();
    let list = json["proofs"].as_array().unwrap().clone();
    let mut repeated = vec![list[0].clone(); 10];
    repeated.push(list[1].clone());
    json["proofs"] = repeated.into();
    let file = dir.path().join("proofs.json");
    std::fs::write(&file, json.to_string()).unwrap();

    let out = capminer_out(&["verify", "-c", cfg, "--file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        "verified 2 proofs: 2 valid, 0 invalid (9 repeated entries counted once)\n"
    );
    let err = stderr(&out);
    assert!(
        err.contains("proofs[1] repeats proofs[0]") && err.contains("proofs[9] repeats proofs[0]"),
        "{err}"
    );
}

#[test]
fn verify_refuses_an_unknown_field_inside_a_proof_naming_it_and_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = config_with_seed(dir.path(), SEED);
    store(&state, &proofs(&config, 3, false));
    let exported = capminer_out(&["proofs", "export", "--store", state.to_str().unwrap()]);
    let mut json: serde_json::Value = serde_json::from_slice(&exported.stdout).unwrap();
    json["proofs"][2]["nonse"] = 5.into();
    let file = dir.path().join("proofs.json");
    std::fs::write(&file, json.to_string()).unwrap();

    let f = file.to_str().unwrap();
    let out = capminer_out(&["verify", "-c", config.to_str().unwrap(), "--file", f]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(f) && err.contains("proofs[2]") && err.contains("unknown field \"nonse\""),
        "{err}"
    );
    assert_eq!(stdout(&out), "", "nothing verified");
}

#[test]
fn a_damaged_store_is_reported_by_export_and_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = config_with_seed(dir.path(), SEED);
    let cfg = config.to_str().unwrap();
    store(&state, &proofs(&config, 3, true));
    let s = state.to_str().unwrap();
    let log = state.join("proofs.log");
    let clean = std::fs::read(&log).unwrap();
    let starts: Vec<usize> = (0..clean.len())
        .filter(|&p| clean[p..].starts_with(b"CMP1"))
        .collect();
    assert_eq!(starts.len(), 4, "the epoch and three proof records");

    // A flipped byte in the second proof's record.
    let mut flipped = clean.clone();
    flipped[starts[2] + 20] ^= 0x01;
    std::fs::write(&log, &flipped).unwrap();
    let out = capminer_out(&["proofs", "export", "--store", s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["proofs"].as_array().unwrap().len(),
        2,
        "the intact ones"
    );
    let damaged = format!(
        "{}: 1 damaged record(s) skipped (bytes {}..{})",
        log.display(),
        starts[2],
        starts[3]
    );
    assert!(stderr(&out).contains(&damaged), "{}", text(&out));
    let out = capminer_out(&["verify", "-c", cfg, "--store", s]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(stdout(&out), "verified 2 proofs: 2 valid, 0 invalid\n");
    assert!(
        stderr(&out).contains(&damaged) && stderr(&out).contains("were not verified"),
        "{}",
        text(&out)
    );

    // Garbage appended.
    let mut garbage = clean.clone();
    garbage.extend_from_slice(b"{\"not\": \"a record\"}");
    std::fs::write(&log, &garbage).unwrap();
    let out = capminer_out(&["verify", "-c", cfg, "--store", s]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "1 damaged record(s) skipped (bytes {}..{} at the end)",
            clean.len(),
            garbage.len()
        )),
        "{}",
        text(&out)
    );

    // A torn tail (half a record: a crash while writing it) is no damage, but is said.
    let mut torn = clean.clone();
    torn.extend_from_slice(&clean[starts[3]..starts[3] + (clean.len() - starts[3]) / 2]);
    std::fs::write(&log, &torn).unwrap();
    let out = capminer_out(&["verify", "-c", cfg, "--store", s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(stdout(&out), "verified 3 proofs: 3 valid, 0 invalid\n");
    assert!(
        stderr(&out).contains("an incomplete last record skipped"),
        "{}",
        text(&out)
    );
}

#[test]
fn verify_shows_progress_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = config_with_seed(dir.path(), SEED);
    // verify checks 32 claims a CPU (at least 64) between two progress lines.
    let chunk = std::thread::available_parallelism()
        .map_or(1, |n| n.get() * 32)
        .max(64);
    let n = chunk as u64 + 6;
    store(&state, &proofs(&config, n, false));
    let out = capminer_out(&[
        "verify",
        "-c",
        config.to_str().unwrap(),
        "--store",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "made-up hashes: {}", text(&out));
    assert!(
        stderr(&out).contains(&format!("capminer verify: {chunk} of {n} proofs checked")),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).ends_with(&format!("verified {n} proofs: 0 valid, {n} invalid\n")));
}

const TOKEN: &str = "hostile-token-7";
const AUTH: &str = "Authorization: Bearer hostile-token-7";

/// Starts `capminer run` in `dir` with one CPU unit and the control API (token [`TOKEN`]) on
/// the port returned, once the unit hashes.
fn start_node(dir: &Path) -> (crate::common::Kill, u16) {
    let token = dir.join("api.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let api = free_port();
    let config = light_config(
        free_port(),
        &format!("[api]\nlisten = \"127.0.0.1:{api}\"\ntoken_file = \"api.token\"\n"),
    )
    .replace("[cpu]\n", "[cpu]\nunits = [{ core = 0 }]\n");
    let node = start_miner(dir, &config, &[]);
    wait_for(Duration::from_secs(120), || {
        let (_, body) = http(api, "GET", "/api/v1/status", &[], "")?;
        let s: serde_json::Value = serde_json::from_str(&body).ok()?;
        (s["units"][0]["state"] == "hashing").then_some(())
    })
    .unwrap_or_else(|| panic!("the unit hashes: {}", log_text(dir)));
    (node, api)
}

#[test]
fn removing_the_last_unit_through_the_api_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start_node(dir.path());
    let (code, body) = http(
        api,
        "POST",
        "/api/v1/units",
        &[AUTH],
        r#"{"remove": "cpu0"}"#,
    )
    .expect("the API answers");
    assert_eq!(code, 409, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["field"], "remove", "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("cpu0 is the last unit") && error.contains("/api/v1/pause"),
        "{error}"
    );
    // cpu0 still hashes.
    let hashes = |()| {
        let (_, body) = http(api, "GET", "/api/v1/status", &[], "")?;
        let s: serde_json::Value = serde_json::from_str(&body).ok()?;
        s["units"][0]["hashes"].as_u64()
    };
    let before = hashes(()).unwrap();
    wait_for(Duration::from_secs(20), || {
        hashes(()).filter(|h| *h > before).map(|_| ())
    })
    .expect("cpu0 goes on hashing");
}

#[test]
fn the_control_api_drops_half_sent_requests_and_logs_every_refusal() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (_node, api) = start_node(dir.path());

    // Half a request: disconnected after the header read timeout, not held open.
    let mut half = std::net::TcpStream::connect(("127.0.0.1", api)).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    half.write_all(b"POST /api/v1/pause HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let sent = Instant::now();
    let mut rest = Vec::new();
    let read = half.read_to_end(&mut rest);
    let waited = sent.elapsed();
    assert!(
        read.is_ok() && waited >= Duration::from_secs(4) && waited < Duration::from_secs(9),
        "closed after the 5 s header timeout: {read:?} after {waited:?}"
    );

    // Pause without a token but with a body: the token is checked first.
    let (code, body) = http(api, "POST", "/api/v1/pause", &[], "{}").unwrap();
    assert_eq!(code, 401, "{body}");
    // A wrong token: refused and logged, the token given never.
    let (code, _) = http(
        api,
        "POST",
        "/api/v1/pause",
        &["Authorization: Bearer guess-0451"],
        "",
    )
    .unwrap();
    assert_eq!(code, 401);
    // A reload of a configuration that does not parse: refused and logged as SIGHUP's is.
    let path = dir.path().join("capminer.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{good}\n[cpu]\nround_ms = \"fast\"\n")).unwrap();
    let (code, body) = http(api, "POST", "/api/v1/reload", &[AUTH], "").unwrap();
    assert_eq!(code, 422, "{body}");

    let log = wait_for(Duration::from_secs(5), || {
        let log = log_text(dir.path());
        log.contains("configuration not reloaded").then_some(log)
    })
    .unwrap_or_else(|| log_text(dir.path()));
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("control API refused"))
        .collect();
    for parts in [
        &["no whole request header within 5s"][..],
        &["/api/v1/pause", "401", "missing header Authorization"],
        &["/api/v1/pause", "401", "wrong token"],
        &["/api/v1/reload", "422", "configuration not reloaded"],
    ] {
        assert!(
            refusals.iter().any(|l| parts.iter().all(|p| l.contains(p))),
            "{parts:?}: {refusals:#?}"
        );
    }
    assert!(
        log.contains("control API reload: configuration not reloaded, nothing changed"),
        "{log}"
    );
    assert!(!log.contains("guess-0451") && !log.contains(TOKEN), "{log}");
}

#[test]
fn a_stop_while_the_chain_rpc_is_unreachable_ends_the_node_at_once_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = free_port();
    // Anvil's first well-known key and its address, so the configuration is otherwise sound.
    let config = light_config(
        free_port(),
        &format!(
            "[chain]\nenabled = true\nrpc_url = \"http://127.0.0.1:{nobody}\"\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n"
        ),
    )
    .replace(
        "[miner]\n",
        "[miner]\nprovider = \"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\"\n",
    );
    let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let mut node = start_miner(dir.path(), &config, &[("CAPMINER_PRIVATE_KEY", key)]);
    // Into the third wait (4 s): a stop must not sit it out.
    wait_for(Duration::from_secs(120), || {
        log_text(dir.path())
            .contains("connecting again in 4s")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the client retries: {}", log_text(dir.path())));
    let pid = node.0.id().to_string();
    let stopped = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status =
        wait_for(Duration::from_secs(10), || node.0.try_wait().unwrap()).expect("the node exits");
    let took = stopped.elapsed();
    assert_eq!(status.code(), Some(0), "{}", log_text(dir.path()));
    assert!(
        took < Duration::from_secs(2),
        "stopped in {took:?}: {}",
        log_text(dir.path())
    );
}
