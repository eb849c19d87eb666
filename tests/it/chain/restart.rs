//! The miner killed (SIGKILL) between sending a batch and its receipt: after a restart nothing
//! is lost and nothing counts twice.

use std::sync::Arc;
use std::time::Duration;

use alloy::providers::ext::AnvilApi;
use capminer_proofs::Target;
use capminer_proofs::store::{ProofState, ProofStore};

use super::{GRACE, Net, spec};
use crate::common::{capminer, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_killed_between_sending_and_the_receipt_loses_nothing_and_counts_nothing_twice() {
    let net = Net::start(&spec(Target::for_expected_hashes(8), 1, 10_000), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = super::light_miner_config(&net, dir.path());
    let (units, indices) = super::register_planned(&net, &config).await;
    let epoch = net.next_epoch().await;
    net.seed_epoch().await;
    let path = dir.path().join("capminer.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let key = alloy::hex::encode(net.key(1).to_bytes());
    let start = || {
        capminer()
            .args(["run", "-c", path.to_str().unwrap()])
            .env("CAPMINER_PRIVATE_KEY", &key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let state = config.miner.state_dir.clone();
    let read = || ProofStore::open_read_only(&state).ok();

    // Blocks stop: the first batch goes out and waits for a receipt that does not come.
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    let mut child = start();
    let submitted = wait_for(Duration::from_secs(60), || {
        let store = read()?;
        let sent = store
            .proofs(|p| matches!(p.state, ProofState::Submitted { .. }))
            .unwrap();
        (!sent.is_empty()).then_some(sent)
    })
    .expect("a batch was sent");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before: Vec<_> = read()
        .unwrap()
        .proofs(|_| true)
        .unwrap()
        .iter()
        .map(|p| p.proof.id())
        .collect();
    assert!(before.len() >= submitted.len());

    // The transaction gets in while the miner is down; then the miner comes back.
    net.provider.anvil_mine(Some(1), None).await.unwrap();
    net.provider.anvil_set_auto_mine(true).await.unwrap();
    let mut child = start();
    wait_for(Duration::from_secs(60), || {
        let store = read()?;
        (store
            .proofs(|p| {
                p.state == ProofState::Final || matches!(p.state, ProofState::Included { .. })
            })
            .unwrap()
            .len()
            > before.len() + 4)
            .then_some(())
    })
    .expect("the restarted miner goes on delivering");
    // SAFETY: kill(2) of our child with SIGTERM: a clean stop.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    // Finish delivery in-process, close the window, and settle everything.
    let store = Arc::new(ProofStore::open(&state).unwrap().0);
    let mut client = net
        .client(1, config.chain.clone(), store.clone(), &units)
        .await;
    for _ in 0..20 {
        client.tick().await.unwrap();
        net.advance(0).await;
        if store
            .proofs(|p| {
                p.state == ProofState::Found || matches!(p.state, ProofState::Submitted { .. })
            })
            .unwrap()
            .is_empty()
        {
            break;
        }
    }
    net.next_epoch().await;
    net.advance(GRACE + 1).await;
    for _ in 0..10 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    let all = store.proofs(|_| true).unwrap();
    for r in &before {
        let p = all
            .iter()
            .find(|p| p.proof.id() == *r)
            .expect("no proof lost");
        assert_eq!(p.state, ProofState::Final, "{r}");
    }
    for ((unit, _), index) in units.iter().zip(&indices) {
        let finals = all
            .iter()
            .filter(|p| {
                p.proof.unit == *unit && p.proof.epoch == epoch && p.state == ProofState::Final
            })
            .count();
        assert_eq!(
            net.count(*index, epoch).await as usize,
            finals,
            "counted once each"
        );
    }
}
