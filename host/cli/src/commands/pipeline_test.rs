//! `sluice test`: pipeline CI. Runs a pipeline on a sample of its data in
//! a scratch store and reports, as text, JSON or JUnit, what
//! `sluice_pipeline::ci` checks.

use crate::CliContext;
use crate::ui;
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use sluice_component_tools::junit;
use sluice_pipeline::ci::{self, Case, Gates, Outcome};
use sluice_pipeline::execute::{self, ExecuteError, RunOptions};
use sluice_store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `sluice test`.
#[derive(Debug, Args)]
#[command(after_help = "\
What is checked, each a test case (JUnit classname sluice.test.GROUP):
  spec     the components integrate: the spec is valid and every input port
           is bound to an output (or data input) of its kind
  data     each CSV and Parquet input could be sampled (N of M rows)
  step     each step ran and produced every output it declares; a step that
           failed is a failure with its message and stderr; a validation
           gate that said no on the sample is skipped (--gates enforce makes
           it a failure); a step whose upstream failed is skipped
  finite   the metrics each step recorded and the weights of each model it
           output are finite numbers: training produced no NaN or infinity

The run uses a scratch store (a temporary folder, or --keep-store DIR), never
the pipeline's own store or --metadata: nothing is cached from earlier runs
and nothing is registered anywhere that lasts. Data inputs that name a
registry model (`{ model = \"NAME@ALIAS\" }`) are therefore absent, as on a
first run. The sample is the same rows a step's tables.sample(N, SEED) keeps,
in file order; CSV files are read twice and never held whole.

Exit status: 0 when no case failed, 1 when one did, 2 when the spec is
invalid (the JUnit file is written in every case).

Examples:
  sluice test pipeline.toml
  sluice test pipeline.toml --sample 500 --junit reports/pipeline.xml
  sluice test pipeline.toml --sample 0 --gates enforce     (all rows; gates must pass)")]
pub(crate) struct TestArgs {
    /// The pipeline spec (TOML).
    pipeline: PathBuf,

    /// Rows kept of each CSV and Parquet input; 0 keeps every row.
    #[arg(long, default_value_t = 1000, value_name = "ROWS")]
    sample: u64,

    /// Seed of the sample.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,

    /// Write the results as a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,

    /// What a validation gate that says no on the sample is.
    #[arg(long, value_enum, default_value_t = GatesArg::Report)]
    gates: GatesArg,

    /// Keep the scratch store in DIR (which must not exist yet) to inspect
    /// it afterwards, e.g. with `sluice runs show --store DIR`.
    #[arg(long, value_name = "DIR")]
    keep_store: Option<PathBuf>,

    /// Most steps running at once [default: the number of cores].
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,

    /// Print the cases as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// No progress lines; only the results.
    #[arg(short, long)]
    quiet: bool,
}

/// `--gates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GatesArg {
    /// A gate's rejection is a skipped case.
    Report,
    /// A gate's rejection is a failed case.
    Enforce,
}

/// Runs `sluice test`.
pub(crate) fn run(ctx: &CliContext, args: &TestArgs) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::Builder::new()
        .prefix("sluice-test-")
        .tempdir()
        .context("creating a scratch folder")?;
    let store_dir = match &args.keep_store {
        Some(dir) => {
            if dir.exists() {
                anyhow::bail!(
                    "--keep-store {}: it exists already; name a folder that does not, so that the scratch store is not mixed with another",
                    dir.display()
                );
            }
            dir.clone()
        }
        None => scratch.path().join("store"),
    };
    // A store of its own, whatever --metadata or SLUICE_METADATA_URL say.
    let store = Store::open(&store_dir)
        .with_context(|| format!("creating the scratch store in {}", store_dir.display()))?;
    let runtime = ctx.runtime()?;
    let name = args.pipeline.display().to_string();
    let mut prepared = match execute::prepare(&args.pipeline, &runtime, Some(&store.objects)) {
        Ok(p) => p,
        Err(diags) => {
            let cases = ci::spec_cases(&diags);
            return finish(args, &name, &cases, 2);
        }
    };
    let rows = if args.sample == 0 {
        u64::MAX
    } else {
        args.sample
    };
    let data_dir = scratch.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let sampled = ci::sample_inputs(&mut prepared, &data_dir, rows, args.seed)?;
    if !args.quiet {
        for s in &sampled {
            eprintln!(
                "data.{}: {} of {} rows of {}",
                s.input,
                s.rows,
                s.of,
                s.original.display()
            );
        }
    }
    let store = Arc::new(store);
    let options = RunOptions {
        jobs: args.jobs.unwrap_or(RunOptions::default().jobs).max(1),
        use_cache: false,
        memory: None,
        trigger: "test".into(),
        resume: None,
        serving: super::run::serving_probe(
            ctx,
            &store_dir,
            &sluice_store::MetadataLocation::Sqlite(store_dir.join("metadata.sqlite")),
            store.clone(),
        ),
    };
    let report = match super::run::execute_blocking(&prepared, store.clone(), &options, args.quiet)?
    {
        Ok(r) => r,
        Err(ExecuteError::Data(diags)) => return finish(args, &name, &ci::spec_cases(&diags), 2),
        Err(e) => return Err(e.into()),
    };
    let gates = match args.gates {
        GatesArg::Report => Gates::Report,
        GatesArg::Enforce => Gates::Enforce,
    };
    let cases = ci::cases(&prepared, &sampled, &report, &store, gates);
    let failed = cases.iter().any(|c| c.outcome.failed());
    finish(args, &name, &cases, u8::from(failed))
}

/// Reports `cases` (text or JSON, and JUnit if asked) and gives `code`.
fn finish(args: &TestArgs, name: &str, cases: &[Case], code: u8) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.junit {
        let classnames: Vec<String> = cases
            .iter()
            .map(|c| format!("sluice.test.{}", c.group))
            .collect();
        let xml = junit::suite(
            &format!("sluice test {name}"),
            &junit_cases(cases, &classnames),
        );
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
    }
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
    let passed = count(|o| matches!(o, Outcome::Passed(_)));
    let failed = count(Outcome::failed);
    let skipped = count(|o| matches!(o, Outcome::Skipped(_)));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "pipeline": name,
                "passed": passed,
                "failed": failed,
                "skipped": skipped,
                "cases": cases,
                "junit": args.junit,
            }))?
        );
    } else {
        print_cases(cases);
        println!(
            "test result: {}. {passed} passed; {failed} failed; {skipped} skipped{}",
            if failed == 0 { "ok" } else { "FAILED" },
            args.junit
                .as_ref()
                .map(|p| format!("; JUnit report in {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::from(code))
}

fn print_cases(cases: &[Case]) {
    let mut rows = vec![vec![
        "RESULT".to_string(),
        "GROUP".into(),
        "CASE".into(),
        "DETAIL".into(),
    ]];
    for c in cases {
        let (label, detail) = match &c.outcome {
            Outcome::Passed(d) => (ui::paint("32", "pass"), d),
            Outcome::Failed(d) => (ui::paint("1;31", "FAIL"), d),
            Outcome::Skipped(d) => (ui::paint("33", "skip"), d),
        };
        rows.push(vec![
            label,
            c.group.to_string(),
            c.name.clone(),
            detail.lines().next().unwrap_or("").to_string(),
        ]);
    }
    println!();
    ui::print_table(&rows);
    println!();
    for c in cases.iter().filter(|c| c.outcome.failed()) {
        if let Outcome::Failed(d) = &c.outcome {
            eprintln!("{} {} `{}`: {d}", ui::error_label(), c.group, c.name);
        }
        if let Some(err) = &c.stderr {
            eprintln!("  last lines of its stderr:");
            let lines: Vec<&str> = err.lines().collect();
            for line in &lines[lines.len().saturating_sub(10)..] {
                eprintln!("    {line}");
            }
        }
    }
}

fn junit_cases<'a>(cases: &'a [Case], classnames: &'a [String]) -> Vec<junit::Case<'a>> {
    cases
        .iter()
        .zip(classnames)
        .map(|(c, classname)| junit::Case {
            classname,
            name: &c.name,
            outcome: match &c.outcome {
                Outcome::Passed(_) => junit::Outcome::Passed,
                Outcome::Failed(d) => junit::Outcome::Failed(d),
                Outcome::Skipped(d) => junit::Outcome::Skipped(d),
            },
            time: c.time,
            stderr: c.stderr.as_deref(),
        })
        .collect()
}
