//! Verifiers on a real anvil: honest work attested and rewarded; invalid proofs reported and
//! unpaid; the quorum; outsiders refused; a verifier killed and restarted attests once.

use std::sync::Arc;

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;
use capminer_chain::verifier::VerifierService;
use capminer_config::Config;
use capminer_kernels::key::{cpu_input, cpu_unit_key};
use capminer_kernels::randomx::{Cache, RandomXFlags, RandomXOptions, Vm, VmMemory};
use capminer_miner::verify::Verifier;
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, Hash, Proof, Target, UnitId, UnitKind};

use super::{ACCOUNTS, GRACE, Net, VERIFY, spec, unit_id};

/// One proof in four meets this target.
fn target() -> Target {
    Target::for_expected_hashes(4)
}

/// Light-mode hashes of `unit` for nonces `0..n` in `epoch`.
fn hashes(epoch: &Epoch, unit: UnitId, n: u64) -> Vec<(u64, [u8; 32])> {
    let flags = RandomXFlags::resolve(
        &RandomXOptions {
            large_pages: false,
            ..RandomXOptions::default()
        }
        .light(),
    )
    .unwrap();
    let mut cache = Cache::new(flags).unwrap();
    cache.init(&cpu_unit_key(epoch.seed.as_bytes(), unit.as_bytes()));
    let mut vm = Vm::new(flags, VmMemory::Cache(Arc::new(cache))).unwrap();
    (0..n)
        .map(|nonce| (nonce, vm.hash(&cpu_input(nonce))))
        .collect()
}

fn store_proofs(store: &ProofStore, unit: UnitId, epoch: u64, nonces: &[u64]) {
    store_kind(store, unit, UnitKind::Cpu, epoch, nonces);
}

fn store_kind(store: &ProofStore, unit: UnitId, kind: UnitKind, epoch: u64, nonces: &[u64]) {
    let proofs: Vec<Proof> = nonces
        .iter()
        .map(|&nonce| Proof {
            unit,
            kind,
            epoch,
            nonce,
            hash: Hash::default(),
        })
        .collect();
    store.append(&proofs).unwrap();
}

/// Small GPU challenge parameters, shared by the test's "provider" and its verifiers.
fn small_gpu() -> capminer_config::NetworkConfig {
    capminer_config::NetworkConfig {
        gpu_unit_bytes: 128 << 10,
        gpu_cache_bytes: 64 << 10,
        gpu_parents: 256,
        gpu_accesses: 64,
        ..Default::default()
    }
}

/// GPU-challenge hashes of `unit` for nonces `0..n`, from the CPU reference.
fn gpu_hashes(epoch: &Epoch, unit: UnitId, n: u64) -> Vec<(u64, [u8; 32])> {
    let config = Config {
        network: small_gpu(),
        ..Config::default()
    };
    let params = capminer_miner::gpu_params(&config).unwrap();
    let cache = capminer_kernels::gpu::reference::LightCache::build(epoch.seed.as_bytes(), &params);
    let keys =
        capminer_kernels::gpu::reference::UnitKeys::new(epoch.seed.as_bytes(), unit.as_bytes());
    (0..n)
        .map(|nonce| {
            (
                nonce,
                capminer_kernels::gpu::reference::hash_light(&cache, &keys, &params, nonce),
            )
        })
        .collect()
}

/// `spec` with the GPU kind's challenge set to [`small_gpu`]'s, as the verifiers require.
fn gpu_spec(mut spec: devnet::ContractSpec) -> devnet::ContractSpec {
    spec.kinds[1].challenge = capminer_chain::network_challenge(&small_gpu());
    spec
}

fn verifier_config(net: &Net, dir: &std::path::Path, sample_rate: f64) -> Config {
    let mut config = Config {
        chain: net.chain_config(),
        network: small_gpu(),
        ..Config::default()
    };
    config.verifier.state_dir = dir.to_path_buf();
    config.verifier.sample_rate = sample_rate;
    config.chain.log_range = 3; // many small log queries, as against a node that caps them
    config.cpu.randomx.large_pages = false;
    config
}

async fn verifier(net: &Net, account: usize, dir: &std::path::Path) -> VerifierService {
    sampling_verifier(net, account, dir, 1.0).await
}

async fn sampling_verifier(
    net: &Net,
    account: usize,
    dir: &std::path::Path,
    sample_rate: f64,
) -> VerifierService {
    let config = verifier_config(net, dir, sample_rate);
    let checker = Arc::new(
        Verifier::new(
            capminer_miner::randomx_options(&config),
            capminer_miner::gpu_params(&config).unwrap(),
        )
        .unwrap(),
    );
    VerifierService::connect(
        &config,
        net.key(account),
        checker,
        &prometheus::Registry::new(),
    )
    .await
    .unwrap()
}

/// Ticks the provider's client until nothing is left to send and every batch is in.
async fn deliver(net: &Net, client: &mut capminer_chain::ChainService, store: &ProofStore) {
    for _ in 0..20 {
        client.tick().await.unwrap();
        net.advance(0).await;
        if store.proofs(|p| !p.state.is_terminal()).unwrap().is_empty() {
            return;
        }
    }
    panic!(
        "proofs not delivered: {:?}",
        store.proofs(|p| !p.state.is_terminal()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_work_is_attested_and_paid_invalid_proofs_are_reported_and_unpaid() {
    let net = Net::start(&gpu_spec(spec(target(), 2, 1000)), &[]).await;
    let (honest, cheat, thief) = (unit_id(1, 0x11), unit_id(1, 0x22), unit_id(1, 0x33));
    let (gpu_honest, gpu_broken) = (unit_id(1, 0x44), unit_id(1, 0x55));
    let units = [
        (honest, UnitKind::Cpu),
        (cheat, UnitKind::Cpu),
        (thief, UnitKind::Cpu),
        (gpu_honest, UnitKind::Gpu),
        (gpu_broken, UnitKind::Gpu),
    ];
    let idx = net.register(1, &units).await;
    devnet::fund_pool(
        &net.url,
        net.key(0),
        net.address(),
        U256::from(10u64.pow(19)),
    )
    .await
    .unwrap();
    let e = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units)
        .await;
    let epoch = super::deliver_epoch(&net, &mut client).await;
    assert_eq!(epoch.number, e);
    let t = *epoch.target(UnitKind::Cpu);
    let good: Vec<u64> = hashes(&epoch, honest, 80)
        .into_iter()
        .filter(|(_, h)| t.is_met_by(h))
        .map(|(n, _)| n)
        .collect();
    assert!(good.len() >= 4, "{good:?}");
    // The cheat submits nonces it never hashed (their hashes miss the target) after real ones;
    let cheat_hashes = hashes(&epoch, cheat, 80);
    let mut cheating: Vec<u64> = cheat_hashes
        .iter()
        .filter(|(_, h)| t.is_met_by(h))
        .map(|(n, _)| *n)
        .take(2)
        .collect();
    let never_hashed = cheat_hashes
        .iter()
        .find(|(n, h)| !t.is_met_by(h) && *n > cheating[1])
        .unwrap()
        .0;
    cheating.push(never_hashed);
    // the thief submits the honest unit's proofs as its own: under its key they miss.
    let thief_hashes = hashes(&epoch, thief, 80);
    let stolen: Vec<u64> = good
        .iter()
        .copied()
        .filter(|n| !t.is_met_by(&thief_hashes[*n as usize].1))
        .take(3)
        .collect();
    assert_eq!(stolen.len(), 3);
    store_proofs(&store, honest, e, &good);
    store_proofs(&store, cheat, e, &cheating);
    store_proofs(&store, thief, e, &stolen);
    // A GPU unit with good results, and one whose GPU returned corrupted results: nonces its
    // GPU claimed but whose true hash (the CPU reference's) misses the target.
    let gt = *epoch.target(UnitKind::Gpu);
    let gpu_good: Vec<u64> = gpu_hashes(&epoch, gpu_honest, 40)
        .into_iter()
        .filter(|(_, h)| gt.is_met_by(h))
        .map(|(n, _)| n)
        .collect();
    let corrupted: Vec<u64> = gpu_hashes(&epoch, gpu_broken, 40)
        .into_iter()
        .filter(|(_, h)| !gt.is_met_by(h))
        .map(|(n, _)| n)
        .take(3)
        .collect();
    assert!(gpu_good.len() >= 2 && corrupted.len() == 3);
    store_kind(&store, gpu_honest, UnitKind::Gpu, e, &gpu_good);
    store_kind(&store, gpu_broken, UnitKind::Gpu, e, &corrupted);
    deliver(&net, &mut client, &store).await;

    // Close the window; the verifier recomputes every proof.
    net.next_epoch().await;
    net.advance(GRACE + 1).await;
    let vdir = tempfile::tempdir().unwrap();
    let mut v = verifier(&net, 2, vdir.path()).await;
    assert_eq!(v.tick().await.unwrap(), Some(e));
    net.advance(0).await;
    v.tick().await.unwrap();
    assert_eq!(v.next_epoch(), e + 1, "the epoch is done and recorded");

    let c = net.contract();
    for i in [0, 3] {
        let state = c.unitEpoch(idx[i], e).call().await.unwrap();
        assert!(
            state.isAttested && !state.failed,
            "honest unit {i}: {state:?}"
        );
    }
    for (i, name) in [(1, "cheat"), (2, "thief"), (4, "broken GPU")] {
        let s = c.unitEpoch(idx[i], e).call().await.unwrap();
        assert!(s.failed && !s.isAttested, "{name}: {s:?}");
        let info = c.unitInfo(idx[i]).call().await.unwrap();
        assert_eq!(
            info.collateral,
            info.registeredCollateral * alloy::primitives::Uint::from(9)
                / alloy::primitives::Uint::from(10),
            "{name} slashed 10%"
        );
    }
    let reported = c.unitEpoch(idx[1], e).call().await.unwrap();
    assert_eq!(reported.count as usize, cheating.len());

    // The provider's client claims at the next epoch: the honest units only.
    let pool = c.rewardPool().call().await.unwrap();
    net.next_epoch().await;
    for _ in 0..4 {
        client.tick().await.unwrap();
        net.advance(0).await;
    }
    let paid = pool - c.rewardPool().call().await.unwrap();
    assert_eq!(
        paid,
        U256::from(2 * 10u64.pow(18)),
        "two rewards: the honest CPU and GPU units'"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_quorum_nothing_is_rewardable_and_outsiders_cannot_attest() {
    let mut s = gpu_spec(spec(target(), 1, 1000));
    s.quorum = 2;
    s.verifiers = vec![ACCOUNTS[2], ACCOUNTS[4]];
    let net = Net::start(&s, &[]).await;
    let unit = unit_id(1, 0x44);
    let index = net.register(1, &[(unit, UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut client = net
        .client(
            1,
            net.chain_config(),
            store.clone(),
            &[(unit, UnitKind::Cpu)],
        )
        .await;
    let epoch = super::deliver_epoch(&net, &mut client).await;
    let t = *epoch.target(UnitKind::Cpu);
    let good: Vec<u64> = hashes(&epoch, unit, 48)
        .into_iter()
        .filter(|(_, h)| t.is_met_by(h))
        .map(|(n, _)| n)
        .collect();
    store_proofs(&store, unit, e, &good);
    deliver(&net, &mut client, &store).await;
    net.next_epoch().await;
    net.advance(GRACE + 1).await;

    // An address outside the verifier set is refused, with the contract's own error.
    let digest = net
        .contract()
        .unitEpoch(index, e)
        .call()
        .await
        .unwrap()
        .digest;
    let outsider = devnet::signing_provider(&net.url, net.key(5)).unwrap();
    let err = Capacity::new(net.address(), outsider)
        .attest(index, e, digest, 0, Default::default())
        .call()
        .await
        .unwrap_err();
    let decoded = err.as_decoded_interface_error::<CapacityErrors>();
    assert!(
        matches!(decoded, Some(CapacityErrors::NotVerifier(ref x)) if x.account == net.key(5).address()),
        "{err}"
    );

    // One attestation of two: nothing to claim yet.
    let vdir = tempfile::tempdir().unwrap();
    let mut first = verifier(&net, 2, vdir.path()).await;
    first.tick().await.unwrap();
    net.advance(0).await;
    first.tick().await.unwrap();
    let state = net.contract().unitEpoch(index, e).call().await.unwrap();
    assert_eq!((state.attestations, state.isAttested), (1, false));
    let now = net.epoch().await;
    assert_eq!(
        net.contract()
            .claimable(index, now)
            .call()
            .await
            .unwrap()
            .amount,
        U256::ZERO
    );
    // The second makes the quorum.
    let vdir2 = tempfile::tempdir().unwrap();
    let mut second = verifier(&net, 4, vdir2.path()).await;
    second.tick().await.unwrap();
    net.advance(0).await;
    second.tick().await.unwrap();
    assert!(
        net.contract()
            .unitEpoch(index, e)
            .call()
            .await
            .unwrap()
            .isAttested
    );
    // Rewards once the verification window is over (reports could still fail it before).
    net.advance(VERIFY).await;
    assert_eq!(
        net.contract()
            .claimable(index, now)
            .call()
            .await
            .unwrap()
            .amount,
        U256::from(10u64.pow(18))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_killed_mid_epoch_resumes_without_attesting_twice() {
    let net = Net::start(&gpu_spec(spec(target(), 1, 1000)), &[]).await;
    let units = [
        (unit_id(1, 0x55), UnitKind::Cpu),
        (unit_id(1, 0x66), UnitKind::Cpu),
    ];
    let idx = net.register(1, &units).await;
    let verifier_key = net.key(2);
    let e = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units)
        .await;
    let epoch = super::deliver_epoch(&net, &mut client).await;
    let t = *epoch.target(UnitKind::Cpu);
    for (unit, _) in &units {
        // One hash in four meets the target: 48 nonces leave a unit without a proof with
        // probability 0.75^48 (1e-6); 12, as before, did one run in 30 (seen in CI).
        let good: Vec<u64> = hashes(&epoch, *unit, 48)
            .into_iter()
            .filter(|(_, h)| t.is_met_by(h))
            .map(|(n, _)| n)
            .take(4)
            .collect();
        assert!(!good.is_empty(), "every unit has a proof to attest");
        store_proofs(&store, *unit, e, &good);
    }
    deliver(&net, &mut client, &store).await;
    net.next_epoch().await;
    net.advance(GRACE + 1).await;

    // The verifier process sends its attestations, which stay pending (no mining), and dies.
    net.provider.anvil_set_auto_mine(false).await.unwrap();
    let vdir = tempfile::tempdir().unwrap();
    let config_path = vdir.path().join("verifier.toml");
    let mut config = verifier_config(&net, &vdir.path().join("state"), 1.0);
    config.metrics.enabled = false;
    std::fs::write(&config_path, config.to_toml()).unwrap();
    let key_hex = alloy::hex::encode(verifier_key.to_bytes());
    let log_path = vdir.path().join("verifier.log");
    let spawn = || {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        crate::common::capminer()
            .args(["verifier", "-c", config_path.to_str().unwrap()])
            .env("CAPMINER_VERIFIER_KEY", &key_hex)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    let mut pending = None;
    for _ in 0..600 {
        let count = alloy::providers::Provider::get_transaction_count(
            &net.provider,
            verifier_key.address(),
        )
        .pending()
        .await
        .unwrap();
        if count >= 2 {
            pending = Some(());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        pending.is_some(),
        "the verifier sent its two attestations; its log:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    child.kill().unwrap(); // SIGKILL, before they are mined and before progress is saved
    child.wait().unwrap();
    net.provider.anvil_set_auto_mine(true).await.unwrap();
    net.advance(0).await;

    // Restarted, it finds both attested and moves on without a second attestation.
    let mut child = spawn();
    let progress = vdir.path().join("state/progress.json");
    let done = crate::common::wait_for(std::time::Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&progress).ok()?;
        let p: serde_json::Value = serde_json::from_str(&text).ok()?;
        (p["next_epoch"].as_u64()? > e).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(done.is_some(), "the restarted verifier finished the epoch");
    let filter = alloy::rpc::types::Filter::new()
        .address(net.address())
        .event_signature(<Capacity::Attested as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .from_block(0);
    let logs = alloy::providers::Provider::get_logs(&net.provider, &filter)
        .await
        .unwrap();
    assert_eq!(logs.len(), 2, "one attestation per unit-epoch");
    for index in idx {
        let state = net.contract().unitEpoch(index, e).call().await.unwrap();
        assert_eq!((state.attestations, state.isAttested), (1, true));
    }
    let verifier_address: Address = verifier_key.address();
    assert!(
        net.contract()
            .hasAttested(0, e, verifier_address)
            .call()
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_rate_one_the_verifier_checks_its_own_signed_sample_and_reports_what_it_finds() {
    use alloy::signers::SignerSync;
    use capminer_chain::verifier::{sample, sample_hash, sample_seed};
    let net = Net::start(&gpu_spec(spec(target(), 1, 1000)), &[]).await;
    let (genuine, fake) = (unit_id(1, 0x71), unit_id(1, 0x72));
    let units = [(genuine, UnitKind::Cpu), (fake, UnitKind::Cpu)];
    let idx = net.register(1, &units).await;
    let e = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units)
        .await;
    let epoch = super::deliver_epoch(&net, &mut client).await;
    let t = *epoch.target(UnitKind::Cpu);
    let pick = |unit, valid: bool| -> Vec<u64> {
        hashes(&epoch, unit, 80)
            .into_iter()
            .filter(|(_, h)| t.is_met_by(h) == valid)
            .map(|(n, _)| n)
            .take(12)
            .collect()
    };
    let (good, bad) = (pick(genuine, true), pick(fake, false));
    assert_eq!((good.len(), bad.len()), (12, 12));
    store_proofs(&store, genuine, e, &good);
    store_proofs(&store, fake, e, &bad);
    deliver(&net, &mut client, &store).await;
    net.next_epoch().await;
    net.advance(GRACE + 1).await;

    // The known answer: verifier 2's sample of each unit-epoch, drawn from its signature.
    let head = alloy::providers::Provider::get_block_number(&net.provider)
        .await
        .unwrap();
    let logs = capminer_chain::logs::proofs_accepted(
        &net.provider,
        &net.url,
        net.address(),
        e,
        0,
        head,
        1000,
    )
    .await
    .unwrap();
    let expect = |index: u32| {
        let nonces: Vec<u64> = logs
            .iter()
            .filter(|l| l.unit.0 == index)
            .flat_map(|l| l.nonces().collect::<Vec<_>>())
            .collect();
        let digest = logs
            .iter()
            .filter(|l| l.unit.0 == index)
            .fold(alloy::primitives::B256::ZERO, |d, l| {
                capminer_chain::groups::chain_digest(&d, &l.group)
            });
        let hash = sample_hash(31337, net.address(), index, e, digest);
        let sig = net.key(2).sign_hash_sync(&hash).unwrap().as_bytes();
        let chosen: Vec<u64> = sample(&nonces, 0.25, &sample_seed(&sig), index, e)
            .into_iter()
            .map(|i| nonces[i])
            .collect();
        (chosen, sig)
    };
    let (good_sample, good_sig) = expect(idx[0]);
    let (bad_sample, _) = expect(idx[1]);
    assert_eq!(
        (good_sample.len(), bad_sample.len()),
        (3, 3),
        "ceil(0.25 × 12)"
    );

    let vdir = tempfile::tempdir().unwrap();
    let mut v = sampling_verifier(&net, 2, vdir.path(), 0.25).await;
    assert_eq!(v.tick().await.unwrap(), Some(e));
    net.advance(0).await;
    v.tick().await.unwrap();

    let receipts = alloy::providers::Provider::get_logs(
        &net.provider,
        &alloy::rpc::types::Filter::new()
            .address(net.address())
            .from_block(0),
    )
    .await
    .unwrap();
    let attested: Vec<_> = receipts
        .iter()
        .filter_map(|l| l.log_decode::<Capacity::Attested>().ok())
        .map(|l| l.inner.data)
        .collect();
    assert_eq!(attested.len(), 1, "the genuine unit only");
    assert_eq!(attested[0].unit, idx[0]);
    assert_eq!(attested[0].checked, 3, "what it recomputed");
    assert_eq!(attested[0].sampleSignature.as_ref(), good_sig.as_slice());
    let reported: Vec<_> = receipts
        .iter()
        .filter_map(|l| l.log_decode::<Capacity::InvalidProofReported>().ok())
        .map(|l| l.inner.data)
        .collect();
    assert_eq!(reported.len(), 1);
    assert_eq!(
        (reported[0].unit, reported[0].nonce),
        (idx[1], *bad_sample.iter().min().unwrap()),
        "the smallest invalid nonce of its own sample"
    );
    let c = net.contract();
    assert!(c.unitEpoch(idx[0], e).call().await.unwrap().isAttested);
    assert!(c.unitEpoch(idx[1], e).call().await.unwrap().failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_parameters_that_differ_from_the_contracts_are_refused_naming_both() {
    let net = Net::start(&gpu_spec(spec(target(), 1, 1000)), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = verifier_config(&net, dir.path(), 1.0);
    config.network.gpu_accesses = 32;
    let err = VerifierService::connect(
        &config,
        net.key(2),
        Arc::new(
            Verifier::new(
                capminer_miner::randomx_options(&config),
                capminer_miner::gpu_params(&config).unwrap(),
            )
            .unwrap(),
        ),
        &prometheus::Registry::new(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unit_bytes 131072 cache_bytes 65536 parents 256 accesses 32")
            && err.contains("unit_bytes 131072 cache_bytes 65536 parents 256 accesses 64"),
        "{err}"
    );

    // The provider's client too, when it runs GPU units.
    let unit = unit_id(1, 0x99);
    net.register(1, &[(unit, UnitKind::Gpu)]).await;
    let store = Arc::new(ProofStore::open(&dir.path().join("store")).unwrap().0);
    let setup = capminer_chain::ChainSetup {
        config: net.chain_config(),
        units: vec![capminer_protocol::UnitRef {
            id: unit,
            kind: UnitKind::Gpu,
            label: "gpu0".into(),
        }],
        signer: net.key(1),
        gpu_challenge: Some(capminer_chain::network_challenge(&config.network)),
    };
    let err = capminer_chain::ChainService::connect(
        setup,
        store,
        capminer_chain::metrics::ChainMetrics::register(&prometheus::Registry::new()).unwrap(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("accesses 32") && err.contains("accesses 64"),
        "{err}"
    );
}

/// A checker out of resources for the first `starved_checks` checks of unit `starved`, unable
/// to check unit `unsupported` at all, and otherwise the real one.
struct FlakyChecker {
    inner: Verifier,
    starved: UnitId,
    starved_checks: std::sync::atomic::AtomicUsize,
    unsupported: UnitId,
}

impl capminer_protocol::Checker for FlakyChecker {
    fn check(
        &self,
        claims: &[capminer_protocol::Claim],
    ) -> Result<Vec<capminer_protocol::Verdict>, capminer_protocol::VerifyError> {
        use capminer_protocol::{VerifyError, VerifyErrorKind};
        use std::sync::atomic::Ordering::SeqCst;
        let claim = claims[0].id();
        if claims[0].unit == self.unsupported {
            let kind = VerifyErrorKind::Unsupported("not by this checker".into());
            return Err(VerifyError { claim, kind });
        }
        if claims[0].unit == self.starved
            && self
                .starved_checks
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            let kind = VerifyErrorKind::Resources("no memory for the cache".into());
            return Err(VerifyError { claim, kind });
        }
        self.inner.check(claims)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checker_out_of_resources_is_retried_next_tick_and_other_check_errors_abstain() {
    use alloy::providers::Provider;
    use alloy::sol_types::SolEvent;
    let net = Net::start(&gpu_spec(spec(target(), 1, 1000)), &[]).await;
    let (starved, unsupported) = (unit_id(1, 0x81), unit_id(1, 0x82));
    let units = [(starved, UnitKind::Cpu), (unsupported, UnitKind::Cpu)];
    let idx = net.register(1, &units).await;
    let e = net.next_epoch().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let mut client = net
        .client(1, net.chain_config(), store.clone(), &units)
        .await;
    let epoch = super::deliver_epoch(&net, &mut client).await;
    let t = *epoch.target(UnitKind::Cpu);
    for unit in [starved, unsupported] {
        let good: Vec<u64> = hashes(&epoch, unit, 40)
            .into_iter()
            .filter(|(_, h)| t.is_met_by(h))
            .map(|(n, _)| n)
            .take(3)
            .collect();
        assert!(!good.is_empty());
        store_proofs(&store, unit, e, &good);
    }
    deliver(&net, &mut client, &store).await;
    net.next_epoch().await;
    net.advance(GRACE + 1).await;

    let vdir = tempfile::tempdir().unwrap();
    let config = verifier_config(&net, vdir.path(), 1.0);
    let checker = Arc::new(FlakyChecker {
        inner: Verifier::new(
            capminer_miner::randomx_options(&config),
            capminer_miner::gpu_params(&config).unwrap(),
        )
        .unwrap(),
        starved,
        starved_checks: 2.into(),
        unsupported,
    });
    let mut v =
        VerifierService::connect(&config, net.key(2), checker, &prometheus::Registry::new())
            .await
            .unwrap();
    // The unit the checker cannot check is abstained from; the starved one waits.
    assert_eq!(v.tick().await.unwrap(), Some(e));
    net.advance(0).await;
    // Still starved: nothing sent, and the epoch is not done.
    assert_eq!(v.tick().await.unwrap(), None);
    assert_eq!(v.next_epoch(), e, "a unit-epoch waits for a retry");
    net.advance(0).await;
    // Resources back: checked and attested; then the epoch is done.
    assert_eq!(v.tick().await.unwrap(), Some(e));
    net.advance(0).await;
    v.tick().await.unwrap();
    assert_eq!(v.next_epoch(), e + 1);

    let c = net.contract();
    assert!(c.unitEpoch(idx[0], e).call().await.unwrap().isAttested);
    assert!(!c.unitEpoch(idx[1], e).call().await.unwrap().isAttested);
    let filter = alloy::rpc::types::Filter::new()
        .address(net.address())
        .event_signature(Capacity::VerificationAbstained::SIGNATURE_HASH)
        .from_block(0);
    let abstained: Vec<(u32, u8)> = net
        .provider
        .get_logs(&filter)
        .await
        .unwrap()
        .iter()
        .map(|l| {
            let a = l.log_decode::<Capacity::VerificationAbstained>().unwrap();
            (a.inner.data.unit, a.inner.data.reason)
        })
        .collect();
    assert_eq!(
        abstained,
        vec![(idx[1], capminer_chain::verifier::Abstain::CheckFailed as u8)],
        "one abstention, for the unit the checker cannot check; none for lack of resources"
    );
}
