//! Rust steps: `cargo build --release --target wasm32-wasip2` in the
//! project, which depends on its vendored copy of the SDK.

use super::{BuildError, Project, Toolchain, find_program, io_err, output_line, to_stderr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Notes what the Rust toolchain lacks: cargo, rustc, the wasm32-wasip2
/// target.
pub(super) fn check(project: &Project, t: &mut Toolchain) {
    match (find_program("cargo"), find_program("rustc")) {
        (Some(_), Some(rustc)) => {
            let sysroot = output_line(&rustc, &["--print", "sysroot"], &project.dir);
            match sysroot {
                Some(s) if !Path::new(&s).join("lib/rustlib/wasm32-wasip2").is_dir() => {
                    let toolchain = Path::new(&s)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned());
                    t.missing.push(match (find_program("rustup"), toolchain) {
                        (Some(_), Some(tc)) => format!(
                            "the wasm32-wasip2 target is not installed for toolchain {tc}; install it: rustup target add wasm32-wasip2 --toolchain {tc}"
                        ),
                        _ => format!(
                            "the wasm32-wasip2 target is not installed in {s}; install it: rustup target add wasm32-wasip2"
                        ),
                    });
                }
                Some(_) => {}
                None => t.missing.push(
                    "rustc does not run; repair the Rust toolchain (https://rustup.rs), then: rustup target add wasm32-wasip2"
                        .into(),
                ),
            }
        }
        _ => t.missing.push(
            "cargo not found on PATH; install Rust from https://rustup.rs, then: rustup target add wasm32-wasip2"
                .into(),
        ),
    };
}

/// The `.wasm` cargo built for the package of `manifest`, from cargo's
/// `--message-format=json` output (the last one listed).
fn wasm_from_cargo_messages(stdout: &str, manifest: &Path) -> Option<PathBuf> {
    let mut wasm = None;
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let same_manifest = msg["manifest_path"]
            .as_str()
            .map(|p| Path::new(p).canonicalize().unwrap_or_else(|_| p.into()))
            .is_some_and(|p| p == manifest);
        if !same_manifest {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            wasm = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(wasm);
        }
    }
    wasm
}

/// `cargo build --release --target wasm32-wasip2`, then copies the
/// project's `.wasm` (found in cargo's JSON messages) to `out`.
pub(super) fn build(project: &Project, out: &Path) -> Result<(), BuildError> {
    let manifest_path = project.dir.join("Cargo.toml");
    let manifest = std::path::absolute(&manifest_path)
        .map_err(io_err("resolving the path of", &manifest_path))?;
    let child = to_stderr(
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest)
            .current_dir(&project.dir),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .output()
    .map_err(|source| BuildError::Spawn {
        program: "cargo".into(),
        source,
    })?;
    if !child.status.success() {
        return Err(BuildError::Failed(format!(
            "cargo build exited with {}",
            child.status
        )));
    }
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let Some(wasm) = wasm_from_cargo_messages(&String::from_utf8_lossy(&child.stdout), &manifest)
    else {
        return Err(BuildError::Failed(
            "cargo built no .wasm for this package; is it a `cdylib` (`[lib] crate-type = [\"cdylib\"]`)?"
                .into(),
        ));
    };
    std::fs::copy(&wasm, out).map_err(|source| BuildError::Io {
        action: "copying the component to",
        path: out.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasm_is_found_in_cargo_messages() {
        let d = tempfile::tempdir().unwrap();
        let manifest = d.path().join("Cargo.toml");
        std::fs::write(&manifest, "").unwrap();
        let manifest = manifest.canonicalize().unwrap();
        let msg = |m: &str, files: &[&str]| {
            serde_json::json!({"reason": "compiler-artifact", "manifest_path": m, "filenames": files})
                .to_string()
        };
        let out = [
            "not json".to_string(),
            msg("/elsewhere/Cargo.toml", &["/t/dep.wasm"]),
            msg(manifest.to_str().unwrap(), &["/t/x.rlib", "/t/x.wasm"]),
            serde_json::json!({"reason": "build-finished"}).to_string(),
        ]
        .join("\n");
        assert_eq!(
            wasm_from_cargo_messages(&out, &manifest),
            Some(PathBuf::from("/t/x.wasm"))
        );
        assert_eq!(wasm_from_cargo_messages("", &manifest), None);
    }
}
