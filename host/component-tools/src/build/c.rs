//! C steps: clang (or `zig cc`) compiles the project's C files with the
//! generated bindings into a `wasm32-wasi` reactor module; this crate then
//! makes the component itself, with `wit-component` and the WASI preview1
//! reactor adapter of the wasmtime release sluice runs — no wasm-tools.
//!
//! From a staged copy of the project (its own `bindings/` and `sluice.h`
//! when it has them, the embedded ones otherwise), what runs is
//!
//! ```text
//! clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 -I. -Ibindings \
//!     *.c bindings/*.c bindings/step_component_type.o -Wl,--strip-all -o step.core.wasm
//! ```
//!
//! `bindings/step_component_type.o` carries the `step` world's type into
//! the module, which is how `wit-component` knows what the module's imports
//! and exports mean. `--strip-all` drops debug information and names (which hold
//! the build's paths), not that custom section.

use super::stage::{self, Reuse};
use super::{BuildError, Project, Toolchain, find_program, run_tool};
use crate::sdk;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Debian packages of the tested C toolchain.
const DEBIAN: &str = "apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32";

/// A C compiler that can target `wasm32-wasi`.
#[derive(Debug, Clone)]
struct Compiler {
    program: PathBuf,
    /// `zig cc` rather than clang.
    zig: bool,
}

impl Compiler {
    /// The first of `clang-19`, `clang`, `zig` on PATH (`CC` first, when set
    /// to one of them).
    fn find() -> Option<Compiler> {
        let cc = std::env::var("CC").ok().filter(|c| !c.is_empty());
        cc.iter()
            .map(String::as_str)
            .chain(["clang-19", "clang", "zig"])
            .find_map(|name| {
                let program = find_program(name).or_else(|| {
                    Path::new(name)
                        .is_absolute()
                        .then(|| PathBuf::from(name))
                        .filter(|p| p.is_file())
                })?;
                let zig = Path::new(name)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("zig"));
                Some(Compiler { program, zig })
            })
    }

    /// A command compiling and linking `sources` into the reactor module
    /// `out`, run in `dir`.
    fn command(&self, dir: &Path, sources: &[String], out: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        if self.zig {
            cmd.args(["cc", "-target", "wasm32-wasi"]);
        } else {
            cmd.arg("--target=wasm32-wasi");
        }
        cmd.args([
            "-mexec-model=reactor",
            "-O2",
            "-I.",
            "-Ibindings",
            "-Wl,--strip-all",
        ])
        .args(sources)
        .arg("-o")
        .arg(out)
        .current_dir(dir)
        .stdin(Stdio::null());
        cmd
    }
}

/// Notes what the C toolchain lacks, found by compiling a small program:
/// a compiler, wasi-libc, the compiler's wasm32 runtime, the linker.
pub(super) fn check(_project: &Project, t: &mut Toolchain) {
    let Some(compiler) = Compiler::find() else {
        t.missing.push(format!(
            "no C compiler for wasm32-wasi on PATH (clang-19, clang or zig); install one: {DEBIAN} (Debian), or pip install ziglang (zig cc)"
        ));
        return;
    };
    let Ok(dir) = tempfile_dir() else { return };
    let probe = "#include <stdlib.h>\n#include <string.h>\n\
                 __attribute__((export_name(\"probe\"))) int probe(int n) {\n  \
                 char *p = malloc((size_t)n + 1);\n  memset(p, 1, (size_t)n);\n  \
                 int r = p[0];\n  free(p);\n  return r;\n}\n";
    if std::fs::write(dir.join("probe.c"), probe).is_err() {
        return;
    }
    let out = compiler
        .command(&dir, &["probe.c".into()], &dir.join("probe.wasm"))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let Ok(out) = out else {
        t.missing.push(format!(
            "{} does not run; install a C toolchain for wasm32-wasi: {DEBIAN}",
            compiler.program.display()
        ));
        return;
    };
    if out.status.success() {
        return;
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let name = compiler.program.display();
    let missing = if said.contains("stdlib.h") || said.contains("sysroot") {
        format!(
            "{name} has no C library for wasm32-wasi (wasi-libc); install it: apt-get install wasi-libc"
        )
    } else if said.contains("libclang_rt") || said.contains("compiler-rt") {
        format!(
            "{name} has no wasm32 runtime library (compiler-rt); install it: apt-get install libclang-rt-19-dev-wasm32"
        )
    } else if said.contains("wasm-ld") {
        format!("{name} has no WebAssembly linker (wasm-ld); install it: apt-get install lld-19")
    } else {
        format!(
            "{name} cannot build for wasm32-wasi: {}; the tested toolchain is Debian's: {DEBIAN}",
            said.lines()
                .find(|l| l.contains("error"))
                .unwrap_or(said.trim())
        )
    };
    t.missing.push(missing);
}

/// A fresh temporary folder.
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-c-probe-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Builds the component `out` (the same sources and compiler give the same
/// bytes, so it always builds: it takes well under a second).
pub(super) fn build(project: &Project, out: &Path) -> Result<(), BuildError> {
    let compiler = Compiler::find().ok_or_else(|| {
        BuildError::Failed(format!("no C compiler for wasm32-wasi on PATH; {DEBIAN}"))
    })?;
    let mut files = stage::sources(&project.dir, "")?;
    stage::add_missing(
        &mut files,
        "bindings",
        sdk::c_bindings().iter().map(|(p, c)| (p.to_string(), *c)),
    );
    if !files.iter().any(|(p, _)| p == "sluice.h") {
        files.push(("sluice.h".into(), sdk::C_HELPER.as_bytes().to_vec()));
    }
    // Every C file at the top and in bindings/, and the world's type.
    let mut sources: Vec<String> = files
        .iter()
        .map(|(p, _)| p)
        .filter(|p| {
            let top_or_bindings = !p.contains('/')
                || p.strip_prefix("bindings/")
                    .is_some_and(|r| !r.contains('/'));
            top_or_bindings && (p.ends_with(".c") || p.ends_with("_component_type.o"))
        })
        .cloned()
        .collect();
    sources.sort();
    stage::build_staged("c", &files, out, Reuse::Never, |stage| {
        let core = stage.join("step.core.wasm");
        run_tool(
            &mut compiler.command(stage, &sources, &core),
            &compiler.program.display().to_string(),
        )?;
        let module = std::fs::read(&core).map_err(super::io_err("reading", &core))?;
        let component = componentize(&module).map_err(|e| {
            BuildError::Failed(format!(
                "making a component of the compiled module: {e:#}; does the project link bindings/step_component_type.o?"
            ))
        })?;
        std::fs::write(out, component).map_err(super::io_err("writing", out))
    })
    .map(|_built| ())
}

/// The component of a reactor module that carries its world's type:
/// wit-component with WASI's preview1 reactor adapter.
fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}
