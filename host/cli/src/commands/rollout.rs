//! `sluice rollout …`: online validation of a version on an alias — a
//! canary whose share grows stage by stage while `sluice_delivery::rollout`
//! compares it with the version the alias holds, then promotes or rolls
//! back by itself. Servers of the alias follow the rollout from the store.

use super::check::parse_duration;
use crate::commands::run::{default_store_dir, open_store};
use crate::ui;
use anyhow::{Context as _, bail};
use clap::Subcommand;
use sluice_delivery::Refusal;
use sluice_delivery::rollout::{Plan, Tick, tick};
use sluice_store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[derive(Debug, Subcommand)]
pub(crate) enum RolloutCommand {
    /// Start rolling VERSION out on NAME@ALIAS: every `sluice serve` of the
    /// alias gives it the first step's share of requests.
    #[command(after_help = "\
The version the alias holds now is the baseline. After each stage's window,
once the candidate answered --min-requests, `sluice rollout run` compares
the two on what the servers recorded (sluice serve --stats-every) over the
stage: the candidate's error rate may exceed the baseline's by at most
--max-error-rate-increase (a one-sided two-proportion test at --alpha), and
its p99 latency may be at most --max-p99-ratio times the baseline's. With
--feedback, true labels are joined with both versions' logged requests of
the stage (sluice serve logs them; --log-every sets how soon) and the
candidate's accuracy may be at most --max-accuracy-drop below the
baseline's (the same test), once each side has --min-labels. A
passing stage advances to the next share; after the last, the alias moves
to the candidate. A failing stage rolls back: share 0, the alias untouched.
Every decision is kept with its evidence (`sluice rollout show ID`).

The model's promotion gates for the alias (sluice models policy) are checked
first; --force --reason starts anyway.

Examples:
  sluice rollout start breast-cancer 3 --alias production --run
  sluice rollout start breast-cancer 3 --steps 10,50 --window 30m --min-requests 1000")]
    Start {
        /// The model's name.
        name: String,
        /// The version to roll out.
        version: i64,
        /// The alias it is rolled out on.
        #[arg(long, default_value = "production")]
        alias: String,
        /// The candidate's share at each stage, in percent, increasing,
        /// below 100.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "5,25,50",
            value_name = "PERCENT,…"
        )]
        steps: Vec<f64>,
        /// How long each stage lasts at least.
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        window: Duration,
        /// Requests the candidate answers in a stage before it is judged.
        #[arg(long, default_value_t = 200, value_name = "N")]
        min_requests: u64,
        /// How far above the baseline's the candidate's error rate may be.
        #[arg(long, default_value_t = 0.01, value_name = "SHARE")]
        max_error_rate_increase: f64,
        /// Significance of the error-rate test.
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// How many times the baseline's p99 latency the candidate's may be.
        #[arg(long, default_value_t = 1.5, value_name = "RATIO")]
        max_p99_ratio: f64,
        /// True labels (CSV or Parquet: `request_id`, the model's label
        /// column, optionally `row`), read again at each decision and joined
        /// with both versions' logged requests: the candidate's live
        /// accuracy is judged too.
        #[arg(long, value_name = "FILE")]
        feedback: Option<PathBuf>,
        /// With --feedback: labelled requests each side needs in a stage.
        #[arg(long, default_value_t = 50, value_name = "N", requires = "feedback")]
        min_labels: u64,
        /// With --feedback: how far below the baseline's the candidate's
        /// accuracy may be.
        #[arg(
            long,
            default_value_t = 0.02,
            value_name = "SHARE",
            requires = "feedback"
        )]
        max_accuracy_drop: f64,
        /// Roll back when the Jensen–Shannon divergence (0 to 1) between
        /// the two versions' logged predictions of a stage is above this:
        /// answers distributed unlike the baseline's, labels or not
        /// (judged once each side has 50 logged predictions).
        #[arg(long, default_value_t = 0.1, value_name = "JS")]
        max_prediction_divergence: f64,
        /// Why (kept with the rollout).
        #[arg(long, default_value = "")]
        reason: String,
        /// Start even if the alias's promotion gates are unmet (needs --reason).
        #[arg(long)]
        force: bool,
        /// Then decide its stages here until it ends (as `sluice rollout run`).
        #[arg(long)]
        run: bool,
        /// With --run: how often to look.
        #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
        every: Duration,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decide a rollout's stages as they end, until it is promoted, rolled
    /// back or aborted. Safe to run anywhere, more than once: a stage is
    /// decided once. Exits 0 when promoted, 1 when rolled back.
    Run {
        /// The rollout's id.
        id: String,
        /// How often to look.
        #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
        every: Duration,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
    },
    /// Show a rollout: its stages, share, state and every decision with
    /// its evidence.
    Show {
        /// The rollout's id.
        id: String,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a model's rollouts.
    List {
        /// The model's name.
        name: String,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a running rollout: the candidate's share goes to 0 and the
    /// alias stays where it is.
    Abort {
        /// The rollout's id.
        id: String,
        /// Why (kept with the rollout).
        #[arg(long)]
        reason: String,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
    },
}

fn store_at(dir: &Option<PathBuf>) -> anyhow::Result<Store> {
    open_store(&dir.clone().unwrap_or_else(default_store_dir))
}

pub(crate) fn run(cmd: &RolloutCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RolloutCommand::Start {
            name,
            version,
            alias,
            steps,
            window,
            min_requests,
            max_error_rate_increase,
            alpha,
            max_p99_ratio,
            feedback,
            min_labels,
            max_accuracy_drop,
            max_prediction_divergence,
            reason,
            force,
            run,
            every,
            store,
            json,
        } => {
            let store = store_at(store)?;
            let plan = Plan {
                steps: steps.clone(),
                window_ms: window.as_millis() as u64,
                min_requests: *min_requests,
                max_error_rate_increase: *max_error_rate_increase,
                alpha: *alpha,
                max_p99_ratio: *max_p99_ratio,
                feedback: match feedback {
                    Some(f) => Some(
                        std::path::absolute(f)
                            .with_context(|| format!("--feedback {}", f.display()))?
                            .display()
                            .to_string(),
                    ),
                    None => None,
                },
                min_labels: *min_labels,
                max_accuracy_drop: *max_accuracy_drop,
                max_prediction_divergence: *max_prediction_divergence,
            };
            if *force && reason.trim().is_empty() {
                bail!(
                    "--force needs --reason \"…\": an override of promotion gates is kept with the rollout"
                );
            }
            let who = sluice_store::identity::user();
            let launched = sluice_delivery::launch(
                &store,
                &sluice_delivery::Launch {
                    name,
                    version: *version,
                    alias,
                    plan: &plan,
                    who: &who,
                    reason,
                    force: *force,
                },
                SystemTime::now(),
            )?;
            let rollout = match launched {
                Ok(r) => r,
                Err(Refusal::Plan(why)) => bail!("{why}"),
                Err(Refusal::NoBaseline) => bail!(
                    "`{name}@{alias}` points at no version, so there is nothing to compare a candidate with; `sluice models promote {name} VERSION --alias {alias}` sets it"
                ),
                Err(Refusal::AlreadyThere) => {
                    bail!("`{name}@{alias}` already holds version {version}")
                }
                Err(Refusal::Gates(verdict)) => {
                    let unmet = verdict.unmet();
                    eprintln!(
                        "{} {name}:{version} cannot be rolled out on {alias}; {} gate(s) unmet:",
                        ui::error_label(),
                        unmet.len()
                    );
                    for g in &unmet {
                        eprintln!("  {}: {}", g.gate, g.detail);
                    }
                    eprintln!("help: `--force --reason \"…\"` starts it anyway");
                    return Ok(ExitCode::from(1));
                }
            };
            let (id, baseline) = (rollout.id.clone(), rollout.baseline);
            if *json && !run {
                println!("{}", serde_json::to_string_pretty(&rollout)?);
            } else {
                eprintln!(
                    "rollout {id}: {name}:{version} takes {}% of {name}@{alias} (baseline version {}); stages {} of {} each",
                    plan.steps[0],
                    baseline,
                    plan.steps
                        .iter()
                        .map(|s| format!("{s}%"))
                        .collect::<Vec<_>>()
                        .join(" → "),
                    ui::duration(*window)
                );
                if !run {
                    println!("{id}");
                    eprintln!("decide its stages with `sluice rollout run {id}`");
                }
            }
            if *run {
                return drive(&store, &id, *every);
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Run { id, every, store } => {
            let store = store_at(store)?;
            drive(&store, id, *every)
        }
        RolloutCommand::Show { id, store, json } => {
            let store = store_at(store)?;
            let Some(history) = sluice_monitor::rollouts::one(&store, id)? else {
                bail!("there is no rollout {id}; `sluice rollout list NAME` lists a model's");
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&history)?);
                return Ok(ExitCode::SUCCESS);
            }
            for line in sluice_monitor::rollouts::describe(&history) {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::List { name, store, json } => {
            let store = store_at(store)?;
            let all = store.metadata.rollouts(name)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(ExitCode::SUCCESS);
            }
            if all.is_empty() {
                println!("{name} has had no rollouts");
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = vec![vec![
                "ROLLOUT".to_string(),
                "ALIAS".into(),
                "BASELINE → CANDIDATE".into(),
                "STATE".into(),
                "STAGE".into(),
                "STARTED".into(),
            ]];
            for r in &all {
                rows.push(vec![
                    r.id.clone(),
                    r.alias.clone(),
                    format!("{} → {}", r.baseline, r.candidate),
                    r.state.clone(),
                    format!("{} ({}%)", r.stage + 1, r.share),
                    r.started_at.clone(),
                ]);
            }
            ui::print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Abort { id, reason, store } => {
            let store = store_at(store)?;
            let Some(r) = store.metadata.rollout(id)? else {
                bail!("there is no rollout {id}");
            };
            if r.state != "running" {
                bail!("rollout {id} is {} already", r.state);
            }
            let holder = format!("{} (sluice rollout abort)", sluice_store::identity::user());
            let applied = store.metadata.decide_rollout(
                id,
                r.stage,
                &sluice_store::rollout::Decision {
                    decision: "abort",
                    stage: r.stage,
                    share: 0.0,
                    state: "aborted",
                    evidence: serde_json::json!({"reason": reason}),
                    holder: &holder,
                    reason,
                    now: &sluice_store::time::now(),
                },
            )?;
            if !applied {
                bail!("rollout {id} was decided meanwhile; `sluice rollout show {id}` says how");
            }
            println!(
                "rollout {id} aborted: {}:{} no longer answers requests",
                r.name, r.candidate
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Decides rollout `id`'s stages every `every` until it ends; 0 when it
/// was promoted, 1 when rolled back or aborted.
fn drive(store: &Store, id: &str, every: Duration) -> anyhow::Result<ExitCode> {
    let holder = format!(
        "sluice rollout ({}, pid {})",
        sluice_store::identity::user(),
        std::process::id()
    );
    let mut last_wait = String::new();
    loop {
        match tick(store, id, SystemTime::now(), &holder)? {
            Tick::Wait(why) => {
                if why != last_wait {
                    eprintln!("rollout {id}: {why}");
                    last_wait = why;
                }
            }
            Tick::Decided { decision, reason } => {
                eprintln!("rollout {id}: {decision}: {reason}");
                match decision.as_str() {
                    "promote" => return Ok(ExitCode::SUCCESS),
                    "rollback" => return Ok(ExitCode::from(1)),
                    _ => {}
                }
            }
            Tick::Ended(why) => {
                let state = store
                    .metadata
                    .rollout(id)?
                    .map(|r| r.state)
                    .unwrap_or_default();
                if state == "running" {
                    // Another controller decided this stage; go on.
                    std::thread::sleep(every);
                    continue;
                }
                eprintln!("rollout {id}: {why}");
                return Ok(if state == "promoted" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
        }
        std::thread::sleep(every);
    }
}
