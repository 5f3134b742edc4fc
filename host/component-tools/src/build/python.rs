//! Python steps: componentize-py over a staged copy of the project.
//!
//! The stage holds the project's sources under `src/` (its own
//! `sluice_sdk/` and `wit/` among them, when it has them; the embedded ones
//! otherwise) and a generated entry module that exports the project's
//! `Step` subclass as the `step` world. What runs is
//!
//! ```text
//! componentize-py -d wit -w step componentize sluice_step_entry \
//!     -p . -p src -o OUT.wasm
//! ```
//!
//! from the stage, which a user can repeat by hand, with `VIRTUAL_ENV`
//! naming an empty folder: otherwise componentize-py adds the build
//! machine's site-packages to the component's path (its listing lands in
//! the component, and a package installed there could be imported by
//! mistake).
//!
//! componentize-py 0.25.1 does not give the same bytes twice: it snapshots
//! CPython after initialising it with a random hash seed (its guest
//! environment is fixed; `PYTHONHASHSEED` cannot be passed), a mimalloc
//! seeded from the clock, and the creation times of the files it mounts
//! (componentize-py issue #247 proposes a `--reproducible` mode). So the
//! build is skipped while its inputs are unchanged (see
//! [`super::stage::up_to_date`]).

use super::stage::{self, Reuse};
use super::{BuildError, Project, Toolchain, find_program, output_line, run_tool};
use crate::sdk;
use std::path::Path;
use std::process::Command;

/// Notes what the Python toolchain lacks: componentize-py (and its version).
pub(super) fn check(project: &Project, t: &mut Toolchain) {
    let pinned = sdk::COMPONENTIZE_PY;
    match find_program("componentize-py") {
        None => t.missing.push(format!(
            "componentize-py not found on PATH; install it: pip install componentize-py=={pinned}"
        )),
        Some(p) => {
            let version = output_line(&p, &["--version"], &project.dir).unwrap_or_default();
            if !version.ends_with(pinned) {
                t.warnings.push(format!(
                    "`{version}` found; the Python SDK is built and tested with componentize-py {pinned} (pip install componentize-py=={pinned})"
                ));
            }
        }
    }
}

/// The module name of the step's source file (`app.py` → `app`).
fn module(entry: &str) -> &str {
    entry.strip_suffix(".py").unwrap_or(entry)
}

/// Builds the component `out`, unless it is up to date and not `force`d;
/// whether it was (and so kept).
pub(super) fn build(project: &Project, out: &Path, force: bool) -> Result<bool, BuildError> {
    let mut files = stage::sources(&project.dir, "src/")?;
    let sdk_files = sdk::python_sdk_files().iter();
    stage::add_missing(
        &mut files,
        "src/sluice_sdk",
        sdk_files.map(|(p, c)| (format!("src/{p}"), *c)),
    );
    stage::add_missing(
        &mut files,
        "src/wit",
        [("src/wit/pipeline.wit".to_string(), sdk::WIT.as_bytes())],
    );
    let module = module(&project.entry).replace('/', ".");
    files.push((
        "sluice_step_entry.py".into(),
        format!(
            "import {module} as _app\n\
             from sluice_sdk._export import world_for\n\
             WitWorld = world_for(_app)\n"
        )
        .into_bytes(),
    ));
    let tool = find_program("componentize-py")
        .and_then(|p| output_line(&p, &["--version"], &project.dir))
        .unwrap_or_default();
    let reuse = Reuse::WhileUnchanged {
        tools: &tool,
        force,
    };
    stage::build_staged("python", &files, out, reuse, |stage| {
        let empty_venv = stage.join("no-site-packages");
        std::fs::create_dir_all(&empty_venv).map_err(super::io_err("creating", &empty_venv))?;
        run_tool(
            Command::new("componentize-py")
                .args(["-q", "-d", "src/wit", "-w", "step", "componentize"])
                .args(["sluice_step_entry", "-p", ".", "-p", "src", "-o"])
                .arg(out)
                .current_dir(stage)
                .env("VIRTUAL_ENV", &empty_venv),
            "componentize-py",
        )
    })
}
