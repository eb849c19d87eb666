//! Batches: which found proofs go into the next `submitProofs` transaction, and their bytes.
//!
//! `packed` is a sequence of groups, one per unit, each its nonces delta-encoded
//! ([`crate::groups`], `docs/PROTOCOL.md`). One transaction carries one epoch. Units below their epoch's minimum
//! go first; a unit is never sent beyond its maximum (proofs past it are reported as over the
//! maximum, to be marked skipped); the batch stops at `max_proofs` and at a gas bound.
//!
//! The contract accepts at most [`MAX_GROUPS`] groups per unit-epoch (so a report's evidence is
//! bounded). A unit sends freely until the contract counts [`FREE_PROOFS`] of its proofs (at
//! most that many groups, one proof each at worst); past that, while its epoch runs, it waits
//! until it has [`min_group`] proofs to send (or as many as its maximum leaves room for), so its
//! groups stay within `MAX_GROUPS - GROUP_RESERVE` however slowly it finds proofs; once the
//! epoch has ended (or the client is stopping) everything goes.

use capminer_proofs::UnitId;
use capminer_protocol::UnitIndex;

/// Gas model used to bound a batch before the node's exact estimate (upper bounds, measured on
/// anvil): intrinsic cost and the epoch's reads, one group (the unit's reads, its proof slot
/// changed, an event), one proof (8 bytes of calldata and of log at worst, the loop).
pub const TX_BASE_GAS: u64 = 35_000;
/// See [`TX_BASE_GAS`].
pub const GROUP_GAS: u64 = 20_000;
/// See [`TX_BASE_GAS`].
pub const PROOF_GAS: u64 = 300;

/// Groups the contract accepts per unit-epoch (`Capacity.MAX_GROUPS`).
pub const MAX_GROUPS: u32 = 256;
/// Groups kept for the flush at the epoch's end and for deliveries again after a reorg.
pub const GROUP_RESERVE: u32 = 16;

/// Proofs of a unit-epoch sent in groups of any size.
pub const FREE_PROOFS: u32 = (MAX_GROUPS - GROUP_RESERVE) / 2;

/// The fewest proofs a unit with `onchain` proofs counted and maximum `max` sends in one group
/// while its epoch runs: 1 below [`FREE_PROOFS`], then enough that the rest of its maximum fits
/// the groups left, `ceil((max - FREE_PROOFS) / (MAX_GROUPS - GROUP_RESERVE - FREE_PROOFS))`.
pub fn min_group(onchain: u32, max: u32) -> usize {
    if onchain < FREE_PROOFS {
        return 1;
    }
    let groups_left = MAX_GROUPS - GROUP_RESERVE - FREE_PROOFS;
    max.saturating_sub(FREE_PROOFS).div_ceil(groups_left).max(1) as usize
}

/// Found proofs of one unit in one epoch, waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// The unit.
    pub unit: UnitId,
    /// Its on-chain index.
    pub index: UnitIndex,
    /// Proofs the contract already counts for it in the epoch.
    pub onchain: u32,
    /// The epoch's minimum and maximum for its kind.
    pub min: u32,
    /// See `min`.
    pub max: u32,
    /// Nonces waiting, strictly increasing.
    pub nonces: Vec<u64>,
}

/// What to send, and what can never count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Groups for the transaction: (unit, index, nonces).
    pub groups: Vec<(UnitId, UnitIndex, Vec<u64>)>,
    /// Nonces beyond a unit's maximum.
    pub over_max: Vec<(UnitId, Vec<u64>)>,
}

impl Plan {
    /// Proofs in the transaction.
    pub fn proofs(&self) -> usize {
        self.groups.iter().map(|(_, _, n)| n.len()).sum()
    }

    /// The `packed` argument of `submitProofs`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.groups.len() * 15 + self.proofs() * 8);
        for (_, index, nonces) in &self.groups {
            crate::groups::encode_group(index.0, nonces, &mut out);
        }
        out
    }
}

/// Plans the next transaction from the backlogs of one epoch; `flush`: the epoch has ended or
/// the client is stopping, so units with fewer than [`min_group`] proofs go too.
pub fn plan(mut backlogs: Vec<Backlog>, max_proofs: usize, max_gas: u64, flush: bool) -> Plan {
    backlogs.sort_by_key(|b| (b.onchain >= b.min, b.index));
    let mut plan = Plan::default();
    let mut gas = TX_BASE_GAS;
    let mut proofs = 0usize;
    for b in backlogs {
        let room = b.max.saturating_sub(b.onchain) as usize;
        let (sendable, beyond) = b.nonces.split_at(room.min(b.nonces.len()));
        if !beyond.is_empty() {
            plan.over_max.push((b.unit, beyond.to_vec()));
        }
        if sendable.is_empty() || proofs >= max_proofs {
            continue;
        }
        if !flush && sendable.len() < min_group(b.onchain, b.max).min(room) {
            continue; // waits for a fuller group: the unit-epoch's groups are capped
        }
        let fit_gas = gas
            .checked_add(GROUP_GAS)
            .filter(|g| *g < max_gas)
            .map_or(0, |g| ((max_gas - g) / PROOF_GAS) as usize);
        let take = sendable
            .len()
            .min(max_proofs - proofs)
            .min(fit_gas)
            .min(u16::MAX as usize);
        if take == 0 {
            continue;
        }
        gas += GROUP_GAS + take as u64 * PROOF_GAS;
        proofs += take;
        plan.groups
            .push((b.unit, b.index, sendable[..take].to_vec()));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(i: u8, onchain: u32, min: u32, max: u32, nonces: &[u64]) -> Backlog {
        Backlog {
            unit: UnitId([i; 32]),
            index: UnitIndex(u32::from(i)),
            onchain,
            min,
            max,
            nonces: nonces.to_vec(),
        }
    }

    #[test]
    fn the_packed_bytes_are_exact() {
        let plan = Plan {
            groups: vec![(
                UnitId([1; 32]),
                UnitIndex(0x0102_0304),
                vec![5, 0x1122_3344_5566_7788],
            )],
            over_max: vec![],
        };
        assert_eq!(
            hex(&plan.encode()),
            "01020304\
             0002\
             08\
             0000000000000005\
             1122334455667783"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn units_below_their_minimum_go_first_and_none_passes_its_maximum() {
        let plan = plan(
            vec![
                backlog(1, 10, 5, 12, &[20, 21, 22, 23]), // above min: room 2
                backlog(2, 0, 5, 12, &[7, 8]),            // below min: first
            ],
            100,
            30_000_000,
            false,
        );
        assert_eq!(
            plan.groups.iter().map(|g| g.1).collect::<Vec<_>>(),
            vec![UnitIndex(2), UnitIndex(1)]
        );
        assert_eq!(plan.groups[1].2, vec![20, 21]);
        assert_eq!(plan.over_max, vec![(UnitId([1; 32]), vec![22, 23])]);
    }

    #[test]
    fn a_batch_stops_at_max_proofs_and_at_the_gas_bound() {
        let many: Vec<u64> = (0..500).collect();
        let p = plan(vec![backlog(1, 0, 1, 10_000, &many)], 120, u64::MAX, false);
        assert_eq!(p.proofs(), 120);
        let gas_for_100 = TX_BASE_GAS + GROUP_GAS + 100 * PROOF_GAS;
        let p = plan(
            vec![backlog(1, 0, 1, 10_000, &many)],
            1000,
            gas_for_100 + PROOF_GAS / 2,
            false,
        );
        assert_eq!(p.proofs(), 100);
        let p = plan(
            vec![
                backlog(1, 0, 1, 10_000, &many),
                backlog(2, 0, 1, 10_000, &many),
            ],
            1000,
            gas_for_100,
            false,
        );
        assert_eq!(p.groups.len(), 1, "no room for a second group's fixed cost");
    }

    #[test]
    fn a_unit_that_finds_proofs_slowly_stays_within_the_contracts_group_cap() {
        // max 1000: any group below 120 proofs counted, then groups of at least 8.
        assert_eq!((min_group(0, 1000), min_group(119, 1000)), (1, 1));
        assert_eq!(min_group(120, 1000), 8);
        assert_eq!(min_group(500, 100), 1);
        assert_eq!(min_group(120, 32_768), 273);
        let one = plan(vec![backlog(1, 0, 1, 1000, &[1])], 1000, u64::MAX, false);
        assert_eq!(one.proofs(), 1, "a unit's first proofs go at once");
        let few = plan(
            vec![backlog(1, 200, 1, 1000, &[1, 2, 3, 4])],
            1000,
            u64::MAX,
            false,
        );
        assert!(few.groups.is_empty(), "waits for a fuller group");
        let flushed = plan(
            vec![backlog(1, 200, 1, 1000, &[1, 2, 3, 4])],
            1000,
            u64::MAX,
            true,
        );
        assert_eq!(flushed.proofs(), 4, "the epoch has ended: everything goes");
        let near_max = plan(
            vec![backlog(1, 998, 1, 1000, &[1, 2])],
            1000,
            u64::MAX,
            false,
        );
        assert_eq!(near_max.proofs(), 2, "the room left is a full group");

        // One proof found per tick, a batch planned every tick, all the epoch long: the groups
        // stay within the contract's cap, and every proof up to the maximum is sent.
        for max in [100u32, 241, 1000, 32_768] {
            let (mut onchain, mut waiting, mut groups) = (0u32, Vec::new(), 0u32);
            for nonce in 0..u64::from(max) + 100 {
                waiting.push(nonce);
                let p = plan(
                    vec![backlog(1, onchain, 1, max, &waiting)],
                    1000,
                    u64::MAX,
                    false,
                );
                for (_, _, sent) in &p.groups {
                    groups += 1;
                    onchain += sent.len() as u32;
                    waiting.retain(|n| !sent.contains(n));
                }
                waiting.retain(|n| !p.over_max.iter().any(|(_, o)| o.contains(n)));
            }
            let last = plan(
                vec![backlog(1, onchain, 1, max, &waiting)],
                1000,
                u64::MAX,
                true,
            );
            groups += last.groups.len() as u32;
            onchain += last.proofs() as u32;
            assert_eq!(onchain, max, "every proof up to the maximum is sent");
            assert!(
                groups <= MAX_GROUPS - GROUP_RESERVE,
                "max {max}: {groups} groups"
            );
        }
    }
}
