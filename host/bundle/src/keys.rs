//! Signing keys: ed25519, kept in the PEM files OpenSSL reads and writes
//! (`openssl genpkey -algorithm ed25519` makes a secret key `sluice`
//! signs with; `openssl pkey -pubout` its public key, which `sluice-edge
//! --trust` takes), so a team can keep its keys in the tools it has.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sluice_digest::Digest;
use std::path::Path;

/// The DER of a PKCS#8 ed25519 private key up to the key's 32 bytes.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The DER of an ed25519 SubjectPublicKeyInfo up to the key's 32 bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a key of the expected kind.
    #[error("{path} is not {expected}: {why}")]
    Format {
        /// The file.
        path: String,
        /// What was expected.
        expected: &'static str,
        /// What is wrong.
        why: String,
    },
    /// No randomness for a new key.
    #[error("no randomness for a new key (/dev/urandom): {0}")]
    Random(std::io::Error),
}

/// A key that signs bundles.
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().id())
    }
}

impl SecretKey {
    /// A new key from the system's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        use std::io::Read;
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(KeyError::Random)?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Reads a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`).
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        const EXPECTED: &str = "an ed25519 private key (PEM, `-----BEGIN PRIVATE KEY-----`; \
                                `sluice bundle keygen` or `openssl genpkey -algorithm ed25519` makes one)";
        let der = read_pem(path, "PRIVATE KEY", EXPECTED)?;
        // Version 1 (48 bytes) or 2 (with the public key after the secret).
        let ed25519 = der.len() >= 48
            && der[0] == 0x30
            && (der[2..5] == [0x02, 0x01, 0x00] || der[2..5] == [0x02, 0x01, 0x01])
            && der[5..16] == PKCS8_PREFIX[5..16];
        if !ed25519 {
            return Err(KeyError::Format {
                path: path.display().to_string(),
                expected: EXPECTED,
                why: "it holds a private key of another algorithm".into(),
            });
        }
        let seed: [u8; 32] = der[16..48].try_into().expect("32 bytes");
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Writes the key as PKCS#8 PEM, readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&self.0.to_bytes());
        write_private(path, &pem("PRIVATE KEY", &der))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `message` (64 bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).to_bytes().to_vec()
    }
}

/// A key whose signatures a device accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl PublicKey {
    /// Reads an SPKI PEM file (`-----BEGIN PUBLIC KEY-----`).
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        const EXPECTED: &str = "an ed25519 public key (PEM, `-----BEGIN PUBLIC KEY-----`; \
                                `sluice bundle keygen` writes one beside the private key)";
        let der = read_pem(path, "PUBLIC KEY", EXPECTED)?;
        let format = |why: &str| KeyError::Format {
            path: path.display().to_string(),
            expected: EXPECTED,
            why: why.to_string(),
        };
        if der.len() != 44 || der[..12] != SPKI_PREFIX {
            return Err(format("it holds a public key of another algorithm"));
        }
        let bytes: [u8; 32] = der[12..].try_into().expect("32 bytes");
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| format("its 32 bytes are not a point of the curve"))
    }

    /// Writes the key as SPKI PEM.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.0.as_bytes());
        std::fs::write(path, pem("PUBLIC KEY", &der)).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// A short name for messages: the first 16 hex digits of the SHA-256
    /// of the key's bytes.
    pub fn id(&self) -> String {
        Digest::of(self.0.as_bytes()).short(16)
    }

    /// Whether `signature` is this key's valid signature of `message`
    /// (strict verification: no malleable or small-order forms).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// The ids of `keys`, for messages.
pub(crate) fn describe(keys: &[PublicKey]) -> String {
    let ids: Vec<String> = keys.iter().map(|k| format!("key {}", k.id())).collect();
    ids.join(", ")
}

fn read_pem(path: &Path, label: &str, expected: &'static str) -> Result<Vec<u8>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let format = |why: String| KeyError::Format {
        path: path.display().to_string(),
        expected,
        why,
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| format(format!("no `{begin}` … `{end}` block")))?;
    base64_decode(body).ok_or_else(|| format("its base64 is malformed".into()))
}

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        base64_encode(der)
    )
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = BASE64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
