//! The service's durable state, `<state>/fluence/ccp-state.json`: the active commitment (epoch
//! and allocation) and the utility cores, as the node last set them. Written whole and durably
//! (see `capminer_proofs::durable`) before a call returns, read back at start, so a restarted
//! capminer (kill -9 included) takes up the same work without the node calling again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use capminer_protocol::FluenceEpoch;
use serde::{Deserialize, Serialize};

/// What is saved. Byte strings are hex, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SavedState {
    /// The active commitment; absent: none.
    pub commitment: Option<Commitment>,
    /// Logical CPUs of the runtime's threads, as the node last set them (empty: the
    /// configuration's `cpu.utility_cores`).
    pub utility_cores: Vec<u32>,
}

/// An active commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Commitment {
    #[serde(with = "hex32")]
    pub global_nonce: [u8; 32],
    #[serde(with = "hex32")]
    pub difficulty: [u8; 32],
    /// Physical core -> CU id (hex).
    pub cu_allocation: BTreeMap<u32, String>,
}

impl Commitment {
    /// Its epoch.
    pub(crate) fn epoch(&self) -> FluenceEpoch {
        FluenceEpoch {
            global_nonce: self.global_nonce,
            difficulty: self.difficulty,
        }
    }

    /// The allocation as bytes.
    pub(crate) fn allocation(&self) -> anyhow::Result<BTreeMap<u32, [u8; 32]>> {
        self.cu_allocation
            .iter()
            .map(|(core, cu)| {
                let bytes = hex::decode(cu)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .with_context(|| format!("cu_allocation.{core}: not 32 bytes of hex"))?;
                Ok((*core, bytes))
            })
            .collect()
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("not 32 bytes of hex"))
    }
}

/// The state file in `dir`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join("ccp-state.json")
}

/// Reads the saved state (the default if there is none yet).
pub(crate) fn load(dir: &Path) -> anyhow::Result<SavedState> {
    let path = path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a capminer ccp state file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SavedState::default()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

/// Saves `state` durably. Blocking.
pub(crate) fn save(dir: &Path, state: &SavedState) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(state)?;
    capminer_proofs::durable::write(&path(dir), |f| std::io::Write::write_all(f, &bytes))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_round_trips_through_its_file_in_hex() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), SavedState::default());
        let state = SavedState {
            commitment: Some(Commitment {
                global_nonce: [0xab; 32],
                difficulty: [0x01; 32],
                cu_allocation: BTreeMap::from([(3, hex::encode([7u8; 32]))]),
            }),
            utility_cores: vec![0],
        };
        save(dir.path(), &state).unwrap();
        assert_eq!(load(dir.path()).unwrap(), state);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.contains(&"ab".repeat(32)), "{text}");
        let c = state.commitment.unwrap();
        assert_eq!(c.allocation().unwrap()[&3], [7u8; 32]);
    }
}
