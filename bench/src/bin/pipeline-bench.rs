//! `pipeline-bench`: the executor and the store, measured through the
//! `sluice` binary as a user runs it.
//!
//! 1. **cached re-run**: an 8-step pipeline (ingest, statistics, and six
//!    chained Rust steps) run once to fill the cache, then re-run N times;
//!    reports the wall time of the whole `sluice run` process (goal: under
//!    100 ms).
//! 2. **per-step overhead**: a chain of 100 trivial Rust steps (each scales
//!    a column of a 3-row table by 1) run with `--no-cache`; reports the
//!    run's wall time divided by the number of steps (goal: under 2 ms per
//!    step, metadata writes included).
//!
//! Build the release binary first (`cargo build --release -p sluice-cli`),
//! then: `cargo run --release -p sluice-bench --bin pipeline-bench [-- --json]`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sluice = repo.join("target/release/sluice");
    if !sluice.is_file() {
        eprintln!(
            "{} is missing; build it with `cargo build --release -p sluice-cli`",
            sluice.display()
        );
        return ExitCode::from(2);
    }
    let scale = sluice_std_components::TEST_PROGRAM_SCALE;
    let cache = tempfile::tempdir().unwrap();

    // 1. Fully cached re-run of an 8-step pipeline.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo.join("examples/quickstart/data/iris.csv"),
        dir.path().join("iris.csv"),
    )
    .unwrap();
    let mut spec = String::from(
        "[pipeline]\nname = \"eight\"\n[data]\niris = \"iris.csv\"\n\
         [steps.ingest]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.iris\" }\n\
         [steps.stats]\ncomponent = \"std:statistics\"\ninputs = { data = \"ingest.data\" }\n",
    );
    let mut prev = "ingest.data".to_string();
    for i in 1..=6 {
        spec.push_str(&format!(
            "[steps.s{i}]\ncomponent = \"{scale}\"\ninputs = {{ data = \"{prev}\" }}\n\
             params = {{ column = \"sepal_length\", factor = 1.5 }}\n"
        ));
        prev = format!("s{i}.scaled");
    }
    let spec_path = dir.path().join("pipeline.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let run = |extra: &[&str]| -> Duration {
        let start = Instant::now();
        let status = Command::new(&sluice)
            .arg("run")
            .arg(&spec_path)
            .args(["--quiet"])
            .args(extra)
            .env("SLUICE_CACHE_DIR", cache.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "sluice run failed");
        start.elapsed()
    };
    run(&[]);
    let mut cached: Vec<Duration> = (0..20).map(|_| run(&[])).collect();
    cached.sort();

    // 2. 100-step chain, cache off.
    let chain = tempfile::tempdir().unwrap();
    std::fs::write(chain.path().join("d.csv"), "x,y\n1,a\n2,b\n3,c\n").unwrap();
    let mut spec = String::from(
        "[pipeline]\nname = \"chain\"\n[data]\nd = \"d.csv\"\n\
         [steps.s0]\ncomponent = \"std:ingest-csv\"\ninputs = { file = \"data.d\" }\n",
    );
    let mut prev = "s0.data".to_string();
    for i in 1..100 {
        spec.push_str(&format!(
            "[steps.s{i}]\ncomponent = \"{scale}\"\ninputs = {{ data = \"{prev}\" }}\n\
             params = {{ column = \"x\", factor = 1 }}\n"
        ));
        prev = format!("s{i}.scaled");
    }
    let chain_spec: PathBuf = chain.path().join("pipeline.toml");
    std::fs::write(&chain_spec, spec).unwrap();
    let run_chain = || -> Duration {
        let start = Instant::now();
        let status = Command::new(&sluice)
            .arg("run")
            .arg(&chain_spec)
            .args(["--quiet", "--no-cache"])
            .env("SLUICE_CACHE_DIR", cache.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "chain run failed");
        start.elapsed()
    };
    run_chain();
    let mut chains: Vec<Duration> = (0..5).map(|_| run_chain()).collect();
    chains.sort();
    let per_step = chains[chains.len() / 2] / 100;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "cached_rerun_8_steps_ms": { "median": ms(cached[cached.len() / 2]), "min": ms(cached[0]), "max": ms(cached[cached.len() - 1]) },
                "chain_100_steps_no_cache_ms": { "median": ms(chains[chains.len() / 2]), "min": ms(chains[0]) },
                "per_step_overhead_ms": ms(per_step),
            })
        );
    } else {
        println!("fully cached re-run, 8 steps, whole process (20 runs)");
        println!(
            "  median {:.1} ms   min {:.1} ms   max {:.1} ms   goal < 100 ms",
            ms(cached[cached.len() / 2]),
            ms(cached[0]),
            ms(cached[cached.len() - 1])
        );
        println!("100-step chain, --no-cache, whole process (5 runs)");
        println!(
            "  median {:.1} ms   min {:.1} ms   per step {:.2} ms   goal < 2 ms/step",
            ms(chains[chains.len() / 2]),
            ms(chains[0]),
            ms(per_step)
        );
    }
    ExitCode::SUCCESS
}
