//! Property tests of the store's byte forms: random bytes never make the decoders panic, every
//! record round-trips, and a log of valid frames with garbage between them gives back every
//! valid record. `PROPTEST_CASES` sets the case count (CI runs the default below; the
//! benchmark-mode run: `PROPTEST_CASES=1000000 cargo test --release -p capminer-proofs fuzz`).

use proptest::prelude::*;

use super::log::{frame, scan};
use super::record::{ProofState, Record};
use crate::{Epoch, Hash, Proof, ProofRef, Seed, Target, UnitId, UnitKind};

fn b32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn proof() -> impl Strategy<Value = Proof> {
    (b32(), any::<bool>(), any::<u64>(), any::<u64>(), b32()).prop_map(
        |(unit, gpu, epoch, nonce, hash)| Proof {
            unit: UnitId(unit),
            kind: if gpu { UnitKind::Gpu } else { UnitKind::Cpu },
            epoch,
            nonce,
            hash: Hash(hash),
        },
    )
}

fn state() -> impl Strategy<Value = ProofState> {
    prop_oneof![
        Just(ProofState::Found),
        b32().prop_map(|tx| ProofState::Submitted { tx: Hash(tx) }),
        (b32(), any::<u64>(), b32()).prop_map(|(tx, block, h)| ProofState::Included {
            tx: Hash(tx),
            block,
            block_hash: Hash(h),
        }),
        Just(ProofState::Final),
        Just(ProofState::Skipped),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (any::<u64>(), b32(), b32(), b32()).prop_map(|(number, seed, a, b)| Record::Epoch(Epoch {
            number,
            seed: Seed(seed),
            targets: [Target(a), Target(b)],
        })),
        proptest::collection::vec(proof(), 0..8).prop_map(Record::Proofs),
        (
            state(),
            proptest::collection::vec(
                (any::<u64>(), b32(), any::<u64>()).prop_map(|(epoch, unit, nonce)| ProofRef {
                    epoch,
                    unit: UnitId(unit),
                    nonce,
                }),
                0..8
            )
        )
            .prop_map(|(s, refs)| Record::State(s, refs)),
    ]
}

/// `PROPTEST_CASES` if set (a benchmark-mode run), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn random_bytes_never_make_the_decoders_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Record::decode(&bytes);
        let s = scan(&bytes, |p| Record::decode(p).is_some());
        prop_assert!(s.valid_len <= bytes.len());
    }

    #[test]
    fn every_record_round_trips(r in record()) {
        prop_assert_eq!(Record::decode(&r.encode()), Some(r));
    }

    #[test]
    fn valid_frames_survive_any_garbage_between_them(
        records in proptest::collection::vec(record(), 1..6),
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 6),
    ) {
        let mut image = Vec::new();
        for (r, g) in records.iter().zip(&garbage) {
            image.extend_from_slice(&frame(&r.encode()));
            // Garbage that happens to start a frame is cut at the magic's first byte.
            image.extend(g.iter().map(|b| if *b == b'C' { b'c' } else { *b }));
        }
        let s = scan(&image, |p| Record::decode(p).is_some());
        let decoded: Vec<Record> = s.payloads.iter().filter_map(|p| Record::decode(p)).collect();
        prop_assert_eq!(decoded, records);
    }
}
