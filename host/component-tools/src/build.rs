//! Building a step project with its language's toolchain.
//!
//! The language comes from the project's `step.toml` (written by `sluice
//! component new`), else from what the folder holds: `Cargo.toml` is Rust,
//! `app.py` Python, `app.js` JavaScript ([`Project::detect`]). Rust builds
//! with `cargo build --release --target wasm32-wasip2`; Python and
//! JavaScript with the SDKs' build scripts (`sdk/python/build.sh`,
//! componentize-py; `sdk/js/build.sh`, componentize-js through jco). Before
//! building, [`check_toolchain`] names every missing piece with the command
//! that installs it. The tools' own output goes to this process's stderr.

use serde::Serialize;
use sluice_runtime::Digest;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The componentize-py version the Python SDK is built and tested with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The lowest Node.js major version the JavaScript SDK runs on.
pub const NODE_MAJOR: u32 = 20;

/// A step project's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust, with the `sluice-sdk` crate (cargo, `wasm32-wasip2`).
    Rust,
    /// Python, with `sluice_sdk` (componentize-py).
    Python,
    /// JavaScript, with `sluice-sdk` (componentize-js through jco).
    #[cfg_attr(feature = "clap", value(alias = "javascript"))]
    Js,
}

impl Lang {
    /// The language's name for people: `Rust`, `Python`, `JavaScript`.
    pub fn display_name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }

    /// The step's source file when `step.toml` names none.
    pub fn default_entry(self) -> &'static str {
        match self {
            Lang::Rust => "src/lib.rs",
            Lang::Python => "app.py",
            Lang::Js => "app.js",
        }
    }

    /// Whether building needs the SDK folder (its `build.sh`).
    pub fn needs_sdk(self) -> bool {
        !matches!(self, Lang::Rust)
    }

    /// The language named `rust`, `python`, `js` or `javascript`.
    pub fn from_name(name: &str) -> Option<Lang> {
        match name {
            "rust" => Some(Lang::Rust),
            "python" => Some(Lang::Python),
            "js" | "javascript" => Some(Lang::Js),
            _ => None,
        }
    }
}

impl fmt::Display for Lang {
    /// `rust`, `python` or `js`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// Why a step project could not be found, checked or built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The project path is not a folder.
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// A file could not be read, written, copied or created.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done (`reading`, `creating` …).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// `step.toml` or `Cargo.toml` is not valid TOML.
    #[error("{}: not valid TOML", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: toml::de::Error,
    },
    /// `step.toml` names a language sluice cannot build.
    #[error("{}: unknown lang `{lang}`; use rust, python or js", path.display())]
    UnknownLang {
        /// The `step.toml`.
        path: PathBuf,
        /// The language it names.
        lang: String,
    },
    /// `step.toml` has no `lang` in `[step]`.
    #[error("{}: no `lang` in [step]; use rust, python or js", .0.display())]
    NoLang(PathBuf),
    /// The folder holds no file that tells its language.
    #[error(
        "cannot tell the language of the step in {}: it has no step.toml, Cargo.toml, app.py or app.js\n  \
         (create a project with `sluice component new --lang rust|python|js NAME`)",
        .0.display()
    )]
    UnknownProject(PathBuf),
    /// A Python or JavaScript build was asked for without the SDK folder.
    #[error("building a {} step needs the sluice SDK folder (sdk/ of a sluice checkout)", .0.display_name())]
    NoSdk(Lang),
    /// The step's source file (`entry`) does not exist.
    #[error("the step's source {} does not exist", .0.display())]
    MissingSource(PathBuf),
    /// The toolchain lacks pieces; one line each, with how to install it.
    #[error("cannot build the {} step `{name}`: its toolchain is incomplete{}", lang.display_name(), bullets(missing))]
    Incomplete {
        /// The step's name.
        name: String,
        /// Its language.
        lang: Lang,
        /// What is missing.
        missing: Vec<String>,
    },
    /// A build tool could not be started.
    #[error("running {program}")]
    Spawn {
        /// The program or script.
        program: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// The build ran and failed (the tool's output went to stderr).
    #[error("{0}")]
    Failed(String),
}

fn bullets(lines: &[String]) -> String {
    lines.iter().map(|l| format!("\n  - {l}")).collect()
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io {
        action,
        path,
        source,
    }
}

/// A step project found in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its folder.
    pub dir: PathBuf,
    /// The step's name (`step.toml`'s `name`, the package name, or the
    /// folder's name).
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// The step's source file, relative to `dir` (Python and JS).
    pub entry: String,
}

/// A string at `section.key` of a TOML table.
fn toml_str(table: &toml::Table, section: &str, key: &str) -> Option<String> {
    table.get(section)?.get(key)?.as_str().map(str::to_string)
}

fn read_toml(path: &Path) -> Result<toml::Table, BuildError> {
    let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
    toml::from_str(&text).map_err(|source| BuildError::Toml {
        path: path.to_path_buf(),
        source,
    })
}

impl Project {
    /// Reads `DIR/step.toml` (`[step]` with `lang`, and optionally `name`
    /// and `entry`), else guesses the language from the files.
    pub fn detect(dir: &Path) -> Result<Project, BuildError> {
        if !dir.is_dir() {
            return Err(BuildError::NotAFolder(dir.to_path_buf()));
        }
        let folder_name = || {
            std::path::absolute(dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "step".into())
        };
        let step_toml = dir.join("step.toml");
        if step_toml.is_file() {
            let table = read_toml(&step_toml)?;
            let lang = match toml_str(&table, "step", "lang") {
                Some(name) => Lang::from_name(&name).ok_or(BuildError::UnknownLang {
                    path: step_toml.clone(),
                    lang: name,
                })?,
                None => return Err(BuildError::NoLang(step_toml)),
            };
            return Ok(Project {
                dir: dir.to_path_buf(),
                name: toml_str(&table, "step", "name").unwrap_or_else(folder_name),
                entry: toml_str(&table, "step", "entry")
                    .unwrap_or_else(|| lang.default_entry().into()),
                lang,
            });
        }
        let (lang, name) = if dir.join("Cargo.toml").is_file() {
            let table = read_toml(&dir.join("Cargo.toml"))?;
            let name = toml_str(&table, "package", "name");
            (Lang::Rust, name.unwrap_or_else(folder_name))
        } else if dir.join("app.py").is_file() {
            (Lang::Python, folder_name())
        } else if dir.join("app.js").is_file() {
            (Lang::Js, folder_name())
        } else {
            return Err(BuildError::UnknownProject(dir.to_path_buf()));
        };
        Ok(Project {
            dir: dir.to_path_buf(),
            name,
            entry: lang.default_entry().into(),
            lang,
        })
    }

    /// Where the component goes unless told otherwise: `DIR/build/NAME.wasm`.
    pub fn default_output(&self) -> PathBuf {
        self.dir.join("build").join(format!("{}.wasm", self.name))
    }
}

/// What [`check_toolchain`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolchain {
    /// Missing pieces, one line each with how to install them.
    pub missing: Vec<String>,
    /// Pieces present but not the tested version, one line each.
    pub warnings: Vec<String>,
}

impl Toolchain {
    /// `Ok` when nothing is missing, else [`BuildError::Incomplete`].
    pub fn ensure_complete(&self, project: &Project) -> Result<(), BuildError> {
        if self.missing.is_empty() {
            Ok(())
        } else {
            Err(BuildError::Incomplete {
                name: project.name.clone(),
                lang: project.lang,
                missing: self.missing.clone(),
            })
        }
    }
}

/// The file `name` would run as, from `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
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

/// The major version in `node --version`'s output (`v20.11.1` → 20).
fn node_major(version: &str) -> Option<u32> {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
}

/// What the project's toolchain lacks, and what it has in an untested
/// version. `sdk` is the SDK folder (`sdk/` of a sluice checkout), needed
/// for Python and JavaScript ([`Lang::needs_sdk`]).
pub fn check_toolchain(project: &Project, sdk: Option<&Path>) -> Result<Toolchain, BuildError> {
    let mut t = Toolchain::default();
    let sdk = || sdk.ok_or(BuildError::NoSdk(project.lang));
    let source = || {
        let path = project.dir.join(&project.entry);
        if path.is_file() {
            Ok(())
        } else {
            Err(BuildError::MissingSource(path))
        }
    };
    match project.lang {
        Lang::Rust => match (find_program("cargo"), find_program("rustc")) {
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
        },
        Lang::Python => {
            let sdk = sdk()?;
            if find_program("bash").is_none() {
                t.missing.push(
                    "bash not found on PATH (it runs sdk/python/build.sh); install bash".into(),
                );
            }
            match find_program("componentize-py") {
                None => t.missing.push(format!(
                    "componentize-py not found on PATH; install it: pip install componentize-py=={COMPONENTIZE_PY}"
                )),
                Some(p) => {
                    let version = output_line(&p, &["--version"], &project.dir).unwrap_or_default();
                    if !version.ends_with(COMPONENTIZE_PY) {
                        t.warnings.push(format!(
                            "`{version}` found; the Python SDK is built and tested with componentize-py {COMPONENTIZE_PY} (pip install componentize-py=={COMPONENTIZE_PY})"
                        ));
                    }
                }
            }
            if !sdk.join("python/build.sh").is_file() {
                t.missing.push(format!(
                    "{} is missing; set SLUICE_SDK_DIR to the sdk/ folder of a complete sluice checkout",
                    sdk.join("python/build.sh").display()
                ));
            }
            source()?;
        }
        Lang::Js => {
            let js = sdk()?.join("js");
            if find_program("bash").is_none() {
                t.missing
                    .push("bash not found on PATH (it runs sdk/js/build.sh); install bash".into());
            }
            match find_program("node") {
                None => t.missing.push(format!(
                    "node not found on PATH; install Node.js >= {NODE_MAJOR} (https://nodejs.org)"
                )),
                Some(node) => {
                    let version =
                        output_line(&node, &["--version"], &project.dir).unwrap_or_default();
                    if node_major(&version).is_none_or(|m| m < NODE_MAJOR) {
                        t.missing.push(format!(
                            "node {version} is too old; install Node.js >= {NODE_MAJOR} (https://nodejs.org)"
                        ));
                    }
                }
            }
            if !js.join("build.sh").is_file() {
                t.missing.push(format!(
                    "{} is missing; set SLUICE_SDK_DIR to the sdk/ folder of a complete sluice checkout",
                    js.join("build.sh").display()
                ));
            } else if !js.join("node_modules/.bin/jco").exists() {
                t.missing.push(format!(
                    "the JavaScript SDK's packages (componentize-js, jco) are not installed; install them: (cd {} && npm ci)",
                    js.display()
                ));
            }
            source()?;
        }
    }
    Ok(t)
}

/// Creates the folder `out` goes in and returns `out` made absolute.
pub fn prepare_output(out: &Path) -> Result<PathBuf, BuildError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    std::path::absolute(out).map_err(io_err("resolving the output path", out))
}

/// A built component.
#[derive(Debug, Clone)]
pub struct Built {
    /// Where it was written (absolute).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: usize,
    /// The SHA-256 of its bytes.
    pub digest: Digest,
    /// How long the build took.
    pub duration: Duration,
}

/// Builds `project` into the component `out` (an absolute path whose folder
/// exists; see [`prepare_output`]). A build that ran and failed is
/// [`BuildError::Failed`]; the tools' output has gone to stderr.
pub fn build(project: &Project, out: &Path, sdk: Option<&Path>) -> Result<Built, BuildError> {
    let start = Instant::now();
    match project.lang {
        Lang::Rust => build_rust(project, out)?,
        Lang::Python => build_with_script(project, "python", out, sdk)?,
        Lang::Js => build_with_script(project, "js", out, sdk)?,
    }
    let duration = start.elapsed();
    let bytes =
        std::fs::read(out).map_err(io_err("the build succeeded but wrote no component at", out))?;
    Ok(Built {
        path: out.to_path_buf(),
        size: bytes.len(),
        digest: Digest::of(&bytes),
        duration,
    })
}

/// A child process whose output goes to our stderr, so that stdout carries
/// only the result.
fn to_stderr(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
}

/// Runs `sdk/LANG/build.sh DIR OUT`.
fn build_with_script(
    project: &Project,
    lang_dir: &str,
    out: &Path,
    sdk: Option<&Path>,
) -> Result<(), BuildError> {
    let script = sdk
        .ok_or(BuildError::NoSdk(project.lang))?
        .join(lang_dir)
        .join("build.sh");
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
    .map_err(|source| BuildError::Spawn {
        program: script.display().to_string(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(format!(
            "{} exited with {status}",
            script.display()
        )))
    }
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
fn build_rust(project: &Project, out: &Path) -> Result<(), BuildError> {
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
    fn the_language_is_detected_from_the_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Project::detect(d.path()),
            Err(BuildError::UnknownProject(_))
        ));
        std::fs::write(d.path().join("app.js"), "").unwrap();
        assert_eq!(Project::detect(d.path()).unwrap().lang, Lang::Js);
        std::fs::write(
            d.path().join("step.toml"),
            "# a step\n[step]\nname = \"n\"  # trailing\nlang = \"python\"\n",
        )
        .unwrap();
        let p = Project::detect(d.path()).unwrap();
        assert_eq!(
            (p.lang, p.name.as_str(), p.entry.as_str()),
            (Lang::Python, "n", "app.py")
        );
        assert_eq!(p.default_output(), d.path().join("build/n.wasm"));
    }

    #[test]
    fn step_toml_is_read_as_toml() {
        let d = tempfile::tempdir().unwrap();
        let step = d.path().join("step.toml");
        std::fs::write(&step, "[step]\nlang = 'js'\nentry = \"src/main.js\"\n").unwrap();
        let p = Project::detect(d.path()).unwrap();
        assert_eq!((p.lang, p.entry.as_str()), (Lang::Js, "src/main.js"));
        std::fs::write(&step, "[step]\nlang = \"cobol\"\n").unwrap();
        let e = Project::detect(d.path()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("unknown lang `cobol`; use rust, python or js"),
            "{e}"
        );
        std::fs::write(&step, "[step]\nname = \"x\"\n").unwrap();
        assert!(matches!(
            Project::detect(d.path()),
            Err(BuildError::NoLang(_))
        ));
        std::fs::write(&step, "[step\nlang = \"rust\"\n").unwrap();
        assert!(matches!(
            Project::detect(d.path()),
            Err(BuildError::Toml { .. })
        ));
    }

    #[test]
    fn a_rust_project_is_named_after_its_package() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Cargo.toml"),
            "[package]\nname = \"scale\"\nversion = \"0.1.0\"\n\n[lib]\nname = \"x\"\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nsluice-sdk = { path = \"sdk\" }\n",
        )
        .unwrap();
        let p = Project::detect(d.path()).unwrap();
        assert_eq!((p.lang, p.name.as_str()), (Lang::Rust, "scale"));
        assert!(!p.lang.needs_sdk());
    }

    #[test]
    fn languages_have_names() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            assert_eq!(Lang::from_name(&lang.to_string()), Some(lang));
        }
        assert_eq!(Lang::from_name("javascript"), Some(Lang::Js));
        assert_eq!(Lang::Js.display_name(), "JavaScript");
    }

    #[test]
    fn node_versions_are_read() {
        assert_eq!(node_major("v20.11.1"), Some(20));
        assert_eq!(node_major("18.0.0"), Some(18));
        assert_eq!(node_major(""), None);
    }

    #[test]
    fn an_incomplete_toolchain_lists_what_is_missing() {
        let p = Project {
            dir: ".".into(),
            name: "s".into(),
            lang: Lang::Python,
            entry: "app.py".into(),
        };
        let t = Toolchain {
            missing: vec!["a".into(), "b".into()],
            warnings: Vec::new(),
        };
        assert_eq!(
            t.ensure_complete(&p).unwrap_err().to_string(),
            "cannot build the Python step `s`: its toolchain is incomplete\n  - a\n  - b"
        );
        assert!(Toolchain::default().ensure_complete(&p).is_ok());
        assert!(matches!(
            check_toolchain(&p, None),
            Err(BuildError::NoSdk(Lang::Python))
        ));
    }

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
