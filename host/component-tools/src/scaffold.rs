//! New step projects: what `sluice component new` writes.
//!
//! A project in Rust, Python, JavaScript or C builds with [`crate::build`]
//! and passes [`crate::check`] as generated, with nothing but the
//! language's public toolchain: the SDK travels in the project ([`crate::sdk`]
//! embeds it in this crate). The step is the SDKs' template (a step that
//! scales one numeric column), the same in every language:
//! `sdk/python/template/app.py`, `sdk/js/template/app.js`,
//! `sdk/c/template/step.c`, and for Rust the SDK's documentation example
//! `components/test-programs/scale`, all built and tested by the test suite.
//! The project also gets `step.toml` (its name and language, read by
//! [`crate::Project::detect`]), a sample input in `samples/` for `component
//! check --inputs`, a README and a `.gitignore`.
//!
//! What each language's project carries of the SDK:
//! - Rust: the SDK crate in [`VENDOR_DIR`], a dependency by relative path,
//!   with the lock file and toolchain file this crate was built with, so it
//!   builds offline, wherever it is moved.
//! - Python: the `sluice_sdk` module, the WIT, and `requirements.txt`
//!   pinning componentize-py.
//! - JavaScript: the `sluice-sdk` helper in `sluice-sdk/`, the WIT, and a
//!   `package.json` and `package-lock.json` pinning componentize-js, jco and
//!   preview2-shim (`npm ci` installs them in the project).
//! - C: the generated bindings in `bindings/`, the helper header
//!   `sluice.h`, and the WIT they were generated from.
//!
//! [`files`] makes a project's files in memory; [`create`] checks the name
//! and the folder and writes them.

use crate::build::Lang;
use crate::sdk;
use std::path::{Path, PathBuf};

/// Where a Rust project keeps its copy of the SDK (and the files of the
/// sluice checkout it builds from, at their paths in the checkout),
/// relative to the project's folder.
pub const VENDOR_DIR: &str = "vendor/sluice";

const PYTHON_TEMPLATE: &str = include_str!("../../../sdk/python/template/app.py");
const JS_TEMPLATE: &str = include_str!("../../../sdk/js/template/app.js");
const RUST_TEMPLATE: &str = include_str!("../../../components/test-programs/scale/src/lib.rs");
/// The guest workspace's lock file: the versions the SDK is built and tested
/// with, resolved without a registry lookup.
const RUST_LOCK: &str = include_str!("../../../components/Cargo.lock");
/// The pinned toolchain, which lists the wasm32-wasip2 target.
const RUST_TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// One file of a new project: its path relative to the project's folder
/// (`/`-separated) and its contents.
pub type ProjectFile = (String, Vec<u8>);

/// Why a project could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The step name is not one [`check_name`] accepts.
    #[error(
        "invalid step name `{0}`: use lowercase letters, digits, `-` and `_`, starting with a letter (e.g. `scale-columns`)"
    )]
    InvalidName(String),
    /// The project's folder exists and holds something.
    #[error("{} already exists and is not empty; pick another NAME or --dir", .0.display())]
    NotEmpty(PathBuf),
    /// A folder could not be read or created, or a file written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done (`reading`, `creating`, `writing`).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// An SDK template no longer holds the text the scaffold replaces (a
    /// bug of this crate, caught by its tests).
    #[error("the {what} template no longer contains `{from}`; update scaffold.rs")]
    TemplateChanged {
        /// The template's language (`Python`, `JavaScript`, `Rust`, `C`).
        what: &'static str,
        /// The text it should contain.
        from: String,
    },
    /// The sample input table could not be written as Parquet.
    #[error("writing the sample table")]
    Sample(#[source] sluice_runtime::table::TableError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ScaffoldError {
    let path = path.to_path_buf();
    move |source| ScaffoldError::Io {
        action,
        path,
        source,
    }
}

/// The folders of a project that hold a copy of the SDK (or of what it is
/// generated from), with what they hold: a listing shows each as one line.
pub const SDK_FOLDERS: &[(&str, &str)] = &[
    (VENDOR_DIR, "the Rust SDK and the WIT it is generated from"),
    ("sluice_sdk", "the Python SDK"),
    ("sluice-sdk", "the JavaScript SDK helper"),
    (
        "bindings",
        "C bindings generated from the WIT by wit-bindgen",
    ),
    ("wit", "the WIT contract the step is built against"),
];

/// The SDK folder a project file's path (as [`files`] gives it) is in, if
/// any (see [`SDK_FOLDERS`]).
pub fn sdk_folder(path: &str) -> Option<&'static (&'static str, &'static str)> {
    SDK_FOLDERS.iter().find(|(dir, _)| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Checks a step name: lowercase ASCII letters, digits, `-` and `_`,
/// starting with a letter, at most 64 bytes. Step names end up as manifest
/// names, crate names and file names.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if !ok {
        return Err(ScaffoldError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Fails with [`ScaffoldError::NotEmpty`] when `dir` exists and holds
/// anything; a missing or empty folder is fine.
pub fn ensure_free(dir: &Path) -> Result<(), ScaffoldError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(io_err("reading", dir))?
            .next()
            .is_some()
    {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    Ok(())
}

/// Creates the step project `name` in `lang` in the folder `dir`: checks
/// the name ([`check_name`]), refuses a folder that exists and is not empty
/// ([`ensure_free`]), then writes [`files`] there, creating folders as
/// needed. Returns the files written.
pub fn create(dir: &Path, lang: Lang, name: &str) -> Result<Vec<ProjectFile>, ScaffoldError> {
    check_name(name)?;
    ensure_free(dir)?;
    let files = files(lang, name)?;
    write(dir, &files)?;
    Ok(files)
}

/// Writes `files` under `dir`, creating folders as needed and replacing
/// files already there (see [`ensure_free`] to refuse a folder in use).
pub fn write(dir: &Path, files: &[ProjectFile]) -> Result<(), ScaffoldError> {
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        std::fs::write(&path, contents).map_err(io_err("writing", &path))?;
    }
    Ok(())
}

/// The files of the step project `name` in `lang`, by path relative to its
/// folder: the step's source, `step.toml`, `.gitignore`, `README.md`,
/// `samples/data.parquet`, and what the language's toolchain builds with
/// (see the module's documentation). The name is not checked here
/// ([`check_name`]).
pub fn files(lang: Lang, name: &str) -> Result<Vec<ProjectFile>, ScaffoldError> {
    let mut out: Vec<ProjectFile> = Vec::new();
    let mut text = |path: &str, contents: String| out.push((path.to_string(), contents.into()));
    let entry = lang.default_entry();
    text(entry, step_source(lang, name)?);
    text("step.toml", step_toml(name, lang, entry));
    match lang {
        Lang::Python => {
            text(".gitignore", "build/\n__pycache__/\n.sluice/\n".into());
            text(
                "requirements.txt",
                format!(
                    "# The toolchain `sluice component build` uses for this step.\n\
                     componentize-py=={}\n",
                    sdk::COMPONENTIZE_PY
                ),
            );
        }
        Lang::Js => {
            text(".gitignore", "build/\nnode_modules/\n.sluice/\n".into());
            text("package.json", sdk::js_package_json(name));
            text("package-lock.json", sdk::js_package_lock(name));
            text("sluice-sdk/sluice.js", sdk::JS_SDK.into());
        }
        Lang::C => {
            text(".gitignore", "build/\n.sluice/\n".into());
            text("sluice.h", sdk::C_HELPER.into());
        }
        Lang::Rust => {
            text("Cargo.toml", cargo_toml(name));
            text(
                ".cargo/config.toml",
                "# Steps are WebAssembly components: `cargo build --release` builds one.\n\
                 [build]\ntarget = \"wasm32-wasip2\"\n"
                    .into(),
            );
            // The pinned toolchain (which lists the wasm32-wasip2 target, so
            // rustup installs it) and the lock file, so the project resolves
            // to the versions the SDK is built and tested with, without a
            // registry lookup.
            text("rust-toolchain.toml", RUST_TOOLCHAIN.into());
            text("Cargo.lock", RUST_LOCK.into());
            text(".gitignore", "build/\ntarget/\n.sluice/\n".into());
        }
    }
    text("README.md", readme(name, lang));
    let copied: Vec<(String, &[u8])> = match lang {
        Lang::Rust => sdk::rust_sdk_files()
            .iter()
            .map(|(p, c)| (format!("{VENDOR_DIR}/{p}"), *c))
            .collect(),
        Lang::Python => sdk::python_sdk_files()
            .iter()
            .map(|(p, c)| (p.to_string(), *c))
            .collect(),
        Lang::C => sdk::c_bindings()
            .iter()
            .map(|(p, c)| (p.to_string(), *c))
            .collect(),
        Lang::Js => Vec::new(),
    };
    out.extend(copied.into_iter().map(|(p, c)| (p, c.to_vec())));
    if lang != Lang::Rust {
        // Rust's copy of the WIT is in the vendored SDK.
        out.push(("wit/pipeline.wit".into(), sdk::WIT.as_bytes().to_vec()));
    }
    let sample = sluice_runtime::table::batch_to_parquet(&sluice_runtime::table::synthetic())
        .map_err(ScaffoldError::Sample)?;
    out.push(("samples/data.parquet".into(), sample));
    Ok(out)
}

/// The project's `step.toml`: the step's name, language and source file
/// (`entry`, relative to the project), as [`crate::Project::detect`] reads
/// them.
pub fn step_toml(name: &str, lang: Lang, entry: &str) -> String {
    format!(
        "# A sluice step project: `sluice component build` reads this file.\n\
         [step]\n\
         # The manifest's name; the build writes build/{name}.wasm.\n\
         name = \"{name}\"\n\
         # rust, python, js or c\n\
         lang = \"{lang}\"\n\
         # The step's source file.\n\
         entry = \"{entry}\"\n"
    )
}

/// The step's source file for `lang` (`src/lib.rs`, `app.py`, `app.js` or
/// `step.c`): the SDK's template with the manifest named `name` and a
/// header that says how to build and check it.
pub fn step_source(lang: Lang, name: &str) -> Result<String, ScaffoldError> {
    let (template, named) = match lang {
        Lang::Rust => return rust_source(name),
        Lang::Python => (PYTHON_TEMPLATE, "scale-py"),
        Lang::Js => (JS_TEMPLATE, "scale-js"),
        Lang::C => (sdk::C_TEMPLATE, "scale-c"),
    };
    // The template's name, in its manifest and in its header's commands.
    let quoted = format!("\"{named}\"");
    if !template.contains(&quoted) {
        return Err(ScaffoldError::TemplateChanged {
            what: lang.display_name(),
            from: quoted,
        });
    }
    Ok(template.replace(named, name))
}

/// Replaces `from` (which must occur) in a template.
fn replace(
    template: &str,
    what: &'static str,
    from: &str,
    to: &str,
) -> Result<String, ScaffoldError> {
    if !template.contains(from) {
        return Err(ScaffoldError::TemplateChanged {
            what,
            from: from.to_string(),
        });
    }
    Ok(template.replacen(from, to, 1))
}

fn rust_source(name: &str) -> Result<String, ScaffoldError> {
    let s = replace(
        RUST_TEMPLATE,
        "Rust",
        "Manifest::new(\"scale\", \"0.1.0\")",
        &format!("Manifest::new(\"{name}\", \"0.1.0\")"),
    )?;
    let header = "//! The SDK's documentation example (sdk/rust/src/lib.rs), compiled and run\n\
                  //! by the end-to-end tests so the example cannot rot.\n";
    let s = replace(
        &s,
        "Rust",
        header,
        &format!(
            "//! A sluice step in Rust: scales one numeric column by a factor.\n\
             //!\n\
             //! Build:   sluice component build            (-> build/{name}.wasm)\n\
             //! Check:   sluice component check build/{name}.wasm --inputs samples\n"
        ),
    )?;
    Ok(s)
}

/// A Rust project's `Cargo.toml`: a `cdylib` of its own (an empty
/// `[workspace]`) depending on the SDK copy in [`VENDOR_DIR`].
pub fn cargo_toml(name: &str) -> String {
    let sdk_path = format!("{VENDOR_DIR}/{}", sdk::RUST_SDK_DIR);
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
# The Rust SDK, copied into this project by `sluice component new` (the
# version of the `sluice` that created it). To follow another version, point
# this at a sluice checkout's sdk/rust, or replace vendor/sluice.
sluice-sdk = {{ path = "{sdk_path}" }}

[profile.release]
opt-level = 3
debug = false
strip = true

# A project of its own, even when created inside another cargo workspace.
[workspace]
"#
    )
}

/// The project's `README.md`: how to build, check and inspect the step,
/// the toolchain it needs, what the project carries of the SDK, and how a
/// pipeline uses it.
pub fn readme(name: &str, lang: Lang) -> String {
    let source = lang.default_entry();
    let (toolchain, carried) = match lang {
        Lang::Rust => (
            "Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`)".to_string(),
            "`vendor/sluice/` is a copy of the Rust SDK (and the WIT contract it is\n\
             generated from); `Cargo.toml` points at it.",
        ),
        Lang::Python => (
            format!(
                "componentize-py (`pip install -r requirements.txt`: componentize-py=={})",
                sdk::COMPONENTIZE_PY
            ),
            "`sluice_sdk/` is the Python SDK and `wit/` the contract the step is built\n\
             against.",
        ),
        Lang::Js => (
            "Node.js >= 20; the first build runs `npm ci` here, which installs the pinned\n\
             componentize-js and jco (`package.json`, `package-lock.json`)"
                .to_string(),
            "`sluice-sdk/sluice.js` is the JavaScript SDK (imported as `sluice-sdk`) and\n\
             `wit/` the contract the step is built against.",
        ),
        Lang::C => (
            "clang for `wasm32-wasi` with wasi-libc (Debian: `apt-get install clang-19\n\
             lld-19 wasi-libc libclang-rt-19-dev-wasm32`), or `zig cc`"
                .to_string(),
            "`bindings/` holds the C bindings of the step world, generated from `wit/` by\n\
             wit-bindgen; `sluice.h` has helpers and the rules for who frees what.",
        ),
    };
    let doc = match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
        Lang::C => "c",
    };
    format!(
        "# {name}\n\
         \n\
         A sluice pipeline step in {lang} (`{source}`), created by `sluice component new`.\n\
         See docs/writing-a-step-{doc}.md in the sluice repository for the API.\n\
         \n\
         ```sh\n\
         sluice component build                                   # -> build/{name}.wasm\n\
         sluice component check build/{name}.wasm --inputs samples  # the conformance test\n\
         sluice component inspect build/{name}.wasm               # ports, params, imports\n\
         ```\n\
         \n\
         Building needs {toolchain}; `sluice component build` says what is missing.\n\
         Nothing else is needed: {carried} The same sources build to the same bytes.\n\
         \n\
         `samples/` holds one file per input port (`data.parquet` for the `data` table),\n\
         used by `component check --inputs samples`; replace it with data like yours.\n\
         In a pipeline:\n\
         \n\
         ```toml\n\
         [steps.{step}]\n\
         component = \"path/to/{name}/build/{name}.wasm\"\n\
         inputs = {{ data = \"ingest.data\" }}\n\
         params = {{ column = \"x\", factor = 2.0 }}\n\
         ```\n",
        lang = lang.display_name(),
        step = name.replace('-', "_"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_are_renamed() {
        let py = step_source(Lang::Python, "my-step").unwrap();
        assert!(py.contains("Manifest(\"my-step\", \"0.1.0\")"));
        assert!(py.contains("sluice component check build/my-step.wasm"));
        let js = step_source(Lang::Js, "my-step").unwrap();
        assert!(js.contains("new Manifest(\"my-step\", \"0.1.0\")"));
        let c = step_source(Lang::C, "my-step").unwrap();
        assert!(c.contains("\"my-step\""), "{c}");
        for source in [&py, &js, &c] {
            assert!(!source.contains("scale-"), "{source}");
        }
        let rs = rust_source("my-step").unwrap();
        assert!(rs.contains("Manifest::new(\"my-step\", \"0.1.0\")"));
        assert!(rs.starts_with("//! A sluice step in Rust"));
    }

    #[test]
    fn a_rust_project_carries_the_sdk_by_a_relative_path() {
        let files = files(Lang::Rust, "my-step").unwrap();
        let get = |p: &str| {
            files
                .iter()
                .find(|(path, _)| path == p)
                .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_else(|| panic!("no {p}"))
        };
        let cargo = get("Cargo.toml");
        assert!(
            cargo.contains("sluice-sdk = { path = \"vendor/sluice/sdk/rust\" }"),
            "{cargo}"
        );
        let sdk = get("vendor/sluice/sdk/rust/Cargo.toml");
        // Nothing inherited from, or pointing at, the checkout's workspaces.
        assert!(
            !sdk.lines()
                .any(|l| !l.starts_with('#') && l.contains("workspace")),
            "{sdk}"
        );
        assert!(get("vendor/sluice/sdk/rust/src/lib.rs").contains("wit_bindgen"));
        assert!(get("vendor/sluice/wit/pipeline.wit").contains("world step"));
        let root = env!("CARGO_MANIFEST_DIR").trim_end_matches("/host/component-tools");
        for (path, contents) in &files {
            let text = String::from_utf8_lossy(contents);
            assert!(!text.contains(root), "{path} names the checkout {root}");
        }
    }

    #[test]
    fn step_names_are_checked() {
        assert!(check_name("scale-columns_2").is_ok());
        for bad in ["", "Scale", "2x", "a b", "a/b", "-a"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_refuses_a_folder_in_use_and_writes_into_an_empty_one() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let err = create(tmp.path(), Lang::Python, "ok").unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)), "{err}");
        assert!(err.to_string().contains("is not empty"), "{err}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

        let err = create(&tmp.path().join("x"), Lang::Python, "Bad Name").unwrap_err();
        assert!(matches!(err, ScaffoldError::InvalidName(_)), "{err}");
        assert!(!tmp.path().join("x").exists());

        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let written = create(&empty, Lang::Js, "my-step").unwrap();
        for (path, contents) in &written {
            assert_eq!(
                &std::fs::read(empty.join(path)).unwrap(),
                contents,
                "{path}"
            );
        }
        assert!(written.iter().any(|(p, _)| p == "package.json"));
        let step = std::fs::read_to_string(empty.join("step.toml")).unwrap();
        assert!(step.contains("name = \"my-step\"") && step.contains("lang = \"js\""));
    }

    #[test]
    fn every_project_carries_what_its_toolchain_builds_with() {
        let has = |files: &[ProjectFile], p: &str| files.iter().any(|(path, _)| path == p);
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let files = files(lang, "s").unwrap();
            assert!(has(&files, lang.default_entry()), "{lang}");
            assert!(has(&files, "samples/data.parquet"), "{lang}");
            let wit = if lang == Lang::Rust {
                "vendor/sluice/wit/pipeline.wit"
            } else {
                "wit/pipeline.wit"
            };
            assert!(has(&files, wit), "{lang}");
            let root = env!("CARGO_MANIFEST_DIR").trim_end_matches("/host/component-tools");
            for (path, contents) in &files {
                let text = String::from_utf8_lossy(contents);
                assert!(
                    !text.contains(root),
                    "{lang}: {path} names the checkout {root}"
                );
            }
        }
        let python = files(Lang::Python, "s").unwrap();
        assert!(has(&python, "sluice_sdk/__init__.py"));
        assert!(has(&python, "requirements.txt"));
        let js = files(Lang::Js, "s").unwrap();
        for p in ["package.json", "package-lock.json", "sluice-sdk/sluice.js"] {
            assert!(has(&js, p), "{p}");
        }
        let c = files(Lang::C, "s").unwrap();
        for p in [
            "sluice.h",
            "bindings/step.h",
            "bindings/step.c",
            "bindings/step_component_type.o",
        ] {
            assert!(has(&c, p), "{p}");
        }
        assert_eq!(sdk_folder("bindings/step.h").unwrap().0, "bindings");
        assert_eq!(
            sdk_folder("vendor/sluice/sdk/rust/src/lib.rs").unwrap().0,
            VENDOR_DIR
        );
        assert!(sdk_folder("sluice.h").is_none() && sdk_folder("wit.txt").is_none());
    }
}
