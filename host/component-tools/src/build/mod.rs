//! Building a step project with its language's toolchain.
//!
//! The language comes from the project's `step.toml` (written by `sluice
//! component new`), else from what the folder holds: `Cargo.toml` is Rust,
//! `app.py` Python, `app.js` JavaScript, `step.c` C ([`Project::detect`]).
//! Each language has its module: Rust builds with `cargo build --release
//! --target wasm32-wasip2` ([`rust`]); Python with componentize-py
//! ([`python`]); JavaScript with componentize-js through jco ([`js`]); C
//! with clang or `zig cc` for a `wasm32-wasi` reactor module, which this
//! crate makes into a component with the WASI preview1 adapter ([`c`]).
//! None needs a sluice checkout: a project's own copy of the SDK is used,
//! else the one embedded in this crate ([`crate::sdk`]). Before building,
//! [`check_toolchain`] names every missing piece with the command that
//! installs it. The tools' own output goes to this process's stderr.

mod c;
mod js;
mod python;
mod rust;
mod stage;

use serde::Serialize;
use sluice_runtime::Digest;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    /// C, with the generated bindings and `sluice.h` (clang or `zig cc`
    /// for `wasm32-wasi`).
    C,
}

impl Lang {
    /// The language's name for people: `Rust`, `Python`, `JavaScript`.
    pub fn display_name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
        }
    }

    /// The step's source file when `step.toml` names none.
    pub fn default_entry(self) -> &'static str {
        match self {
            Lang::Rust => "src/lib.rs",
            Lang::Python => "app.py",
            Lang::Js => "app.js",
            Lang::C => "step.c",
        }
    }

    /// The language named `rust`, `python`, `js`, `javascript` or `c`.
    pub fn from_name(name: &str) -> Option<Lang> {
        match name {
            "rust" => Some(Lang::Rust),
            "python" => Some(Lang::Python),
            "js" | "javascript" => Some(Lang::Js),
            "c" => Some(Lang::C),
            _ => None,
        }
    }
}

impl fmt::Display for Lang {
    /// `rust`, `python`, `js` or `c`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
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
    #[error("{}: unknown lang `{lang}`; use rust, python, js or c", path.display())]
    UnknownLang {
        /// The `step.toml`.
        path: PathBuf,
        /// The language it names.
        lang: String,
    },
    /// `step.toml` has no `lang` in `[step]`.
    #[error("{}: no `lang` in [step]; use rust, python, js or c", .0.display())]
    NoLang(PathBuf),
    /// The folder holds no file that tells its language.
    #[error(
        "cannot tell the language of the step in {}: it has no step.toml, Cargo.toml, app.py, app.js or step.c\n  \
         (create a project with `sluice component new --lang rust|python|js|c NAME`)",
        .0.display()
    )]
    UnknownProject(PathBuf),
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
        } else if dir.join("step.c").is_file() {
            (Lang::C, folder_name())
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

/// What the project's toolchain lacks, and what it has in an untested
/// version.
pub fn check_toolchain(project: &Project) -> Result<Toolchain, BuildError> {
    let mut t = Toolchain::default();
    if project.lang != Lang::Rust {
        let path = project.dir.join(&project.entry);
        if !path.is_file() {
            return Err(BuildError::MissingSource(path));
        }
    }
    match project.lang {
        Lang::Rust => rust::check(project, &mut t),
        Lang::Python => python::check(project, &mut t),
        Lang::Js => js::check(project, &mut t),
        Lang::C => c::check(project, &mut t),
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
    /// Whether the component was already up to date and kept (a Python or
    /// JavaScript build whose inputs had not changed; see `stage`).
    pub reused: bool,
}

/// Builds `project` into the component `out` (an absolute path whose folder
/// exists; see [`prepare_output`]). A build that ran and failed is
/// [`BuildError::Failed`]; the tools' output has gone to stderr. A Python
/// or JavaScript component built from the same inputs is kept unless
/// `force` (their tools do not give the same bytes twice).
pub fn build(project: &Project, out: &Path, force: bool) -> Result<Built, BuildError> {
    let start = Instant::now();
    let reused = match project.lang {
        Lang::Rust => rust::build(project, out).map(|()| false)?,
        Lang::Python => python::build(project, out, force)?,
        Lang::Js => js::build(project, out, force)?,
        Lang::C => c::build(project, out).map(|()| false)?,
    };
    let duration = start.elapsed();
    let bytes =
        std::fs::read(out).map_err(io_err("the build succeeded but wrote no component at", out))?;
    Ok(Built {
        path: out.to_path_buf(),
        size: bytes.len(),
        digest: Digest::of(&bytes),
        duration,
        reused,
    })
}

/// Runs a build tool (its output to our stderr): a failure to start is
/// [`BuildError::Spawn`], a failure to succeed [`BuildError::Failed`]
/// naming `what` ran.
fn run_tool(cmd: &mut Command, what: &str) -> Result<(), BuildError> {
    let status = to_stderr(cmd)
        .status()
        .map_err(|source| BuildError::Spawn {
            program: what.to_string(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(format!("{what} exited with {status}")))
    }
}

/// A child process whose output goes to our stderr, so that stdout carries
/// only the result.
fn to_stderr(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
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
                .ends_with("unknown lang `cobol`; use rust, python, js or c"),
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
    }

    #[test]
    fn languages_have_names() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            assert_eq!(Lang::from_name(&lang.to_string()), Some(lang));
        }
        assert_eq!(Lang::from_name("javascript"), Some(Lang::Js));
        assert_eq!(Lang::Js.display_name(), "JavaScript");
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
    }
}
