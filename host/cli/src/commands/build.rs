//! `sluice component build [DIR]`: builds a step project with its
//! language's toolchain and prints the path of the component.
//!
//! Finding the project's language, checking its toolchain and running the
//! build are `sluice_component_tools::build` (which carries the SDKs: no
//! sluice checkout is needed); this module parses the flags and prints the
//! result.

use crate::ui;
use clap::Args;
use sluice_component_tools::build::{self as tools, BuildError, Project};
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) use sluice_component_tools::Lang;

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// The step project (default: the current folder).
    #[arg(default_value = ".")]
    dir: PathBuf,

    /// Where to write the component (default: DIR/build/NAME.wasm).
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Print the result as JSON (path, name, language, size, digest, time,
    /// whether it was reused).
    #[arg(long)]
    json: bool,

    /// Build even when the component is up to date. (A Python or
    /// JavaScript component is kept while its sources, SDK and tools are
    /// unchanged: componentize-py and componentize-js give different bytes
    /// on every build.)
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let project = Project::detect(&args.dir)?;
    let out = args.out.clone().unwrap_or_else(|| project.default_output());
    let toolchain = tools::check_toolchain(&project)?;
    for w in &toolchain.warnings {
        eprintln!("warning: {w}");
    }
    toolchain.ensure_complete(&project)?;
    let out_abs = tools::prepare_output(&out)?;

    eprintln!(
        "building the {} step `{}` in {} ...",
        project.lang.display_name(),
        project.name,
        project.dir.display()
    );
    let built = match tools::build(&project, &out_abs, args.force) {
        Ok(b) => b,
        Err(BuildError::Failed(why)) => {
            eprintln!(
                "{} building `{}` failed: {why}",
                ui::error_label(),
                project.name
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        let v = serde_json::json!({
            "path": built.path,
            "name": project.name,
            "lang": project.lang,
            "size": built.size,
            "digest": built.digest,
            "duration_ms": built.duration.as_secs_f64() * 1000.0,
            "reused": built.reused,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if built.reused {
            eprintln!(
                "`{}` ({}) is up to date: {}, {} (its sources, SDK and tools are unchanged; --force rebuilds)",
                project.name,
                project.lang,
                sluice_runtime::outcome::bytes(built.size as u64),
                built.digest.short(12)
            );
        } else {
            eprintln!(
                "built `{}` ({}) in {}: {}, {}",
                project.name,
                project.lang,
                ui::duration(built.duration),
                sluice_runtime::outcome::bytes(built.size as u64),
                built.digest.short(12)
            );
        }
        println!("{}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}
