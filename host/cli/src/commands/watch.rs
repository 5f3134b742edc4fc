//! `sluice watch`: continuous training — a daemon that evaluates a
//! pipeline's triggers, runs it, and promotes what it blesses.

use super::run::{report_diagnostics, store_of};
use crate::CliContext;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Arguments of `sluice watch`.
#[derive(Debug, Args)]
#[command(after_help = "\
The spec's [triggers] table says what starts a run; [promotion] where a
blessed version goes:

  [triggers]
  schedule = \"0 3 * * *\"                                # cron, UTC
  new-data = true                                       # or [\"raw\"]: data inputs whose content changes
  drift = { model = \"breast-cancer@production\", threshold = 0.1, min-rows = 100 }
  degradation = { model = \"breast-cancer@production\", feedback = \"labels.csv\", metric = \"accuracy\", below = 0.9 }
  poll = \"5s\"   debounce = \"2s\"   check-every = \"1m\"

  [promotion]
  staging = true        # default: a blessed version goes to `staging`
  production = false    # default: production waits for `sluice models promote`

A schedule is a 5-field crontab line (minute hour day-of-month month
day-of-week, names and @daily-style nicknames allowed), in UTC. Days follow
Vixie cron: when either day field starts with `*`, a day must match both;
otherwise it may match either (`0 0 1,15 * 1`: the 1st, the 15th and every
Monday).

One run at a time; each records its trigger (`sluice runs list` shows it).
The watcher's state (data digests seen, schedule slots and monitoring windows
used, the trigger being acted on) is kept in the store, so a restart neither
loses nor repeats a trigger. Ctrl-C or SIGTERM stops it between runs.

Examples:
  sluice watch examples/continuous-training/pipeline.toml
  sluice watch pipeline.toml --once        evaluate the triggers once (for cron or CI)")]
pub(crate) struct WatchArgs {
    /// The pipeline spec, with a [triggers] table.
    pipeline: PathBuf,

    /// Store folder [default: the spec's `pipeline.store`, else .sluice next to it].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Evaluate the triggers once, act on what fired, and exit.
    #[arg(long)]
    once: bool,
}

/// Runs `sluice watch`.
pub(crate) fn run(ctx: &CliContext, args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let store_of = store_of(Some(&args.pipeline), &args.store);
    let store = Arc::new(store_of.open()?);
    let serving = store_of.serving_probe(ctx, store.clone())?;
    let runtime = Arc::new(ctx.runtime()?);
    let mut watcher = match sluice_watch::Watcher::new(&args.pipeline, store, runtime) {
        Ok(w) => w.with_serving(serving),
        Err(sluice_watch::WatchError::Spec(diags)) => return Ok(report_diagnostics(&diags, false)),
        Err(e) => return Err(e.into()),
    };
    watcher.initialise()?;
    sluice_watch::log(&format!(
        "watching pipeline `{}` ({}): {}",
        watcher.pipeline(),
        args.pipeline.display(),
        watcher.describe()
    ));
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::SIGINT, signal_hook::SIGTERM] {
        let stop = stop.clone();
        signal_hook::on(signal, move || stop.store(true, Ordering::Relaxed));
    }
    watcher.run(&stop, args.once)?;
    sluice_watch::log("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Minimal signal handling: a flag set on SIGINT/SIGTERM, through a
/// background tokio runtime (already a dependency) rather than another crate.
mod signal_hook {
    pub(super) const SIGINT: i32 = 2;
    pub(super) const SIGTERM: i32 = 15;

    pub(super) fn on(signal: i32, f: impl Fn() + Send + 'static) {
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let kind = tokio::signal::unix::SignalKind::from_raw(signal);
                if let Ok(mut s) = tokio::signal::unix::signal(kind) {
                    while s.recv().await.is_some() {
                        f();
                    }
                }
            });
        });
    }
}
