//! Helpers shared by the end-to-end tests.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The compiled-component cache shared by all tests (safe: entries are
/// written atomically), so each component is compiled once per test run.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-cache")
}

/// The adversarial test program (a step that misbehaves on request).
pub fn adversary() -> &'static str {
    sluice_std_components::TEST_PROGRAM_ADVERSARY
}

/// A one-step pipeline whose step `evil` runs the adversary with
/// `behaviour` and `size`, plus `extra` keys of the step's table.
pub fn adversary_project(behaviour: &str, size: u64, extra: &str) -> Project {
    Project::new(&format!(
        r#"
[pipeline]
name = "adversary"

[steps.evil]
component = "{}"
params = {{ behaviour = "{behaviour}", size = {size} }}
{extra}
"#,
        adversary()
    ))
}

/// `sluice` with the shared compiled cache and no colours.
pub fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env("SLUICE_CACHE_DIR", shared_cache())
        .env_remove("SLUICE_STORE")
        .env("NO_COLOR", "1");
    cmd
}

/// What a finished command left behind.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `sluice ARGS…` to completion.
pub fn run(args: &[&str]) -> Run {
    sluice().args(args).output().expect("sluice runs").into()
}

/// A pipeline spec written into a fresh temporary folder.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(spec: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pipeline.toml"), spec).unwrap();
        Project { dir }
    }

    pub fn spec(&self) -> PathBuf {
        self.dir.path().join("pipeline.toml")
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// `sluice run pipeline.toml --json` with the store in this folder.
    pub fn run_json(&self) -> Run {
        let spec = self.spec();
        run(&["run", spec.to_str().unwrap(), "--json"])
    }
}

/// The report of step `name` in a run report.
pub fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

/// The bytes of output `port` of step `name`, read from the store.
pub fn output_bytes(report: &Value, name: &str, port: &str) -> Vec<u8> {
    let out = step(report, name)["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["port"] == port)
        .unwrap_or_else(|| panic!("no output {port} of {name}"))
        .clone();
    std::fs::read(out["path"].as_str().unwrap()).unwrap()
}

/// A step component written as a core Wasm module in text form: its
/// `describe` runs `describe_body` then returns an empty manifest named
/// `raw`, its `run` runs `run_body` then succeeds; `declarations` go at
/// module level (tables, globals). For behaviours no source language
/// expresses directly, such as growing a hundred funcref tables. The module
/// imports nothing, so the component imports nothing. Written to `dir`;
/// returns the component's path.
pub fn raw_step(dir: &Path, declarations: &str, describe_body: &str, run_body: &str) -> PathBuf {
    // The manifest at 64: name (16, 3), version (32, 5), then an empty doc
    // and three empty lists; `run`'s `ok` result at 128 (all zero).
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (data (i32.const 16) "raw")
  (data (i32.const 32) "0.1.0")
  (data (i32.const 64) "\10\00\00\00\03\00\00\00\20\00\00\00\05\00\00\00")
  {declarations}
  (func (export "describe") (result i32) {describe_body} (i32.const 64))
  (func (export "run") (result i32) {run_body} (i32.const 128))
)"#
    );
    let mut module = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{e}\n{wat}"));
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_path(repo().join("wit")).unwrap();
    let world = resolve.select_world(&[package], Some("step")).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let path = dir.join("raw.wasm");
    std::fs::write(&path, component).unwrap();
    path
}

/// Spawns `cmd` (a `sluice run`), waits until it says step `step` is
/// running, and kills it with SIGKILL — no chance to say anything.
pub fn kill_once_running(cmd: &mut Command, step: &str) {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let wanted = format!("running   {step}");
    for line in stderr.lines() {
        if line.unwrap().starts_with(&wanted) {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
}
