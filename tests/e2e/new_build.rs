//! `sluice component new` → `component build` → `component check`, in each
//! language; the four languages' template steps built by a copy of `sluice`
//! outside the checkout, from an empty HOME, run in one pipeline with
//! byte-identical outputs and rebuilt to the same bytes; and the message
//! `build` gives when a toolchain is missing.
//!
//! The Python, JavaScript and C toolchains (componentize-py; node and npm;
//! clang for wasm32-wasi with wasi-libc) are optional on a developer's
//! machine: without them these tests print a notice and pass. CI sets
//! `SLUICE_REQUIRE_POLYGLOT=1`, and there a missing toolchain fails the test
//! instead.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `name` is an executable on PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Whether the toolchain for `lang` ("python" or "js") is installed. If it
/// is not: with `SLUICE_REQUIRE_POLYGLOT=1` (CI) the calling test fails;
/// otherwise it prints a notice and the caller skips.
pub fn toolchain(lang: &str) -> bool {
    let (present, install) = match lang {
        "python" => (
            on_path("componentize-py"),
            "pip install componentize-py==0.25.1",
        ),
        "js" => (on_path("node") && on_path("npm"), "Node.js >= 20 with npm"),
        "c" => (
            on_path("clang-19") || on_path("clang") || on_path("zig"),
            "apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32",
        ),
        other => panic!("no toolchain check for {other}"),
    };
    if present {
        return true;
    }
    if std::env::var("SLUICE_REQUIRE_POLYGLOT").is_ok_and(|v| v == "1") {
        panic!(
            "SLUICE_REQUIRE_POLYGLOT=1 but the {lang} step toolchain is missing (install: {install})"
        );
    }
    // Straight to the process's stderr, past the test harness's capture, so
    // the notice shows even though the test passes.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "NOTICE: skipping a {lang} component test: its toolchain is missing (install: {install}; \
         set SLUICE_REQUIRE_POLYGLOT=1 to make this an error)"
    );
    false
}

/// `sluice component build DIR --json`, checked to succeed; the component's path.
pub fn build(dir: &Path, extra: &[&str]) -> PathBuf {
    let mut cmd = sluice();
    cmd.args(["component", "build"]).arg(dir).arg("--json");
    cmd.args(extra);
    // Rust steps share one target folder across test runs.
    cmd.env(
        "CARGO_TARGET_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-rust-steps"),
    );
    let r: Run = cmd.output().unwrap().into();
    assert_eq!(r.code, 0, "building {}: {}", dir.display(), r.stderr);
    let v = r.json();
    let path = PathBuf::from(v["path"].as_str().unwrap());
    assert!(path.is_file(), "{v:#}");
    assert_eq!(
        v["size"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    path
}

/// `sluice component new --lang LANG NAME --dir DIR`, checked to succeed;
/// what it printed.
pub fn new_project(lang: &str, name: &str, dir: &Path) -> String {
    let r = run(&[
        "component",
        "new",
        "--lang",
        lang,
        name,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

/// `component check --json` of a new project's component passed all six
/// checks, naming the project's manifest and its sample data.
fn assert_passed_every_check(r: &Run, name: &str) {
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["passed"], true, "{v:#}");
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 6, "{v:#}");
    assert!(checks.iter().all(|c| c["status"] == "passed"), "{v:#}");
    let manifest = &checks.iter().find(|c| c["name"] == "manifest").unwrap()["detail"];
    assert!(
        manifest
            .as_str()
            .unwrap()
            .starts_with(&format!("{name} 0.1.0")),
        "{manifest}"
    );
    let runs = &checks.iter().find(|c| c["name"] == "runs").unwrap()["detail"];
    assert!(runs.as_str().unwrap().contains("data.parquet"), "{runs}");
}

/// new → build → check, for one language.
fn new_build_check(lang: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("my-{lang}-step");
    let dir = tmp.path().join(&name);
    let stdout = new_project(lang, &name, &dir);
    assert!(stdout.contains("sluice component build"), "{stdout}");
    let dir = if lang == "rust" {
        moved_rust_project(&dir, &tmp.path().join("elsewhere").join(&name))
    } else {
        dir
    };
    let toml = std::fs::read_to_string(dir.join("step.toml")).unwrap();
    assert!(toml.contains(&format!("lang = \"{lang}\"")), "{toml}");
    assert!(dir.join("samples/data.parquet").is_file());

    let wasm = build(&dir, &[]);
    assert_eq!(wasm, dir.join("build").join(format!("{name}.wasm")));

    let samples = dir.join("samples");
    let r = run(&[
        "component",
        "check",
        wasm.to_str().unwrap(),
        "--inputs",
        samples.to_str().unwrap(),
        "--json",
    ]);
    assert_passed_every_check(&r, &name);

    // Text mode from inside the project: the path alone on stdout. (Rust
    // only: its rebuild is incremental, the others' take seconds.)
    if lang != "rust" {
        return;
    }
    let r: Run = sluice()
        .args(["component", "build"])
        .current_dir(&dir)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-rust-steps"),
        )
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), format!("./build/{name}.wasm"));
    assert!(
        r.stderr.contains(&format!("built `{name}` ({lang})")),
        "{}",
        r.stderr
    );
}

/// A new Rust project names no path of the checkout `sluice` was built
/// from: it carries its copy of the SDK, by a relative path. Moves it from
/// `dir` to `to` (the original is deleted) and returns `to`, so the test
/// builds it where `component new` did not create it.
fn moved_rust_project(dir: &Path, to: &Path) -> PathBuf {
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("sluice-sdk = { path = \"vendor/sluice/sdk/rust\" }"),
        "{cargo}"
    );
    let checkout = repo().canonicalize().unwrap();
    let checkout = checkout.to_str().unwrap();
    copy_tree(dir, to, &mut |path, bytes| {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(checkout),
            "{} names the checkout {checkout}",
            path.display()
        );
        if path.file_name().is_some_and(|n| n == "Cargo.toml") {
            for line in text.lines().filter(|l| l.contains("path")) {
                assert!(
                    !line.contains("\"/"),
                    "absolute path in {}: {line}",
                    path.display()
                );
            }
        }
    });
    assert!(to.join("vendor/sluice/sdk/rust/src/lib.rs").is_file());
    assert!(to.join("vendor/sluice/wit/pipeline.wit").is_file());
    std::fs::remove_dir_all(dir).unwrap();
    to.to_path_buf()
}

/// Copies the folder `from` to `to`, showing each file to `inspect`.
fn copy_tree(from: &Path, to: &Path, inspect: &mut dyn FnMut(&Path, &[u8])) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst, inspect);
        } else {
            let bytes = std::fs::read(&src).unwrap();
            inspect(&src, &bytes);
            std::fs::write(&dst, bytes).unwrap();
        }
    }
}

#[test]
fn a_new_rust_step_builds_and_passes_check() {
    new_build_check("rust");
}

/// The environment of a user who installed `sluice` and the languages'
/// public toolchains, and nothing else: HOME is `home` (empty), and only
/// the variables that say where the toolchains are installed are kept.
fn as_a_new_user(cmd: &mut Command, home: &Path) {
    let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        // Where rustup, cargo and pyenv keep the toolchains (which default
        // to the HOME this test replaces).
        .env(
            "RUSTUP_HOME",
            std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| real_home.join(".rustup").into()),
        )
        .env(
            "CARGO_HOME",
            std::env::var_os("CARGO_HOME").unwrap_or_else(|| real_home.join(".cargo").into()),
        )
        .env(
            "PYENV_ROOT",
            std::env::var_os("PYENV_ROOT").unwrap_or_else(|| real_home.join(".pyenv").into()),
        )
        // Rust steps share one target folder across test runs.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-rust-steps"),
        );
}

#[test]
fn steps_in_four_languages_build_outside_the_checkout_reproducibly_and_scale_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, work, bin) = (
        tmp.path().join("home"),
        tmp.path().join("work"),
        tmp.path().join("bin"),
    );
    for d in [&home, &work, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The installed binary: a copy, away from the checkout it was built in.
    let installed = bin.join("sluice");
    std::fs::copy(env!("CARGO_BIN_EXE_sluice"), &installed).unwrap();
    let sluice = |args: &[&str]| -> Run {
        let mut cmd = Command::new(&installed);
        as_a_new_user(&mut cmd, &home);
        cmd.args(args).current_dir(&work).output().unwrap().into()
    };
    let langs: Vec<&str> = ["rust", "python", "js", "c"]
        .into_iter()
        .filter(|l| *l == "rust" || toolchain(l))
        .collect();
    let checkout = repo().canonicalize().unwrap();
    let mut spec = String::from(
        "[pipeline]\nname = \"four-languages\"\n[data]\niris = \"iris.csv\"\n\
         [steps.ingest]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.iris\" }\n",
    );
    std::fs::copy(
        repo().join("examples/quickstart/data/iris.csv"),
        work.join("iris.csv"),
    )
    .unwrap();
    for lang in &langs {
        let name = format!("scale-{lang}");
        let r = sluice(&["component", "new", "--lang", lang, &name]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("sluice component build"), "{}", r.stdout);
        let project = work.join(&name);
        let toml = std::fs::read_to_string(project.join("step.toml")).unwrap();
        assert!(toml.contains(&format!("lang = \"{lang}\"")), "{toml}");
        assert!(project.join("samples/data.parquet").is_file());
        // Nothing in the project points into the checkout.
        copy_tree(
            &project,
            &tmp.path().join("inspected").join(&name),
            &mut |path, bytes| {
                let text = String::from_utf8_lossy(bytes);
                assert!(
                    !text.contains(checkout.to_str().unwrap()),
                    "{} names the checkout",
                    path.display()
                );
            },
        );
        let build = |dir: &str| {
            let r = sluice(&["component", "build", dir, "--json"]);
            assert_eq!(r.code, 0, "building {dir}: {}", r.stderr);
            let v = r.json();
            assert_eq!(
                work.join(v["path"].as_str().unwrap())
                    .canonicalize()
                    .unwrap(),
                work.join(dir)
                    .join("build")
                    .join(format!("{name}.wasm"))
                    .canonicalize()
                    .unwrap(),
                "{v:#}"
            );
            (
                v["digest"].as_str().unwrap().to_string(),
                v["reused"].as_bool().unwrap(),
            )
        };
        let (first, reused) = build(&name);
        assert!(!reused, "{lang}");
        let r = sluice(&[
            "component",
            "check",
            &format!("{name}/build/{name}.wasm"),
            "--inputs",
            &format!("{name}/samples"),
            "--json",
        ]);
        assert_passed_every_check(&r, &name);
        // The same sources, the same bytes: Rust and C rebuild to them;
        // Python and JavaScript keep the component (componentize-py and
        // componentize-js snapshot an interpreter initialised with the
        // machine's randomness and clocks, so they never give the same
        // bytes twice).
        let (again, reused) = build(&name);
        assert_eq!(again, first, "{lang}: a rebuild changed the component");
        assert_eq!(reused, matches!(*lang, "python" | "js"), "{lang}");
        if matches!(*lang, "c" | "rust") {
            // Wherever the project is.
            let moved = format!("moved/{name}");
            copy_tree(&project, &work.join(&moved), &mut |_, _| {});
            std::fs::remove_dir_all(work.join(&moved).join("build")).unwrap();
            assert_eq!(build(&moved).0, first, "a moved {lang} project");
        }
        spec.push_str(&format!(
            "[steps.{step}]\ncomponent = \"{name}/build/{name}.wasm\"\n\
             inputs = {{ data = \"ingest.data\" }}\n\
             params = {{ column = \"sepal_length\", factor = 10 }}\n",
            step = name.replace('-', "_")
        ));
    }
    std::fs::write(work.join("pipeline.toml"), &spec).unwrap();
    let r = sluice(&["run", "pipeline.toml", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.json();
    let outputs: Vec<(String, Vec<u8>)> = langs
        .iter()
        .map(|lang| {
            let s = step(&report, &format!("scale_{lang}"));
            assert_eq!(s["metrics"]["rows"], 150.0, "{lang}");
            // "10" (Python writes the float as "10.0").
            let log = s["logs"][0]["message"].as_str().unwrap();
            assert!(
                log.starts_with("scaled `sepal_length` by 10"),
                "{lang}: {log}"
            );
            let out = s["outputs"].as_array().unwrap();
            let path = out.iter().find(|o| o["port"] == "scaled").unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string();
            (lang.to_string(), std::fs::read(work.join(path)).unwrap())
        })
        .collect();
    for (lang, bytes) in &outputs[1..] {
        assert!(
            *bytes == outputs[0].1,
            "{lang}'s output differs from {}'s",
            outputs[0].0
        );
    }
}

#[test]
fn new_refuses_bad_names_and_folders_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(&[
        "component",
        "new",
        "--lang",
        "python",
        "Bad Name",
        "--dir",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("invalid step name `Bad Name`"),
        "{}",
        r.stderr
    );

    std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let r = run(&[
        "component",
        "new",
        "--lang",
        "js",
        "ok",
        "--dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    let r = run(&["component", "build", tmp.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no step.toml, Cargo.toml, app.py, app.js or step.c"),
        "{}",
        r.stderr
    );
}

/// `sluice component build` with PATH set to `path`.
fn build_with_path(dir: &Path, path: &Path) -> Run {
    sluice()
        .args(["component", "build"])
        .arg(dir)
        .env("PATH", path)
        .env_remove("CC")
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_missing_toolchain_is_named_with_the_command_that_installs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    for lang in ["rust", "python", "js", "c"] {
        let r = run(&[
            "component",
            "new",
            "--lang",
            lang,
            lang,
            "--dir",
            tmp.path().join(lang).to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }

    // Nothing on PATH.
    let r = build_with_path(&tmp.path().join("python"), &empty);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "componentize-py not found on PATH; install it: pip install componentize-py==0.25.1"
        ),
        "{}",
        r.stderr
    );
    let r = build_with_path(&tmp.path().join("rust"), &empty);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cargo not found on PATH; install Rust from https://rustup.rs"),
        "{}",
        r.stderr
    );

    // No node and no npm (the project's pinned packages are not installed
    // yet): both named.
    let r = build_with_path(&tmp.path().join("js"), &empty);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("node not found on PATH; install Node.js >= 20"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("npm not found on PATH"), "{}", r.stderr);
    // No C compiler; then a clang without wasi-libc (a stand-in that fails
    // as clang does).
    let r = build_with_path(&tmp.path().join("c"), &empty);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "no C compiler for wasm32-wasi on PATH (clang-19, clang or zig); install one: apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32"
        ),
        "{}",
        r.stderr
    );
    let no_libc = tmp.path().join("no-libc-bin");
    std::fs::create_dir(&no_libc).unwrap();
    let clang = no_libc.join("clang");
    std::fs::write(
        &clang,
        "#!/bin/sh\necho \"probe.c:1:10: fatal error: 'stdlib.h' file not found\" >&2\nexit 1\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&clang, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let r = build_with_path(&tmp.path().join("c"), &no_libc);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "has no C library for wasm32-wasi (wasi-libc); install it: apt-get install wasi-libc"
        ),
        "{}",
        r.stderr
    );

    // A Rust toolchain without the wasm32-wasip2 target (stand-in programs).
    let fake = tmp.path().join("fake-bin");
    let sysroot = tmp.path().join("toolchains/1.95.0-test");
    std::fs::create_dir_all(sysroot.join("lib/rustlib")).unwrap();
    std::fs::create_dir(&fake).unwrap();
    for (name, script) in [
        ("cargo", "#!/bin/sh\nexit 0\n".to_string()),
        ("rustup", "#!/bin/sh\nexit 0\n".to_string()),
        (
            "rustc",
            format!("#!/bin/sh\necho '{}'\n", sysroot.display()),
        ),
    ] {
        let p = fake.join(name);
        std::fs::write(&p, script).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let r = build_with_path(&tmp.path().join("rust"), &fake);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("install it: rustup target add wasm32-wasip2 --toolchain 1.95.0-test"),
        "{}",
        r.stderr
    );
    // Nothing was built.
    for lang in ["rust", "python", "js", "c"] {
        assert!(!tmp.path().join(lang).join("build").exists(), "{lang}");
    }
}
