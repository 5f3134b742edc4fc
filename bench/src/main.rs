//! `runtime-bench`: measures the sluice component runtime on this machine.
//!
//! Five groups of numbers, each for Rust step components:
//!
//! 1. **cold compile**: `Runtime::load` with a new runtime and an empty
//!    compiled cache, so cranelift compiles the component;
//! 2. **load from cache**: `Runtime::load` with a new runtime pointing at a
//!    warm compiled cache (the entry is read, checked and deserialised, and
//!    the component pre-linked);
//! 3. **instantiation**: `Component::instantiate_only` of a loaded component;
//! 4. **no-op step**: `Component::run` of the adversary test program with
//!    `behaviour = "noop"`, and `Component::describe`;
//! 5. **whole CLI**: `sluice run examples/quickstart/pipeline.toml` as a
//!    child process, on a warm compiled cache.
//!
//! Prints a table on stdout, or JSON with `--json`. Progress goes to stderr.
//! Run it in release mode: `cargo run --release -p sluice-bench --bin runtime-bench`.

use serde_json::{Value as Json, json};
use sluice_runtime::{
    CacheOutcome, Component, ComponentSource, Invocation, Manifest, Runtime, RuntimeConfig, Value,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Load from the compiled cache should take less than this (median).
const GOAL_LOAD: Duration = Duration::from_millis(1);
/// Instantiating a Rust step should take less than this (median).
const GOAL_INSTANTIATE: Duration = Duration::from_micros(50);

/// The standard step measured (a Rust component embedded in the build).
const STD_STEP: &str = "std:statistics";

const USAGE: &str = "\
usage: runtime-bench [--json] [--quick] [--sluice PATH]

  --json         print machine-readable results on stdout
  --quick        a tenth of the iterations (a smoke test, not for reporting)
  --sluice PATH  the sluice binary for the CLI benchmark
                 (default: target/release/sluice in the workspace)";

/// Command-line options.
struct Options {
    /// Print JSON instead of a table.
    json: bool,
    /// Divide iteration counts by ten.
    quick: bool,
    /// The `sluice` binary for the CLI benchmark.
    sluice: PathBuf,
}

impl Options {
    /// Parses `std::env::args`, or returns the message to print.
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            json: false,
            quick: false,
            sluice: workspace_root().join("target/release/sluice"),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--json" => options.json = true,
                "--quick" => options.quick = true,
                "--sluice" => {
                    options.sluice = args
                        .next()
                        .ok_or_else(|| format!("--sluice needs a path\n\n{USAGE}"))?
                        .into();
                }
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
            }
        }
        Ok(options)
    }

    /// `n` iterations, or a tenth of them (at least 3) with `--quick`.
    fn iters(&self, n: usize) -> usize {
        if self.quick { (n / 10).max(3) } else { n }
    }
}

/// The workspace root (the parent of this crate's folder).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate lives inside the workspace")
        .to_path_buf()
}

/// Summary statistics of a set of timings.
#[derive(Debug, Clone, Copy)]
struct Stats {
    /// Number of samples.
    n: usize,
    /// The fastest sample.
    min: Duration,
    /// The median (the mean of the middle two for an even count).
    median: Duration,
    /// The 90th percentile (nearest rank).
    p90: Duration,
    /// The slowest sample.
    max: Duration,
    /// The arithmetic mean.
    mean: Duration,
}

impl Stats {
    /// Summarises `samples`, which must not be empty.
    fn of(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2
        };
        let p90 = samples[(n * 9).div_ceil(10).clamp(1, n) - 1];
        let total: Duration = samples.iter().sum();
        Stats {
            n,
            min: samples[0],
            median,
            p90,
            max: samples[n - 1],
            mean: total / n as u32,
        }
    }
}

/// One row of the results.
struct Row {
    /// Which of the five groups it belongs to.
    group: &'static str,
    /// What was measured.
    name: String,
    /// The timings, or why there are none.
    stats: Result<Stats, String>,
    /// Extra facts (component size, cache outcome, ...).
    note: String,
}

/// The results collected so far, with progress on stderr.
#[derive(Default)]
struct Report {
    /// Rows in the order measured.
    rows: Vec<Row>,
    /// Goal checks: (goal, measured median, limit).
    goals: Vec<(String, Duration, Duration)>,
}

impl Report {
    /// Records a row and says so on stderr.
    fn add(&mut self, group: &'static str, name: impl Into<String>, stats: Stats, note: String) {
        let name = name.into();
        eprintln!(
            "  {name}: median {} (n={})",
            fmt_duration(stats.median),
            stats.n
        );
        self.rows.push(Row {
            group,
            name,
            stats: Ok(stats),
            note,
        });
    }

    /// Records a measurement that could not be taken.
    fn skip(&mut self, group: &'static str, name: impl Into<String>, why: String) {
        let name = name.into();
        eprintln!("  {name}: skipped: {why}");
        self.rows.push(Row {
            group,
            name,
            stats: Err(why),
            note: String::new(),
        });
    }
}

/// Facts about the machine and the build, printed at the top.
fn machine_facts() -> BTreeMap<&'static str, Json> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let available = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // Other work on the machine skews the numbers; say how busy it was.
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    BTreeMap::from([
        ("cpu", json!(cpu)),
        ("load_average_at_start", json!(loadavg)),
        ("cores_available", json!(available)),
        ("cores_in_cpuinfo", json!(logical)),
        ("os", json!(format!("{} {kernel}", std::env::consts::OS))),
        ("arch", json!(std::env::consts::ARCH)),
        ("profile", json!(profile)),
    ])
}

/// Formats a duration with three significant digits and a fitting unit.
fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {unit}")
}

/// Microseconds as a float, for JSON.
fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A new runtime whose compiled cache is `dir`.
fn runtime(dir: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        // Beside the cache, so that every runtime of the run shares it.
        cache_key_file: Some(dir.with_extension("key")),
    })
    .expect("starting a runtime")
}

/// A fresh temporary folder.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary folder")
}

/// Group 1: cranelift compilation with an empty cache, `n` times.
fn cold_compile(report: &mut Report, source: &ComponentSource, n: usize) {
    let mut samples = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n {
        let dir = tempdir();
        let rt = runtime(dir.path());
        let start = Instant::now();
        let component = rt.load(source).expect("loading the component");
        samples.push(start.elapsed());
        assert_eq!(
            component.cache_outcome(),
            &CacheOutcome::Compiled,
            "an empty cache must compile"
        );
        size = component.size();
        drop(rt);
    }
    let entry = cached_entry_size(source);
    report.add(
        "cold compile",
        format!("compile {}", short_name(source)),
        Stats::of(samples),
        format!(
            "component {}, cache entry {}",
            fmt_bytes(size as u64),
            fmt_bytes(entry)
        ),
    );
}

/// Size of the compiled-cache entry of `source`, compiling it once into a
/// scratch cache.
fn cached_entry_size(source: &ComponentSource) -> u64 {
    let dir = tempdir();
    let rt = runtime(dir.path());
    let component = rt.load(source).expect("loading the component");
    let path = rt
        .cache()
        .expect("a cache is configured")
        .entry_path(&component.digest());
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Group 2: loads from a warm compiled cache, each with a new runtime.
fn load_from_cache(report: &mut Report, source: &ComponentSource, n: usize) -> Stats {
    let dir = tempdir();
    // Warm the cache (this load compiles), then load a few times untimed so
    // the entry is in the page cache and the code paths are warm.
    runtime(dir.path())
        .load(source)
        .expect("loading the component");
    for _ in 0..3 {
        let c = runtime(dir.path()).load(source).expect("loading");
        assert_eq!(c.cache_outcome(), &CacheOutcome::Hit);
    }
    let mut samples = Vec::with_capacity(n);
    let mut reported = Vec::with_capacity(n);
    for _ in 0..n {
        let rt = runtime(dir.path());
        let start = Instant::now();
        let component = rt.load(source).expect("loading the component");
        samples.push(start.elapsed());
        assert_eq!(
            component.cache_outcome(),
            &CacheOutcome::Hit,
            "a warm cache must be hit"
        );
        reported.push(component.load_time());
        drop(component);
        drop(rt);
    }
    let stats = Stats::of(samples);
    let how = match source {
        ComponentSource::Std(_) => "digest precomputed",
        _ => "file read + SHA-256",
    };
    report.add(
        "load from cache",
        format!("load {} (new Runtime)", short_name(source)),
        stats,
        format!(
            "{how}; every load a Hit; load_time() median {}",
            fmt_duration(Stats::of(reported).median)
        ),
    );

    // For comparison: loading again in the same runtime (its in-memory map).
    let rt = runtime(dir.path());
    rt.load(source).expect("loading");
    let samples = (0..n)
        .map(|_| {
            let start = Instant::now();
            let c = rt.load(source).expect("loading");
            let t = start.elapsed();
            assert_eq!(c.cache_outcome(), &CacheOutcome::Memory);
            t
        })
        .collect();
    report.add(
        "load from cache",
        format!("load {} again (same Runtime)", short_name(source)),
        Stats::of(samples),
        format!("{how}; CacheOutcome::Memory"),
    );
    stats
}

/// Group 3: `instantiate_only`, `n` times after a warm-up.
fn instantiation(report: &mut Report, component: &Component, n: usize) -> Stats {
    for _ in 0..100 {
        component.instantiate_only().expect("instantiating");
    }
    let samples = (0..n)
        .map(|_| {
            let start = Instant::now();
            component.instantiate_only().expect("instantiating");
            start.elapsed()
        })
        .collect();
    let stats = Stats::of(samples);
    report.add(
        "instantiation",
        format!("instantiate {}", component_name(component)),
        stats,
        "new Store + WASI context + instantiate, dropped".into(),
    );
    stats
}

/// Group 4: `describe()` and a no-op `run()` of the adversary test program.
fn noop_step(report: &mut Report, component: &Component, n: usize) {
    let manifest: Manifest = component.describe().expect("describing");
    let samples = (0..n)
        .map(|_| {
            let start = Instant::now();
            let m = component.describe().expect("describing");
            let t = start.elapsed();
            assert_eq!(m.name, manifest.name);
            t
        })
        .collect();
    report.add(
        "no-op step",
        "describe() adversary",
        Stats::of(samples),
        "instantiate + call describe + convert and validate the manifest".into(),
    );

    let invocation = || Invocation {
        params: BTreeMap::from([("behaviour".to_string(), Value::Text("noop".into()))]),
        outputs: manifest.outputs.clone(),
        ..Default::default()
    };
    for _ in 0..20 {
        let outcome = component.run(invocation());
        assert!(outcome.result.is_ok(), "noop failed: {:?}", outcome.result);
    }
    let mut samples = Vec::with_capacity(n);
    let mut internal = Vec::with_capacity(n);
    for _ in 0..n {
        let inv = invocation();
        let start = Instant::now();
        let outcome = component.run(inv);
        let t = start.elapsed();
        assert!(outcome.result.is_ok(), "noop failed: {:?}", outcome.result);
        samples.push(t);
        internal.push(outcome.duration);
    }
    report.add(
        "no-op step",
        "run() adversary behaviour=noop",
        Stats::of(samples),
        format!(
            "result Ok; StepOutcome::duration median {}",
            fmt_duration(Stats::of(internal).median)
        ),
    );
}

/// Group 5: the `sluice` binary running the quickstart on a warm cache.
fn whole_cli(report: &mut Report, sluice: &Path, n: usize) {
    const GROUP: &str = "whole CLI";
    const NAME: &str = "sluice run quickstart --quiet";
    if !sluice.is_file() {
        report.skip(
            GROUP,
            NAME,
            format!(
                "{} is missing; build it with `cargo build --release -p sluice-cli`",
                sluice.display()
            ),
        );
        return;
    }
    let root = workspace_root();
    let store = tempdir();
    let cache = tempdir();
    let run = |args: &[&std::ffi::OsStr]| -> Result<Duration, String> {
        let start = Instant::now();
        let out = Command::new(sluice)
            .args(args)
            .current_dir(&root)
            .env_remove("SLUICE_STORE")
            .env_remove("SLUICE_CACHE_DIR")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", sluice.display()))?;
        let t = start.elapsed();
        if out.status.success() {
            Ok(t)
        } else {
            Err(format!(
                "{} exited with {}: {}",
                sluice.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let pipeline_args: Vec<&std::ffi::OsStr> = vec![
        "run".as_ref(),
        "examples/quickstart/pipeline.toml".as_ref(),
        "--quiet".as_ref(),
        "--store".as_ref(),
        store.path().as_os_str(),
        "--cache-dir".as_ref(),
        cache.path().as_os_str(),
    ];
    // The first run compiles both steps into the cache; the second warms the
    // page cache.
    let measured = run(&pipeline_args)
        .and_then(|_| run(&pipeline_args))
        .and_then(|_| (0..n).map(|_| run(&pipeline_args)).collect());
    match measured {
        Ok(samples) => report.add(
            GROUP,
            NAME,
            Stats::of(samples),
            "child process, 2 std steps, compiled cache warm (--cache-dir)".into(),
        ),
        Err(why) => report.skip(GROUP, NAME, why),
    }
    let version = (0..n)
        .map(|_| run(&["--version".as_ref()]))
        .collect::<Result<Vec<_>, _>>();
    match version {
        Ok(samples) => report.add(
            GROUP,
            "sluice --version (process baseline)",
            Stats::of(samples),
            "spawn + exec + exit, no runtime".into(),
        ),
        Err(why) => report.skip(GROUP, "sluice --version", why),
    }
}

/// A short name for a component source.
fn short_name(source: &ComponentSource) -> String {
    match source {
        ComponentSource::Path(p) => format!(
            "{} (path)",
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        ),
        other => other.display_name(),
    }
}

/// A short name for a loaded component: the file stem for a path.
fn component_name(component: &Component) -> String {
    short_name(&ComponentSource::parse(component.name()))
}

/// Formats a byte count: `1.5 MiB`.
fn fmt_bytes(n: u64) -> String {
    sluice_runtime::outcome::bytes(n)
}

/// Prints the table.
fn print_table(facts: &BTreeMap<&'static str, Json>, report: &Report) {
    println!("sluice runtime benchmark");
    for (k, v) in facts {
        let v = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        println!("  {k:<22} {v}");
    }
    println!();
    let width = report
        .rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(11);
    println!(
        "{:<width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  note",
        "measurement", "n", "median", "p90", "min", "max"
    );
    let mut group = "";
    for row in &report.rows {
        if row.group != group {
            group = row.group;
            println!("-- {group}");
        }
        match &row.stats {
            Ok(s) => println!(
                "{:<width$}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {}",
                row.name,
                s.n,
                fmt_duration(s.median),
                fmt_duration(s.p90),
                fmt_duration(s.min),
                fmt_duration(s.max),
                row.note
            ),
            Err(why) => println!("{:<width$}  skipped: {why}", row.name),
        }
    }
    if !report.goals.is_empty() {
        println!();
        println!("goals (median)");
        for (goal, measured, limit) in &report.goals {
            let verdict = if measured < limit { "met" } else { "MISSED" };
            println!(
                "  {goal:<42} {:>9} < {:<9} {verdict}",
                fmt_duration(*measured),
                fmt_duration(*limit)
            );
        }
    }
}

/// The results as JSON.
fn to_json(facts: &BTreeMap<&'static str, Json>, report: &Report) -> Json {
    let rows: Vec<Json> = report
        .rows
        .iter()
        .map(|r| match &r.stats {
            Ok(s) => json!({
                "group": r.group,
                "name": r.name,
                "n": s.n,
                "median_us": micros(s.median),
                "p90_us": micros(s.p90),
                "min_us": micros(s.min),
                "max_us": micros(s.max),
                "mean_us": micros(s.mean),
                "note": r.note,
            }),
            Err(why) => json!({ "group": r.group, "name": r.name, "skipped": why }),
        })
        .collect();
    let goals: Vec<Json> = report
        .goals
        .iter()
        .map(|(goal, measured, limit)| {
            json!({
                "goal": goal,
                "median_us": micros(*measured),
                "limit_us": micros(*limit),
                "met": measured < limit,
            })
        })
        .collect();
    json!({ "machine": facts, "results": rows, "goals": goals })
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let facts = machine_facts();
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; numbers are not representative \
             (use cargo run --release -p sluice-bench --bin runtime-bench)"
        );
    }
    let std_source = ComponentSource::parse(STD_STEP);
    let adversary_path = PathBuf::from(sluice_std_components::TEST_PROGRAM_ADVERSARY);
    if !adversary_path.is_file() {
        eprintln!(
            "the adversary test program is missing at {}; build the workspace first",
            adversary_path.display()
        );
        return ExitCode::FAILURE;
    }
    let adversary = ComponentSource::Path(adversary_path);
    let mut report = Report::default();

    eprintln!("1/5 cold compile");
    cold_compile(&mut report, &std_source, options.iters(5).min(5));
    cold_compile(&mut report, &adversary, options.iters(5).min(5));

    eprintln!("2/5 load from the compiled cache");
    let load_std = load_from_cache(&mut report, &std_source, options.iters(200));
    let load_path = load_from_cache(&mut report, &adversary, options.iters(200));
    report.goals.push((
        format!("load {STD_STEP} from cache < 1 ms"),
        load_std.median,
        GOAL_LOAD,
    ));
    report.goals.push((
        "load adversary (path) from cache < 1 ms".into(),
        load_path.median,
        GOAL_LOAD,
    ));

    // One runtime for groups 3 and 4, so its components stay loaded.
    let cache = tempdir();
    let rt = runtime(cache.path());
    let std_component = rt.load(&std_source).expect("loading");
    let adversary_component = rt.load(&adversary).expect("loading");

    eprintln!("3/5 instantiation");
    let inst_std = instantiation(&mut report, &std_component, options.iters(10_000));
    let inst_adv = instantiation(&mut report, &adversary_component, options.iters(10_000));
    report.goals.push((
        format!("instantiate {STD_STEP} < 50 µs"),
        inst_std.median,
        GOAL_INSTANTIATE,
    ));
    report.goals.push((
        "instantiate adversary < 50 µs".into(),
        inst_adv.median,
        GOAL_INSTANTIATE,
    ));

    eprintln!("4/5 no-op step");
    noop_step(&mut report, &adversary_component, options.iters(2_000));
    drop(rt);

    eprintln!("5/5 whole CLI");
    whole_cli(&mut report, &options.sluice, options.iters(20).max(5));

    if options.json {
        let out = to_json(&facts, &report);
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON of plain values")
        );
    } else {
        print_table(&facts, &report);
    }
    ExitCode::SUCCESS
}
