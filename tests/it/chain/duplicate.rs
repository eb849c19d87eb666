//! Duplicate hosts on a real anvil: a second machine with a copy of a host's configuration
//! (the same `miner.host`, the same key) mines the same unit ids. The copy's chain client sees
//! the contract accept nonces of its units from transactions it never sent, and holds those
//! units idle with the cause, within seconds; the first host loses nothing. An honest host
//! (restarted with its store, with its store wiped, after a crash between sending a batch and
//! recording it) never raises it; another key submitting the host's unit does. A running node
//! names its duplicated units in `capminer status` and fails `capminer doctor` with them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::Bytes;
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use capminer_chain::bindings::Capacity;
use capminer_chain::{ChainService, DUPLICATE_HOST_HOLD, devnet};
use capminer_miner::Miner;
use capminer_miner::unit::UnitState;
use capminer_proofs::store::{ProofState, ProofStore};
use capminer_proofs::{Hash, Proof, ProofRef, Target, UnitId, UnitKind};
use prometheus::Registry;

use super::{EPOCH, Net, deliver_epoch, light_miner_config, planned_units, spec};

/// One host of the test: its miner, store, chain client and metrics.
struct Host {
    _dir: tempfile::TempDir,
    store: Arc<ProofStore>,
    miner: Miner,
    client: ChainService,
    registry: Registry,
}

impl Host {
    /// A light-mode host of account 1 with `miner.host = 0` and its own store.
    async fn start(net: &Net) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
        let config = light_miner_config(net, dir.path());
        assert_eq!(config.miner.host, 0);
        let units = planned_units(&config);
        let registry = Registry::new();
        let plan = Miner::plan(&config).unwrap();
        let miner = Miner::start_planned(&config, plan, store.clone(), &registry).unwrap();
        let mut client = net
            .client_in(1, net.chain_config(), store.clone(), &units, &registry)
            .await;
        client.set_miner_host(config.miner.host);
        Host {
            _dir: dir,
            store,
            miner,
            client,
            registry,
        }
    }

    /// One tick, its epoch and holds handed to the miner as the node does; one more block.
    async fn step(&mut self, net: &Net) {
        let report = self.client.tick().await.unwrap();
        if let Some(e) = report.new_epoch {
            self.miner.set_epoch(e).unwrap();
        }
        if let Some(holds) = &report.holds {
            self.miner
                .set_holds(holds.iter().map(|(id, why)| (*id, why.as_deref())));
        }
        net.advance(0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// The duplicate-host hold of every unit (`None`: not held for that).
    fn duplicate_holds(&self) -> Vec<Option<String>> {
        self.miner
            .units()
            .iter()
            .map(|u| {
                self.miner
                    .hold(&u.info().label)
                    .filter(|why| why.starts_with(DUPLICATE_HOST_HOLD))
            })
            .collect()
    }
}

/// The stored proofs whose state `keep` accepts.
fn refs(store: &ProofStore, keep: impl Fn(&ProofState) -> bool) -> Vec<ProofRef> {
    store
        .proofs(|p| keep(&p.state))
        .unwrap()
        .iter()
        .map(|p| p.proof.id())
        .collect()
}

/// The value of `family` (a gauge or counter) for unit label `unit` in `registry`.
fn metric(registry: &Registry, family: &str, unit: &str) -> Option<f64> {
    let families = registry.gather();
    let f = families.iter().find(|f| f.name() == family)?;
    f.get_metric()
        .iter()
        .find(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "unit" && l.value() == unit)
        })
        .map(|m| {
            if f.get_field_type() == prometheus::proto::MetricType::COUNTER {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        })
}

/// The latest block's timestamp.
async fn chain_time(net: &Net) -> u64 {
    net.provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_host_is_caught_within_an_epoch_and_the_first_host_loses_nothing() {
    // Epochs long enough that the whole test runs in one; "within an epoch" is measured
    // against the tests' usual 60 s.
    let mut s = spec(Target::for_expected_hashes(8), 1, 32_768);
    s.epoch_seconds = 900;
    let net = Net::start(&s, &[]).await;
    let units = planned_units(&light_miner_config(&net, std::path::Path::new("/unused")));
    let indices = net.register(1, &units).await;
    let epoch = net.next_epoch().await;
    let mut a = Host::start(&net).await;

    // Host A alone: its proofs get in and become final.
    let deadline = Instant::now() + Duration::from_secs(120);
    while refs(&a.store, |s| *s == ProofState::Final).len() < 4 {
        assert!(Instant::now() < deadline, "host A delivered nothing");
        a.step(&net).await;
    }
    let first_final = refs(&a.store, |s| *s == ProofState::Final);

    // Host B: a copy of A's configuration (same miner.host, same key), its own store.
    let mut b = Host::start(&net).await;
    let started = chain_time(&net).await;
    let labels: Vec<String> = (0..units.len()).map(|i| format!("u{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    while b.duplicate_holds().iter().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "the copy never noticed: {:?}",
            b.duplicate_holds()
        );
        a.step(&net).await;
        b.step(&net).await;
        assert!(
            a.duplicate_holds().iter().all(Option::is_none),
            "host A, mining before the copy, is never held: {:?}",
            a.duplicate_holds()
        );
    }
    let caught_after = chain_time(&net).await - started;
    eprintln!("the copy held all its units {caught_after} s (chain time) after it connected");
    assert!(
        caught_after < EPOCH,
        "caught within an epoch: {caught_after} s"
    );
    assert_eq!(net.epoch().await, epoch, "still the epoch both mined");
    for why in b.duplicate_holds() {
        let why = why.unwrap();
        assert!(
            why.contains(&format!("of epoch {epoch}"))
                && why.contains("another machine runs miner.host = 0 with the same unit ids")
                && why.contains("give each machine its own miner.host"),
            "{why}"
        );
    }
    for label in &labels {
        assert_eq!(
            metric(&b.registry, "capminer_chain_duplicate_host_units", label),
            Some(1.0),
            "{label}"
        );
        assert!(
            metric(&b.registry, "capminer_chain_foreign_nonces_total", label).unwrap() >= 1.0,
            "{label}"
        );
        assert_eq!(
            metric(&a.registry, "capminer_chain_duplicate_host_units", label),
            Some(0.0),
            "{label}"
        );
        assert_eq!(
            metric(&a.registry, "capminer_chain_foreign_nonces_total", label),
            Some(0.0),
            "{label}"
        );
    }

    // The copy's units idle; A's hash on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.miner.units().iter().any(|u| u.state() != UnitState::Idle) {
        assert!(Instant::now() < deadline, "the copy's units keep hashing");
        a.step(&net).await;
        b.step(&net).await;
    }
    let b_hashes: Vec<u64> = b.miner.units().iter().map(|u| u.hashes()).collect();
    let a_hashes: Vec<u64> = a.miner.units().iter().map(|u| u.hashes()).collect();
    for _ in 0..5 {
        a.step(&net).await;
        b.step(&net).await;
    }
    let b_now: Vec<u64> = b.miner.units().iter().map(|u| u.hashes()).collect();
    assert_eq!(b_now, b_hashes, "held units hash nothing");
    for (i, u) in a.miner.units().iter().enumerate() {
        assert!(u.hashes() > a_hashes[i], "host A's unit {i} hashes on");
    }

    // Both stop; what they found is delivered.
    let (a_miner, b_miner) = (a.miner, b.miner);
    a_miner.stop().unwrap();
    b_miner.stop().unwrap();
    for _ in 0..10 {
        a.client.tick().await.unwrap();
        b.client.tick().await.unwrap();
        net.advance(0).await;
    }
    let unsettled = |s: &ProofState| !s.is_terminal();
    assert_eq!(
        refs(&a.store, unsettled),
        vec![],
        "host A's proofs all settled"
    );
    assert_eq!(
        refs(&b.store, unsettled),
        vec![],
        "the copy's proofs all settled"
    );

    // Nothing host A found is lost: what was final before the copy came still is, none of its
    // proofs was skipped, and the chain counts exactly its proofs.
    let final_now = refs(&a.store, |s| *s == ProofState::Final);
    for r in &first_final {
        assert!(final_now.contains(r), "{r} still final");
    }
    let skipped = refs(&a.store, |s| *s == ProofState::Skipped);
    assert_eq!(skipped, vec![], "none of host A's proofs skipped");
    for ((unit, _), index) in units.iter().zip(&indices) {
        let finals = final_now.iter().filter(|r| r.unit == *unit).count();
        assert_eq!(
            net.count(*index, epoch).await as usize,
            finals,
            "unit {index}: the chain counts host A's proofs"
        );
    }
}

const UNIT: UnitId = super::unit_id(1, 0xd1);

fn found(store: &ProofStore, epoch: u64, nonces: std::ops::Range<u64>) {
    let proofs: Vec<Proof> = nonces
        .map(|nonce| Proof {
            unit: UNIT,
            kind: UnitKind::Cpu,
            epoch,
            nonce,
            hash: Hash::default(),
        })
        .collect();
    store.append(&proofs).unwrap();
}

fn open(dir: &std::path::Path, name: &str) -> Arc<ProofStore> {
    Arc::new(ProofStore::open(&dir.join(name)).unwrap().0)
}

/// Ticks `n` times with a block after each; panics if any hands on a duplicate-host hold.
async fn honest_ticks(net: &Net, client: &mut ChainService, n: usize) {
    for _ in 0..n {
        let report = client.tick().await.unwrap();
        if let Some(holds) = report.holds {
            assert!(
                holds
                    .values()
                    .flatten()
                    .all(|why| !why.starts_with(DUPLICATE_HOST_HOLD)),
                "{holds:?}"
            );
        }
        net.advance(0).await;
    }
}

/// The client of `registry` saw no duplicate.
fn quiet(registry: &Registry) {
    assert_eq!(
        metric(registry, "capminer_chain_duplicate_host_units", "u0"),
        Some(0.0)
    );
    assert_eq!(
        metric(registry, "capminer_chain_foreign_nonces_total", "u0"),
        Some(0.0)
    );
}

fn finals(store: &ProofStore) -> usize {
    store
        .proofs(|p| p.state == ProofState::Final)
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_host_restarted_never_raises_it_and_another_key_on_its_unit_does() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 1000), &[]).await;
    let index = net.register(1, &[(UNIT, UnitKind::Cpu)]).await[0];
    let epoch = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let units = [(UNIT, UnitKind::Cpu)];
    let cfg = net.chain_config();

    // Run 1 delivers five proofs, then sends five more and stops before they are in a block.
    let store = open(dir.path(), "host");
    let registry = Registry::new();
    let mut client = net
        .client_in(1, cfg.clone(), store.clone(), &units, &registry)
        .await;
    assert_eq!(deliver_epoch(&net, &mut client).await.number, epoch);
    found(&store, epoch, 0..5);
    honest_ticks(&net, &mut client, 4).await;
    assert_eq!(finals(&store), 5);
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    found(&store, epoch, 5..10);
    assert!(client.tick().await.unwrap().submitted.is_some());
    quiet(&registry);
    drop(client);

    // Run 2, the same store: the batch run 1 sent gets in after run 2 connected.
    let registry = Registry::new();
    let mut client = net
        .client_in(1, cfg.clone(), store.clone(), &units, &registry)
        .await;
    net.provider.anvil_mine(Some(1), None).await.unwrap();
    net.provider.anvil_set_auto_mine(true).await.unwrap();
    honest_ticks(&net, &mut client, 4).await;
    assert_eq!(finals(&store), 10);
    quiet(&registry);
    drop(client);

    // Run 3 sends a batch and dies before recording it (its store never says "submitted");
    // run 4 starts on a wiped store while the batch waits for a block, and finds the same
    // proofs again after the batch got in.
    let crashed = open(dir.path(), "crashed");
    let mut client = net.client(1, cfg.clone(), crashed.clone(), &units).await;
    assert_eq!(deliver_epoch(&net, &mut client).await.number, epoch);
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    found(&crashed, epoch, 10..15);
    let mut unrecorded = None;
    for _ in 0..5 {
        unrecorded = unrecorded.or(client.tick().await.unwrap().submitted);
    }
    let unrecorded = unrecorded.expect("run 3 sent its batch");
    drop(client);
    let wiped = open(dir.path(), "wiped");
    let registry = Registry::new();
    let mut client = net
        .client_in(1, cfg.clone(), wiped.clone(), &units, &registry)
        .await;
    net.provider.anvil_set_auto_mine(true).await.unwrap();
    assert_eq!(deliver_epoch(&net, &mut client).await.number, epoch);
    assert!(
        net.provider
            .get_transaction_receipt(unrecorded)
            .await
            .unwrap()
            .is_some(),
        "the unrecorded batch got in"
    );
    found(&wiped, epoch, 10..15);
    honest_ticks(&net, &mut client, 4).await;
    assert_eq!(
        finals(&wiped),
        5,
        "found in the unrecorded batch, not resent"
    );
    found(&wiped, epoch, 15..20);
    honest_ticks(&net, &mut client, 4).await;
    assert_eq!(finals(&wiped), 10);
    assert_eq!(net.count(index, epoch).await, 20);
    quiet(&registry);

    // Another machine, signing with an operator key of the provider, submits nonce 30 of this
    // host's unit: caught, and the unit held with the evidence.
    // The units' host is 0 (registration's default).
    net.bind_operator(1, 4, 0).await;
    let seed = net.contract().epochInfo(epoch).call().await.unwrap().seed;
    let mut packed = Vec::new();
    capminer_chain::groups::encode_group(index, &[30], &mut packed);
    let operator = devnet::signing_provider(&net.url, net.key(4)).unwrap();
    let foreign = Capacity::new(net.address(), operator)
        .submitProofs(epoch, seed, Bytes::from(packed))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(foreign.status());
    assert_eq!(net.count(index, epoch).await, 21);
    found(&wiped, epoch, 31..33); // the host has something in flight: it reads the logs
    let mut held = None;
    for _ in 0..6 {
        let report = client.tick().await.unwrap();
        if let Some(holds) = report.holds {
            held = held.or(holds[&UNIT].clone());
        }
        net.advance(0).await;
    }
    let why = held.expect("the unit is held");
    assert!(
        why.starts_with(DUPLICATE_HOST_HOLD)
            && why.contains(&format!("nonce 30 of epoch {epoch}"))
            && why.contains(&foreign.transaction_hash.to_string())
            && why.contains(&net.key(4).address().to_string()),
        "{why}"
    );
    assert_eq!(
        metric(&registry, "capminer_chain_duplicate_host_units", "u0"),
        Some(1.0)
    );
    assert_eq!(
        metric(&registry, "capminer_chain_foreign_nonces_total", "u0"),
        Some(1.0)
    );
    // What the host found is still delivered: 31 and 32 lie above the foreign 30.
    assert_eq!(finals(&wiped), 12);
    assert_eq!(net.count(index, epoch).await, 23);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_names_its_duplicated_units_in_status_and_doctor() {
    let mut s = spec(Target::for_expected_hashes(8), 1, 32_768);
    s.epoch_seconds = 900;
    let net = Net::start(&s, &["--block-time", "1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = light_miner_config(&net, dir.path());
    config.miner.host = 7;
    config.api.enabled = true;
    config.api.listen = format!("127.0.0.1:{}", crate::common::free_port())
        .parse()
        .unwrap();
    let (_, indices) = super::register_planned(&net, &config).await;
    let epoch = net.next_epoch().await;
    let key = alloy::hex::encode(net.key(1).to_bytes());
    let node = crate::common::spawn_capminer(
        &config,
        dir.path(),
        "host",
        &["run"],
        ("CAPMINER_PRIVATE_KEY", key.clone()),
    );
    let _node = crate::common::Kill(node);
    let path = dir.path().join("host.toml");
    let status = || {
        let out = crate::common::capminer()
            .args(["status", "-c", path.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let log = || std::fs::read_to_string(dir.path().join("host.log")).unwrap_or_default();
    crate::common::wait_for(Duration::from_secs(120), || {
        status().contains("hashing").then_some(())
    })
    .unwrap_or_else(|| panic!("the node never hashed:\n{}\n{}", status(), log()));
    assert!(!status().contains("DUPLICATE HOST"), "{}", status());

    // Another machine (an operator key of the provider) submits a nonce of every unit.
    // The units' host is 0 (registration's default).
    net.bind_operator(1, 4, 0).await;
    let seed = net.contract().epochInfo(epoch).call().await.unwrap().seed;
    let mut packed = Vec::new();
    for i in &indices {
        capminer_chain::groups::encode_group(*i, &[1 << 40], &mut packed);
    }
    let operator = devnet::signing_provider(&net.url, net.key(4)).unwrap();
    assert!(
        Capacity::new(net.address(), operator)
            .submitProofs(epoch, seed, Bytes::from(packed))
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap()
            .status()
    );
    net.advance(0).await;

    let table = crate::common::wait_for(Duration::from_secs(120), || {
        let table = status();
        table.contains("DUPLICATE HOST").then_some(table)
    })
    .unwrap_or_else(|| panic!("status never said it:\n{}\n{}", status(), log()));
    let n = indices.len();
    assert!(
        table.contains(&format!("duplicate_host_units {n}"))
            && table.contains(&format!(
                "duplicate host: nonce {} of epoch {epoch}",
                1u64 << 40
            ))
            && table.contains("another machine runs miner.host = 7 with the same unit ids"),
        "{table}"
    );
    let out = crate::common::capminer()
        .args(["doctor", "-c", path.to_str().unwrap()])
        .env("CAPMINER_PRIVATE_KEY", &key)
        .output()
        .unwrap();
    let doctor = String::from_utf8_lossy(&out.stdout).to_string();
    let line = doctor
        .lines()
        .find(|l| l.contains("duplicates"))
        .unwrap_or_else(|| panic!("no duplicates line:\n{doctor}"));
    assert!(
        line.starts_with("FAIL") && line.contains(": duplicate host: nonce"),
        "{doctor}"
    );
    assert_eq!(out.status.code(), Some(1), "{doctor}");
    eprintln!("capminer status:\n{table}\ncapminer doctor: {line}");
}
