//! `verifier.shard`: which share of the unit-epochs one verifier process checks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Shard `index` of `count` (written `I/N`, `0/1` for the whole): a verifier party may run
/// several shards, each with its own delegate key, that together check every unit-epoch once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// Shards in all, at least 1.
    pub count: u32,
}

impl Shard {
    /// The whole: one process checks everything.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// True if unit-epoch `(unit, epoch)` falls to this shard: the splitmix64 finalizer of
    /// `unit << 40 ^ epoch`, modulo `count`. Fixed (shards of one party must agree), and each
    /// unit's epochs spread over the shards, so every shard gets its share of every epoch.
    pub fn owns(&self, unit: u32, epoch: u64) -> bool {
        let mut z = (u64::from(unit) << 40 ^ epoch).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z % u64::from(self.count) == u64::from(self.index)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a shard I/N with 0 <= I < N (for example \"0/2\")");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_print_and_refuse_nonsense() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        assert_eq!(Shard { index: 1, count: 3 }.to_string(), "1/3");
        for bad in ["", "1", "3/3", "0/0", "-1/2", "a/b", "1/2/3"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("not a shard I/N"), "{bad}: {err}");
        }
    }

    /// Every unit-epoch falls to exactly one shard, and the shares are even within a few
    /// percent over 4 shards of 10,000 unit-epochs.
    #[test]
    fn shards_partition_every_unit_epoch_once_and_evenly() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut counts = [0usize; 4];
        for unit in 0..1000u32 {
            for epoch in 100..110u64 {
                let owners: Vec<usize> = (0..4).filter(|i| shards[*i].owns(unit, epoch)).collect();
                assert_eq!(owners.len(), 1, "unit {unit} epoch {epoch}: {owners:?}");
                counts[owners[0]] += 1;
            }
        }
        for c in counts {
            assert!((2400..=2600).contains(&c), "{counts:?}");
        }
        assert!((0..1000).all(|u| Shard::WHOLE.owns(u, 7)));
        // A known answer: the partition is part of the protocol between shards of one party.
        let of_4: Vec<u32> = (0..8)
            .map(|u| {
                (0..4)
                    .find(|i| {
                        Shard {
                            index: *i,
                            count: 4,
                        }
                        .owns(u, 5)
                    })
                    .unwrap()
            })
            .collect();
        // Computed independently (Python, the same splitmix64 steps).
        assert_eq!(of_4, [2, 2, 0, 0, 3, 3, 0, 3]);
    }
}
