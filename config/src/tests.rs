use std::io::Write;

use super::*;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let f = write(text);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(Some(f.path()), env)
}

#[test]
fn the_example_file_is_valid_and_documents_every_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("capminer.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = load(Some(&path), Vec::new()).unwrap();
    // The example states the defaults (apart from paths, resolved against the file).
    let mut defaults = Config::default();
    defaults.miner.state_dir = config.miner.state_dir.clone();
    defaults.verifier.state_dir = config.verifier.state_dir.clone();
    defaults.origin = config.origin.clone();
    assert_eq!(config, defaults, "the example file must state the defaults");
    // Every key of the full schema appears in it, commented or not.
    let mut full = Config::default();
    full.cpu.threads_per_core = Some(1);
    full.cpu.dataset_threads = Some(1);
    full.cpu.randomx.jit = Some(true);
    full.cpu.randomx.hard_aes = Some(true);
    full.chain.contract = Some([1; 20]);
    full.chain.chain_id = Some(1);
    full.chain.key_file = Some("k".into());
    full.verifier.key_file = Some("k".into());
    full.gpu.batch = Some(1);
    full.gpu.devices = vec![GpuDeviceConfig {
        select: "0".into(),
        units: GpuUnits::Count(1),
        memory_mib: Some(1),
    }];
    full.cpu.units = Units::List(vec![UnitConfig {
        core: 0,
        id: Some([1; 32]),
    }]);
    let table = toml::Table::try_from(&full).unwrap();
    let mut missing = Vec::new();
    collect_keys(&table, "", &mut missing, &text);
    assert!(
        missing.is_empty(),
        "keys not documented in the example: {missing:?}"
    );
}

fn collect_keys(table: &toml::Table, prefix: &str, missing: &mut Vec<String>, text: &str) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(t) => {
                if !text.contains(&format!("[{path}]")) {
                    missing.push(path.clone());
                }
                collect_keys(t, &format!("{path}."), missing, text);
            }
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                for item in items {
                    collect_keys(item.as_table().unwrap(), &format!("{path}."), missing, text);
                }
            }
            _ => {
                if !text.lines().any(|l| {
                    l.trim_start_matches(['#', ' '])
                        .starts_with(&format!("{key} ="))
                }) {
                    missing.push(path);
                }
            }
        }
    }
}

#[test]
fn an_unknown_key_is_refused_with_file_line_and_key() {
    let err = load_text("[cpu]\nround_ms = 150\nround_mss = 3\n", &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("round_mss"), "{msg}");
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn a_wrong_type_names_the_key_and_line() {
    let err = load_text(
        "[metrics]\nenabled = true\n\n[cpu]\nround_ms = \"fast\"\n",
        &[],
    )
    .unwrap_err();
    let ConfigError::Key { at, key, message } = &err else {
        panic!("{err}")
    };
    assert_eq!(key, "cpu.round_ms");
    assert!(matches!(at, Source::File { line: Some(5), .. }), "{at:?}");
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn invalid_values_are_refused_by_key() {
    let err = load_text("[cpu]\nround_ms = 20\n", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("key `cpu.round_ms`: 20 is outside 100..=250 ms"),
        "{err}"
    );
    let err = load_text("[cpu]\nunits = [{ core = 1 }, { core = 1 }]\n", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("key `cpu.units[1].core`: core 1 is already used"),
        "{err}"
    );
    let err = load_text("[cpu]\nunits = \"all\"\n", &[]).unwrap_err();
    assert!(
        err.to_string().contains(r#""auto" or a list of units"#),
        "{err}"
    );
    let err = load_text("[epoch]\nseed = \"0x1234\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("key `epoch.seed`"), "{err}");
    let err = load_text("[api]\nlisten = \"0.0.0.0:9478\"\n", &[]).unwrap_err();
    assert!(
        err.to_string().contains("line 2")
            && err.to_string().contains(
                "key `api.listen`: 0.0.0.0:9478 is not a loopback address: set api.token_file"
            ),
        "{err}"
    );
    let open = load_text(
        "[api]\nlisten = \"0.0.0.0:9478\"\ntoken_file = \"/etc/capminer/api.token\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(open.api.listen.port(), 9478, "with a token, any address");
}

#[test]
fn environment_overrides_apply_and_their_errors_name_the_variable() {
    let config = load_text(
        "[cpu]\nround_ms = 150\n",
        &[
            ("CAPMINER_CPU__ROUND_MS", "120"),
            ("CAPMINER_CPU__RANDOMX__JIT", "false"),
            ("CAPMINER_KEY_FILE", "x"),
        ],
    )
    .unwrap();
    assert_eq!(config.cpu.round_ms, 120);
    assert_eq!(config.cpu.randomx.jit, Some(false));
    let err = load_text("", &[("CAPMINER_CPU__ROUNDMS", "120")]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("environment variable CAPMINER_CPU__ROUNDMS"),
        "{msg}"
    );
    assert!(msg.contains("unknown field `roundms`"), "{msg}");
    // A value set by the environment is blamed on the environment.
    let err = load_text("", &[("CAPMINER_CPU__ROUND_MS", "5")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("environment variable CAPMINER_CPU__ROUND_MS: key `cpu.round_ms`"),
        "{err}"
    );
}

#[test]
fn relative_state_dir_is_resolved_against_the_config_file() {
    let f = write("[miner]\nstate_dir = \"st\"\n");
    let config = load(Some(f.path()), Vec::new()).unwrap();
    assert_eq!(
        config.miner.state_dir,
        f.path().parent().unwrap().join("st")
    );
}

#[test]
fn printing_and_reloading_gives_the_same_config() {
    let config = load_text("[cpu]\nunits = [{ core = 0, id = \"0x0101010101010101010101010101010101010101010101010101010101010101\" }]\n", &[]).unwrap();
    let printed = config.to_toml();
    let again = load_text(&printed, &[]).unwrap();
    assert_eq!(again.cpu, config.cpu);
    assert_eq!(again.epoch, config.epoch);
}

mod fuzz {
    //! Random documents: the loader gives a configuration or an error, never a panic; a known
    //! key with a value of the wrong type is named in the error. `PROPTEST_CASES` sets the
    //! case count.

    use proptest::prelude::*;

    use super::load_text;

    /// (section, key, a value of the wrong type for it)
    const KEYS: &[(&str, &str, &str)] = &[
        ("cpu", "round_ms", "\"fast\""),
        ("chain", "poll_ms", "[1, 2]"),
        ("chain", "rpc_url", "42"),
        ("chain", "confirmations", "-3"),
        ("chain.batch", "max_proofs", "1.5"),
        ("verifier", "sample_rate", "\"half\""),
        ("metrics", "enabled", "\"yes\""),
        ("metrics", "listen", "9477"),
        ("epoch", "cpu_target", "\"0x12\""),
        ("network", "gpu_parents", "true"),
    ];

    /// `PROPTEST_CASES` if set (a benchmark-mode run), else `default`.
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(500)))]

        #[test]
        fn any_document_gives_a_config_or_an_error(text in "\\PC{0,300}") {
            let _ = load_text(&text, &[]).map(|c| c.validate());
        }

        #[test]
        fn toml_shaped_documents_never_panic(
            lines in proptest::collection::vec(
                (0..KEYS.len(), prop_oneof![
                    Just("0".to_string()), Just("\"x\"".to_string()), Just("true".to_string()),
                    Just("1e400".to_string()), Just("[]".to_string()), Just("{a = 1}".to_string()),
                    "-?[0-9]{1,25}", "\"[a-z0-9:/.]{0,30}\"",
                ]),
                0..8,
            )
        ) {
            let mut text = String::new();
            for (k, value) in lines {
                let (section, key, _) = KEYS[k];
                text.push_str(&format!("[{section}]\n{key} = {value}\n"));
            }
            let _ = load_text(&text, &[]).map(|c| c.validate());
        }

        #[test]
        fn a_value_of_the_wrong_type_is_named_by_its_key(k in 0..KEYS.len()) {
            let (section, key, value) = KEYS[k];
            let err = load_text(&format!("[{section}]\n{key} = {value}\n"), &[]).unwrap_err();
            let full = format!("{section}.{key}");
            prop_assert!(err.to_string().contains(&full), "{}: {}", full, err);
        }
    }
}

#[test]
fn watchdog_values_that_cannot_work_are_refused_by_key() {
    for (text, key) in [
        ("[watchdog]\nstall_rounds = 1\n", "watchdog.stall_rounds"),
        (
            "[watchdog]\nbackoff_initial_ms = 0\n",
            "watchdog.backoff_initial_ms",
        ),
        (
            "[watchdog]\nbackoff_initial_ms = 5000\nbackoff_max_ms = 1000\n",
            "watchdog.backoff_max_ms",
        ),
        (
            "[watchdog]\nbackoff_reset_ms = 0\n",
            "watchdog.backoff_reset_ms",
        ),
    ] {
        let err = load_text(text, &[]).unwrap_err().to_string();
        assert!(err.contains(&format!("key `{key}`")), "{text}: {err}");
        assert!(err.contains("line"), "{text}: {err}");
    }
    let ok = load_text("[watchdog]\nstall_rounds = 3\nbackoff_max_ms = 1000\n", &[]).unwrap();
    assert_eq!(ok.watchdog.stall_rounds, 3);
}

/// Settings that cannot work, refused by key with the file and line: two listeners on one
/// address, zero nonces a GPU dispatch, an RPC URL without a host (never quoting the URL).
#[test]
fn settings_that_cannot_work_are_refused_by_key() {
    for (text, key, says) in [
        (
            "[metrics]\nlisten = \"127.0.0.1:9478\"\n",
            "metrics.listen",
            "127.0.0.1:9478 and api.listen = 127.0.0.1:9478 are one address",
        ),
        (
            "[metrics]\nlisten = \"0.0.0.0:9000\"\n[api]\nlisten = \"127.0.0.1:9000\"\ntoken_file = \"t\"\n",
            "metrics.listen",
            "0.0.0.0:9000 and api.listen = 127.0.0.1:9000 are one address",
        ),
        ("[gpu]\nbatch = 0\n", "gpu.batch", "leave the key out"),
        ("[chain]\npoll_ms = 0\n", "chain.poll_ms", "at least 1 ms"),
        (
            "[chain.gas]\nmax_fee_gwei = 0\n",
            "chain.gas.max_fee_gwei",
            "zero fee cap",
        ),
        (
            "[chain]\nrpc_url = \"http://user:s3cret@:8545/key\"\n",
            "chain.rpc_url",
            "has no host",
        ),
        (
            "[chain]\nrpc_url = \"https:///v3/key\"\n",
            "chain.rpc_url",
            "has no host",
        ),
        (
            "[chain]\nrpc_url = \"http://node:port/\"\n",
            "chain.rpc_url",
            "port that is not a number",
        ),
    ] {
        let err = load_text(text, &[]).unwrap_err().to_string();
        assert!(
            err.contains(&format!("key `{key}`")) && err.contains(says) && err.contains("line"),
            "{text}: {err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
    // One of them off, or a port of the system's choosing: no clash.
    for text in [
        "[metrics]\nlisten = \"127.0.0.1:9478\"\nenabled = false\n",
        "[metrics]\nlisten = \"127.0.0.1:9478\"\n[api]\nenabled = false\n",
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
        "[chain]\nrpc_url = \"http://[::1]:8545/path?q=1\"\n",
        "[gpu]\nbatch = 1\n",
    ] {
        load_text(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    // Absent `gpu.batch` is the auto-tuning the example describes.
    assert_eq!(load_text("[gpu]\n", &[]).unwrap().gpu.batch, None);
}

/// A 32-byte (or 20-byte) hex value whose digits fit in 64 bits is TOML's hex integer syntax;
/// through the environment it is still the byte string the key takes, and a number where the
/// key takes a number.
#[test]
fn hex_overrides_whose_digits_fit_in_64_bits_are_byte_strings() {
    let target = format!("0x{}ffff", "0".repeat(60));
    let provider = format!("0x{}12", "0".repeat(38));
    let config = load_text(
        "",
        &[
            ("CAPMINER_EPOCH__CPU_TARGET", &target),
            ("CAPMINER_MINER__PROVIDER", &provider),
            ("CAPMINER_CHAIN__CONTRACT", &provider),
            ("CAPMINER_MINER__HOST", "0x10"),
        ],
    )
    .unwrap();
    let mut want = [0u8; 32];
    want[30..].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(config.epoch.cpu_target, want);
    let mut want = [0u8; 20];
    want[19] = 0x12;
    assert_eq!(config.miner.provider, want);
    assert_eq!(config.chain.contract, Some(want));
    assert_eq!(config.miner.host, 16, "a number where the key takes one");
    // A short hex value is refused with the hex error, naming the variable.
    let err = load_text("", &[("CAPMINER_MINER__PROVIDER", "0x12")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("environment variable CAPMINER_MINER__PROVIDER")
            && err.contains("expected 20 bytes as 40 hex digits"),
        "{err}"
    );
    // A number of the wrong type keeps its TOML reading's error.
    let err = load_text("", &[("CAPMINER_CPU__RANDOMX__JIT", "1")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid type: integer"), "{err}");
}

#[test]
fn relative_key_files_are_resolved_against_the_config_file() {
    let f = write(
        "[chain]\nkey_file = \"keys/provider.key\"\n[verifier]\nkey_file = \"v.key\"\n\
         [api]\ntoken_file = \"api.token\"\n",
    );
    let base = f.path().parent().unwrap();
    let config = load(Some(f.path()), Vec::new()).unwrap();
    assert_eq!(
        config.chain.key_file.as_deref(),
        Some(base.join("keys/provider.key").as_path())
    );
    assert_eq!(
        config.verifier.key_file.as_deref(),
        Some(base.join("v.key").as_path())
    );
    assert_eq!(
        config.api.token_file.as_deref(),
        Some(base.join("api.token").as_path())
    );
    let absolute = load_text("[chain]\nkey_file = \"/etc/k\"\n", &[]).unwrap();
    assert_eq!(
        absolute.chain.key_file.as_deref(),
        Some(std::path::Path::new("/etc/k"))
    );
}

/// A mining node: units to run, and on a chain unit ids its provider can own.
#[test]
fn a_mining_node_needs_units_and_a_provider_that_can_own_them() {
    let chain =
        "[chain]\nenabled = true\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";
    // Zero provider on a chain: refused naming miner.provider and the fix, with the key's
    // address when it is known.
    let config = load_text(chain, &[]).unwrap();
    let err = config.validate_mining(None).unwrap_err().to_string();
    assert!(
        err.contains("key `miner.provider`")
            && err.contains("IdNotBound")
            && err.contains("capminer provider address"),
        "{err}"
    );
    let err = config
        .validate_mining(Some([0xab; 20]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("miner.provider = \"0x{}\"", "ab".repeat(20))),
        "{err}"
    );
    // Without the chain a zero provider mines the fixed epoch.
    load_text("", &[]).unwrap().validate_mining(None).unwrap();
    // An explicit id of another provider.
    let text = format!(
        "[miner]\nprovider = \"0x{}\"\n[cpu]\nunits = [{{ core = 0, id = \"0x{}\" }}]\n{chain}",
        "11".repeat(20),
        "22".repeat(32)
    );
    let err = load_text(&text, &[])
        .unwrap()
        .validate_mining(None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `cpu.units[0].id`") && err.contains("line 4"),
        "{err}"
    );
    let text = format!("[miner]\nprovider = \"0x{}\"\n{chain}", "11".repeat(20));
    load_text(&text, &[])
        .unwrap()
        .validate_mining(None)
        .unwrap();
    // The deploy templates' zero contract address: refused before the node connects.
    let zero_contract = text.replace(
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        &format!("0x{}", "00".repeat(20)),
    );
    let err = load_text(&zero_contract, &[])
        .unwrap()
        .validate_mining(None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `chain.contract`")
            && err.contains("holds no contract")
            && err.contains("line 5"),
        "{err}"
    );
    // No units at all.
    for (text, key) in [
        ("[cpu]\nunits = []\n", "key `cpu.units`"),
        ("[cpu]\nenabled = false\n", "key `cpu.enabled`"),
    ] {
        let err = load_text(text, &[])
            .unwrap()
            .validate_mining(None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(key) && err.contains("mine nothing") && err.contains("line 2"),
            "{err}"
        );
    }
    load_text("[cpu]\nunits = []\n[gpu]\nenabled = true\n", &[])
        .unwrap()
        .validate_mining(None)
        .unwrap();
    // A solo run's zero target: no proof, ever.
    let zero = format!("\"0x{}\"", "00".repeat(32));
    let err = load_text(&format!("[epoch]\ncpu_target = {zero}\n"), &[])
        .unwrap()
        .validate_mining(None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `epoch.cpu_target`") && err.contains("never find a proof"),
        "{err}"
    );
    let gpu_only = format!("[epoch]\ngpu_target = {zero}\n[gpu]\nenabled = true\n");
    let err = load_text(&gpu_only, &[])
        .unwrap()
        .validate_mining(None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("key `epoch.gpu_target`"), "{err}");
    // Unused, or on a chain (whose targets count): not checked.
    load_text(&format!("[epoch]\ngpu_target = {zero}\n"), &[])
        .unwrap()
        .validate_mining(None)
        .unwrap();
}

#[test]
fn gpu_kernel_takes_auto_lanes_or_thread_and_refuses_others_by_key() {
    for (text, kernel) in [
        ("auto", GpuKernel::Auto),
        ("lanes", GpuKernel::Lanes),
        ("thread", GpuKernel::Thread),
    ] {
        let config = load_text(&format!("[gpu]\nkernel = \"{text}\"\n"), &[]).unwrap();
        assert_eq!(config.gpu.kernel, kernel);
    }
    assert_eq!(Config::default().gpu.kernel, GpuKernel::Auto);
    let err = load_text("[gpu]\nkernel = \"fast\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gpu.kernel") && err.contains("line 2") && err.contains("`thread`"),
        "{err}"
    );
}

#[test]
fn gpu_device_units_take_a_count_or_fill_and_refuse_others_by_key() {
    for (text, units) in [("3", GpuUnits::Count(3)), ("\"fill\"", GpuUnits::Fill)] {
        let config = load_text(
            &format!("[gpu]\ndevices = [{{ select = \"0\", units = {text} }}]\n"),
            &[],
        )
        .unwrap();
        assert_eq!(config.gpu.devices[0].units, units);
        // And back: what serializes loads as the same.
        let again = toml::to_string(&config.gpu).unwrap();
        assert!(again.contains(&format!("units = {text}")), "{again}");
    }
    for bad in ["\"all\"", "-1"] {
        let err = load_text(
            &format!("[gpu]\ndevices = [{{ select = \"0\", units = {bad} }}]\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("gpu.devices") && err.contains("\"fill\"") && err.contains("line 2"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn the_network_profile_defaults_to_capminer_and_refuses_unknown_names_by_key() {
    let config = load_text("", &[]).unwrap();
    assert_eq!(
        config.network.profile,
        capminer_protocol::NetworkProfile::Capminer
    );
    assert_eq!(config.ccp.listen.to_string(), "127.0.0.1:9383");
    let config = load_text("[network]\nprofile = \"fluence\"\n", &[]).unwrap();
    assert_eq!(
        config.network.profile,
        capminer_protocol::NetworkProfile::Fluence
    );
    let err = load_text("[network]\nprofile = \"monero\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("network.profile"), "{err}");
    assert!(err.contains("monero"), "{err}");
    let config = load_text("", &[("CAPMINER_NETWORK__PROFILE", "fluence")]).unwrap();
    assert_eq!(
        config.network.profile,
        capminer_protocol::NetworkProfile::Fluence
    );
}
