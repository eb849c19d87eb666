//! A fleet on a real anvil: one provider with three hosts (three `capminer run` processes, each
//! signing with its own operator key), two verifier parties, one of them as two shards with
//! their own delegate keys. Every proof is delivered once, every unit-epoch is attested once per
//! party (each shard doing exactly its share), and rewards go to the provider only.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::sol_types::SolEvent;
use capminer_chain::bindings::Capacity;
use capminer_chain::devnet;
use capminer_config::{Config, Shard};
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Target, UnitId};

use super::{ACCOUNTS, GRACE, Net, light_miner_config, spec};
use crate::common::{capminer, spawn_capminer};

const PROVIDER: usize = 1;
const PARTY_A: usize = 2;
const PARTY_B: usize = 3;
const OPERATORS: [usize; 3] = [4, 5, 6];
const DELEGATES: [usize; 2] = [7, 8];

fn hex_key(net: &Net, i: usize) -> String {
    alloy::hex::encode(net.key(i).to_bytes())
}

/// Runs a `capminer` task with `config` and one key variable; panics with its output on failure.
fn task(dir: &std::path::Path, config: &Config, args: &[&str], env: (&str, String)) -> String {
    let path = dir.join(format!(
        "task-{}.toml",
        args.join("-").replace(['/', ':'], "_")
    ));
    std::fs::write(&path, config.to_toml()).unwrap();
    let out = Command::new(capminer().get_program())
        .args(args)
        .arg("-c")
        .arg(&path)
        .env(env.0, env.1)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "capminer {args:?}: {text}");
    text
}

/// Polls `f` every half second until it is true, for at most `secs`.
async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_and_two_parties_one_sharded_deliver_and_attest_everything_once() {
    // At most 5 proofs a unit-epoch: units idle once they have them (less to verify, and the
    // machine's two cores are left to the verifiers).
    let mut s = spec(Target::for_expected_hashes(8), 3, 5);
    s.verify_seconds = 600;
    s.verifiers = vec![ACCOUNTS[PARTY_A], ACCOUNTS[PARTY_B]];
    s.quorum = 2;
    s.kinds[1].challenge = capminer_chain::network_challenge(&Config::default().network);
    let net = Net::start(&s, &["--block-time", "1"]).await;
    let dir = tempfile::tempdir().unwrap();
    devnet::fund_pool(
        &net.url,
        net.key(0),
        net.address(),
        U256::from(10u64) * U256::from(10u64.pow(18)),
    )
    .await
    .unwrap();

    // The provider registers each host's units and authorizes one operator key per host.
    let provider_key = ("CAPMINER_PRIVATE_KEY", hex_key(&net, PROVIDER));
    let mut hosts = Vec::new();
    let mut units: Vec<(UnitId, u32, usize)> = Vec::new(); // id, index, host
    for (h, op) in OPERATORS.iter().enumerate() {
        let mut config = light_miner_config(&net, &dir.path().join(format!("host{h}")));
        config.miner.host = h as u32;
        config.chain.poll_ms = 300;
        let out = task(
            dir.path(),
            &config,
            &["provider", "register"],
            provider_key.clone(),
        );
        for unit in capminer_miner::Miner::plan(&config).unwrap().units() {
            let id = unit.id;
            let index = net
                .contract()
                .unitIndexOf(id.0.into())
                .call()
                .await
                .unwrap();
            assert!(out.contains(&format!("unit {index}\t{id}")), "{out}");
            units.push((id, index, h));
        }
        // The provider offers the host's key its host; the key, on the host, accepts.
        let operator = net.key(*op).address().to_string();
        task(
            dir.path(),
            &config,
            &["provider", "authorize", &operator],
            provider_key.clone(),
        );
        let provider = net.key(PROVIDER).address().to_string();
        task(
            dir.path(),
            &config,
            &["provider", "accept", &provider],
            ("CAPMINER_PRIVATE_KEY", hex_key(&net, *op)),
        );
        let bound = net
            .contract()
            .operatorHost(net.key(*op).address())
            .call()
            .await
            .unwrap();
        assert_eq!(bound, h as u16, "operator {op} serves host {h}");
        hosts.push(config);
    }
    let ids: BTreeSet<UnitId> = units.iter().map(|u| u.0).collect();
    assert_eq!(ids.len(), units.len(), "hosts derive distinct unit ids");

    // Party B authorizes its two shards' delegate keys.
    let mut verifier = hosts[0].clone();
    verifier.miner.state_dir = dir.path().join("unused");
    for d in DELEGATES {
        let delegate = net.key(d).address().to_string();
        task(
            dir.path(),
            &verifier,
            &["party", "authorize", &delegate],
            ("CAPMINER_VERIFIER_KEY", hex_key(&net, PARTY_B)),
        );
    }

    let epoch = net.next_epoch().await;
    let mut running = Processes(Vec::new());
    for (h, config) in hosts.iter().enumerate() {
        running.0.push(spawn_capminer(
            config,
            dir.path(),
            &format!("miner{h}"),
            &["run"],
            ("CAPMINER_PRIVATE_KEY", hex_key(&net, OPERATORS[h])),
        ));
    }
    let verifiers = [
        ("a", PARTY_A, Shard::WHOLE),
        ("b0", DELEGATES[0], Shard { index: 0, count: 2 }),
        ("b1", DELEGATES[1], Shard { index: 1, count: 2 }),
    ];
    for (name, key, shard) in verifiers {
        let mut config = verifier.clone();
        config.verifier.state_dir = dir.path().join(format!("verifier-{name}"));
        let shard = shard.to_string();
        running.0.push(spawn_capminer(
            &config,
            dir.path(),
            &format!("verifier-{name}"),
            &["verifier", "--shard", &shard],
            ("CAPMINER_VERIFIER_KEY", hex_key(&net, key)),
        ));
    }

    // Every unit of every host gets its minimum accepted.
    until("every unit has 3 proofs accepted", 240, || async {
        for (_, index, _) in &units {
            if net.count(*index, epoch).await < 3 {
                return false;
            }
        }
        true
    })
    .await;
    // The miners stop cleanly, delivering what they found.
    for (h, child) in running.0.iter_mut().take(3).enumerate() {
        // SAFETY: kill(2) of our own child with SIGTERM.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(dir.path().join(format!("miner{h}.log"))).unwrap();
        assert!(status.success(), "miner {h}: {status}\n{log}");
        assert!(
            !log.contains("claiming rewards"),
            "an operator never claims: host {h}"
        );
    }

    // The window closes; both parties attest every unit-epoch.
    let start: U256 = net.contract().epochStart(epoch + 1).call().await.unwrap();
    net.provider
        .anvil_set_next_block_timestamp(start.to::<u64>() + GRACE + 1)
        .await
        .unwrap();
    let parties = [net.key(PARTY_A).address(), net.key(PARTY_B).address()];
    until("both parties attested every unit-epoch", 240, || async {
        for (_, index, _) in &units {
            for p in parties {
                if !net
                    .contract()
                    .hasAttested(*index, epoch, p)
                    .call()
                    .await
                    .unwrap()
                {
                    return false;
                }
            }
        }
        true
    })
    .await;

    // Delivered once: per unit, what its host's store holds as accepted is what the logs
    // accepted, and no nonce is in two logs.
    let head = net.provider.get_block_number().await.unwrap();
    let logs = capminer_chain::logs::proofs_accepted(
        &net.provider,
        &net.url,
        net.address(),
        epoch,
        0,
        head,
        10_000,
    )
    .await
    .unwrap();
    for (h, config) in hosts.iter().enumerate() {
        let store = ProofStore::open(&config.miner.state_dir).unwrap().0;
        for (id, index, _) in units.iter().filter(|u| u.2 == h) {
            let mut on_chain: Vec<u64> = logs
                .iter()
                .filter(|l| l.unit.0 == *index)
                .flat_map(|l| l.nonces().collect::<Vec<_>>())
                .collect();
            let n = on_chain.len();
            on_chain.sort_unstable();
            on_chain.dedup();
            assert_eq!(on_chain.len(), n, "unit {index}: a nonce accepted twice");
            let stored: Vec<u64> = store
                .proofs(|p| {
                    p.proof.unit == *id
                        && p.proof.epoch == epoch
                        && matches!(p.state, ProofState::Final | ProofState::Included { .. })
                })
                .unwrap()
                .iter()
                .map(|p| p.proof.nonce)
                .collect();
            assert_eq!(stored, on_chain, "host {h} unit {index}");
        }
    }

    // Attested once per party; party B's shards each sent exactly their share.
    let filter = alloy::rpc::types::Filter::new()
        .address(net.address())
        .event_signature(Capacity::Attested::SIGNATURE_HASH)
        .from_block(0);
    let mut seen: BTreeMap<(u32, Address), usize> = BTreeMap::new();
    let mut senders: BTreeMap<u32, Address> = BTreeMap::new();
    for log in net.provider.get_logs(&filter).await.unwrap() {
        let a = log.log_decode::<Capacity::Attested>().unwrap().inner.data;
        assert_eq!(a.epoch, epoch);
        *seen.entry((a.unit, a.verifier)).or_default() += 1;
        if a.verifier == parties[1] {
            let tx = net
                .provider
                .get_transaction_by_hash(log.transaction_hash.unwrap())
                .await
                .unwrap()
                .unwrap();
            senders.insert(a.unit, tx.inner.signer());
        }
    }
    assert_eq!(seen.len(), units.len() * 2, "{seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    for (_, index, _) in &units {
        let shard = Shard { index: 0, count: 2 };
        let expected = if shard.owns(*index, epoch) {
            DELEGATES[0]
        } else {
            DELEGATES[1]
        };
        assert_eq!(senders[index], net.key(expected).address(), "unit {index}");
    }

    // Rewards: the provider claims; an operator cannot.
    let settle: U256 = net.contract().settleTime(epoch).call().await.unwrap();
    net.provider
        .anvil_set_next_block_timestamp(settle.to::<u64>() + 1)
        .await
        .unwrap();
    net.provider.anvil_mine(Some(1), None).await.unwrap();
    let indices: Vec<u32> = units.iter().map(|u| u.1).collect();
    let operator = devnet::signing_provider(&net.url, net.key(OPERATORS[0])).unwrap();
    let refused = Capacity::new(net.address(), operator)
        .claim(indices, epoch + 1)
        .call()
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("revert"), "{refused}");
    let before = net
        .provider
        .get_balance(net.key(PROVIDER).address())
        .await
        .unwrap();
    let out = task(dir.path(), &hosts[0], &["provider", "claim"], provider_key);
    assert!(out.contains("claim: ok"), "{out}");
    let after = net
        .provider
        .get_balance(net.key(PROVIDER).address())
        .await
        .unwrap();
    assert!(after > before, "the provider was paid: {before} -> {after}");
    let filter = alloy::rpc::types::Filter::new()
        .address(net.address())
        .event_signature(Capacity::RewardsClaimed::SIGNATURE_HASH)
        .from_block(0);
    for log in net.provider.get_logs(&filter).await.unwrap() {
        let c = log
            .log_decode::<Capacity::RewardsClaimed>()
            .unwrap()
            .inner
            .data;
        assert_eq!(
            c.provider,
            net.key(PROVIDER).address(),
            "rewards to the provider only"
        );
        assert!(c.amount > U256::ZERO);
    }
}
