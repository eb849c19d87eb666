//! Reports always fit (audit round 3): whatever the provider's batching, a report's evidence is
//! bounded (`MAX_GROUPS` groups per unit-epoch, `maxProofs` at most `MAX_PROOFS_LIMIT`), and the
//! worst report at the largest parameters allowed fits a block under EIP-7623 calldata pricing.

use alloy::primitives::Bytes;
use alloy::sol_types::SolCall;
use capminer_chain::bindings::Capacity;
use capminer_chain::bindings::Capacity::CapacityErrors;
use capminer_chain::devnet;
use capminer_proofs::{Target, UnitKind};

use super::{accepted_in, at, close, groups, report, seeded, send};
use crate::chain::{Net, spec, unit_id};

/// Per-transaction gas cap of EIP-7825 (Osaka), below any block's limit: a report under it fits
/// every block.
const TX_GAS_CAP: u64 = 1 << 24;

/// Groups of one nonce each, for `unit`.
fn singles(unit: u32, nonces: &[u64]) -> Bytes {
    let mut out = Vec::new();
    for nonce in nonces {
        capminer_chain::groups::encode_group(unit, &[*nonce], &mut out);
    }
    out.into()
}

/// One group of `nonces` for `unit` with every delta written in 8 bytes (the widest a
/// submitter may choose, whatever the deltas: the contract logs that width).
fn eight_byte_group(unit: u32, nonces: &[u64]) -> Bytes {
    let mut out = unit.to_be_bytes().to_vec();
    out.extend_from_slice(&(nonces.len() as u16).to_be_bytes());
    out.push(8);
    out.extend_from_slice(&nonces[0].to_be_bytes());
    for p in nonces.windows(2) {
        out.extend_from_slice(&(p[1] - p[0]).to_be_bytes());
    }
    out.into()
}

/// EIP-7623's floor for a transaction with this calldata: 21,000 + 10 per token, a zero byte
/// one token and any other four.
fn calldata_floor(data: &[u8]) -> u64 {
    let tokens: u64 = data.iter().map(|b| if *b == 0 { 1 } else { 4 }).sum();
    21_000 + 10 * tokens
}

/// Attack "a cheater can make itself unreportable". Before, a report replayed every accepted
/// group and the provider chose how many there were: one nonce per group at `maxProofs` 30,000
/// made the evidence 2.88 MB, whose EIP-7623 floor (34M gas) exceeds a 30M block, so the
/// unit-epoch settled unslashed. Now a unit-epoch accepts at most `MAX_GROUPS` (256) groups:
/// the 300 single-nonce groups of the attack leave 44 skipped, and the report goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_cannot_split_its_proofs_past_what_a_report_carries() {
    let net = Net::start(&spec(Target([0xff; 32]), 1, 1000), &[]).await;
    let unit = net.register(1, &[(unit_id(1, 1), UnitKind::Cpu)]).await[0];
    let max_groups = net.contract().MAX_GROUPS().call().await.unwrap();
    assert_eq!(max_groups, alloy::primitives::U256::from(256));
    let e = net.next_epoch().await;
    let (_, s) = seeded(&net).await;
    let nonces: Vec<u64> = (1..=300).collect();
    let receipt = send(at(&net, 1).submitProofs(e, s, singles(unit, &nonces)))
        .await
        .unwrap();
    assert_eq!(
        accepted_in(&receipt),
        256,
        "groups past the cap are skipped"
    );
    let state = net.contract().unitEpoch(unit, e).call().await.unwrap();
    assert_eq!((state.groups, state.count), (256, 256));
    close(&net, e).await;
    let evidence = groups(&net, unit, e).await;
    assert_eq!(evidence.len(), 256);
    report(&net, 2, unit, e, 256, evidence).await.unwrap();
    assert!(
        net.contract()
            .unitEpoch(unit, e)
            .call()
            .await
            .unwrap()
            .failed
    );
}

/// The largest parameters allowed: `maxProofs` above `MAX_PROOFS_LIMIT` (32,768) is refused;
/// at the limit, the worst evidence (255 groups of one nonce, whose ABI padding is the largest,
/// and one group of the remaining 32,513 at the widest delta width, 8 bytes, with as few zero
/// bytes as nonces below 2^64 allow: one a delta; the last nonce reported so the check scans
/// all) makes a report of at most 286,916 bytes whose gas, measured on anvil with EIP-7623
/// pricing (the floor is checked to apply), stays under the 16.8M per-transaction cap of
/// EIP-7825, let alone a 30M block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worst_report_at_the_largest_parameters_fits_a_block() {
    let limit = 32_768u32;
    let net = Net::start(&spec(Target([0xff; 32]), 1, limit), &[]).await;
    assert_eq!(
        net.contract().MAX_PROOFS_LIMIT().call().await.unwrap(),
        limit
    );
    let mut params = net.contract().kindParams(0).call().await.unwrap();
    params.maxProofs = limit + 1;
    let too_big = Capacity::setKindParamsCall { kind: 0, p: params };
    devnet::schedule(&net.url, net.key(0), net.address(), &too_big)
        .await
        .unwrap();
    let refused = send(at(&net, 0).execute(too_big.abi_encode().into()))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CapacityErrors::BadParams(_)),
        "{refused:?}"
    );

    let unit = net.register(1, &[(unit_id(1, 1), UnitKind::Cpu)]).await[0];
    let e = net.next_epoch().await;
    let (_, s) = seeded(&net).await;
    // Deltas 0x0001010101010101: seven of a delta's eight bytes cost EIP-7623's full 40 gas,
    // and 32,512 of them still stay below 2^64.
    let nonces: Vec<u64> = std::iter::successors(Some(0x0101_0101_0101_0101u64), |n| {
        n.checked_add(0x0001_0101_0101_0101)
    })
    .take(limit as usize)
    .collect();
    assert_eq!(nonces.len(), limit as usize);
    let receipt = send(at(&net, 1).submitProofs(e, s, singles(unit, &nonces[..255])))
        .await
        .unwrap();
    assert_eq!(accepted_in(&receipt), 255);
    let rest = u64::from(limit) - 255;
    let big = eight_byte_group(unit, &nonces[255..]);
    let receipt = send(at(&net, 1).submitProofs(e, s, big)).await.unwrap();
    assert_eq!(accepted_in(&receipt) as u64, rest);
    let state = net.contract().unitEpoch(unit, e).call().await.unwrap();
    assert_eq!((state.groups, state.count), (256, limit));
    close(&net, e).await;

    // The last nonce of the last group: the evidence check scans everything.
    let evidence = groups(&net, unit, e).await;
    let nonce = nonces[limit as usize - 1];
    let call = Capacity::reportInvalidCall {
        unit,
        epoch: e,
        nonce,
        reason: 1,
        groups: evidence.clone(),
    };
    let data = call.abi_encode();
    assert!(data.len() <= 286_916, "{} bytes", data.len());
    let receipt = report(&net, 2, unit, e, nonce, evidence).await.unwrap();
    let floor = calldata_floor(&data);
    eprintln!(
        "worst report: {} bytes of calldata, EIP-7623 floor {floor} gas, {} gas used",
        data.len(),
        receipt.gas_used
    );
    assert!(
        receipt.gas_used >= floor,
        "EIP-7623 pricing applies: used {} < floor {floor}",
        receipt.gas_used
    );
    assert!(
        receipt.gas_used < TX_GAS_CAP,
        "the worst report fits: {} gas",
        receipt.gas_used
    );
}
