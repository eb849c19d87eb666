//! `capminer devnet` with a fleet's shape, in light mode with short epochs: two hosts with
//! operator keys (one in the process, one a child), each with its CPU units and a tiny GPU unit
//! (lavapipe in CI), two verifier parties of two shards each. Both hosts get proofs accepted,
//! every shard attests its share, promtool accepts the metrics, and no key leaks.

use std::time::Duration;

use crate::common::{
    Term, capminer, free_port, free_ports, http_get, light_config, wait_for, write_config,
};

/// Sum of every sample of metric `name` whose line contains every one of `filters`.
fn total(body: &str, name: &str, filters: &[&str]) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_devnet_runs_several_hosts_and_sharded_verifier_parties() {
    let dir = tempfile::tempdir().unwrap();
    // Host 0 serves metrics on this port, host 1 on the next: both must be free.
    let metrics = free_ports(2);
    let path = write_config(
        dir.path(),
        &light_config(
            metrics,
            "[chain]\nconfirmations = 1\npoll_ms = 300\n[chain.batch]\nmax_wait_ms = 500\n\
             [gpu]\nenabled = true\nallow_software = true\nbatch = 256\n\
             devices = [{ select = \"0\", units = 1 }]\n\
             [network]\ngpu_unit_bytes = 4194304\ngpu_cache_bytes = 65536\n",
        ),
    );
    let anvil = free_port().to_string();
    let _devnet = Term(
        capminer()
            .args(["devnet", "-c", path.to_str().unwrap(), "--port", &anvil])
            .args([
                "--epoch-seconds",
                "20",
                "--grace-seconds",
                "4",
                "--verify-seconds",
                "60",
            ])
            .args(["--min-proofs", "1", "--max-proofs", "4"])
            .args(["--hosts", "2", "--verifiers", "2", "--shards", "2"])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("devnet.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(dir.path().join("devnet.log")).unwrap_or_default();
    // Both hosts deliver: host 0 serves metrics on the configured port, host 1 on the next.
    for port in [metrics, metrics + 1] {
        let accepted = wait_for(Duration::from_secs(180), || {
            let body = http_get(port, "/metrics")?;
            let n = total(&body, "capminer_chain_proofs_accepted_total", &[]);
            (n > 0.0).then_some(n)
        });
        assert!(
            accepted.is_some(),
            "host on port {port} got proofs accepted:\n{}",
            log()
        );
    }
    // Every shard of both parties attests (the verifiers share host 0's registry).
    let attested = wait_for(Duration::from_secs(180), || {
        let body = http_get(metrics, "/metrics")?;
        let shards: Vec<f64> = ["0/2", "1/2"]
            .iter()
            .map(|s| {
                total(
                    &body,
                    "capminer_verifier_transactions_total",
                    &[&format!("shard=\"{s}\""), "what=\"attest\""],
                )
            })
            .collect();
        shards.iter().all(|n| *n >= 2.0).then_some(shards)
    });
    assert!(
        attested.is_some(),
        "every shard of both parties attested:\n{}",
        log()
    );
    let text = log();
    assert!(text.contains("host started"), "{text}");
    assert!(text.contains("verifying as a delegate"), "{text}");

    // promtool accepts both hosts' whole exposition (miner, GPU, chain and, on host 0, the
    // verifiers' families).
    let bodies: Vec<String> = [metrics, metrics + 1]
        .iter()
        .map(|p| http_get(*p, "/metrics").expect("metrics served"))
        .collect();
    for body in &bodies {
        let out = crate::common::promtool_check_metrics(body);
        assert!(
            out.status.success(),
            "promtool: {}",
            crate::common::text(&out)
        );
        for family in [
            "capminer_hashes_total",
            "capminer_chain_proofs_accepted_total",
            "capminer_gpu_memory_bytes",
        ] {
            assert!(body.contains(family), "{family} exported");
        }
    }
    // No private key of any devnet account (owner, provider, parties, delegates, operators:
    // anvil's accounts of its default mnemonic) appears in the logs or the metrics.
    let keys = capminer_chain::devnet::spawn_anvil(
        &crate::chain::anvil_path(),
        None,
        &["--accounts", "12"],
    )
    .unwrap()
    .keys()
    .iter()
    .map(|k| alloy::hex::encode(k.to_bytes()))
    .collect::<Vec<_>>();
    let haystack = format!("{}{}", log().to_lowercase(), bodies.join("").to_lowercase());
    for key in &keys {
        assert!(!haystack.contains(key.as_str()), "a private key leaked");
    }
}

/// A host that exits (here: its metrics port is taken) stops the devnet with an error naming
/// it, instead of a devnet that goes on with a fleet short of a host.
#[test]
fn a_host_that_exits_stops_the_devnet_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_ports(2);
    let _taken = std::net::TcpListener::bind(("127.0.0.1", metrics + 1)).unwrap();
    let path = write_config(dir.path(), &light_config(metrics, ""));
    let anvil = free_port().to_string();
    let mut devnet = Term(
        capminer()
            .args(["devnet", "-c", path.to_str().unwrap(), "--port", &anvil])
            .args(["--hosts", "2", "--verifiers", "1"])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("devnet.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let status = wait_for(Duration::from_secs(120), || devnet.0.try_wait().unwrap());
    let log = std::fs::read_to_string(dir.path().join("devnet.log")).unwrap();
    let status = status.unwrap_or_else(|| panic!("the devnet stopped:\n{log}"));
    assert_eq!(status.code(), Some(2), "{log}");
    let port = metrics + 1;
    for expected in [
        format!("metrics.listen = 127.0.0.1:{port}: cannot bind"),
        "host exited".into(),
        "host 1 (pid ".into(),
        "stopped unexpectedly".into(),
    ] {
        assert!(log.contains(&expected), "{expected:?} in:\n{log}");
    }
}
