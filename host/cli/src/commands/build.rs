//! `sluice component build [DIR]`: builds a step project with its
//! language's toolchain and prints the path of the component.
//!
//! The language comes from the project's `step.toml` (written by `sluice
//! component new`), else from what the folder holds: `Cargo.toml` is Rust,
//! `app.py` Python, `app.js` JavaScript. Rust builds with `cargo build
//! --release --target wasm32-wasip2`; Python and JavaScript with the SDKs'
//! build scripts (`sdk/python/build.sh`, componentize-py; `sdk/js/build.sh`,
//! componentize-js through jco). Before building, the toolchain is checked and
//! every missing piece is named with the command that installs it.

use crate::ui;
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// The componentize-py version the Python SDK is built and tested with.
pub(crate) const COMPONENTIZE_PY: &str = "0.25.1";

/// The lowest Node.js major version the JavaScript SDK runs on.
const NODE_MAJOR: u32 = 20;

/// A step project's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Lang {
    /// Rust, with the `sluice-sdk` crate (cargo, `wasm32-wasip2`).
    Rust,
    /// Python, with `sluice_sdk` (componentize-py).
    Python,
    /// JavaScript, with `sluice-sdk` (componentize-js through jco).
    #[value(alias = "javascript")]
    Js,
}

impl Lang {
    pub(crate) fn display_name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// The step project (default: the current folder).
    #[arg(default_value = ".")]
    dir: PathBuf,

    /// Where to write the component (default: DIR/build/NAME.wasm).
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Print the result as JSON (path, name, language, size, digest, time).
    #[arg(long)]
    json: bool,
}

/// A step project found in a folder.
#[derive(Debug)]
struct Project {
    dir: PathBuf,
    name: String,
    lang: Lang,
    /// The step's source file, relative to `dir` (Python and JS).
    entry: String,
}

pub(crate) fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let project = detect(&args.dir)?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None => project
            .dir
            .join("build")
            .join(format!("{}.wasm", project.name)),
    };
    let missing = missing_tools(&project)?;
    if !missing.is_empty() {
        let mut msg = format!(
            "cannot build the {} step `{}`: its toolchain is incomplete",
            project.lang.display_name(),
            project.name
        );
        for m in &missing {
            msg.push_str("\n  - ");
            msg.push_str(m);
        }
        bail!(msg);
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let out_abs = std::path::absolute(&out).context("resolving the output path")?;

    eprintln!(
        "building the {} step `{}` in {} ...",
        project.lang.display_name(),
        project.name,
        project.dir.display()
    );
    let start = Instant::now();
    let built = match project.lang {
        Lang::Rust => build_rust(&project, &out_abs)?,
        Lang::Python => build_with_script(&project, "python", &out_abs)?,
        Lang::Js => build_with_script(&project, "js", &out_abs)?,
    };
    if let Err(why) = built {
        eprintln!(
            "{} building `{}` failed: {why}",
            ui::error_label(),
            project.name
        );
        return Ok(ExitCode::from(1));
    }
    let elapsed = start.elapsed();
    let bytes = std::fs::read(&out_abs).with_context(|| {
        format!(
            "the build succeeded but wrote no component at {}",
            out.display()
        )
    })?;
    let digest = sluice_runtime::Digest::of(&bytes);
    if args.json {
        let v = serde_json::json!({
            "path": out_abs,
            "name": project.name,
            "lang": project.lang,
            "size": bytes.len(),
            "digest": digest,
            "duration_ms": elapsed.as_secs_f64() * 1000.0,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        eprintln!(
            "built `{}` ({}) in {}: {}, {}",
            project.name,
            project.lang,
            ui::duration(elapsed),
            sluice_runtime::outcome::bytes(bytes.len() as u64),
            digest.short(12)
        );
        println!("{}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `DIR/step.toml`, else guesses the language from the files.
fn detect(dir: &Path) -> anyhow::Result<Project> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let folder_name = || {
        std::path::absolute(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "step".into())
    };
    let step_toml = dir.join("step.toml");
    if step_toml.is_file() {
        let text = std::fs::read_to_string(&step_toml)
            .with_context(|| format!("reading {}", step_toml.display()))?;
        let keys = simple_toml(&text);
        let get = |k: &str| keys.get(&("step".to_string(), k.to_string())).cloned();
        let lang = match get("lang").as_deref() {
            Some("rust") => Lang::Rust,
            Some("python") => Lang::Python,
            Some("js" | "javascript") => Lang::Js,
            Some(other) => bail!(
                "{}: unknown lang `{other}`; use rust, python or js",
                step_toml.display()
            ),
            None => bail!(
                "{}: no `lang` in [step]; use rust, python or js",
                step_toml.display()
            ),
        };
        return Ok(Project {
            dir: dir.to_path_buf(),
            name: get("name").unwrap_or_else(folder_name),
            entry: get("entry").unwrap_or_else(|| default_entry(lang).into()),
            lang,
        });
    }
    let (lang, name) = if dir.join("Cargo.toml").is_file() {
        let text = std::fs::read_to_string(dir.join("Cargo.toml"))?;
        let name = simple_toml(&text)
            .get(&("package".to_string(), "name".to_string()))
            .cloned();
        (Lang::Rust, name.unwrap_or_else(folder_name))
    } else if dir.join("app.py").is_file() {
        (Lang::Python, folder_name())
    } else if dir.join("app.js").is_file() {
        (Lang::Js, folder_name())
    } else {
        bail!(
            "cannot tell the language of the step in {}: it has no step.toml, Cargo.toml, app.py or app.js\n  \
             (create a project with `sluice component new --lang rust|python|js NAME`)",
            dir.display()
        );
    };
    Ok(Project {
        dir: dir.to_path_buf(),
        name,
        entry: default_entry(lang).into(),
        lang,
    })
}

fn default_entry(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "src/lib.rs",
        Lang::Python => "app.py",
        Lang::Js => "app.js",
    }
}

/// The `key = "string"` pairs of a small TOML file, by (section, key). Enough
/// for `step.toml` and a Cargo.toml's package name; anything else is ignored.
fn simple_toml(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            section = rest
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['[', ' '])
                .to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        let value = value.trim();
        let Some(value) = value.strip_prefix('"') else {
            continue;
        };
        if let Some(end) = value.find('"') {
            out.insert((section.clone(), key.to_string()), value[..end].to_string());
        }
    }
    out
}

/// The SDK folder (`sdk/` of a sluice checkout): `SLUICE_SDK_DIR`, else the
/// checkout this binary was built from, else an `sdk/` beside or above the
/// binary.
pub(crate) fn sdk_dir() -> anyhow::Result<PathBuf> {
    let valid = |d: &Path| d.join("rust/Cargo.toml").is_file() && d.join("python").is_dir();
    if let Some(d) = std::env::var_os("SLUICE_SDK_DIR").filter(|v| !v.is_empty()) {
        let d = PathBuf::from(d);
        if !valid(&d) {
            bail!(
                "SLUICE_SDK_DIR={} is not the sdk/ folder of a sluice checkout (no rust/Cargo.toml and python/)",
                d.display()
            );
        }
        return Ok(std::path::absolute(&d)?);
    }
    let mut candidates = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join("sdk")));
    }
    for c in &candidates {
        if valid(c) {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "the sluice SDK was not found (looked in {}); set SLUICE_SDK_DIR to the sdk/ folder of a sluice checkout",
        candidates[0].display()
    )
}

/// The file `name` would run as, from `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The first line a program prints for `ARGS`, if it runs and succeeds.
fn output_line(program: &Path, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
    )
}

/// What the project's toolchain lacks, one line each with how to install it.
fn missing_tools(project: &Project) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    match project.lang {
        Lang::Rust => match (find_program("cargo"), find_program("rustc")) {
            (Some(_), Some(rustc)) => {
                let sysroot = output_line(&rustc, &["--print", "sysroot"], &project.dir);
                match sysroot {
                    Some(s) if !Path::new(&s).join("lib/rustlib/wasm32-wasip2").is_dir() => {
                        let toolchain = Path::new(&s)
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned());
                        missing.push(match (find_program("rustup"), toolchain) {
                            (Some(_), Some(t)) => format!(
                                "the wasm32-wasip2 target is not installed for toolchain {t}; install it: rustup target add wasm32-wasip2 --toolchain {t}"
                            ),
                            _ => format!(
                                "the wasm32-wasip2 target is not installed in {s}; install it: rustup target add wasm32-wasip2"
                            ),
                        });
                    }
                    Some(_) => {}
                    None => missing.push(
                        "rustc does not run; repair the Rust toolchain (https://rustup.rs), then: rustup target add wasm32-wasip2"
                            .into(),
                    ),
                }
            }
            _ => missing.push(
                "cargo not found on PATH; install Rust from https://rustup.rs, then: rustup target add wasm32-wasip2"
                    .into(),
            ),
        },
        Lang::Python => {
            let sdk = sdk_dir()?;
            if find_program("bash").is_none() {
                missing.push("bash not found on PATH (it runs sdk/python/build.sh); install bash".into());
            }
            match find_program("componentize-py") {
                None => missing.push(format!(
                    "componentize-py not found on PATH; install it: pip install componentize-py=={COMPONENTIZE_PY}"
                )),
                Some(p) => {
                    let version = output_line(&p, &["--version"], &project.dir).unwrap_or_default();
                    if !version.ends_with(COMPONENTIZE_PY) {
                        eprintln!(
                            "warning: `{version}` found; the Python SDK is built and tested with componentize-py {COMPONENTIZE_PY} (pip install componentize-py=={COMPONENTIZE_PY})"
                        );
                    }
                }
            }
            if !sdk.join("python/build.sh").is_file() {
                missing.push(format!(
                    "{} is missing; set SLUICE_SDK_DIR to the sdk/ folder of a complete sluice checkout",
                    sdk.join("python/build.sh").display()
                ));
            }
            if !project.dir.join(&project.entry).is_file() {
                bail!(
                    "the step's source {} does not exist",
                    project.dir.join(&project.entry).display()
                );
            }
        }
        Lang::Js => {
            let sdk = sdk_dir()?;
            let js = sdk.join("js");
            if find_program("bash").is_none() {
                missing.push(
                    "bash not found on PATH (it runs sdk/js/build.sh); install bash".into(),
                );
            }
            match find_program("node") {
                None => missing.push(format!(
                    "node not found on PATH; install Node.js >= {NODE_MAJOR} (https://nodejs.org)"
                )),
                Some(node) => {
                    let version = output_line(&node, &["--version"], &project.dir).unwrap_or_default();
                    let major: Option<u32> = version
                        .trim_start_matches('v')
                        .split('.')
                        .next()
                        .and_then(|m| m.parse().ok());
                    if major.is_none_or(|m| m < NODE_MAJOR) {
                        missing.push(format!(
                            "node {version} is too old; install Node.js >= {NODE_MAJOR} (https://nodejs.org)"
                        ));
                    }
                }
            }
            if !js.join("build.sh").is_file() {
                missing.push(format!(
                    "{} is missing; set SLUICE_SDK_DIR to the sdk/ folder of a complete sluice checkout",
                    js.join("build.sh").display()
                ));
            } else if !js.join("node_modules/.bin/jco").exists() {
                missing.push(format!(
                    "the JavaScript SDK's packages (componentize-js, jco) are not installed; install them: (cd {} && npm ci)",
                    js.display()
                ));
            }
            if !project.dir.join(&project.entry).is_file() {
                bail!(
                    "the step's source {} does not exist",
                    project.dir.join(&project.entry).display()
                );
            }
        }
    }
    Ok(missing)
}

/// A child process whose output goes to our stderr, so that stdout carries
/// only the result.
fn to_stderr(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
}

/// Runs `sdk/LANG/build.sh DIR OUT`. The outer error is a problem starting
/// it; the inner one a failed build.
fn build_with_script(
    project: &Project,
    lang_dir: &str,
    out: &Path,
) -> anyhow::Result<Result<(), String>> {
    let script = sdk_dir()?.join(lang_dir).join("build.sh");
    let module = match project.lang {
        // build.sh takes a module name for Python, a file name for JS.
        Lang::Python => project
            .entry
            .strip_suffix(".py")
            .unwrap_or(&project.entry)
            .to_string(),
        _ => project.entry.clone(),
    };
    let status = to_stderr(
        Command::new("bash")
            .arg(&script)
            .arg(&project.dir)
            .arg(out)
            .env("STEP_MODULE", module),
    )
    .status()
    .with_context(|| format!("running {}", script.display()))?;
    Ok(if status.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {status}", script.display()))
    })
}

/// `cargo build --release --target wasm32-wasip2`, then copies the
/// project's `.wasm` (found in cargo's JSON messages) to `out`.
fn build_rust(project: &Project, out: &Path) -> anyhow::Result<Result<(), String>> {
    let manifest = std::path::absolute(project.dir.join("Cargo.toml"))?;
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
    .context("running cargo")?;
    if !child.status.success() {
        return Ok(Err(format!("cargo build exited with {}", child.status)));
    }
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let mut wasm = None;
    for line in String::from_utf8_lossy(&child.stdout).lines() {
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
    let Some(wasm) = wasm else {
        return Ok(Err(
            "cargo built no .wasm for this package; is it a `cdylib` (`[lib] crate-type = [\"cdylib\"]`)?"
                .into(),
        ));
    };
    std::fs::copy(&wasm, out)
        .with_context(|| format!("copying {} to {}", wasm.display(), out.display()))?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_toml_reads_strings_by_section() {
        let t = simple_toml(
            "# c\n[package]\nname = \"scale\"  # trailing\nversion = \"0.1.0\"\n[lib]\nname = \"x\"\n[step]\nlang=\"js\"\n",
        );
        assert_eq!(t[&("package".into(), "name".into())], "scale");
        assert_eq!(t[&("lib".into(), "name".into())], "x");
        assert_eq!(t[&("step".into(), "lang".into())], "js");
    }

    #[test]
    fn the_language_is_detected_from_the_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(detect(d.path()).is_err());
        std::fs::write(d.path().join("app.js"), "").unwrap();
        assert_eq!(detect(d.path()).unwrap().lang, Lang::Js);
        std::fs::write(
            d.path().join("step.toml"),
            "[step]\nname = \"n\"\nlang = \"python\"\n",
        )
        .unwrap();
        let p = detect(d.path()).unwrap();
        assert_eq!(
            (p.lang, p.name.as_str(), p.entry.as_str()),
            (Lang::Python, "n", "app.py")
        );
    }
}
