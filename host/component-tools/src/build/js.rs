//! JavaScript steps: componentize-js through jco over a staged copy of the
//! project.
//!
//! The toolchain (componentize-js, jco, the preview2-shim override) is the
//! one the project's `package.json` and `package-lock.json` pin, installed
//! by `npm ci` in the project on its first build. A folder without a
//! `package.json` (a bare `app.js`) uses the SDK's pinned toolchain,
//! installed once in sluice's cache folder. The stage gets the project's
//! sources (its own `sluice-sdk/` and `wit/` when it has them, the embedded
//! ones otherwise), an entry module exporting the step's `describe` and
//! `run`, and a bundler configuration; then, from the stage,
//!
//! ```text
//! jco componentize sluice_step_entry.js --bundle --bundle-config bundle.config.js \
//!     -w wit -n step -d http fetch-event -o OUT.wasm
//! ```
//!
//! `--bundle` inlines the SDK (the configuration maps `sluice-sdk` to
//! `sluice-sdk/sluice.js`, and keeps `sluice:pipeline/*` imports of the
//! component); `-d http fetch-event` always leaves out `wasi:http`, which
//! the sluice sandbox does not grant (without it, the component imports
//! `wasi:http` and the host refuses it). The bundler writes no debug
//! comments (they name the stage's paths).
//!
//! componentize-js 0.23.0 does not give the same bytes twice: it snapshots
//! SpiderMonkey with wizer in a work folder named from `Math.random`, and
//! wizer hands the initialising engine the machine's randomness and clocks
//! (hash keys and timestamps land in the snapshot). So the build is skipped
//! while its inputs are unchanged (see [`super::stage::up_to_date`]).

use super::stage::{self, Reuse};
use super::{BuildError, Project, Toolchain, find_program, io_err, output_line, run_tool};
use crate::sdk;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The lowest Node.js major version the JavaScript SDK runs on.
pub const NODE_MAJOR: u32 = 20;

/// The major version in `node --version`'s output (`v20.11.1` → 20).
fn node_major(version: &str) -> Option<u32> {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
}

/// Notes what the JavaScript toolchain lacks: node (recent enough), and
/// npm when the pinned packages are not installed yet.
pub(super) fn check(project: &Project, t: &mut Toolchain) {
    let install_node = format!(
        "install Node.js >= {NODE_MAJOR} (https://nodejs.org; Debian 13: apt-get install nodejs npm)"
    );
    match find_program("node") {
        None => t
            .missing
            .push(format!("node not found on PATH; {install_node}")),
        Some(node) => {
            let version = output_line(&node, &["--version"], &project.dir).unwrap_or_default();
            if node_major(&version).is_none_or(|m| m < NODE_MAJOR) {
                t.missing
                    .push(format!("node {version} is too old; {install_node}"));
            }
        }
    }
    if !jco(&toolchain_dir(project)).exists() && find_program("npm").is_none() {
        t.missing.push(format!(
            "npm not found on PATH (it installs the pinned componentize-js and jco); {install_node}"
        ));
    }
}

/// Where the toolchain is installed: the project, when it has a
/// `package.json`, else the cache folder of the SDK's pinned toolchain.
fn toolchain_dir(project: &Project) -> PathBuf {
    if project.dir.join("package.json").is_file() {
        // Absolute: the build runs in the stage.
        return std::path::absolute(&project.dir).unwrap_or_else(|_| project.dir.clone());
    }
    let pinned = format!(
        "{}{}",
        sdk::js_package_json("sluice-js-toolchain"),
        sdk::js_package_lock("sluice-js-toolchain")
    );
    let digest = sluice_runtime::Digest::of(pinned.as_bytes()).to_string();
    let hex = digest.trim_start_matches("sha256:");
    cache_dir().join(format!("js-toolchain-{}", &hex[..16]))
}

/// sluice's cache folder: `SLUICE_CACHE_DIR`, else `$XDG_CACHE_HOME/sluice`,
/// else `~/.cache/sluice`, else one in the temporary folder.
fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = var("SLUICE_CACHE_DIR") {
        return d.into();
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("sluice");
    }
    if let Some(d) = var("HOME") {
        return PathBuf::from(d).join(".cache/sluice");
    }
    std::env::temp_dir().join("sluice-cache")
}

/// The jco of a toolchain folder.
fn jco(dir: &Path) -> PathBuf {
    dir.join("node_modules/.bin/jco")
}

/// Installs the pinned packages in `dir` with `npm ci` unless they are
/// there. The cache folder's toolchain is installed beside it and moved in
/// place when complete, so an interrupted install is never taken for one.
fn install(dir: &Path) -> Result<(), BuildError> {
    if jco(dir).exists() {
        return Ok(());
    }
    let npm_ci = |at: &Path| -> Result<(), BuildError> {
        eprintln!(
            "installing the JavaScript toolchain (npm ci in {}) ...",
            at.display()
        );
        run_tool(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(at),
            &format!("`npm ci` in {}", at.display()),
        )
    };
    if dir.join("package.json").is_file() {
        // The project's own toolchain.
        return npm_ci(dir);
    }
    let partial = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(io_err("creating", &partial))?;
    for (name, text) in [
        ("package.json", sdk::js_package_json("sluice-js-toolchain")),
        (
            "package-lock.json",
            sdk::js_package_lock("sluice-js-toolchain"),
        ),
    ] {
        let p = partial.join(name);
        std::fs::write(&p, text).map_err(io_err("writing", &p))?;
    }
    npm_ci(&partial)?;
    std::fs::rename(&partial, dir).map_err(io_err("moving the toolchain to", dir))
}

/// Builds the component `out`, unless it is up to date and not `force`d;
/// whether it was (and so kept).
pub(super) fn build(project: &Project, out: &Path, force: bool) -> Result<bool, BuildError> {
    let toolchain = toolchain_dir(project);
    let mut files = stage::sources(&project.dir, "")?;
    stage::add_missing(
        &mut files,
        "sluice-sdk",
        [("sluice-sdk/sluice.js".to_string(), sdk::JS_SDK.as_bytes())],
    );
    stage::add_missing(
        &mut files,
        "wit",
        [("wit/pipeline.wit".to_string(), sdk::WIT.as_bytes())],
    );
    let entry = &project.entry;
    files.push((
        "sluice_step_entry.js".into(),
        format!(
            "import step from \"./{entry}\";\n\
             import {{ exportStep }} from \"sluice-sdk\";\n\
             const world = exportStep(step);\n\
             export function describe() {{ return world.describe(); }}\n\
             export function run() {{ return world.run(); }}\n"
        )
        .into_bytes(),
    ));
    files.push((
        "bundle.config.js".into(),
        "// Written by `sluice component build`: `sluice-sdk` is the SDK helper,\n\
         // and the contract's interfaces stay imports of the component.\n\
         import { fileURLToPath } from \"node:url\";\n\
         export default {\n  \
           external: [/^sluice:pipeline\\//],\n  \
           resolve: { alias: { \"sluice-sdk\": fileURLToPath(new URL(\"./sluice-sdk/sluice.js\", import.meta.url)) } },\n  \
           experimental: { attachDebugInfo: \"none\" },\n\
         };\n"
            .into(),
    ));
    // The tools: the locked packages and the engine that runs them.
    let lock = std::fs::read_to_string(toolchain.join("package-lock.json"))
        .unwrap_or_else(|_| sdk::js_package_lock("sluice-js-toolchain"));
    let node = find_program("node")
        .and_then(|n| output_line(&n, &["--version"], &project.dir))
        .unwrap_or_default();
    let tools = format!("{node}\n{lock}");
    let reuse = Reuse::WhileUnchanged {
        tools: &tools,
        force,
    };
    stage::build_staged("js", &files, out, reuse, |stage| {
        install(&toolchain)?;
        // The step's own npm dependencies, for the bundler.
        let modules = toolchain.join("node_modules");
        #[cfg(unix)]
        if modules.is_dir() {
            let link = stage.join("node_modules");
            std::os::unix::fs::symlink(&modules, &link).map_err(io_err("linking", &link))?;
        }
        let jco = jco(&toolchain);
        run_tool(
            Command::new(&jco)
                .args(["componentize", "sluice_step_entry.js", "--bundle"])
                .args([
                    "--bundle-config",
                    "bundle.config.js",
                    "-w",
                    "wit",
                    "-n",
                    "step",
                ])
                .args(["-d", "http", "fetch-event", "-o"])
                .arg(out)
                .current_dir(stage),
            "jco componentize",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_versions_are_read() {
        assert_eq!(node_major("v20.11.1"), Some(20));
        assert_eq!(node_major("18.0.0"), Some(18));
        assert_eq!(node_major(""), None);
    }

    #[test]
    fn a_folder_without_package_json_uses_the_cached_pinned_toolchain() {
        let d = tempfile::tempdir().unwrap();
        let p = Project {
            dir: d.path().into(),
            name: "s".into(),
            lang: super::super::Lang::Js,
            entry: "app.js".into(),
        };
        let cached = toolchain_dir(&p);
        assert!(
            cached
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("js-toolchain-")
        );
        std::fs::write(d.path().join("package.json"), "{}").unwrap();
        assert_eq!(toolchain_dir(&p), std::path::absolute(d.path()).unwrap());
    }
}
