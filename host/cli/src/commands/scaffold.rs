//! `sluice component new`: scaffolds a step project in Rust, Python or
//! JavaScript that builds with `sluice component build` and passes
//! `sluice component check` as generated.
//!
//! The step is the SDKs' template (a step that scales one numeric column):
//! `sdk/python/template/app.py`, `sdk/js/template/app.js`, and for Rust the
//! SDK's documentation example `components/test-programs/scale`, all built
//! and tested by the test suite. The project also gets `step.toml` (its name
//! and language, read by `component build`), a sample input in `samples/`
//! for `component check --inputs`, a README and a `.gitignore`. A Rust
//! project gets a copy of the Rust SDK (embedded in this binary by build.rs)
//! in `vendor/sluice/` and depends on it by a relative path, and it starts
//! from the lock file and toolchain file this `sluice` was built with: it
//! builds offline, wherever it is moved, with or without a sluice checkout.

use crate::commands::build::Lang;
use anyhow::{Context as _, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

include!(concat!(env!("OUT_DIR"), "/rust_sdk.rs"));

/// Where a Rust project keeps its copy of the SDK (and the files of the
/// sluice checkout it builds from, at their paths in the checkout).
const VENDOR_DIR: &str = "vendor/sluice";

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The step's name: lowercase letters, digits, `-` and `_`, starting with
    /// a letter. It names the manifest, the project folder and the .wasm.
    name: String,

    /// The language of the step.
    #[arg(long, value_enum)]
    lang: Lang,

    /// Where to create the project (default: ./NAME). Must not exist or be
    /// empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

const PYTHON_TEMPLATE: &str = include_str!("../../../../sdk/python/template/app.py");
const JS_TEMPLATE: &str = include_str!("../../../../sdk/js/template/app.js");
const RUST_TEMPLATE: &str = include_str!("../../../../components/test-programs/scale/src/lib.rs");
/// The guest workspace's lock file: the versions the SDK is built and tested
/// with, resolved without a registry lookup.
const RUST_LOCK: &str = include_str!("../../../../components/Cargo.lock");
/// The pinned toolchain, which lists the wasm32-wasip2 target.
const RUST_TOOLCHAIN: &str = include_str!("../../../../rust-toolchain.toml");

pub(crate) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty; pick another NAME or --dir",
            dir.display()
        );
    }
    let files = files(args.lang, &args.name)?;
    for (path, contents) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }

    let shown = dir.display();
    println!("created {} step `{}` in {shown}", args.lang, args.name);
    let vendored = files
        .iter()
        .filter(|(p, _)| p.starts_with(VENDOR_DIR))
        .count();
    for (path, _) in files.iter().filter(|(p, _)| !p.starts_with(VENDOR_DIR)) {
        println!("  {path}");
    }
    if vendored > 0 {
        println!("  {VENDOR_DIR}/  (the Rust SDK, {vendored} files)");
    }
    println!();
    println!("next:");
    println!("  sluice component build {shown}");
    println!(
        "  sluice component check {} --inputs {}",
        dir.join("build")
            .join(format!("{}.wasm", args.name))
            .display(),
        dir.join("samples").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Step names end up as manifest names, crate names and file names.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if !ok {
        bail!(
            "invalid step name `{name}`: use lowercase letters, digits, `-` and `_`, starting with a letter (e.g. `scale-columns`)"
        );
    }
    Ok(())
}

/// The project's files, by path relative to its folder.
fn files(lang: Lang, name: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut text = |path: &str, contents: String| out.push((path.to_string(), contents.into()));
    match lang {
        Lang::Python => {
            text("app.py", python_source(name)?);
            text("step.toml", step_toml(name, lang, "app.py"));
            text(".gitignore", "build/\n__pycache__/\n.sluice/\n".into());
        }
        Lang::Js => {
            text("app.js", js_source(name)?);
            text("step.toml", step_toml(name, lang, "app.js"));
            text(".gitignore", "build/\nnode_modules/\n.sluice/\n".into());
        }
        Lang::Rust => {
            text("Cargo.toml", cargo_toml(name));
            text("src/lib.rs", rust_source(name)?);
            text("step.toml", step_toml(name, lang, "src/lib.rs"));
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
    if matches!(lang, Lang::Rust) {
        for (path, contents) in RUST_SDK_FILES {
            out.push((format!("{VENDOR_DIR}/{path}"), contents.to_vec()));
        }
    }
    let sample = sluice_runtime::table::to_parquet(&sluice_runtime::table::synthetic())
        .context("writing the sample table")?;
    out.push(("samples/data.parquet".into(), sample));
    Ok(out)
}

fn step_toml(name: &str, lang: Lang, entry: &str) -> String {
    format!(
        "# A sluice step project: `sluice component build` reads this file.\n\
         [step]\n\
         # The manifest's name; the build writes build/{name}.wasm.\n\
         name = \"{name}\"\n\
         # rust, python or js\n\
         lang = \"{lang}\"\n\
         # The step's source file.\n\
         entry = \"{entry}\"\n"
    )
}

/// Replaces `from` (which must occur) in a template.
fn replace(template: &str, what: &str, from: &str, to: &str) -> anyhow::Result<String> {
    if !template.contains(from) {
        bail!("the {what} template no longer contains `{from}`; update scaffold.rs");
    }
    Ok(template.replacen(from, to, 1))
}

fn python_source(name: &str) -> anyhow::Result<String> {
    let s = replace(
        PYTHON_TEMPLATE,
        "Python",
        "Manifest(\"scale-py\", \"0.1.0\")",
        &format!("Manifest(\"{name}\", \"0.1.0\")"),
    )?;
    let s = replace(
        &s,
        "Python",
        "Build:   sdk/python/build.sh sdk/python/template step.wasm\nInspect: sluice component inspect step.wasm",
        &format!(
            "Build:   sluice component build            (-> build/{name}.wasm)\n\
             Check:   sluice component check build/{name}.wasm --inputs samples"
        ),
    )?;
    Ok(s)
}

fn js_source(name: &str) -> anyhow::Result<String> {
    let s = replace(
        JS_TEMPLATE,
        "JavaScript",
        "new Manifest(\"scale-js\", \"0.1.0\")",
        &format!("new Manifest(\"{name}\", \"0.1.0\")"),
    )?;
    let s = replace(
        &s,
        "JavaScript",
        "// Build:   sdk/js/build.sh sdk/js/template step.wasm\n// Inspect: sluice component inspect step.wasm",
        &format!(
            "// Build:   sluice component build            (-> build/{name}.wasm)\n\
             // Check:   sluice component check build/{name}.wasm --inputs samples"
        ),
    )?;
    Ok(s)
}

fn rust_source(name: &str) -> anyhow::Result<String> {
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

fn cargo_toml(name: &str) -> String {
    let sdk_path = format!("{VENDOR_DIR}/{RUST_SDK_DIR}");
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

fn readme(name: &str, lang: Lang) -> String {
    let (source, toolchain) = match lang {
        Lang::Rust => (
            "src/lib.rs",
            "Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`)",
        ),
        Lang::Python => ("app.py", "`pip install componentize-py==0.25.1`"),
        Lang::Js => (
            "app.js",
            "Node.js >= 20 and the JS SDK's packages (`npm ci` in the checkout's `sdk/js`)",
        ),
    };
    let vendored = match lang {
        Lang::Rust => String::from(
            "`vendor/sluice/` is a copy of the Rust SDK (and the WIT contract it is\n\
             generated from) made by `sluice component new`, so the project builds\n\
             without a sluice checkout; `Cargo.toml` points at it.\n\
             \n",
        ),
        Lang::Python | Lang::Js => String::new(),
    };
    let doc = match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
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
         \n\
         {vendored}\
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
        let py = python_source("my-step").unwrap();
        assert!(py.contains("Manifest(\"my-step\", \"0.1.0\")"));
        assert!(py.contains("sluice component build"));
        let js = js_source("my-step").unwrap();
        assert!(js.contains("new Manifest(\"my-step\", \"0.1.0\")"));
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
        let root = env!("CARGO_MANIFEST_DIR").trim_end_matches("/host/cli");
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
}
