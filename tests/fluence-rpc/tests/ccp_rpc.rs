//! `capminer ccp` driven only through `ccp-rpc-client`, as Fluence's node drives CCP, with
//! every proof it serves re-hashed by Fluence's own RandomX (`ccp-randomx`, light mode).
//! capminer runs in light mode (a 256 MiB cache a CU, no dataset; `CAPMINER_CCP_FULL_MEMORY=1`:
//! full datasets), two CUs on cores 0 and 1.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use capminer_fluence_rpc_tests::{
    Capminer, FluenceHasher, b32, check_proofs, idx, keccak256, keying_timeout, splitmix,
};
use ccp_randomx::{Cache, RandomXFlags, RandomXVM};
use ccp_rpc_client::{CCPRpcHttpClient, ClientError};
use ccp_shared::proof::{BatchRequest, CCProof, ProofIdx};
use ccp_shared::types::{CUID, Difficulty, GlobalNonce, LogicalCoreId, PhysicalCoreId};

/// About one proof in 16 hashes (light mode hashes slowly, and every proof is re-hashed).
fn difficulty() -> Difficulty {
    let mut d = [0xff; 32];
    d[0] = 0x0f;
    Difficulty::new(d)
}

fn alloc(pairs: &[(u32, CUID)]) -> HashMap<PhysicalCoreId, CUID> {
    pairs
        .iter()
        .map(|(core, cu)| (PhysicalCoreId::new(*core), *cu))
        .collect()
}

fn proof_idx(n: u64) -> ProofIdx {
    n.to_string().parse().unwrap()
}

/// Every proof of the epoch, by CU (asking from 0 for each).
async fn all_proofs(client: &CCPRpcHttpClient) -> Vec<ccp_shared::proof::BatchResponse> {
    client
        .get_proofs_after(HashMap::new(), 1_000_000)
        .await
        .unwrap()
}

/// Polls until each of `cus` has at least `n` proofs (see `keying_timeout`).
async fn wait_for_proofs(
    client: &CCPRpcHttpClient,
    hasher: &mut FluenceHasher,
    epoch: (&GlobalNonce, &Difficulty),
    cus: &[CUID],
    n: usize,
    miner: &Capminer,
) -> BTreeMap<CUID, Vec<CCProof>> {
    let started = Instant::now();
    loop {
        let by_cu = check_proofs(hasher, epoch, &all_proofs(client).await);
        if cus
            .iter()
            .all(|cu| by_cu.get(cu).is_some_and(|p| p.len() >= n))
        {
            return by_cu;
        }
        assert!(
            started.elapsed() < keying_timeout(),
            "fewer than {n} proofs per CU after {:?}: {:?}; log:\n{}",
            keying_timeout(),
            by_cu
                .iter()
                .map(|(c, p)| (c.to_string(), p.len()))
                .collect::<Vec<_>>(),
            miner.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Indices of a CU's proofs are 1, 2, 3... in order.
fn assert_contiguous(proofs: &[CCProof]) {
    let got: Vec<u64> = proofs.iter().map(idx).collect();
    let want: Vec<u64> = (1..=proofs.len() as u64).collect();
    assert_eq!(got, want, "indices of one CU's proofs");
}

fn call_message(e: ClientError) -> String {
    match e {
        ClientError::Call(obj) => format!("{} {}", obj.code(), obj.message()),
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

#[test]
fn fluence_randomx_known_answers_hold_in_this_build() {
    // Vectors of Fluence's fork (shared/design/research/ccp.md), computed with ccp-randomx: a
    // wrong link (stock RandomX's symbols) fails here first.
    let gn =
        hex::decode("13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6").unwrap();
    let cu =
        hex::decode("21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f").unwrap();
    let key = keccak256(&[&gn, &cu]);
    assert_eq!(
        hex::encode(key),
        "f83d1e9bd5a92d09e2e08b20a66c1ec1887cf2c564d350439637d1522a2299ac"
    );
    let flags = RandomXFlags::recommended();
    let cache = Cache::new(&key, flags).unwrap();
    let vm = RandomXVM::light(cache.handle(), flags).unwrap();
    assert_eq!(
        vm.hash(&[0u8; 32]).to_string(),
        "2719f262cfa7bba8a7308195d546abe94339934b44360a11df21f6724d0b5e30"
    );
    let mut one = [0u8; 32];
    one[0] = 1;
    assert_eq!(
        vm.hash(&one).to_string(),
        "22c520b214f7670ffe7ae81dde4f1c058727d3e61ffe812d5544e04ac6098aec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_answers_as_the_client_expects_and_every_proof_verifies() {
    let miner = Capminer::start();
    let client = miner.client().await;
    let mut hasher = FluenceHasher::default();
    let (a, b) = (CUID::new(b32(1)), CUID::new(b32(2)));
    let gn = GlobalNonce::new(b32(7));
    let d = difficulty();

    // Nothing committed yet: no proofs, and a batch request gets nothing.
    assert!(all_proofs(&client).await.is_empty());

    // Utility cores: the client sends a notification and reads only the HTTP status; capminer
    // carries it out (jsonrpsee's own server would drop it), moving its runtime's threads to
    // logical CPU 0, and refuses a CPU this machine lacks with status 400.
    client
        .realloc_utility_cores(vec![LogicalCoreId::new(0)])
        .await
        .unwrap();
    let started = Instant::now();
    while !miner.log().contains("runtime threads moved to CPUs [0]") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            miner.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = client
        .realloc_utility_cores(vec![LogicalCoreId::new(4096)])
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("400"), "{e:?}");
    // As a call (with an id), the error names the field.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ccp_realloc_utility_cores","params":{"utility_core_ids":[0,4096]}}"#;
    let raw = miner.raw_call(body);
    assert!(
        raw.contains("-32602") && raw.contains("\"field\":\"utility_core_ids[1]\""),
        "{raw}"
    );

    // A core this machine lacks, and a CU on two cores, are refused by field.
    let e = client
        .on_active_commitment(gn, d, alloc(&[(4096, a)]))
        .await
        .unwrap_err();
    let msg = call_message(e);
    assert!(msg.contains("cu_allocation.4096"), "{msg}");
    let e = client
        .on_active_commitment(gn, d, alloc(&[(0, a), (1, a)]))
        .await
        .unwrap_err();
    assert!(call_message(e).contains("cu_allocation.1"));
    // A global nonce that is not 32 bytes of hex (the typed client cannot send one).
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ccp_on_active_commitment","params":{"global_nonce":"0x12","difficulty":"00","cu_allocation":{}}}"#;
    let raw = miner.raw_call(body);
    assert!(
        raw.contains("-32602") && raw.contains("\"field\":\"global_nonce\""),
        "{raw}"
    );

    // Two CUs on cores 0 and 1.
    client
        .on_active_commitment(gn, d, alloc(&[(0, a), (1, b)]))
        .await
        .unwrap();
    let by_cu = wait_for_proofs(&client, &mut hasher, (&gn, &d), &[a, b], 3, &miner).await;
    for proofs in by_cu.values() {
        assert_contiguous(proofs);
    }

    // After an index: the CU's later proofs only; other CUs in full.
    let after = client
        .get_proofs_after(HashMap::from([(a, proof_idx(1))]), 1_000_000)
        .await
        .unwrap();
    let after = check_proofs(&mut hasher, (&gn, &d), &after);
    assert_eq!(idx(&after[&a][0]), 2);
    assert_eq!(idx(&after[&b][0]), 1);
    // The limit counts proofs in all.
    let one = client.get_proofs_after(HashMap::new(), 1).await.unwrap();
    assert_eq!(one.iter().map(|r| r.proof_batches.len()).sum::<usize>(), 1);

    // Batches: up to proof_batch_size a CU, max_batch_count CUs, none below min_batch_count.
    let reqs = HashMap::from([
        (
            a,
            BatchRequest {
                last_seen_proof_idx: proof_idx(0),
                proof_batch_size: 2,
            },
        ),
        (
            b,
            BatchRequest {
                last_seen_proof_idx: proof_idx(1),
                proof_batch_size: 2,
            },
        ),
    ]);
    let batches = client
        .get_batch_proofs_after(reqs.clone(), 1, 2)
        .await
        .unwrap();
    let got = check_proofs(&mut hasher, (&gn, &d), &batches);
    assert_eq!(got[&a].iter().map(idx).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(got[&b].iter().map(idx).collect::<Vec<_>>(), [2, 3]);
    let capped = client
        .get_batch_proofs_after(reqs.clone(), 1, 1)
        .await
        .unwrap();
    assert_eq!(capped.len(), 1);
    assert!(
        client
            .get_batch_proofs_after(reqs.clone(), 3, 3)
            .await
            .unwrap()
            .is_empty()
    );
    let e = client.get_batch_proofs_after(reqs, 2, 1).await.unwrap_err();
    assert!(call_message(e).contains("max_batch_count"));

    // The two CUs swap cores: same epoch, so indices go on, and neither is keyed again.
    let keyed = miner.log().matches("keyed in").count();
    assert_eq!(keyed, 2, "{}", miner.log());
    client
        .on_active_commitment(gn, d, alloc(&[(1, a), (0, b)]))
        .await
        .unwrap();
    let before: usize = by_cu.values().map(Vec::len).sum();
    let by_cu = wait_for_proofs(&client, &mut hasher, (&gn, &d), &[a, b], 5, &miner).await;
    assert!(by_cu.values().map(Vec::len).sum::<usize>() > before);
    for proofs in by_cu.values() {
        assert_contiguous(proofs);
    }
    assert_eq!(
        miner.log().matches("keyed in").count(),
        keyed,
        "a moved CU was keyed again"
    );

    // A new global nonce: a new epoch, indices from 1 again; CU b is no longer allocated.
    let gn2 = GlobalNonce::new(b32(8));
    client
        .on_active_commitment(gn2, d, alloc(&[(0, a)]))
        .await
        .unwrap();
    let by_cu = wait_for_proofs(&client, &mut hasher, (&gn2, &d), &[a], 2, &miner).await;
    assert_contiguous(&by_cu[&a]);
    assert!(
        !by_cu.contains_key(&b),
        "a CU no longer allocated found proofs"
    );

    // No commitment: hashing stops, the proofs stay readable.
    client.on_no_active_commitment().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n1: usize = all_proofs(&client)
        .await
        .iter()
        .map(|r| r.proof_batches.len())
        .sum();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n2: usize = all_proofs(&client)
        .await
        .iter()
        .map(|r| r.proof_batches.len())
        .sum();
    assert_eq!(n1, n2, "proofs found without a commitment");
    assert!(n1 >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_and_duplicates_no_proof_index() {
    let seed = std::env::var("CAPMINER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("kill -9 loop seed: {seed} (CAPMINER_KILL_SEED={seed} repeats it)");
    let mut rng = seed;
    let mut miner = Capminer::start();
    let mut hasher = FluenceHasher::default();
    let (a, b) = (CUID::new(b32(3)), CUID::new(b32(4)));
    let gn = GlobalNonce::new(b32(9));
    // About one proof in 4 hashes: proofs come often enough for kills to land among them.
    let mut d = [0xff; 32];
    d[0] = 0x3f;
    let d = Difficulty::new(d);
    miner
        .client()
        .await
        .on_active_commitment(gn, d, alloc(&[(0, a), (1, b)]))
        .await
        .unwrap();
    // Every proof ever served, by (CU, index): it must come back the same after every crash.
    let mut served: BTreeMap<(CUID, u64), CCProof> = BTreeMap::new();
    for round in 0..6 {
        let client = miner.client().await;
        // Hash until a new proof is served, then on for a random while, polling all along: the
        // kill falls anywhere, between two proofs or in the middle of one's append.
        let before = served.len();
        let extra = Duration::from_millis(splitmix(&mut rng) % 2500);
        let started = Instant::now();
        let mut grew_at = None;
        loop {
            let by_cu = check_proofs(&mut hasher, (&gn, &d), &all_proofs(&client).await);
            for (cu, proofs) in &by_cu {
                assert_contiguous(proofs);
                for p in proofs {
                    if let Some(old) = served.insert((*cu, idx(p)), *p) {
                        assert_eq!(old, *p, "round {round}: index {} of {cu} changed", idx(p));
                    }
                }
            }
            if grew_at.is_none() && served.len() > before {
                grew_at = Some(Instant::now());
            }
            if grew_at.is_some_and(|t| t.elapsed() >= extra) {
                break;
            }
            assert!(
                started.elapsed() < keying_timeout(),
                "round {round}: no new proof in {:?}; log:\n{}",
                keying_timeout(),
                miner.log()
            );
            tokio::time::sleep(Duration::from_millis(splitmix(&mut rng) % 200)).await;
        }
        miner.kill9();
        miner.restart(); // no call: the saved commitment is taken up
        let client = miner.client().await;
        let by_cu = check_proofs(&mut hasher, (&gn, &d), &all_proofs(&client).await);
        for ((cu, i), p) in &served {
            let now = by_cu
                .get(cu)
                .and_then(|ps| ps.iter().find(|q| idx(q) == *i));
            assert_eq!(
                now,
                Some(p),
                "round {round}: index {i} of {cu} lost or changed after kill -9"
            );
        }
        for proofs in by_cu.values() {
            assert_contiguous(proofs);
        }
    }
    println!(
        "{} proofs served, each found again unchanged after every kill -9",
        served.len()
    );
    assert!(
        served.len() >= 6,
        "too few proofs to mean anything: {}",
        served.len()
    );
    // Both CUs hash again after the last restart.
    wait_for_proofs(
        &miner.client().await,
        &mut hasher,
        (&gn, &d),
        &[a, b],
        1,
        &miner,
    )
    .await;
}
