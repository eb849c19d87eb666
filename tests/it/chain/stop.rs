//! The graceful stop: on SIGTERM the units stop and the chain client delivers what they found
//! before the process exits, bounded by `chain.stop_timeout_ms`; what it cannot deliver in time
//! stays in the store, and the log says so.

use std::time::Duration;

use alloy::providers::ext::AnvilApi;
use capminer_config::Config;
use capminer_proofs::Target;
use capminer_proofs::store::{ProofState, ProofStore};

use super::{Net, spec};
use crate::common::{capminer, wait_for};

/// Runs `capminer run` until it has stored `found` proofs not yet sent, then SIGTERMs it;
/// returns its log and whether it exited with success.
fn run_and_stop(config: &Config, dir: &std::path::Path, key: &str, found: usize) -> (String, bool) {
    let path = dir.join("capminer.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut child = capminer()
        .args(["run", "-c", path.to_str().unwrap()])
        .env("CAPMINER_PRIVATE_KEY", key)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let state = config.miner.state_dir.clone();
    wait_for(Duration::from_secs(120), || {
        let store = ProofStore::open_read_only(&state).ok()?;
        (store
            .proofs(|p| p.state == ProofState::Found)
            .unwrap()
            .len()
            >= found)
            .then_some(())
    })
    .expect("the miner finds proofs");
    // SAFETY: kill(2) of our own child with SIGTERM.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let ok = child.wait().unwrap().success();
    (std::fs::read_to_string(dir.join("log")).unwrap(), ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_proofs_found_are_delivered_before_exit_or_said_to_be_left() {
    let net = Net::start(&spec(Target::for_expected_hashes(4), 1, 10_000), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = super::light_miner_config(&net, dir.path());
    config.chain.batch.max_wait_ms = 600_000; // nothing is sent before the stop
    config.chain.stop_timeout_ms = 30_000;
    let (_, indices) = super::register_planned(&net, &config).await;
    let epoch = net.next_epoch().await;
    net.seed_epoch().await;
    // anvil mines a block every second, so the seed keeps getting deeper and batches get in.
    net.provider.anvil_set_interval_mining(1).await.unwrap();

    let key = alloy::hex::encode(net.key(1).to_bytes());
    let (log, ok) = run_and_stop(&config, dir.path(), &key, 3);
    assert!(ok, "a clean exit: {log}");
    assert!(log.contains("every proof found is in a block"), "{log}");
    let store = ProofStore::open_read_only(&config.miner.state_dir).unwrap();
    let all = store.proofs(|_| true).unwrap();
    assert!(all.len() >= 3);
    assert!(
        all.iter()
            .all(|p| matches!(p.state, ProofState::Included { .. } | ProofState::Final)),
        "every proof found went out before the exit: {all:?}"
    );
    let on_chain: u32 = {
        let mut n = 0;
        for i in &indices {
            n += net.count(*i, epoch).await;
        }
        n
    };
    assert_eq!(
        on_chain as usize,
        all.len(),
        "the chain counts exactly those"
    );

    // No blocks any more: the client gives up after its timeout and says what it left.
    net.provider.anvil_set_interval_mining(0).await.unwrap();
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    config.chain.stop_timeout_ms = 2_000;
    let (log, ok) = run_and_stop(&config, dir.path(), &key, 2);
    assert!(ok, "a clean exit: {log}");
    assert!(
        log.contains("chain client stopped before these proofs were in a block"),
        "{log}"
    );
    let store = ProofStore::open_read_only(&config.miner.state_dir).unwrap();
    let left = store
        .proofs(|p| matches!(p.state, ProofState::Found | ProofState::Submitted { .. }))
        .unwrap();
    assert!(left.len() >= 2, "left in the store, not lost");
}
