//! Updates from a folder: the newest `*.bundle` in it is the one to serve.
//! A new one is checked, loaded beside the one in use and self-tested
//! before requests switch to it; one that fails any of that is refused
//! (once, until the file changes) and the one in use stays. So there is
//! never a moment without a model, and a bad bundle cannot take the device
//! down. Write bundles into the folder under another name and rename them
//! (`sluice bundle -o` does), or a half-copied file is refused until it is
//! whole.

use crate::loaded::{self, Loaded};
use crate::server::Current;
use sluice_bundle::PublicKey;
use sluice_runtime::Runtime;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A bundle file as last seen: enough to notice it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// The `*.bundle` files of `dir`, newest first (by modification time, then
/// name).
fn candidates(dir: &Path) -> std::io::Result<Vec<Seen>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("bundle") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        found.push(Seen {
            path,
            len: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    found.sort_by(|a, b| (b.modified, &b.path).cmp(&(a.modified, &a.path)));
    Ok(found)
}

/// Loads the newest bundle of `dir` that loads, for start-up.
pub fn first(dir: &Path, trusted: &[PublicKey], runtime: &Runtime) -> Result<Arc<Loaded>, String> {
    let files = candidates(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if files.is_empty() {
        return Err(format!("{} holds no *.bundle file", dir.display()));
    }
    let mut errors = Vec::new();
    for f in files {
        match std::fs::read(&f.path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| loaded::load(&bytes, trusted, runtime))
        {
            Ok(l) => {
                eprintln!("serving {} ({})", f.path.display(), describe(&l));
                return Ok(l);
            }
            Err(e) => errors.push(format!("{}: {e}", f.path.display())),
        }
    }
    Err(format!(
        "no bundle in {} could be used:\n  {}",
        dir.display(),
        errors.join("\n  ")
    ))
}

/// A short description of a loaded bundle, for the log.
pub fn describe(l: &Loaded) -> String {
    format!(
        "model {}:{}, bundle sha256:{}, loaded in {} ms{}",
        l.model.name,
        l.model.version,
        l.sha256.short(12),
        l.load_time.as_millis(),
        match l.selftest_rows {
            0 => String::new(),
            n => format!(", self-test of {n} rows passed"),
        }
    )
}

/// Watches `dir` every `every`, switching `current` to a newer bundle that
/// passes every check. Runs until the process ends.
pub fn watch(
    dir: PathBuf,
    every: Duration,
    trusted: Vec<PublicKey>,
    runtime: Runtime,
    current: Arc<Current>,
) {
    let mut last: Option<Seen> = candidates(&dir).ok().and_then(|c| c.into_iter().next());
    loop {
        std::thread::sleep(every);
        let Ok(files) = candidates(&dir) else {
            continue;
        };
        let Some(newest) = files.into_iter().next() else {
            continue;
        };
        if Some(&newest) == last.as_ref() {
            continue;
        }
        last = Some(newest.clone());
        let shown = newest.path.display().to_string();
        let result = std::fs::read(&newest.path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                if sluice_digest::Digest::of(&bytes) == current.get().sha256 {
                    return Ok(None);
                }
                loaded::load(&bytes, &trusted, &runtime).map(Some)
            });
        match result {
            Ok(None) => {}
            Ok(Some(l)) => {
                eprintln!("switched to {shown} ({})", describe(&l));
                current.switch(l);
            }
            Err(why) => {
                eprintln!("refused {shown}, still serving the bundle in use: {why}");
                current.refused(&shown, &why);
            }
        }
    }
}
