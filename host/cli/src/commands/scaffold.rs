//! `sluice component new`: scaffolds a step project in Rust, Python,
//! JavaScript or C that builds with `sluice component build` and passes
//! `sluice component check` as generated, with nothing but the language's
//! public toolchain.
//!
//! What the project holds, and writing it, is
//! `sluice_component_tools::scaffold`; this module parses the flags and
//! prints what was created and what to run next.

use crate::commands::build::Lang;
use clap::Args;
use sluice_component_tools::scaffold;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The step's name: lowercase letters, digits, `-` and `_`, starting with
    /// a letter. It names the manifest, the project folder and the .wasm.
    name: String,

    /// The language of the step.
    #[arg(long, value_enum)]
    lang: Lang,

    /// Where to create the project (default: ./NAME). Must not exist or be
    /// empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

pub(crate) fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    // The name first: it is also the default folder.
    scaffold::check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = scaffold::create(&dir, args.lang, &args.name)?;

    let shown = dir.display();
    println!("created {} step `{}` in {shown}", args.lang, args.name);
    for (path, _) in files
        .iter()
        .filter(|(p, _)| scaffold::sdk_folder(p).is_none())
    {
        println!("  {path}");
    }
    // The SDK's folders, one line each.
    for (dir, what) in scaffold::SDK_FOLDERS {
        let n = files
            .iter()
            .filter(|(p, _)| scaffold::sdk_folder(p).is_some_and(|(d, _)| d == dir))
            .count();
        if n > 0 {
            println!(
                "  {dir}/  ({what}, {n} file{})",
                if n == 1 { "" } else { "s" }
            );
        }
    }
    println!();
    println!("next:");
    println!("  sluice component build {shown}");
    println!(
        "  sluice component check {} --inputs {}",
        dir.join("build")
            .join(format!("{}.wasm", args.name))
            .display(),
        dir.join("samples").display()
    );
    Ok(ExitCode::SUCCESS)
}
