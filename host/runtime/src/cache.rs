//! The compiled-component cache: native code produced by cranelift, kept on
//! disk so that a component is compiled once per engine configuration.
//!
//! Entries are keyed by (component SHA-256, engine compatibility hash). An
//! entry is two files: `KEY.cwasm`, exactly what `Component::serialize`
//! produced, so that wasmtime can map it instead of copying it; and
//! `KEY.check`, a magic number, the payload's length and its CRC-32. A
//! truncated, corrupt or foreign entry fails that check and is recompiled
//! and rewritten; it is never handed to wasmtime, whose deserialisation
//! trusts its input. The payload is written before its check file, each
//! atomically, so a reader never accepts a half-written entry.

use sluice_store::Digest;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"SLUICE\x01\x00";
const HEADER_LEN: usize = 8 + 8 + 4;

/// How a component's native code was obtained.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "reason")]
pub enum CacheOutcome {
    /// Read from the compiled cache.
    Hit,
    /// Not in the cache: compiled and stored.
    Compiled,
    /// In the cache but unusable (the reason says why): compiled and stored again.
    Recompiled(String),
    /// Already loaded by this process.
    Memory,
    /// Compiled without a cache (none configured).
    Uncached,
}

/// Counters of what the cache did, for tests and `--verbose` output.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Entries read and used.
    pub hits: u64,
    /// Components compiled because no entry existed.
    pub misses: u64,
    /// Entries found unusable and replaced.
    pub recompiled: u64,
}

/// An on-disk cache of compiled components for one engine configuration.
#[derive(Debug)]
pub struct CompiledCache {
    dir: PathBuf,
    engine_hash: String,
    hits: AtomicU64,
    misses: AtomicU64,
    recompiled: AtomicU64,
}

/// What a cache lookup found.
pub(crate) enum Lookup {
    /// A verified payload file, ready for `Component::deserialize_file`.
    Found(PathBuf),
    /// No entry.
    Absent,
    /// An entry that failed verification, and why.
    Corrupt(String),
}

impl CompiledCache {
    /// A cache in `dir` for the engine whose compatibility hash is `engine`.
    pub fn new(dir: impl Into<PathBuf>, engine: &wasmtime::Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        CompiledCache {
            dir: dir.into(),
            engine_hash: format!("{:016x}", h.finish()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            recompiled: AtomicU64::new(0),
        }
    }

    /// The folder holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for a component lives.
    pub fn entry_path(&self, component: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", component.to_hex(), self.engine_hash))
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            recompiled: self.recompiled.load(Ordering::Relaxed),
        }
    }

    /// Where the check file of an entry lives.
    pub fn check_path(&self, component: &Digest) -> PathBuf {
        self.entry_path(component).with_extension("check")
    }

    pub(crate) fn lookup(&self, component: &Digest) -> Lookup {
        let path = self.entry_path(component);
        let check = match fs::read(self.check_path(component)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return if path.exists() {
                    Lookup::Corrupt("its check file is missing".into())
                } else {
                    Lookup::Absent
                };
            }
            Err(e) => return Lookup::Corrupt(format!("unreadable check file: {e}")),
        };
        match verify(&path, &check) {
            Ok(()) => Lookup::Found(path),
            Err(why) => Lookup::Corrupt(why),
        }
    }

    pub(crate) fn record(&self, outcome: &CacheOutcome) {
        let counter = match outcome {
            CacheOutcome::Hit => &self.hits,
            CacheOutcome::Compiled => &self.misses,
            CacheOutcome::Recompiled(_) => &self.recompiled,
            CacheOutcome::Memory | CacheOutcome::Uncached => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Stores a serialised component atomically. Failure to write is not
    /// fatal to the caller (the component is already compiled), so it is
    /// returned for logging only.
    pub(crate) fn store(&self, component: &Digest, payload: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.entry_path(component);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut check = Vec::with_capacity(HEADER_LEN);
        check.extend_from_slice(MAGIC);
        check.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        check.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        write_atomically(&tmp, &path, payload)?;
        write_atomically(&tmp, &self.check_path(component), &check)
    }
}

/// Writes `bytes` to `tmp`, syncs, and renames it to `path`.
fn write_atomically(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let result = (|| {
        let mut f = fs::File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Checks a payload file against its check record (magic, length, CRC-32),
/// reading it through a memory map so that the bytes are not copied.
fn verify(path: &Path, check: &[u8]) -> Result<(), String> {
    if check.len() != HEADER_LEN || &check[..8] != MAGIC {
        return Err("not a sluice cache entry (bad header)".into());
    }
    let len = u64::from_le_bytes(check[8..16].try_into().unwrap());
    let crc = u32::from_le_bytes(check[16..20].try_into().unwrap());
    let file = fs::File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    let actual_len = file
        .metadata()
        .map_err(|e| format!("unreadable: {e}"))?
        .len();
    if actual_len != len {
        return Err(format!(
            "truncated or padded: header says {len} bytes, found {actual_len}"
        ));
    }
    // SAFETY: the map is read-only and dropped before this returns; a
    // concurrent writer replaces the file by rename, never in place, so the
    // mapped bytes cannot change under us.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("unreadable: {e}"))?;
    if crc32fast::hash(&map) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> CompiledCache {
        CompiledCache::new(dir, &wasmtime::Engine::default())
    }

    #[test]
    fn stored_entries_are_found_intact() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let d = Digest::of(b"component");
        c.store(&d, b"payload").unwrap();
        assert!(matches!(c.lookup(&d), Lookup::Found(p) if fs::read(&p).unwrap() == b"payload"));
    }

    #[test]
    fn truncated_and_flipped_entries_are_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let d = Digest::of(b"component");
        c.store(&d, b"payload-bytes").unwrap();
        let path = c.entry_path(&d);
        let mut bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(c.lookup(&d), Lookup::Corrupt(why) if why.contains("truncated")));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(c.lookup(&d), Lookup::Corrupt(why) if why.contains("checksum")));
        fs::write(c.check_path(&d), b"garbage").unwrap();
        assert!(matches!(c.lookup(&d), Lookup::Corrupt(why) if why.contains("header")));
        fs::remove_file(c.check_path(&d)).unwrap();
        assert!(
            matches!(c.lookup(&d), Lookup::Corrupt(why) if why.contains("check file is missing"))
        );
        fs::remove_file(&path).unwrap();
        assert!(matches!(c.lookup(&d), Lookup::Absent));
    }

    #[test]
    fn entries_are_keyed_by_component_and_engine() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let name = c.entry_path(&Digest::of(b"x"));
        let name = name.file_name().unwrap().to_string_lossy();
        assert!(name.starts_with(&Digest::of(b"x").to_hex()));
        assert!(name.ends_with(".cwasm"));
        assert_eq!(name.len(), 64 + 1 + 16 + ".cwasm".len());
    }
}
