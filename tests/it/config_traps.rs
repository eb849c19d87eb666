//! Settings that cannot work, tried as a new operator would: each is refused by `config check`
//! (exit 2) and `run` (exit 2, before it touches the proof store), and failed by `doctor`
//! (exit 1, a FAIL line), every message naming the config file and the key, the fix where
//! there is one, the OS error once, and never a key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use capminer_proofs::Target;

use crate::common::{capminer, free_port, text, write_config};

/// anvil's account 1 (the provider in the chain tests) and its key.
const KEY: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const ADDRESS: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// A light one-unit node (state in `state` beside the file unless `miner` sets `state_dir`):
/// `miner` lines go in `[miner]`, `extra` sections after it.
fn node_config(miner: &str, extra: &str) -> String {
    let state = if miner.contains("state_dir") {
        ""
    } else {
        "state_dir = \"state\"\n"
    };
    format!(
        "[miner]\n{state}{miner}\n[cpu]\nunits = [{{ core = 0 }}]\nround_ms = 100\n\
         [cpu.randomx]\nfull_memory = false\nlarge_pages = false\n{extra}"
    )
}

/// `[chain]` with an RPC node on a closed port.
fn chain_section() -> String {
    format!(
        "[chain]\nenabled = true\nrpc_url = \"http://127.0.0.1:{}\"\n\
         contract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n",
        free_port()
    )
}

/// Runs capminer in `cwd` with `env` as its only CAPMINER_* variables.
fn capminer_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = capminer();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CAPMINER_")) {
        cmd.env_remove(k);
    }
    cmd.current_dir(cwd).args(args).envs(env.iter().copied());
    cmd.output().expect("capminer runs")
}

/// `config check` and `run` refuse `config` with exit 2 naming the file and every `expect`,
/// `run` before it creates the state directory; `doctor` fails it on a FAIL line holding every
/// `expect`. Returns config check's stderr.
fn refused(dir: &Path, config: &str, env: &[(&str, &str)], expect: &[&str]) -> String {
    let path = write_config(dir, config);
    let file = path.to_str().unwrap();
    let check = capminer_in(dir, &["config", "check", "-c", file], env);
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));
    let stderr = String::from_utf8_lossy(&check.stderr).to_string();
    assert!(stderr.contains(file), "names the file: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
    assert!(!stderr.contains(KEY), "the key never shows: {stderr}");

    let doctor = capminer_in(dir, &["doctor", "-c", file], env);
    let stdout = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{}", text(&doctor));
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && expect.iter().all(|e| l.contains(e))),
        "a FAIL line with {expect:?}: {}",
        text(&doctor)
    );
    assert!(!stdout.contains(KEY), "the key never shows: {stdout}");

    let run = capminer_in(dir, &["run", "-c", file], env);
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    let run_err = String::from_utf8_lossy(&run.stderr);
    for e in expect {
        assert!(run_err.contains(e), "run: expected {e:?} in: {run_err}");
    }
    assert!(
        !dir.join("state").is_dir(),
        "refused before the proof store exists"
    );
    stderr
}

/// A zero `miner.provider` with `chain.enabled`: every derived id would start with 20 zero
/// bytes and the node would idle forever. Refused with the fix: the command that prints the
/// provider's address, and the signing key's address.
#[test]
fn a_zero_provider_on_a_chain_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CAPMINER_PRIVATE_KEY", KEY)];
    let stderr = refused(
        dir.path(),
        &node_config("", &chain_section()),
        &env,
        &["key `miner.provider`", "capminer provider address"],
    );
    assert!(
        stderr.contains(&format!(
            "miner.provider = \"{}\"",
            ADDRESS.to_ascii_lowercase()
        )),
        "the fix names the key's address: {stderr}"
    );
    // The command it names prints the provider key's address, connecting to nothing.
    let path = dir.path().join("capminer.toml");
    let out = capminer_in(
        dir.path(),
        &["provider", "-c", path.to_str().unwrap(), "address"],
        &env,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ADDRESS);
}

#[test]
fn an_explicit_unit_id_of_another_provider_is_refused_on_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[miner]\nstate_dir = \"state\"\nprovider = \"{ADDRESS}\"\n[cpu]\nround_ms = 100\n\
         units = [{{ core = 0, id = \"0x{}\" }}]\n[cpu.randomx]\nfull_memory = false\n\
         large_pages = false\n{}",
        "22".repeat(32),
        chain_section()
    );
    refused(
        dir.path(),
        &config,
        &[("CAPMINER_PRIVATE_KEY", KEY)],
        &[
            "key `cpu.units[0].id`",
            "does not start with miner.provider",
        ],
    );
}

#[test]
fn a_node_with_no_units_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[miner]\nstate_dir = \"state\"\n[cpu]\nunits = []\n";
    refused(
        dir.path(),
        config,
        &[],
        &["line 4", "key `cpu.units`", "mine nothing"],
    );
    let config = "[miner]\nstate_dir = \"state\"\n[cpu]\nenabled = false\n";
    refused(
        dir.path(),
        config,
        &[],
        &["line 4", "key `cpu.enabled`", "mine nothing"],
    );
}

/// The deploy templates' placeholders left in: a zero contract address on a chain, a zero
/// target on the fixed epoch (no hash is below it).
#[test]
fn a_zero_contract_or_a_zero_solo_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain_section().replace(
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "0x0000000000000000000000000000000000000000",
    );
    refused(
        dir.path(),
        &node_config(&format!("provider = \"{ADDRESS}\""), &chain),
        &[("CAPMINER_PRIVATE_KEY", KEY)],
        &["key `chain.contract`", "holds no contract"],
    );
    let zero = format!("0x{}", "00".repeat(32));
    refused(
        dir.path(),
        &node_config("", &format!("[epoch]\ncpu_target = \"{zero}\"\n")),
        &[],
        &["line 11", "key `epoch.cpu_target`", "never find a proof"],
    );
}

/// Refused by validation when the file loads (every command, doctor included, exits 2).
fn refused_on_load(config: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), config);
    let file = path.to_str().unwrap();
    for args in [
        &["config", "check", "-c", file][..],
        &["doctor", "-c", file],
        &["run", "-c", file],
    ] {
        let out = capminer_in(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for e in expect.iter().chain([&file]) {
            assert!(stderr.contains(e), "{args:?}: expected {e:?} in: {stderr}");
        }
    }
    assert!(!dir.path().join("state").exists());
}

#[test]
fn two_listeners_on_one_address_are_refused_naming_both_keys() {
    // metrics.listen set to the API's default address.
    refused_on_load(
        &node_config("", "[metrics]\nlisten = \"127.0.0.1:9478\"\n"),
        &["key `metrics.listen`", "api.listen = 127.0.0.1:9478"],
    );
}

#[test]
fn a_gpu_batch_of_zero_is_refused_and_absent_is_auto() {
    refused_on_load(
        &node_config("", "[gpu]\nbatch = 0\n"),
        &["key `gpu.batch`", "leave the key out"],
    );
}

#[test]
fn an_rpc_url_without_a_host_is_refused_without_quoting_it() {
    let config = node_config(
        &format!("provider = \"{ADDRESS}\""),
        "[chain]\nenabled = true\nrpc_url = \"http://user:s3cret@:8545/\"\n\
         contract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n",
    );
    refused_on_load(&config, &["key `chain.rpc_url`", "has no host"]);
}

/// A `miner.state_dir` that is a file, sits under a file, or cannot be created: caught before
/// anything runs, naming the key, the OS error once.
#[test]
fn a_state_dir_that_cannot_work_is_caught_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), "").unwrap();
    refused(
        dir.path(),
        &node_config("state_dir = \"afile\"", ""),
        &[],
        &["key `miner.state_dir`", "afile is a file, not a directory"],
    );
    let stderr = refused(
        dir.path(),
        &node_config("state_dir = \"afile/state\"", ""),
        &[],
        &[
            "key `miner.state_dir`",
            "cannot be created",
            "afile is a file",
        ],
    );
    assert!(stderr.contains("line 2"), "{stderr}");
    // One nobody may create files in (procfs refuses even root).
    let stderr = refused(
        dir.path(),
        &node_config("state_dir = \"/proc/self/capminer-state\"", ""),
        &[],
        &[
            "key `miner.state_dir`",
            "cannot be created: /proc/self is not writable",
        ],
    );
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

/// `chain.key_file` missing (the OS error once), readable by others, not a key (never
/// printed), or no key at all: caught before anything runs.
#[test]
fn key_file_problems_are_caught_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let provider = format!("provider = \"{ADDRESS}\"");
    let key_config = node_config(
        &provider,
        &format!("{}key_file = \"provider.key\"\n", chain_section()),
    );
    let stderr = refused(
        dir.path(),
        &key_config,
        &[],
        &["key `chain.key_file`", "provider.key: cannot read"],
    );
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
    let key_file = dir.path().join("provider.key");
    std::fs::write(&key_file, KEY).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(
        dir.path(),
        &key_config,
        &[],
        &["key `chain.key_file`", "mode 644", "chmod 600"],
    );
    std::fs::write(&key_file, "hunter2-not-a-key").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stderr = refused(
        dir.path(),
        &key_config,
        &[],
        &["key `chain.key_file`", "expected a private key"],
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    refused(
        dir.path(),
        &node_config(&provider, &chain_section()),
        &[],
        &["key `chain.key_file`", "CAPMINER_PRIVATE_KEY"],
    );
}

#[test]
fn a_log_level_that_does_not_parse_is_caught_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        &node_config("", "[log]\nlevel = \"info,capminer=[\"\n"),
        &[],
        &["line 11", "key `log.level`", "not a valid filter"],
    );
}

#[test]
fn a_bad_api_token_file_is_caught_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let token_config = node_config("", "[api]\ntoken_file = \"api.token\"\n");
    refused(
        dir.path(),
        &token_config,
        &[],
        &["key `api.token_file`", "api.token: cannot read"],
    );
    let token = dir.path().join("api.token");
    std::fs::write(&token, "\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(
        dir.path(),
        &token_config,
        &[],
        &["key `api.token_file`", "the file is empty"],
    );
}

/// A proof store another capminer holds: `run` names `miner.state_dir` and the config file.
#[test]
fn a_store_in_use_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config("", "[metrics]\nenabled = false\n[api]\nenabled = false\n");
    let _first = crate::common::start_miner(dir.path(), &config, &[]);
    crate::common::wait_for(std::time::Duration::from_secs(60), || {
        dir.path().join("state/LOCK").exists().then_some(())
    })
    .expect("the first miner opens its store");
    let path = dir.path().join("capminer.toml");
    let out = capminer_in(dir.path(), &["run", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("config file {}", path.display()))
            && stderr.contains("key `miner.state_dir`")
            && stderr.contains("in use by another capminer process"),
        "{stderr}"
    );
}

/// A relative `chain.key_file` is the config file's neighbour, as `state_dir` and
/// `api.token_file` are, whichever directory the command runs in.
#[test]
fn a_relative_key_file_resolves_against_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("provider.key");
    std::fs::write(&key_file, KEY).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = write_config(
        dir.path(),
        &node_config(
            &format!("provider = \"{ADDRESS}\""),
            &format!("{}key_file = \"provider.key\"\n", chain_section()),
        ),
    );
    let file = path.to_str().unwrap();
    let check = capminer_in(elsewhere.path(), &["config", "check", "-c", file], &[]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let address = capminer_in(elsewhere.path(), &["provider", "-c", file, "address"], &[]);
    assert_eq!(String::from_utf8_lossy(&address.stdout).trim(), ADDRESS);
    let doctor = capminer_in(elsewhere.path(), &["doctor", "-c", file], &[]);
    let stdout = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("ok")
            && l.contains(&format!(
                "chain.key_file {}: owner only",
                key_file.display()
            ))),
        "{}",
        text(&doctor)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("config")),
        "{}",
        text(&doctor)
    );
}

/// Values given through the environment as 32- or 20-byte hex whose digits fit in 64 bits
/// (TOML's hex integer syntax) are the byte strings their keys take.
#[test]
fn hex_environment_overrides_with_leading_zeros_are_read_as_hex() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &node_config("", ""));
    let target = format!("0x{}ffff", "0".repeat(60));
    let provider = format!("0x{}12", "0".repeat(38));
    let out = capminer_in(
        dir.path(),
        &["config", "print", "-c", path.to_str().unwrap()],
        &[
            ("CAPMINER_EPOCH__CPU_TARGET", &target),
            ("CAPMINER_MINER__PROVIDER", &provider),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("cpu_target = \"{target}\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("provider = \"{provider}\"")),
        "{stdout}"
    );
}

/// On a real anvil with the real contract: `doctor` reads whether the signing key may submit
/// for `miner.provider` (the provider's own key, or an operator key it authorized), and `provider
/// register` takes a zero `miner.provider` to be its own key's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reads_the_operator_authorization_and_register_defaults_the_provider() {
    let net = crate::chain::Net::start(
        &crate::chain::spec(Target::for_expected_hashes(8), 1, 10),
        &[],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::chain::light_miner_config(&net, dir.path());
    config.cpu.units =
        capminer_config::Units::List(vec![capminer_config::UnitConfig { core: 0, id: None }]);
    let provider_key = alloy::hex::encode(net.key(1).to_bytes());
    let operator = net.key(3).address();
    let operator_key = alloy::hex::encode(net.key(3).to_bytes());
    let path = dir.path().join("capminer.toml");
    let file = path.to_str().unwrap().to_string();
    let doctor = |config: &capminer_config::Config, key: &str| {
        std::fs::write(&path, config.to_toml()).unwrap();
        let out = capminer_in(
            dir.path(),
            &["doctor", "-c", &file],
            &[("CAPMINER_PRIVATE_KEY", key)],
        );
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let line = stdout
            .lines()
            .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with("operator")))
            .unwrap_or_else(|| panic!("no operator line: {}", text(&out)))
            .to_string();
        (out.status.code(), line, text(&out))
    };

    // The provider's own key.
    let (code, line, out) = doctor(&config, &provider_key);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line.starts_with("ok") && line.contains("provider's own key"),
        "{out}"
    );

    // An operator key the provider never authorized: fail, with the commands that fix it.
    let provider_address = net.key(1).address();
    let (code, line, out) = doctor(&config, &operator_key);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line.starts_with("FAIL")
            && line.contains(&format!("capminer provider authorize {operator} --host 0"))
            && line.contains(&format!("capminer provider accept {provider_address}")),
        "{out}"
    );

    // The provider offers it (its own command): still refused until the key accepts, and
    // doctor says so.
    std::fs::write(&path, config.to_toml()).unwrap();
    let auth = capminer_in(
        dir.path(),
        &["provider", "-c", &file, "authorize", &operator.to_string()],
        &[("CAPMINER_PRIVATE_KEY", &provider_key)],
    );
    assert_eq!(auth.status.code(), Some(0), "{}", text(&auth));
    let (code, line, out) = doctor(&config, &operator_key);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line.starts_with("FAIL")
            && line.contains("has not accepted")
            && line.contains(&format!("capminer provider accept {provider_address}")),
        "{out}"
    );
    // The key accepts (on its host, with its own key): ok, for this host.
    let accept = capminer_in(
        dir.path(),
        &[
            "provider",
            "-c",
            &file,
            "accept",
            &provider_address.to_string(),
        ],
        &[("CAPMINER_PRIVATE_KEY", &operator_key)],
    );
    assert_eq!(accept.status.code(), Some(0), "{}", text(&accept));
    let (code, line, out) = doctor(&config, &operator_key);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line.starts_with("ok") && line.contains("is an operator of") && line.contains("host 0"),
        "{out}"
    );
    // The same key under another miner.host: its proofs would be refused; named with the fix.
    let mut elsewhere = config.clone();
    elsewhere.miner.host = 1;
    let (code, line, out) = doctor(&elsewhere, &operator_key);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line.contains("is bound to host 0") && line.contains("miner.host = 1"),
        "{out}"
    );

    // The same operator key with a zero miner.provider: the provider it serves is the fix.
    let mut zero = config.clone();
    zero.miner.provider = [0; 20];
    let (code, line, out) = doctor(&zero, &operator_key);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line.starts_with("FAIL")
            && line.contains(&format!("miner.provider = \"{}\"", net.key(1).address())),
        "{out}"
    );
    assert!(out.contains("key `miner.provider`"), "{out}");

    // Another provider's operator key: named, with the fix.
    let mut other = config.clone();
    other.miner.provider = net.key(2).address().0.0;
    let (code, line, out) = doctor(&other, &operator_key);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        line.contains(&format!("operator of provider {}", net.key(1).address())),
        "{out}"
    );

    // `provider register` with a zero miner.provider derives the ids from its own key's
    // address, so they register.
    std::fs::write(&path, zero.to_toml()).unwrap();
    let reg = capminer_in(
        dir.path(),
        &["provider", "-c", &file, "register"],
        &[("CAPMINER_PRIVATE_KEY", &provider_key)],
    );
    assert_eq!(reg.status.code(), Some(0), "{}", text(&reg));
    let stdout = String::from_utf8_lossy(&reg.stdout);
    let prefix = format!("0x{}", alloy::hex::encode(net.key(1).address()));
    assert!(stdout.contains(&format!("\t{prefix}")), "{}", text(&reg));
    // With another provider's address it is refused, naming miner.provider.
    std::fs::write(&path, other.to_toml()).unwrap();
    let reg = capminer_in(
        dir.path(),
        &["provider", "-c", &file, "register"],
        &[("CAPMINER_PRIVATE_KEY", &provider_key)],
    );
    assert_eq!(reg.status.code(), Some(2), "{}", text(&reg));
    assert!(
        String::from_utf8_lossy(&reg.stderr).contains("key `miner.provider`"),
        "{}",
        text(&reg)
    );
}
