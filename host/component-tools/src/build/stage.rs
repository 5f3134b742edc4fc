//! Staging: a Python, JavaScript or C build copies the project's sources
//! into a folder of its own, adds what the project lacks from the embedded
//! SDK, and builds there. The project's folder is left as it was (no
//! `__pycache__`, no generated entry module), and the folder the tools see
//! is named after the sources' digest, not after where the project lives:
//! tools that record paths then give the same bytes for the same sources,
//! wherever they are.
//!
//! componentize-py and componentize-js do not give the same bytes twice
//! even so: each snapshots an interpreter initialised with the build
//! machine's randomness, clocks and file times (see the language modules).
//! So a Python or JavaScript build records what it was built from beside
//! the component ([`record`]) and is not run again while the sources, the
//! SDK and the tools are unchanged ([`up_to_date`]): unchanged sources keep
//! their component, and the caches downstream keep their hits.

use super::{BuildError, io_err};
use sluice_runtime::Digest;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Names never copied from a project: build outputs, caches, installed
/// packages, version control.
const SKIPPED: &[&str] = &[
    "build",
    "target",
    "node_modules",
    "__pycache__",
    ".git",
    ".sluice",
    "samples",
];

/// The files of a build, by `/`-separated path relative to the stage.
pub(super) type Files = Vec<(String, Vec<u8>)>;

/// The project's sources: every file under `dir` except [`SKIPPED`]
/// folders, hidden files and built components (`*.wasm`), under `prefix`.
pub(super) fn sources(dir: &Path, prefix: &str) -> Result<Files, BuildError> {
    let mut out = Vec::new();
    walk(dir, prefix, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Files) -> Result<(), BuildError> {
    for entry in std::fs::read_dir(dir).map_err(io_err("reading", dir))? {
        let entry = entry.map_err(io_err("reading", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || SKIPPED.contains(&name.as_str()) || name.ends_with(".wasm") {
            continue;
        }
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        if path.is_dir() {
            walk(&path, &format!("{rel}/"), out)?;
        } else if path.is_file() {
            let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

/// Whether a staged build keeps a component already built from the same
/// inputs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reuse<'a> {
    /// Never: the tools give the same bytes for the same inputs (C).
    Never,
    /// While the files and the tools (`tools` identifies them: versions,
    /// lock file) are unchanged, unless `force` (Python, JavaScript).
    WhileUnchanged {
        /// What identifies the tools.
        tools: &'a str,
        /// Build anyway.
        force: bool,
    },
}

/// Stages `files` for a build of `kind` and runs `build` in the stage (its
/// folder) to write the component `out` — unless `reuse` keeps the one
/// already there, which then is the result. Whether it was kept.
pub(super) fn build_staged(
    kind: &str,
    files: &Files,
    out: &Path,
    reuse: Reuse<'_>,
    build: impl FnOnce(&Path) -> Result<(), BuildError>,
) -> Result<bool, BuildError> {
    let (tools, recorded, force) = match reuse {
        Reuse::Never => ("", false, true),
        Reuse::WhileUnchanged { tools, force } => (tools, true, force),
    };
    let inputs = inputs(kind, files, tools);
    if recorded && !force && up_to_date(out, &inputs) {
        return Ok(true);
    }
    let stage = Stage::new(kind, &inputs, files)?;
    build(stage.dir())?;
    if recorded {
        record(out, &inputs)?;
    }
    Ok(false)
}

/// A staging folder holding a build's files, removed when dropped. Only
/// one build at a time uses a given folder (a lock file beside it).
struct Stage {
    dir: PathBuf,
    _lock: File,
}

impl Stage {
    /// Writes `files` into the staging folder of `kind` (`python`, `js`,
    /// `c`) named after their `inputs` digest, emptied first.
    fn new(kind: &str, inputs: &Digest, files: &Files) -> Result<Stage, BuildError> {
        let hex = inputs.to_hex();
        let root = std::env::temp_dir().join(format!("sluice-build-{}", user_id()));
        std::fs::create_dir_all(&root).map_err(io_err("creating", &root))?;
        let dir = root.join(format!("{kind}-{}", &hex[..16]));
        let lock_path = root.join(format!("{kind}-{}.lock", &hex[..16]));
        let lock = File::create(&lock_path).map_err(io_err("creating", &lock_path))?;
        lock.lock().map_err(io_err("locking", &lock_path))?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("emptying", &dir))?;
        }
        for (path, bytes) in files {
            let p = dir.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            std::fs::write(&p, bytes).map_err(io_err("writing", &p))?;
        }
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        Ok(Stage { dir, _lock: lock })
    }

    /// The staging folder.
    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The digest of a build's inputs: its kind, its files (paths and bytes)
/// and what identifies its tools (their versions, the lock file).
fn inputs(kind: &str, files: &Files, tools: &str) -> Digest {
    let mut hashed = Vec::new();
    for part in [kind.as_bytes(), tools.as_bytes()] {
        hashed.extend_from_slice(&(part.len() as u64).to_le_bytes());
        hashed.extend_from_slice(part);
    }
    for (path, bytes) in files {
        hashed.extend_from_slice(path.as_bytes());
        hashed.push(0);
        hashed.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        hashed.extend_from_slice(bytes);
    }
    Digest::of(&hashed)
}

/// The record beside the component `out`: `.NAME.wasm.inputs`.
fn record_path(out: &Path) -> PathBuf {
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    out.with_file_name(format!(".{name}.inputs"))
}

/// Whether `out` is the component a build from `inputs` wrote: its record
/// names these inputs and the bytes it holds now.
fn up_to_date(out: &Path, inputs: &Digest) -> bool {
    let (Ok(record), Ok(bytes)) = (
        std::fs::read_to_string(record_path(out)),
        std::fs::read(out),
    ) else {
        return false;
    };
    record == format!("inputs {inputs}\noutput {}\n", Digest::of(&bytes))
}

/// Records that `out` was just built from `inputs`.
fn record(out: &Path, inputs: &Digest) -> Result<(), BuildError> {
    let bytes = std::fs::read(out).map_err(io_err("reading", out))?;
    let path = record_path(out);
    std::fs::write(
        &path,
        format!("inputs {inputs}\noutput {}\n", Digest::of(&bytes)),
    )
    .map_err(io_err("writing", &path))
}

/// This user's id (so users of a shared machine do not share folders).
fn user_id() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(m) = std::fs::metadata("/proc/self") {
            return m.uid().to_string();
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

/// Whether `files` has one under the folder `dir`.
pub(super) fn has_folder(files: &Files, dir: &str) -> bool {
    files
        .iter()
        .any(|(p, _)| p.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
}

/// Adds `extra` (embedded files, by path relative to the stage) unless the
/// project has the folder `dir` they go in: the project's own copy of the
/// SDK or WIT wins, whole.
pub(super) fn add_missing<'a>(
    files: &mut Files,
    dir: &str,
    extra: impl IntoIterator<Item = (String, &'a [u8])>,
) {
    if !has_folder(files, dir) {
        files.extend(extra.into_iter().map(|(p, c)| (p, c.to_vec())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_skip_outputs_caches_and_hidden_files_and_stages_are_named_by_content() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "app.py",
            "lib/util.py",
            "build/x.wasm",
            "__pycache__/a.pyc",
            ".env",
            "step.wasm",
            "samples/data.parquet",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let files = sources(d.path(), "src/").unwrap();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["src/app.py", "src/lib/util.py"]);
        let a = Stage::new("test", &inputs("test", &files, ""), &files).unwrap();
        assert_eq!(
            std::fs::read_to_string(a.dir().join("src/lib/util.py")).unwrap(),
            "lib/util.py"
        );
        let path = a.dir().to_path_buf();
        drop(a);
        assert!(!path.exists(), "removed when done");
        let again = Stage::new("test", &inputs("test", &files, ""), &files).unwrap();
        assert_eq!(again.dir(), path, "the same sources, the same folder");
        let mut other = files.clone();
        other[0].1.push(b'!');
        drop(again);
        assert_ne!(
            Stage::new("test", &inputs("test", &other, ""), &other)
                .unwrap()
                .dir(),
            path
        );
    }

    #[test]
    fn a_component_is_up_to_date_only_with_its_inputs_and_its_bytes() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("s.wasm");
        let files: Files = vec![("app.py".into(), b"x".to_vec())];
        let key = inputs("python", &files, "componentize-py 0.25.1");
        assert!(!up_to_date(&out, &key), "nothing built yet");
        std::fs::write(&out, b"component").unwrap();
        assert!(!up_to_date(&out, &key), "no record");
        record(&out, &key).unwrap();
        assert!(up_to_date(&out, &key));
        assert!(d.path().join(".s.wasm.inputs").is_file());
        let other_tool = inputs("python", &files, "componentize-py 0.26.0");
        assert!(!up_to_date(&out, &other_tool), "another tool");
        let edited: Files = vec![("app.py".into(), b"y".to_vec())];
        assert!(!up_to_date(
            &out,
            &inputs("python", &edited, "componentize-py 0.25.1")
        ));
        std::fs::write(&out, b"replaced").unwrap();
        assert!(!up_to_date(&out, &key), "the component was replaced");
    }
}
