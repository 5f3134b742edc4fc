//! `sluice component build [DIR]`: builds a step project with its
//! language's toolchain and prints the path of the component.
//!
//! Finding the project's language, checking its toolchain and running the
//! build are `sluice_component_tools::build`; this module parses the flags,
//! finds the SDK folder ([`sdk_dir`]) and prints the result.

use crate::ui;
use anyhow::bail;
use clap::Args;
use sluice_component_tools::build::{self as tools, BuildError, Project};
use std::path::{Path, PathBuf};
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

    /// Print the result as JSON (path, name, language, size, digest, time).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let project = Project::detect(&args.dir)?;
    let out = args.out.clone().unwrap_or_else(|| project.default_output());
    let sdk = if project.lang.needs_sdk() {
        Some(sdk_dir()?)
    } else {
        None
    };
    let toolchain = tools::check_toolchain(&project, sdk.as_deref())?;
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
    let built = match tools::build(&project, &out_abs, sdk.as_deref()) {
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
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        eprintln!(
            "built `{}` ({}) in {}: {}, {}",
            project.name,
            project.lang,
            ui::duration(built.duration),
            sluice_runtime::outcome::bytes(built.size as u64),
            built.digest.short(12)
        );
        println!("{}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The SDK folder (`sdk/` of a sluice checkout): `SLUICE_SDK_DIR`, else the
/// checkout this binary was built from, else an `sdk/` beside or above the
/// binary.
pub(crate) fn sdk_dir() -> anyhow::Result<PathBuf> {
    let valid = |d: &Path| d.join("rust/Cargo.toml").is_file() && d.join("python").is_dir();
    if let Some(d) = std::env::var_os("SLUICE_SDK_DIR").filter(|v| !v.is_empty()) {
        let d = PathBuf::from(d);
        if !valid(&d) {
            bail!(
                "SLUICE_SDK_DIR={} is not the sdk/ folder of a sluice checkout (no rust/Cargo.toml and python/)",
                d.display()
            );
        }
        return Ok(std::path::absolute(&d)?);
    }
    let mut candidates = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join("sdk")));
    }
    for c in &candidates {
        if valid(c) {
            return Ok(c.canonicalize().unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "the sluice SDK was not found (looked in {}); set SLUICE_SDK_DIR to the sdk/ folder of a sluice checkout",
        candidates[0].display()
    )
}
