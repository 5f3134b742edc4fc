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

    // Before anything slow: the guest build needs the target's standard
    // library, which a toolchain installed without it lacks.
    ensure_target();

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
        panic!("building the standard components for {TARGET} failed (see the errors above)");
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

/// Makes sure the standard library for [`TARGET`] is in the sysroot of the
/// `rustc` this build uses. When it is not, installs it with rustup (and says
/// so); when that is impossible, stops the build at once with the command
/// that installs it, rather than minutes later with "can't find crate for
/// `std`" from the guest build.
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Some(libdir) = target_libdir(&rustc) else {
        // rustc did not say where the target's libraries go (an unusual
        // toolchain); let the guest build report what is wrong.
        return;
    };
    if has_std(&libdir) {
        return;
    }
    let toolchain = active_toolchain();
    let command = match &toolchain {
        Some(t) => format!("rustup target add {TARGET} --toolchain {t}"),
        None => format!("rustup target add {TARGET}"),
    };
    let which = toolchain
        .as_deref()
        .map(|t| format!("toolchain {t}"))
        .unwrap_or_else(|| "the active toolchain".into());
    println!(
        "cargo:warning=the {TARGET} target (the standard steps are built for it) is not installed for {which}; installing it: {command}"
    );
    eprintln!("installing the {TARGET} target: {command}");
    let mut args = vec!["target", "add", TARGET];
    if let Some(t) = &toolchain {
        args.extend(["--toolchain", t.as_str()]);
    }
    let failure = match Command::new("rustup").args(&args).status() {
        Ok(status) if status.success() => {
            if has_std(&libdir) {
                return;
            }
            format!(
                "`{command}` succeeded, but {} still has no standard library for {TARGET} \
                 (is {} a rustup toolchain?)",
                libdir.display(),
                Path::new(&rustc).display()
            )
        }
        Ok(status) => format!("`{command}` failed ({status}; see its output above)"),
        Err(e) => format!("rustup could not be run ({e})"),
    };
    eprintln!(
        "\nerror: the {TARGET} target is not installed for {which}, and installing it failed: {failure}.\n\
         The standard steps are WebAssembly components built for {TARGET}. Install the target, then build again:\n\
         \n    {command}\n"
    );
    println!("cargo:warning=the {TARGET} target is missing; install it with: {command}");
    std::process::exit(1);
}

/// Where `rustc` keeps the libraries of [`TARGET`], installed or not.
fn target_libdir(rustc: &std::ffi::OsStr) -> Option<PathBuf> {
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Whether `libdir` holds a compiled `std` (`libstd-HASH.rlib`).
fn has_std(libdir: &Path) -> bool {
    fs::read_dir(libdir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok()).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

/// The rustup toolchain this build runs on: `RUSTUP_TOOLCHAIN`, which the
/// rustup proxies set, else what `rustup show active-toolchain` says.
fn active_toolchain() -> Option<String> {
    if let Some(t) = env::var("RUSTUP_TOOLCHAIN").ok().filter(|t| !t.is_empty()) {
        return Some(t);
    }
    let out = Command::new("rustup")
        .args(["show", "active-toolchain"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .split_whitespace()
        .next()
        .map(str::to_string)
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

/// Rebuild when guest sources, the SDK, the shared crates or the contract change — but not when
/// a `target/` folder inside them does.
fn watch(root: &Path, guest: &Path) {
    let mut paths = vec![
        root.join("wit"),
        root.join("sdk/rust/src"),
        root.join("sdk/rust/Cargo.toml"),
        guest.join("Cargo.toml"),
        guest.join("Cargo.lock"),
    ];
    // Host-side crates the guests share (the contract types, the drift
    // statistics) and the guest library crates under components/lib.
    for shared in ["host/contract", "host/drift"] {
        let dir = root.join(shared);
        paths.extend([dir.join("src"), dir.join("Cargo.toml")]);
    }
    if let Ok(libs) = std::fs::read_dir(guest.join("lib")) {
        for lib in libs.flatten() {
            paths.extend([lib.path().join("src"), lib.path().join("Cargo.toml")]);
        }
    }
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
