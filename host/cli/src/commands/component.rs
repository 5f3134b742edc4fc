//! `sluice component …`: look at step components.

use crate::CliContext;
use crate::ui;
use anyhow::Context as _;
use clap::Subcommand;
use sluice_runtime::{ComponentSource, Manifest};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum ComponentCommand {
    /// Show a component's manifest (ports, params), digest, imports and how it loaded.
    ///
    /// COMPONENT is `std:NAME` for a standard step or the path of a .wasm
    /// component. The component is checked against the step world; problems
    /// are listed one per line.
    Inspect {
        /// `std:NAME` or a path to a .wasm component.
        component: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Conformance test of a component, for CI: world and imports, a
    /// well-formed manifest, a run on sample or synthetic inputs producing
    /// every declared output, determinism (two runs, identical bytes), and
    /// time and peak memory within limits. Exits 1 if a check fails.
    Check(crate::commands::check::CheckArgs),
    /// Create a step project (Rust, Python or JavaScript) that builds and
    /// passes `check` as generated: the SDK's template step, a step.toml
    /// naming the language, and sample inputs for `check --inputs`.
    New(crate::commands::scaffold::NewArgs),
    /// Build a step project with its language's toolchain (cargo for
    /// wasm32-wasip2, componentize-py, componentize-js) and print the path
    /// of the component. Says what to install when a tool is missing.
    Build(crate::commands::build::BuildArgs),
    /// List the standard steps built into this binary.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(ctx: &CliContext, cmd: &ComponentCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ComponentCommand::Inspect { component, json } => inspect(ctx, component, *json),
        ComponentCommand::List { json } => list(ctx, *json),
        ComponentCommand::Check(args) => crate::commands::check::run(ctx, args),
        ComponentCommand::New(args) => crate::commands::scaffold::run(args),
        ComponentCommand::Build(args) => crate::commands::build::run(args),
    }
}

fn inspect(ctx: &CliContext, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    let source = ComponentSource::parse(name);
    let component = runtime.load(&source)?;
    let manifest = component
        .describe()
        .with_context(|| format!("describing {name}"))?;
    if json {
        let out = serde_json::json!({
            "component": name,
            "digest": component.digest(),
            "size": component.size(),
            "compiled_cache": component.cache_outcome(),
            "load_ms": component.load_time().as_secs_f64() * 1000.0,
            "manifest": manifest,
            "imports": component.imports(),
            "exports": component.exports(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_manifest(&manifest);
    println!();
    println!("component  {name}");
    println!("digest     {}", component.digest());
    println!(
        "size       {}",
        sluice_runtime::outcome::bytes(component.size() as u64)
    );
    println!(
        "loaded     in {} ({})",
        ui::duration(component.load_time()),
        ui::cache_outcome(component.cache_outcome())
    );
    println!("imports");
    for import in component.imports() {
        println!("  {import}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_manifest(m: &Manifest) {
    println!("{} {}", ui::bold(&m.name), m.version);
    if !m.doc.is_empty() {
        println!("{}", m.doc);
    }
    println!();
    let mut rows = vec![vec![
        "".to_string(),
        "NAME".to_string(),
        "KIND/TYPE".to_string(),
        "DEFAULT".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    for p in &m.inputs {
        rows.push(vec![
            "input".into(),
            p.name.clone(),
            p.kind.to_string(),
            if p.optional {
                "(optional)".into()
            } else {
                "(required)".into()
            },
            p.doc.clone(),
        ]);
    }
    for p in &m.outputs {
        rows.push(vec![
            "output".into(),
            p.name.clone(),
            p.kind.to_string(),
            String::new(),
            p.doc.clone(),
        ]);
    }
    for p in &m.params {
        rows.push(vec![
            "param".into(),
            p.name.clone(),
            p.value_type.to_string(),
            match (&p.default, p.required) {
                (Some(d), _) => d.to_string(),
                (None, true) => "(required)".into(),
                (None, false) => "(none)".into(),
            },
            p.doc.clone(),
        ]);
    }
    ui::print_table(&rows);
}

fn list(ctx: &CliContext, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = ctx.runtime()?;
    let mut entries = Vec::new();
    for name in sluice_std_components::names() {
        let component = runtime.load(&ComponentSource::Std(name.to_string()))?;
        let manifest = component.describe()?;
        entries.push((format!("std:{name}"), component.digest(), manifest));
    }
    if json {
        let out: Vec<_> = entries
            .iter()
            .map(|(name, digest, m)| {
                serde_json::json!({"component": name, "digest": digest, "version": m.version, "doc": m.doc})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "COMPONENT".to_string(),
        "VERSION".into(),
        "DIGEST".into(),
        "DESCRIPTION".into(),
    ]];
    for (name, digest, m) in &entries {
        rows.push(vec![
            name.clone(),
            m.version.clone(),
            digest.short(12),
            m.doc.lines().next().unwrap_or("").to_string(),
        ]);
    }
    ui::print_table(&rows);
    Ok(ExitCode::SUCCESS)
}
