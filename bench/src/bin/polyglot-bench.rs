//! `polyglot-bench`: the same step (the SDKs' template: scale one numeric
//! column) as a Rust, a Python and a JavaScript component, through the
//! sluice runtime. Python and JavaScript components carry an interpreter
//! (CPython, SpiderMonkey), so they are 100 times larger than the Rust one;
//! this measures what that costs and what the compiled cache saves.
//!
//! For each language:
//!
//! - **cold compile**: `Runtime::load` with a new runtime and an empty
//!   compiled cache (validation, cranelift, writing the cache entry);
//! - **load from cache**: `Runtime::load` with a new runtime on a warm cache
//!   (read + SHA-256 of the `.wasm`, map and check the entry, deserialise,
//!   pre-link); every load asserted to be a `Hit`;
//! - **ratio**: median cold compile / median load from cache;
//! - **instantiation**: `Component::instantiate_only` (a new store and
//!   instance of the pre-linked component, dropped);
//! - **describe()** and **run()**: a new instance and a call; `run` scales
//!   column `x` of the 4-row synthetic table.
//!
//! The Rust component is the SDK example `components/test-programs/scale`
//! (built with the workspace). The Python and JavaScript ones are built from
//! `sdk/python/template` and `sdk/js/template` with `sluice component build`
//! (needs a `sluice` binary, componentize-py and node; see bench/README.md),
//! or given with `--python FILE` / `--js FILE`.
//!
//! `cargo run --release -p sluice-bench --bin polyglot-bench [-- --json] [-- --quick]`

use serde_json::{Value as Json, json};
use sluice_runtime::{
    CacheOutcome, Component, ComponentSource, InputArtifact, Invocation, Runtime, RuntimeConfig,
    Value,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: polyglot-bench [--json] [--quick] [--sluice PATH] [--python FILE] [--js FILE]

  --json          print machine-readable results on stdout
  --quick         fewer iterations (a smoke test, not for reporting)
  --sluice PATH   the sluice binary that builds the Python and JS templates
                  (default: target/release/sluice in the workspace)
  --python FILE   use this Python component instead of building the template
  --js FILE       use this JavaScript component instead of building the template";

/// A load from the compiled cache of an interpreter-carrying component should
/// take tens of milliseconds: less than this (median).
const GOAL_LOAD: Duration = Duration::from_millis(100);

struct Options {
    json: bool,
    quick: bool,
    sluice: PathBuf,
    python: Option<PathBuf>,
    js: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut o = Options {
            json: false,
            quick: false,
            sluice: workspace_root().join("target/release/sluice"),
            python: None,
            js: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .map(PathBuf::from)
                    .ok_or_else(|| format!("{name} needs a path\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--json" => o.json = true,
                "--quick" => o.quick = true,
                "--sluice" => o.sluice = value("--sluice")?,
                "--python" => o.python = Some(value("--python")?),
                "--js" => o.js = Some(value("--js")?),
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
            }
        }
        Ok(o)
    }

    /// `n`, or a fifth of it (at least 2) with `--quick`.
    fn iters(&self, n: usize) -> usize {
        if self.quick { (n / 5).max(2) } else { n }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the bench crate lives inside the workspace")
        .to_path_buf()
}

/// Median, minimum and maximum of a set of timings.
#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2
        };
        Stats {
            n,
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }

    fn json(&self) -> Json {
        json!({
            "n": self.n,
            "median_ms": ms(self.median),
            "min_ms": ms(self.min),
            "max_ms": ms(self.max),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Three significant digits and a fitting unit.
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

fn runtime(dir: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        // Beside the cache, so that every runtime of the run shares it.
        cache_key_file: Some(dir.with_extension("key")),
    })
    .expect("starting a runtime")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temporary folder")
}

/// One language's results.
struct Measured {
    lang: &'static str,
    component: PathBuf,
    size: u64,
    entry_size: u64,
    compile: Stats,
    load: Stats,
    instantiate: Stats,
    describe: Stats,
    run: Stats,
}

impl Measured {
    fn ratio(&self) -> f64 {
        self.compile.median.as_secs_f64() / self.load.median.as_secs_f64()
    }
}

/// Builds `sdk/LANG/template` with `sluice component build` into `out_dir`.
fn build_template(sluice: &Path, lang: &str, out_dir: &Path) -> Result<PathBuf, String> {
    if !sluice.is_file() {
        return Err(format!(
            "{} is missing; build it with `cargo build --release -p sluice-cli`",
            sluice.display()
        ));
    }
    let out = out_dir.join(format!("scale-{lang}.wasm"));
    let template = workspace_root().join("sdk").join(lang).join("template");
    eprintln!("  building {} ...", template.display());
    let result = Command::new(sluice)
        .args(["component", "build"])
        .arg(&template)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", sluice.display()))?;
    if !result.status.success() {
        return Err(format!(
            "`sluice component build {}` failed: {}",
            template.display(),
            String::from_utf8_lossy(&result.stderr).trim()
        ));
    }
    Ok(out)
}

fn measure(lang: &'static str, path: &Path, o: &Options) -> Measured {
    let source = ComponentSource::Path(path.to_path_buf());
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);

    // Cold compile: a new runtime and an empty cache each time.
    let n = o.iters(if lang == "rust" { 10 } else { 5 });
    let mut samples = Vec::with_capacity(n);
    let mut entry_size = 0;
    for _ in 0..n {
        let dir = tempdir();
        let rt = runtime(dir.path());
        let start = Instant::now();
        let component = rt.load(&source).expect("loading the component");
        samples.push(start.elapsed());
        assert_eq!(component.cache_outcome(), &CacheOutcome::Compiled);
        let entry = rt
            .cache()
            .expect("a cache is configured")
            .entry_path(&component.digest());
        entry_size = std::fs::metadata(entry).map(|m| m.len()).unwrap_or(0);
    }
    let compile = Stats::of(samples);
    eprintln!("  {lang}: cold compile {}", fmt_duration(compile.median));

    // Load from a warm cache, a new runtime each time.
    let cache = tempdir();
    runtime(cache.path()).load(&source).expect("loading");
    for _ in 0..3 {
        let c = runtime(cache.path()).load(&source).expect("loading");
        assert_eq!(c.cache_outcome(), &CacheOutcome::Hit);
    }
    let samples = (0..o.iters(50))
        .map(|_| {
            let rt = runtime(cache.path());
            let start = Instant::now();
            let c = rt.load(&source).expect("loading");
            let t = start.elapsed();
            assert_eq!(
                c.cache_outcome(),
                &CacheOutcome::Hit,
                "a warm cache must hit"
            );
            t
        })
        .collect();
    let load = Stats::of(samples);
    eprintln!("  {lang}: load from cache {}", fmt_duration(load.median));

    let rt = runtime(cache.path());
    let component = rt.load(&source).expect("loading");
    let instantiate = timed(o.iters(500), 20, || {
        component.instantiate_only().expect("instantiating")
    });
    eprintln!("  {lang}: instantiate {}", fmt_duration(instantiate.median));
    let describe = timed(o.iters(200), 5, || {
        component.describe().expect("describing");
    });
    let run = run_stats(&component, o.iters(200));
    eprintln!(
        "  {lang}: describe {}, run {}",
        fmt_duration(describe.median),
        fmt_duration(run.median)
    );
    Measured {
        lang,
        component: path.to_path_buf(),
        size,
        entry_size,
        compile,
        load,
        instantiate,
        describe,
        run,
    }
}

/// `n` timed calls of `f` after `warm` untimed ones.
fn timed(n: usize, warm: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..warm {
        f();
    }
    Stats::of(
        (0..n)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

/// `run()` of the scale step on the synthetic table, column `x` times 2.
fn run_stats(component: &Component, n: usize) -> Stats {
    let manifest = component.describe().expect("describing");
    let table = sluice_runtime::table::synthetic();
    let invocation = || Invocation {
        params: BTreeMap::from([
            ("column".to_string(), Value::Text("x".into())),
            ("factor".to_string(), Value::Float(2.0)),
        ]),
        inputs: BTreeMap::from([(
            "data".to_string(),
            InputArtifact::Table(sluice_tables::Table::from_batch(table.clone())),
        )]),
        outputs: manifest.outputs.clone(),
        ..Default::default()
    };
    timed(n, 5, || {
        let outcome = component.run(invocation());
        assert!(outcome.result.is_ok(), "run failed: {:?}", outcome.result);
    })
}

fn machine() -> Json {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    json!({
        "cpu": cpu,
        "cores_available": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_at_start": load,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

fn main() -> ExitCode {
    let o = match Options::parse() {
        Ok(o) => o,
        Err(m) => {
            eprintln!("{m}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; numbers are not representative (use --release)");
    }
    let facts = machine();
    let built = tempdir();
    let mut components: Vec<(&'static str, Result<PathBuf, String>)> = vec![(
        "rust",
        Ok(PathBuf::from(sluice_std_components::TEST_PROGRAM_SCALE)),
    )];
    eprintln!("components");
    for (lang, given) in [("python", &o.python), ("js", &o.js)] {
        let path = match given {
            Some(p) => Ok(p.clone()),
            None => build_template(&o.sluice, lang, built.path()),
        };
        components.push((lang, path));
    }

    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for (lang, path) in components {
        match path {
            Ok(p) if p.is_file() => {
                eprintln!("{lang}: {}", p.display());
                results.push(measure(lang, &p, &o));
            }
            Ok(p) => skipped.push((lang, format!("{} does not exist", p.display()))),
            Err(why) => skipped.push((lang, why)),
        }
    }
    for (lang, why) in &skipped {
        eprintln!("{lang}: skipped: {why}");
    }

    if o.json {
        let rows: Vec<Json> = results
            .iter()
            .map(|m| {
                json!({
                    "lang": m.lang,
                    "component": m.component,
                    "size": m.size,
                    "cache_entry_size": m.entry_size,
                    "cold_compile": m.compile.json(),
                    "load_from_cache": m.load.json(),
                    "cold_over_cached": m.ratio(),
                    "instantiate": m.instantiate.json(),
                    "describe": m.describe.json(),
                    "run": m.run.json(),
                })
            })
            .collect();
        let skipped: BTreeMap<_, _> = skipped.into_iter().collect();
        let out = json!({ "machine": facts, "results": rows, "skipped": skipped });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("plain JSON")
        );
        return ExitCode::SUCCESS;
    }

    println!("sluice polyglot benchmark: the scale step in three languages");
    for (k, v) in facts.as_object().expect("an object") {
        println!(
            "  {k:<22} {}",
            v.as_str().map(str::to_string).unwrap_or(v.to_string())
        );
    }
    println!();
    let mut rows = vec![vec!["measurement: median (min..max)".to_string()]];
    rows[0].extend(results.iter().map(|m| m.lang.to_string()));
    let line = |name: &str, f: &dyn Fn(&Measured) -> String| {
        let mut row = vec![name.to_string()];
        row.extend(results.iter().map(f));
        row
    };
    let cell = |s: &Stats| {
        format!(
            "{} ({}..{})",
            fmt_duration(s.median),
            fmt_duration(s.min),
            fmt_duration(s.max)
        )
    };
    let bytes = sluice_runtime::outcome::bytes;
    let n = |s: &Stats| s.n;
    rows.push(line("component size", &|m| bytes(m.size)));
    rows.push(line("compiled cache entry", &|m| bytes(m.entry_size)));
    rows.push(line("cold compile", &|m| cell(&m.compile)));
    rows.push(line("load from compiled cache", &|m| cell(&m.load)));
    rows.push(line("cold / cached (medians)", &|m| {
        format!("{:.0}x", m.ratio())
    }));
    rows.push(line("instantiate", &|m| cell(&m.instantiate)));
    rows.push(line("describe()", &|m| cell(&m.describe)));
    rows.push(line("run(): scale 4 rows", &|m| cell(&m.run)));
    rows.push(line("n (compile/load/inst/describe/run)", &|m| {
        format!(
            "{}/{}/{}/{}/{}",
            n(&m.compile),
            n(&m.load),
            n(&m.instantiate),
            n(&m.describe),
            n(&m.run)
        )
    }));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    for (lang, why) in &skipped {
        println!("{lang}: skipped: {why}");
    }
    println!();
    println!("goal: an interpreter-carrying component loads from the compiled cache in < 100 ms");
    for m in results.iter().filter(|m| m.lang != "rust") {
        let verdict = if m.load.median < GOAL_LOAD {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "  {:<8} {} (cold {}, {:.0}x)  {verdict}",
            m.lang,
            fmt_duration(m.load.median),
            fmt_duration(m.compile.median),
            m.ratio()
        );
    }
    ExitCode::SUCCESS
}
