//! Builds the guest workspace (`components/`) for wasm32-wasip2 and embeds
//! the standard steps, the way wasmtime builds its test programs: a nested
//! `cargo build` into a target folder of its own, so `cargo build` of the host
//! alone yields a self-contained `sluice`.

use sha2::{Digest, Sha256};
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let guest = root.join("components");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    watch(&root, &guest);

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out; keep guest builds
    // beside the host's so they survive changes of this crate's hash.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("guest"))
        .unwrap_or_else(|| out_dir.join("guest"));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(guest.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the host build must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the guest components");
    if !status.success() {
        panic!(
            "building the standard components for {TARGET} failed (see the errors above).\n\
             If the target is missing, install it with: rustup target add {TARGET}"
        );
    }

    let wasm_dir = target_dir.join(TARGET).join("release");
    let mut code = String::new();
    code.push_str("/// The standard steps embedded in this build, sorted by name.\n");
    code.push_str("pub static STANDARD: &[StdComponent] = &[\n");
    for name in std_component_names(&guest) {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        let bytes = fs::read(&file)
            .unwrap_or_else(|e| panic!("reading built component {}: {e}", file.display()));
        let digest = hex::encode(Sha256::digest(&bytes));
        writeln!(
            code,
            "    StdComponent {{ name: {name:?}, bytes: include_bytes!({:?}), sha256: {digest:?} }},",
            file.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    for program in test_program_names(&guest) {
        let file = wasm_dir.join(format!("{}.wasm", program.replace('-', "_")));
        writeln!(
            code,
            "/// Path of the `{program}` test program (not embedded).\n#[doc(hidden)]\npub const TEST_PROGRAM_{}: &str = {:?};",
            program.to_uppercase().replace('-', "_"),
            file.display().to_string()
        )
        .unwrap();
    }
    fs::write(out_dir.join("components.rs"), code).unwrap();
}

/// Every crate folder directly under `components/` is a standard step.
fn std_component_names(guest: &Path) -> Vec<String> {
    crate_dirs(guest)
        .into_iter()
        .filter(|n| n != "test-programs")
        .collect()
}

/// Every crate folder under `components/test-programs/` is a test program.
fn test_program_names(guest: &Path) -> Vec<String> {
    crate_dirs(&guest.join("test-programs"))
}

fn crate_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let p = e.path();
                    p.is_dir()
                        && (p.join("Cargo.toml").is_file()
                            || p.file_name().unwrap() == "test-programs")
                        && p.file_name().unwrap() != "target"
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Rebuild when guest sources, the SDK or the contract change — but not when
/// a `target/` folder inside them does.
fn watch(root: &Path, guest: &Path) {
    let mut paths = vec![
        root.join("wit"),
        root.join("sdk/rust/src"),
        root.join("sdk/rust/Cargo.toml"),
        guest.join("Cargo.toml"),
        guest.join("Cargo.lock"),
    ];
    let mut crates: Vec<PathBuf> = std_component_names(guest)
        .into_iter()
        .map(|n| guest.join(n))
        .collect();
    crates.extend(
        test_program_names(guest)
            .into_iter()
            .map(|n| guest.join("test-programs").join(n)),
    );
    for c in crates {
        paths.push(c.join("Cargo.toml"));
        paths.push(c.join("src"));
    }
    for p in paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
