//! The SHA-256 digest that names every object sluice keeps: stored
//! artifacts, components (the step cache's keys and the compiled cache's),
//! model files, and the files of an edge bundle. Its own crate so that the
//! edge runtime can name and check content without the store's database and
//! network clients.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// The SHA-256 of some bytes: the name of every object sluice stores.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// A digest from its raw 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `n` hex characters, for display.
    pub fn short(&self, n: usize) -> String {
        let mut s = self.to_hex();
        s.truncate(n.min(64));
        s
    }
}

/// Incremental hashing of data that arrives in pieces.
impl Digest {
    /// Digest of several parts, each length-prefixed so that part boundaries
    /// are unambiguous (`["ab", "c"]` and `["a", "bc"]` differ).
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut h = Sha256::new();
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Digest(h.finalize().into())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.short(12))
    }
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{input}` is not a SHA-256 digest: expected 64 hex characters, optionally prefixed by `sha256:`"
)]
pub struct DigestParseError {
    input: String,
}

impl FromStr for Digest {
    type Err = DigestParseError;

    /// Accepts `sha256:<64 hex>` or bare `<64 hex>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
        let mut out = [0u8; 32];
        match hex::decode_to_slice(hex_part, &mut out) {
            Ok(()) => Ok(Digest(out)),
            Err(_) => Err(DigestParseError {
                input: s.to_string(),
            }),
        }
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_known_sha256() {
        assert_eq!(
            Digest::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_round_trips_through_its_display_form() {
        let d = Digest::of(b"iris");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn malformed_digests_are_rejected_with_the_input_named() {
        let err = "sha256:xyz".parse::<Digest>().unwrap_err();
        assert!(err.to_string().contains("`sha256:xyz`"));
    }

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(
            Digest::of_parts([&b"ab"[..], b"c"]),
            Digest::of_parts([&b"a"[..], b"bc"])
        );
    }
}
