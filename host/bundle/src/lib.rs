//! The edge bundle: everything a device needs to predict with one model
//! version, in one file that the device checks before it runs any of it.
//!
//! A bundle is a plain (ustar) tar, so `tar tf model.bundle` lists it:
//!
//! ```text
//! manifest.json          what the bundle holds: target, engine, model, components, every file's digest
//! manifest.sha256        the manifest's SHA-256 (integrity of an unsigned bundle)
//! manifest.sig           optional: an ed25519 signature over manifest.json
//! model/card.json        the model card, as the store keeps it
//! model/model.onnx       the ONNX graph
//! components/HEX.cwasm   each component, compiled ahead of time for the target
//! selftest/rows.csv      optional: rows the device predicts before it takes the bundle
//! selftest/predictions.json  what `sluice` predicted for them
//! inputs/HEX             optional: artifacts the bundled steps take, frozen from the run that trained the model
//! ```
//!
//! [`BundleWriter`] makes one (`sluice bundle`); [`Bundle::open`] checks
//! one (`sluice-edge`) in this order, and refuses it at the first problem
//! with a message that says what to rebuild: the container is well formed;
//! the manifest matches its digest; its signature is valid for a trusted
//! key when keys are trusted; it is a bundle of this format, for this
//! machine's architecture and operating system and this engine; every file
//! it lists is present with its digest and size, and nothing else is.
//! Only then may a caller hand the components' code to wasmtime, which
//! cannot tell tampered native code from good code.
//!
//! This crate knows nothing of wasmtime or models: the caller says which
//! engine it runs ([`EngineId`]) and which keys it trusts.

mod container;
mod keys;
mod manifest;

pub use keys::{KeyError, PublicKey, SecretKey};
pub use manifest::{
    BundledComponent, BundledStep, ComponentRole, EngineId, FileEntry, InputSource, Manifest,
    ModelEntry, SelfTest, StepInput, suggested_triple,
};

use sluice_digest::Digest;
use std::collections::BTreeMap;

/// The format this crate writes and reads.
pub const FORMAT: &str = "sluice-bundle/1";
/// The manifest's path inside a bundle.
pub const MANIFEST: &str = "manifest.json";
/// The manifest digest's path.
pub const MANIFEST_DIGEST: &str = "manifest.sha256";
/// The manifest signature's path.
pub const MANIFEST_SIGNATURE: &str = "manifest.sig";

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not a tar, or a tar with entries a bundle never has.
    #[error("not a well-formed sluice bundle: {0}")]
    Container(String),
    /// The manifest does not match its recorded digest.
    #[error(
        "the bundle's manifest was modified or damaged: its SHA-256 is {actual}, the bundle says {recorded}; \
         copy the bundle again, or rebuild it with `sluice bundle`"
    )]
    ManifestDigest {
        /// What the bundle records.
        recorded: String,
        /// What the manifest hashes to.
        actual: String,
    },
    /// Keys are trusted but the bundle is not signed.
    #[error(
        "the bundle is not signed, and this device trusts only bundles signed by {trusted}; \
         rebuild it with `sluice bundle --sign KEY`"
    )]
    Unsigned {
        /// The trusted keys' ids.
        trusted: String,
    },
    /// The signature is not valid for any trusted key.
    #[error(
        "the bundle's signature is not valid for any trusted key ({trusted}): it was signed by another key, \
         or its manifest was modified after signing; rebuild it with `sluice bundle --sign KEY` using a key \
         this device trusts"
    )]
    BadSignature {
        /// The trusted keys' ids.
        trusted: String,
    },
    /// The manifest is not JSON of this format.
    #[error("the bundle's manifest is unreadable: {0}")]
    Manifest(String),
    /// A bundle of another format version.
    #[error(
        "the bundle is in format `{found}`; this runtime reads `{FORMAT}`: rebuild it with the `sluice` of this release"
    )]
    Format {
        /// The bundle's format.
        found: String,
    },
    /// Compiled for another architecture or operating system.
    #[error(
        "the bundle was compiled for {target}, and this device is {arch}-{os}: \
         rebuild it with `sluice bundle … --target {suggested}`"
    )]
    Target {
        /// The bundle's target triple.
        target: String,
        /// This machine's architecture.
        arch: String,
        /// This machine's operating system.
        os: String,
        /// The triple to rebuild for.
        suggested: String,
    },
    /// Compiled by another engine than this runtime's.
    #[error(
        "the bundle's code was compiled for engine {found}, and this runtime is engine {expected}: \
         rebuild the bundle with the `sluice` of the same release as this sluice-edge"
    )]
    Engine {
        /// The bundle's engine.
        found: String,
        /// This runtime's engine.
        expected: String,
    },
    /// A listed file is missing.
    #[error("the bundle lists `{0}` but does not hold it: rebuild it with `sluice bundle`")]
    Missing(String),
    /// A file's bytes differ from the manifest's digest or size.
    #[error(
        "`{path}` in the bundle was modified or damaged: its SHA-256 is {actual}, the manifest says {recorded}; \
         copy the bundle again, or rebuild it with `sluice bundle`"
    )]
    FileDigest {
        /// The file.
        path: String,
        /// What the manifest records.
        recorded: String,
        /// What the file hashes to.
        actual: String,
    },
    /// A file the manifest does not list.
    #[error(
        "the bundle holds `{0}`, which its manifest does not list: it was modified after it was built"
    )]
    Unlisted(String),
}

/// What a runtime checks a bundle against: its own architecture, operating
/// system and engine, and the keys it trusts.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The engine this runtime loads code for.
    pub engine: EngineId,
    /// The architecture (`std::env::consts::ARCH`).
    pub arch: String,
    /// The operating system (`std::env::consts::OS`).
    pub os: String,
    /// Keys whose signatures are accepted; empty: any bundle, signed or
    /// not, is accepted on its digests alone.
    pub trusted: Vec<PublicKey>,
}

impl Expectations {
    /// This machine's architecture and operating system, running `engine`,
    /// trusting `trusted`.
    pub fn this_machine(engine: EngineId, trusted: Vec<PublicKey>) -> Self {
        Expectations {
            engine,
            arch: std::env::consts::ARCH.to_string(),
            os: std::env::consts::OS.to_string(),
            trusted,
        }
    }
}

/// A bundle whose every check passed: its manifest and its files.
#[derive(Debug)]
pub struct Bundle {
    manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
    signed_by: Option<PublicKey>,
}

impl Bundle {
    /// Reads and checks a bundle (see the crate's documentation for the
    /// order of the checks).
    pub fn open(bytes: &[u8], expect: &Expectations) -> Result<Bundle, BundleError> {
        let mut files = container::read(bytes)?;
        let manifest_bytes = files
            .remove(MANIFEST)
            .ok_or_else(|| BundleError::Container(format!("it has no `{MANIFEST}`")))?;
        let recorded = files
            .remove(MANIFEST_DIGEST)
            .ok_or_else(|| BundleError::Container(format!("it has no `{MANIFEST_DIGEST}`")))?;
        let recorded = String::from_utf8_lossy(&recorded).trim().to_string();
        let actual = Digest::of(&manifest_bytes).to_string();
        if recorded != actual {
            return Err(BundleError::ManifestDigest { recorded, actual });
        }
        let signature = files.remove(MANIFEST_SIGNATURE);
        let signed_by = if expect.trusted.is_empty() {
            None
        } else {
            let trusted = keys::describe(&expect.trusted);
            let signature = signature.ok_or_else(|| BundleError::Unsigned {
                trusted: trusted.clone(),
            })?;
            let key = expect
                .trusted
                .iter()
                .find(|k| k.verifies(&manifest_bytes, &signature))
                .ok_or(BundleError::BadSignature { trusted })?;
            Some(key.clone())
        };
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| BundleError::Manifest(e.to_string()))?;
        manifest.check_against(expect)?;
        for (path, entry) in &manifest.files {
            let bytes = files
                .get(path)
                .ok_or_else(|| BundleError::Missing(path.clone()))?;
            let actual = Digest::of(bytes);
            if actual != entry.sha256 || bytes.len() as u64 != entry.size {
                return Err(BundleError::FileDigest {
                    path: path.clone(),
                    recorded: entry.sha256.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        if let Some(extra) = files.keys().find(|p| !manifest.files.contains_key(*p)) {
            return Err(BundleError::Unlisted(extra.clone()));
        }
        Ok(Bundle {
            manifest,
            files,
            signed_by,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A file's bytes (checked against the manifest).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// The trusted key whose signature was verified; `None` when no key
    /// is trusted (the bundle was checked on its digests alone).
    pub fn signed_by(&self) -> Option<&PublicKey> {
        self.signed_by.as_ref()
    }
}

/// Builds a bundle: files are added with their bytes, the manifest lists
/// each with its digest and size, and [`BundleWriter::finish`] writes the
/// container (deterministic: the same contents give the same bytes).
#[derive(Debug)]
pub struct BundleWriter {
    manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
}

impl BundleWriter {
    /// A bundle with `manifest` (whose `files` are filled in as files are
    /// added).
    pub fn new(mut manifest: Manifest) -> Self {
        manifest.files.clear();
        BundleWriter {
            manifest,
            files: BTreeMap::new(),
        }
    }

    /// The manifest so far, to fill in.
    pub fn manifest_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }

    /// Adds a file; returns its digest.
    pub fn add(&mut self, path: &str, bytes: Vec<u8>) -> Digest {
        let sha256 = Digest::of(&bytes);
        self.manifest.files.insert(
            path.to_string(),
            FileEntry {
                sha256,
                size: bytes.len() as u64,
            },
        );
        self.files.insert(path.to_string(), bytes);
        sha256
    }

    /// The container's bytes, signed with `key` if given.
    pub fn finish(self, key: Option<&SecretKey>) -> Vec<u8> {
        let manifest = serde_json::to_vec_pretty(&self.manifest).expect("a manifest serialises");
        let mut entries: Vec<(&str, &[u8])> = Vec::new();
        let digest = Digest::of(&manifest).to_string().into_bytes();
        let signature = key.map(|k| k.sign(&manifest));
        entries.push((MANIFEST, &manifest));
        entries.push((MANIFEST_DIGEST, &digest));
        if let Some(sig) = &signature {
            entries.push((MANIFEST_SIGNATURE, sig));
        }
        for (path, bytes) in &self.files {
            entries.push((path, bytes));
        }
        container::write(&entries)
    }
}

#[cfg(test)]
mod tests;
