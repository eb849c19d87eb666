//! Serde helpers for fixed-size byte strings written as `0x`-prefixed hex.

use serde::{Deserialize, Deserializer, Serializer};

/// A value that is not hex of the expected length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {bytes} bytes as {} hex digits (0x-prefixed), got {got:?}", 2 * bytes)]
pub struct ParseHexError {
    /// Bytes expected.
    pub bytes: usize,
    /// The value given.
    pub got: String,
}

/// Parses `0x`-prefixed (or bare) hex of exactly `N` bytes.
pub fn parse<const N: usize>(s: &str) -> Result<[u8; N], ParseHexError> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|_| ParseHexError {
        bytes: N,
        got: s.to_string(),
    })?;
    Ok(out)
}

/// `[u8; N]` as hex.
pub mod bytes {
    use super::*;

    /// Serializes as `0x…`.
    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{}", hex::encode(v)))
    }

    /// Deserializes from hex of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `Option<[u8; N]>` as hex (absent when `None`).
pub mod option {
    use super::*;

    /// Serializes as `0x…`.
    pub fn serialize<S: Serializer, const N: usize>(
        v: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => bytes::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes from hex of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        bytes::deserialize(d).map(Some)
    }
}
