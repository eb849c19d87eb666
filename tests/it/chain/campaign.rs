//! The fault campaign: a real anvil mining a block a second, the real miner and verifier
//! processes, and at random moments (seeded, the seed printed): SIGKILL of the miner and of
//! the verifier, the RPC endpoint cut and restored, reorgs of depth 1 to 5, and stretches of a
//! base fee far above what transactions offer. Then, for every (unit, epoch), the nonces the
//! store calls final must be exactly those of the canonical `ProofsAccepted` logs (nothing
//! lost, nothing misreported), every proof must have settled, and no verifier may have attested
//! a unit-epoch twice.
//!
//! `CAPMINER_CAMPAIGN_SEED` replays a run; `CAPMINER_CAMPAIGN_KILLS` (default 20) sets the kills
//! of each process (the benchmark-mode run uses more).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Child;
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::sol_types::SolEvent;
use capminer_chain::bindings::Capacity;
use capminer_config::Config;
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Target, UnitId};

use super::{Net, Proxy, light_miner_config, register_planned, spec};
use crate::common::{Rng, env_u64, seed_from_env, spawn_capminer};

const EPOCH: u64 = 40;
const GRACE: u64 = 10;
/// The deepest reorg injected, counted from the highest head the chain ever reached.
const MAX_REORG: u64 = 5;

/// A random pause between `from` and `to` milliseconds.
fn millis(rng: &mut Rng, from: u64, to: u64) -> Duration {
    Duration::from_millis(rng.range(from, to))
}

/// A process killed and restarted at random moments.
struct Victim {
    start: Box<dyn Fn() -> Child>,
    child: Child,
    next_kill: Instant,
    kills: usize,
    exits: Vec<String>,
}

impl Victim {
    fn new(start: Box<dyn Fn() -> Child>, rng: &mut Rng) -> Victim {
        let child = start();
        Victim {
            start,
            child,
            next_kill: Instant::now() + millis(rng, 2000, 7000),
            kills: 0,
            exits: Vec::new(),
        }
    }

    fn maybe_kill(&mut self, rng: &mut Rng) {
        if let Some(status) = self.child.try_wait().unwrap() {
            // It ended by itself: a supervisor would restart it; the campaign counts it.
            self.exits.push(status.to_string());
            self.child = (self.start)();
            return;
        }
        if Instant::now() < self.next_kill {
            return;
        }
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
        self.kills += 1;
        std::thread::sleep(millis(rng, 0, 1500)); // down for a while
        self.child = (self.start)();
        self.next_kill = Instant::now() + millis(rng, 1500, 7000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_fault_campaign_loses_and_misreports_nothing() {
    let seed = seed_from_env("CAPMINER_CAMPAIGN_SEED");
    let kills = env_u64("CAPMINER_CAMPAIGN_KILLS").unwrap_or(20) as usize;
    eprintln!(
        "campaign seed {seed} (CAPMINER_CAMPAIGN_SEED={seed} replays it), {kills} kills each"
    );
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(Target::for_expected_hashes(6), 1, 32_768);
    s.epoch_seconds = EPOCH;
    s.grace_seconds = GRACE;
    s.verify_seconds = EPOCH;
    s.kinds[1].challenge = capminer_chain::network_challenge(&Config::default().network);
    let net = Net::start(&s, &["--block-time", "1"]).await;
    let proxy = Proxy::start(net.anvil.port()).await;
    let mut miner_config = light_miner_config(&net, dir.path());
    let chain = &mut miner_config.chain;
    chain.rpc_url = format!("http://127.0.0.1:{}", proxy.port);
    chain.poll_ms = 300;
    // Finality is `confirmations` deep: the campaign's reorgs (at most 5 blocks) stay within
    // the threat model (docs/THREATS.md). At 2, a 5-block reorg undid "final" proofs, and the
    // campaign caught it: 27 proofs final in the store that no canonical log held.
    chain.confirmations = MAX_REORG + 1;
    chain.batch.max_wait_ms = 1000;
    chain.stop_timeout_ms = 10_000;
    chain.gas.stuck_blocks = 2;
    chain.gas.max_fee_gwei = 1000;
    let chain = miner_config.chain.clone();
    let (units, indices) = register_planned(&net, &miner_config).await;
    let index_of: HashMap<UnitId, u32> = units
        .iter()
        .map(|u| u.0)
        .zip(indices.iter().copied())
        .collect();
    net.next_epoch().await;
    // Reorgs never reach below the deployment and registration.
    let floor = net.provider.get_block_number().await.unwrap() + 1;

    let mut verifier_config = miner_config.clone();
    verifier_config.verifier.state_dir = dir.path().join("verifier");
    let miner_key = alloy::hex::encode(net.key(1).to_bytes());
    let verifier_key = alloy::hex::encode(net.key(2).to_bytes());
    let (d, mc, vc) = (
        dir.path().to_path_buf(),
        miner_config.clone(),
        verifier_config.clone(),
    );
    let mut miner = Victim::new(
        Box::new(move || {
            spawn_capminer(
                &mc,
                &d,
                "miner",
                &["run"],
                ("CAPMINER_PRIVATE_KEY", miner_key.clone()),
            )
        }),
        &mut rng,
    );
    let d = dir.path().to_path_buf();
    let mut verifier = Victim::new(
        Box::new(move || {
            spawn_capminer(
                &vc,
                &d,
                "verifier",
                &["verifier"],
                ("CAPMINER_VERIFIER_KEY", verifier_key.clone()),
            )
        }),
        &mut rng,
    );

    let (mut outages, mut reorgs, mut fee_spikes) = (0, 0, 0);
    // The highest head the chain reached, and the deepest reorg below it.
    let (mut peak, mut deepest) = (0u64, 0u64);
    let mut outage_until: Option<Instant> = None;
    let gwei = 1_000_000_000u128;
    while miner.kills < kills || verifier.kills < kills {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if miner.kills < kills {
            miner.maybe_kill(&mut rng);
        }
        if verifier.kills < kills {
            verifier.maybe_kill(&mut rng);
        }
        match outage_until {
            Some(t) if Instant::now() >= t => {
                proxy.up.send_replace(true);
                outage_until = None;
            }
            None if rng.below(60) == 0 => {
                proxy.up.send_replace(false);
                outage_until = Some(Instant::now() + millis(&mut rng, 1000, 5000));
                outages += 1;
            }
            _ => {}
        }
        if rng.below(70) == 0 {
            let head = net.provider.get_block_number().await.unwrap();
            // A reorg of depth d replaces the last d blocks of the longest chain ever seen, so
            // its fork point stays within 5 of the highest head: two rollbacks in a row before
            // the chain grows back would add up to a deeper one (seed 3810577417766090425 drew
            // 5 then 4, one block apart: an 8-deep reorg, undoing proofs final at 6).
            peak = peak.max(head);
            let depth = (1 + rng.below(5))
                .min(head.saturating_sub(floor))
                .min((head + MAX_REORG).saturating_sub(peak));
            if depth > 0 && net.provider.anvil_rollback(Some(depth)).await.is_ok() {
                reorgs += 1;
                deepest = deepest.max(peak - (head - depth));
            }
        }
        if rng.below(90) == 0 {
            net.provider
                .anvil_set_next_block_base_fee_per_gas(200 * gwei)
                .await
                .unwrap();
            fee_spikes += 1;
        }
    }
    proxy.up.send_replace(true);

    // The end: the miner (up long enough to have its signal handlers) stops cleanly, delivering
    // what it found; the verifier is killed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // SAFETY: kill(2) of our own child with SIGTERM.
    unsafe { libc::kill(miner.child.id() as i32, libc::SIGTERM) };
    let exited = miner.child.wait().unwrap();
    verifier.child.kill().unwrap();
    verifier.child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("miner.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    assert!(
        exited.success(),
        "seed {seed}: the miner stops cleanly after the campaign ({exited}); its log ends:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );

    // Every window closes; a client settles what is left (as the next start would).
    let store = std::sync::Arc::new(ProofStore::open(&miner_config.miner.state_dir).unwrap().0);
    let mut direct = chain.clone();
    direct.rpc_url = net.url.clone();
    let mut client = net.client(1, direct, store.clone(), &units).await;
    net.advance(EPOCH + GRACE + 1).await;
    for _ in 0..40 {
        client.tick().await.unwrap();
        net.advance(0).await;
        if store.proofs(|p| !p.state.is_terminal()).unwrap().is_empty() {
            break;
        }
    }
    let all = store.proofs(|_| true).unwrap();
    let unsettled: Vec<_> = all.iter().filter(|p| !p.state.is_terminal()).collect();
    assert!(
        unsettled.is_empty(),
        "seed {seed}: proofs never settled: {unsettled:?}"
    );

    // Final in the store == accepted by canonical logs, per (unit, epoch).
    let head = net.provider.get_block_number().await.unwrap();
    let epochs: BTreeSet<u64> = all.iter().map(|p| p.proof.epoch).collect();
    let (mut lost, mut misreported, mut finals) = (0, 0, 0);
    for e in &epochs {
        let logs = capminer_chain::logs::proofs_accepted(
            &net.provider,
            &net.url,
            net.address(),
            *e,
            0,
            head,
            10_000,
        )
        .await
        .unwrap();
        for (unit, _) in &units {
            let index = index_of[unit];
            let on_chain: BTreeSet<u64> = logs
                .iter()
                .filter(|l| l.unit.0 == index)
                .flat_map(|l| l.nonces().collect::<Vec<_>>())
                .collect();
            let final_here: BTreeSet<u64> = all
                .iter()
                .filter(|p| p.proof.unit == *unit && p.proof.epoch == *e)
                .filter(|p| p.state == ProofState::Final)
                .map(|p| p.proof.nonce)
                .collect();
            finals += final_here.len();
            lost += on_chain.difference(&final_here).count();
            misreported += final_here.difference(&on_chain).count();
        }
    }

    // At most one attestation per unit-epoch and verifier.
    let filter = alloy::rpc::types::Filter::new()
        .address(net.address())
        .event_signature(Capacity::Attested::SIGNATURE_HASH)
        .from_block(0);
    let mut attestations: BTreeMap<(u32, u64, alloy::primitives::Address), usize> = BTreeMap::new();
    for log in net.provider.get_logs(&filter).await.unwrap() {
        let a = log.log_decode::<Capacity::Attested>().unwrap().inner.data;
        *attestations
            .entry((a.unit, a.epoch, a.verifier))
            .or_default() += 1;
    }
    let skipped = all
        .iter()
        .filter(|p| p.state == ProofState::Skipped)
        .count();
    eprintln!(
        "campaign seed {seed}: kills miner {} verifier {}, outages {outages}, reorgs {reorgs} \
         (deepest {deepest}), fee spikes {fee_spikes}; proofs {} (final {finals}, skipped {skipped}), attestations {}; \
         lost {lost}, misreported {misreported}",
        miner.kills,
        verifier.kills,
        all.len(),
        attestations.len()
    );
    assert_eq!((lost, misreported), (0, 0), "seed {seed}");
    assert!(
        miner.exits.is_empty() && verifier.exits.is_empty(),
        "seed {seed}: processes ended by themselves: miner {:?}, verifier {:?}",
        miner.exits,
        verifier.exits
    );
    assert!(finals > 0, "seed {seed}: the campaign delivered proofs");
    assert!(
        attestations.values().all(|n| *n == 1),
        "seed {seed}: a unit-epoch attested twice by one verifier: {attestations:?}"
    );
}
