//! The compiled-component cache: native code produced by cranelift, kept on
//! disk so that a component is compiled once per engine configuration.
//!
//! Entries are keyed by (component SHA-256, engine compatibility hash). An
//! entry is two files: `KEY.cwasm`, exactly what `Component::serialize`
//! produced, so that wasmtime can map it instead of copying it; and
//! `KEY.check`, a magic number, the payload's length and an HMAC-SHA-256
//! over the component's digest, the engine hash and the payload. The
//! payload is written before its check file, each atomically, so a reader
//! never accepts a half-written entry.
//!
//! # Trust model
//!
//! A `.cwasm` file is native code: wasmtime maps and runs it as it is, so
//! whoever can write an entry that sluice accepts can run code in the host.
//! The MAC's key is a per-user secret (32 random bytes, created on first
//! use with mode 0600) kept **outside** the cache folder, by default in
//! `~/.config/sluice/compiled-cache.key`. So:
//!
//! - someone who can write the cache folder but not the key (a restored CI
//!   cache, a shared or synced cache folder, another user with write
//!   access to it) cannot make sluice run their code: swapping two
//!   entries, editing one, or forging a check file fails the MAC, and the
//!   entry is recompiled from the component and reported (`recompiled`);
//! - someone who can read the key and write the cache, or write the `sluice`
//!   binary, can run code as the user — as they could anyway;
//! - entries made with another key (another user, another machine, a CI
//!   cache restored without its key) are recompiled, not trusted.
//!
//! With no key file (no home folder), the key lives only in memory: entries
//! this process wrote are usable by it, and recompiled by the next one.

use crate::engine::{CacheOutcome, CacheStats};
use sluice_digest::Digest;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"SLUICE\x02\x00";
/// The first cache format (a CRC-32 only): never trusted.
const MAGIC_V1: &[u8; 8] = b"SLUICE\x01\x00";
const HEADER_LEN: usize = 8 + 8 + 32;

/// The secret that authenticates cache entries (see the module docs).
#[derive(Clone)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(…)")
    }
}

impl CacheKey {
    /// A fresh random key, kept only in memory.
    pub fn ephemeral() -> Self {
        CacheKey(random_bytes())
    }

    /// The key in `path`, created (32 random bytes, mode 0600, its folder
    /// too) if the file does not exist. A file of the wrong size, or one
    /// that others may read or write, is refused: it cannot be trusted.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match fs::read(path) {
            Ok(bytes) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = fs::metadata(path)?.permissions().mode();
                    if mode & 0o077 != 0 {
                        return Err(io::Error::other(format!(
                            "{} can be read or written by other users (mode {:o}); it must be private: chmod 600 it, or delete it to make a new one",
                            path.display(),
                            mode & 0o777
                        )));
                    }
                }
                let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                    io::Error::other(format!(
                        "{} holds {} bytes, not a 32-byte key; delete it to make a new one",
                        path.display(),
                        b.len()
                    ))
                })?;
                Ok(CacheKey(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir)?;
                }
                let key = random_bytes();
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                match options.open(path) {
                    Ok(mut f) => {
                        f.write_all(&key)?;
                        f.sync_all()?;
                        Ok(CacheKey(key))
                    }
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// HMAC-SHA-256 (RFC 2104) of the parts, in order.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        const BLOCK: usize = 64;
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for (i, k) in self.0.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        for p in parts {
            inner.update(p);
        }
        let mut outer = Sha256::new();
        outer.update(opad);
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

/// 32 bytes from the operating system's random source.
fn random_bytes() -> [u8; 32] {
    let mut key = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut key))
        .unwrap_or_else(|_| {
            // No /dev/urandom (not a Unix): time and address entropy, which
            // only weakens the in-memory fallback on such systems.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::time::SystemTime::now().hash(&mut h);
            (&key as *const _ as usize).hash(&mut h);
            key[..8].copy_from_slice(&h.finish().to_le_bytes());
        });
    key
}

/// An on-disk cache of compiled components for one engine configuration.
#[derive(Debug)]
pub struct CompiledCache {
    dir: PathBuf,
    engine_hash: String,
    key: CacheKey,
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
    /// A cache in `dir` for the engine whose compatibility hash is `engine`,
    /// whose entries are authenticated with `key`.
    pub fn new(dir: impl Into<PathBuf>, engine: &wasmtime::Engine, key: CacheKey) -> Self {
        CompiledCache {
            dir: dir.into(),
            engine_hash: crate::engine_config::compatibility_hash(engine),
            key,
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
        match self.verify(component, &path, &check) {
            Ok(()) => Lookup::Found(path),
            Err(why) => Lookup::Corrupt(why),
        }
    }

    pub(crate) fn record(&self, outcome: &CacheOutcome) {
        let counter = match outcome {
            CacheOutcome::Hit => &self.hits,
            CacheOutcome::Compiled => &self.misses,
            CacheOutcome::Recompiled(_) => &self.recompiled,
            CacheOutcome::Memory | CacheOutcome::Uncached | CacheOutcome::Precompiled => return,
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
        check.extend_from_slice(&self.mac(component, payload));
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

impl CompiledCache {
    /// The MAC of an entry: the component's digest, the engine hash and the
    /// payload, so that an entry is valid only under its own name.
    fn mac(&self, component: &Digest, payload: &[u8]) -> [u8; 32] {
        self.key.mac(&[
            MAGIC,
            component.as_bytes(),
            self.engine_hash.as_bytes(),
            payload,
        ])
    }

    /// Checks a payload file against its check record (magic, length, MAC),
    /// reading it through a memory map so that the bytes are not copied.
    fn verify(&self, component: &Digest, path: &Path, check: &[u8]) -> Result<(), String> {
        if check.len() >= 8 && &check[..8] == MAGIC_V1 {
            return Err("written by an older sluice without authentication".into());
        }
        if check.len() != HEADER_LEN || &check[..8] != MAGIC {
            return Err("not a sluice cache entry (bad header)".into());
        }
        let len = u64::from_le_bytes(check[8..16].try_into().unwrap());
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
        // concurrent writer replaces the file by rename, never in place, so
        // the mapped bytes cannot change under us.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("unreadable: {e}"))?;
        // Compared in constant time: a forger learns nothing from timing.
        let expected = self.mac(component, &map);
        let differs = expected
            .iter()
            .zip(&check[16..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differs != 0 {
            return Err(
                "its authentication code does not match (corrupt, made with another key, or forged)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> CompiledCache {
        CompiledCache::new(dir, &wasmtime::Engine::default(), CacheKey([7; 32]))
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
        assert!(matches!(c.lookup(&d), Lookup::Corrupt(why) if why.contains("does not match")));
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

    #[test]
    fn swapped_and_forged_entries_fail_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        c.store(&a, b"code of a").unwrap();
        c.store(&b, b"code of b").unwrap();
        // a's entry copied over b's, check file and all.
        fs::copy(c.entry_path(&a), c.entry_path(&b)).unwrap();
        fs::copy(c.check_path(&a), c.check_path(&b)).unwrap();
        assert!(matches!(c.lookup(&b), Lookup::Corrupt(why) if why.contains("does not match")));
        // A check record computed as the old format did (length + CRC).
        let mut forged = MAGIC_V1.to_vec();
        forged.extend_from_slice(&9u64.to_le_bytes());
        forged.extend_from_slice(&crc32fast::hash(b"code of a").to_le_bytes());
        fs::write(c.check_path(&b), &forged).unwrap();
        assert!(matches!(c.lookup(&b), Lookup::Corrupt(why) if why.contains("older sluice")));
        // The right length and header with a guessed MAC.
        let mut guessed = MAGIC.to_vec();
        guessed.extend_from_slice(&9u64.to_le_bytes());
        guessed.extend_from_slice(&[0; 32]);
        fs::write(c.check_path(&b), &guessed).unwrap();
        assert!(matches!(c.lookup(&b), Lookup::Corrupt(why) if why.contains("does not match")));
        // Another key does not accept this key's entries.
        let other = CompiledCache::new(dir.path(), &wasmtime::Engine::default(), CacheKey([8; 32]));
        assert!(matches!(other.lookup(&a), Lookup::Corrupt(_)));
        assert!(matches!(c.lookup(&a), Lookup::Found(_)));
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2 has a 4-byte key; HMAC pads keys with zeros
        // to the block size, so a 32-byte key of "Jefe" and zeros is it.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = CacheKey(key).mac(&[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/compiled-cache.key");
        let k1 = CacheKey::load_or_create(&path).unwrap();
        let k2 = CacheKey::load_or_create(&path).unwrap();
        assert_eq!(k1.0, k2.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let e = CacheKey::load_or_create(&path).unwrap_err();
            assert!(e.to_string().contains("must be private"), "{e}");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::write(&path, b"short").unwrap();
        let e = CacheKey::load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("not a 32-byte key"), "{e}");
    }
}
