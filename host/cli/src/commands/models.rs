//! `sluice models …`: the model registry — versions, aliases, promotion and
//! rollback with their history.

use crate::commands::run::{default_store_dir, open_store};
use crate::ui;
use anyhow::{Context, bail};
use clap::Subcommand;
use sluice_store::{ModelRef, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
    /// List registered models: latest version, its metrics and aliases.
    List {
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a model: every version with its metrics, run and aliases, the
    /// history of alias moves and its rollouts with every decision and its
    /// evidence; or one version with its card.
    #[command(
        after_help = "Examples:\n  sluice models show breast-cancer\n  sluice models show breast-cancer@production\n  sluice models show breast-cancer:2 --json"
    )]
    Show {
        /// NAME (all versions), NAME:VERSION or NAME@ALIAS (one version).
        model: String,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Point an alias (e.g. `production`) at a version, atomically, if the
    /// model's promotion gates for that environment pass; the move and the
    /// gates' verdicts are kept in the model's history.
    #[command(after_help = "\
When the model has a promotion policy (`sluice models policy NAME`) that
lists the alias as an environment, every gate of a move into it is checked
first: a blessing, a soak time in the environment before, requests served
there, their error rate and p99 latency. If one is unmet nothing moves, each
unmet gate is named with what was measured, and the exit status is 1.
--force moves anyway; it needs --reason, and the history records the
override and the gates' verdicts.

Examples:
  sluice models promote breast-cancer 3 --alias production --reason \"beats v2 by 1.2 points\"
  sluice models promote breast-cancer 3 --alias production --force --reason \"hotfix for #231\"")]
    Promote {
        /// The model's name.
        name: String,
        /// The version to promote.
        version: i64,
        /// The alias to point at it.
        #[arg(long, default_value = "production")]
        alias: String,
        /// Why (kept in the history).
        #[arg(long, default_value = "")]
        reason: String,
        /// Move even if promotion gates are unmet (needs --reason).
        #[arg(long)]
        force: bool,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or set a model's promotion policy: its environments in order
    /// and the gates of a move into each.
    #[command(after_help = "\
A policy file holds the keys of a spec's [promotion] table that make the
policy (a pipeline's spec sets it too, when a run registers the model):

  environments = [\"staging\", \"production\"]
  [require.staging]
  blessing = true          # pushed with a blessing that says blessed
  [require.production]
  blessing = true
  soak = \"1h\"              # held staging at least this long
  min-requests = 500       # ...answering at least this many requests
  max-error-rate = 0.01    # ...at most 1% of them 4xx/5xx
  max-p99-ms = 50          # ...with a p99 latency of at most 50 ms

Requests, errors and latency are what `sluice serve` recorded in the store
(--stats-every) while the version held the environment before.

Examples:
  sluice models policy breast-cancer
  sluice models policy breast-cancer --set promotion.toml
  sluice models policy breast-cancer --clear")]
    Policy {
        /// The model's name.
        name: String,
        /// Set the policy from this TOML file.
        #[arg(long, value_name = "FILE", conflicts_with = "clear")]
        set: Option<PathBuf>,
        /// Remove the policy (moves are then ungated).
        #[arg(long)]
        clear: bool,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move an alias back to the version it pointed at before its last move.
    Rollback {
        /// The model's name.
        name: String,
        /// The alias to move back.
        #[arg(long, default_value = "production")]
        alias: String,
        /// Why (kept in the history).
        #[arg(long, default_value = "rollback")]
        reason: String,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn store_at(dir: &Option<PathBuf>) -> anyhow::Result<Store> {
    open_store(&dir.clone().unwrap_or_else(default_store_dir))
}

/// What the history line of a gated move adds: `FORCED past unmet gates:
/// soak, min-requests` or `gates passed: blessing, soak`.
fn gates_note(h: &sluice_store::registry::AliasMove) -> String {
    let Some(gates) = h.gates.as_ref().and_then(|g| g.as_array()) else {
        return String::new();
    };
    let names = |passed: bool| {
        gates
            .iter()
            .filter(|g| g["passed"].as_bool() == Some(passed))
            .filter_map(|g| g["gate"].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if h.forced {
        format!("  FORCED past unmet gates: {}", names(false))
    } else {
        format!("  gates passed: {}", names(true))
    }
}

/// Who is moving an alias: `SLUICE_USER`, else `$USER@host`.
fn who() -> String {
    sluice_store::identity::user()
}

fn metrics_summary(metrics: &serde_json::Value) -> String {
    metrics
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|f| format!("{k}={f:.4}")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub(crate) fn run(cmd: &ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::List { store, json } => {
            let store = store_at(store)?;
            let models = store.metadata.models()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&models)?);
                return Ok(ExitCode::SUCCESS);
            }
            if models.is_empty() {
                println!(
                    "no models registered yet; a pipeline registers one with a `std:push` step"
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = vec![vec![
                "MODEL".to_string(),
                "LATEST".into(),
                "ALIASES".into(),
                "METRICS".into(),
                "REGISTERED".into(),
            ]];
            for m in &models {
                let aliases: Vec<String> = store
                    .metadata
                    .model_versions(&m.name)?
                    .iter()
                    .flat_map(|v| v.aliases.iter().map(move |a| format!("{a}→{}", v.version)))
                    .collect();
                rows.push(vec![
                    m.name.clone(),
                    m.version.to_string(),
                    aliases.join(" "),
                    metrics_summary(&m.metrics),
                    m.created_at.clone(),
                ]);
            }
            ui::print_table(&rows);
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Show { model, store, json } => {
            let store = store_at(store)?;
            let reference: ModelRef = model.parse()?;
            if let ModelRef::Latest(name) = &reference {
                let versions = store.metadata.model_versions(name)?;
                if versions.is_empty() {
                    bail!(
                        "no model named `{name}` is registered; `sluice models list` shows those that are"
                    );
                }
                let history = store.metadata.alias_history(name)?;
                let logs = store.metadata.request_logs(name, None)?;
                let rollouts = sluice_monitor::rollouts::history(&store, name)?;
                if *json {
                    let out = serde_json::json!({
                        "name": name,
                        "versions": versions,
                        "history": history,
                        "rollouts": rollouts,
                        "request_logs": logs,
                        "promotion_policy": sluice_delivery::policy(&store, name)?,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!("model {name}");
                let mut rows = vec![vec![
                    "VERSION".to_string(),
                    "ALIASES".into(),
                    "METRICS".into(),
                    "RUN".into(),
                    "ARTIFACT".into(),
                ]];
                for v in &versions {
                    rows.push(vec![
                        v.version.to_string(),
                        v.aliases.join(", "),
                        metrics_summary(&v.metrics),
                        v.run_id.clone().unwrap_or_default(),
                        v.artifact.short(12),
                    ]);
                }
                ui::print_table(&rows);
                if !history.is_empty() {
                    println!("\nalias history:");
                    for h in &history {
                        let from = h.previous.map(|p| format!("{p} → ")).unwrap_or_default();
                        println!(
                            "  {}  {}: {from}{}  by {}{}{}",
                            h.at,
                            h.alias,
                            h.version,
                            h.who,
                            if h.reason.is_empty() {
                                String::new()
                            } else {
                                format!("  ({})", h.reason)
                            },
                            gates_note(h)
                        );
                    }
                }
                if !rollouts.is_empty() {
                    println!("\nrollouts:");
                    for r in &rollouts {
                        for line in sluice_monitor::rollouts::describe(r) {
                            println!("  {line}");
                        }
                    }
                }
                if let (Some(first), Some(last)) = (logs.first(), logs.last()) {
                    let rows: u64 = logs.iter().map(|c| c.rows).sum();
                    println!(
                        "\nserved requests logged: {rows} row(s) in {} chunk(s), {} to {}",
                        logs.len(),
                        first.first_at,
                        last.last_at
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let Some(version) = store.metadata.resolve_model(&reference)? else {
                bail!(
                    "the registry has no `{reference}`; `sluice models show {}` lists its versions and aliases",
                    reference.name()
                );
            };
            let card: serde_json::Value = serde_json::from_slice(
                &store
                    .objects
                    .get(&version.artifact)
                    .with_context(|| format!("reading the card of {reference}"))?,
            )
            .with_context(|| format!("the card of {reference} is not JSON"))?;
            if *json {
                let out = serde_json::json!({"version": version, "card": card});
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "model {}:{}  {}",
                version.name,
                version.version,
                version.aliases.join(", ")
            );
            println!("artifact  {}", version.artifact);
            println!("run       {}", version.run_id.clone().unwrap_or_default());
            println!("metrics   {}", metrics_summary(&version.metrics));
            for key in ["algorithm", "task", "label"] {
                if let Some(v) = card.get(key).and_then(|v| v.as_str()) {
                    println!("{key:<9} {v}");
                }
            }
            if let Some(f) = card.get("features").and_then(|f| f.as_array()) {
                println!("features  {} columns", f.len());
            }
            if let Some(t) = card.get("transform").and_then(|t| t.get("component")) {
                println!("transform {}", t.as_str().unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Promote {
            name,
            version,
            alias,
            reason,
            force,
            store,
            json,
        } => {
            let store = store_at(store)?;
            promote(&store, name, *version, alias, reason, *force, *json)
        }
        ModelsCommand::Policy {
            name,
            set,
            clear,
            store,
            json,
        } => {
            let store = store_at(store)?;
            policy(&store, name, set.as_deref(), *clear, *json)
        }
        ModelsCommand::Rollback {
            name,
            alias,
            reason,
            store,
            json,
        } => {
            let store = store_at(store)?;
            let history = store.metadata.alias_history(name)?;
            let Some(last) = history.iter().rev().find(|h| h.alias == *alias) else {
                bail!("`{name}@{alias}` was never set, so there is nothing to roll back");
            };
            let Some(previous) = last.previous else {
                bail!(
                    "`{name}@{alias}` has had only one holder (version {}), so there is no earlier version to roll back to",
                    last.version
                );
            };
            let now = sluice_store::time::now();
            let moved = store
                .metadata
                .set_alias(name, alias, previous, &who(), reason, &now)?;
            report_move(&moved, *json)
        }
    }
}

/// `sluice models promote`: checks the gates, then moves (or refuses).
fn promote(
    store: &Store,
    name: &str,
    version: i64,
    alias: &str,
    reason: &str,
    force: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if force && reason.trim().is_empty() {
        bail!(
            "--force needs --reason \"…\": an override of promotion gates is kept in the history with why"
        );
    }
    let current = store
        .metadata
        .resolve_model(&ModelRef::Alias(name.into(), alias.into()))?
        .map(|v| v.version);
    let verdict = match sluice_delivery::policy(store, name)? {
        Some(policy) => sluice_delivery::check(
            store,
            &policy,
            name,
            version,
            alias,
            std::time::SystemTime::now(),
        )?,
        None => sluice_delivery::Verdict::default(),
    };
    let unmet = verdict.unmet();
    if !unmet.is_empty() && !force {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "moved": false,
                    "name": name,
                    "alias": alias,
                    "version": version,
                    "gates": verdict.gates,
                }))?
            );
        } else {
            eprintln!(
                "{} {name}:{version} cannot move to {alias}; {} gate(s) unmet:",
                ui::error_label(),
                unmet.len()
            );
            for g in &unmet {
                eprintln!("  {}: {}", g.gate, g.detail);
            }
            eprintln!(
                "help: `--force --reason \"…\"` moves it anyway (recorded in the alias history)"
            );
        }
        return Ok(ExitCode::from(1));
    }
    let now = sluice_store::time::now();
    let moved = store.metadata.move_alias(&sluice_store::AliasRequest {
        name,
        alias,
        version,
        expected: Some(current),
        who: &who(),
        reason,
        forced: force && !unmet.is_empty(),
        gates: verdict.to_json(),
        now: &now,
    })?;
    if !json {
        for g in &verdict.gates {
            eprintln!(
                "gate {} {}: {}",
                g.gate,
                if g.passed { "passed" } else { "UNMET (forced)" },
                g.detail
            );
        }
    }
    report_move(&moved, json)
}

/// `sluice models policy`: shows, sets or clears a model's policy.
fn policy(
    store: &Store,
    name: &str,
    set: Option<&std::path::Path>,
    clear: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if clear {
        let had = store.metadata.clear_promotion_policy(name)?;
        if json {
            println!("{}", serde_json::json!({"name": name, "cleared": had}));
        } else if had {
            println!("{name}: promotion policy removed; moves of its aliases are ungated");
        } else {
            println!("{name} had no promotion policy");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = set {
        let source = std::fs::read_to_string(path)
            .with_context(|| format!("reading the policy file {}", path.display()))?;
        let policy = match sluice_pipeline::spec::parse_policy(path, &source) {
            Ok(p) => p,
            Err(diags) => {
                eprintln!("{diags}");
                return Ok(ExitCode::from(2));
            }
        };
        store.metadata.set_promotion_policy(
            name,
            &serde_json::to_string(&policy)?,
            &who(),
            &sluice_store::time::now(),
        )?;
    }
    let stored = store.metadata.promotion_policy(name)?;
    let parsed = sluice_delivery::policy(store, name)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "name": name,
                "policy": parsed,
                "updated_at": stored.as_ref().map(|s| &s.updated_at),
                "who": stored.as_ref().map(|s| &s.who),
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    match (parsed, stored) {
        (Some(p), Some(s)) => {
            println!(
                "promotion policy of {name} (set {} by {}):",
                s.updated_at, s.who
            );
            println!("  environments: {}", p.environments.join(" → "));
            for env in &p.environments {
                let Some(r) = p.require.get(env) else {
                    println!("  into {env}: no gates");
                    continue;
                };
                let mut gates = Vec::new();
                if r.blessing {
                    gates.push("blessing".to_string());
                }
                if let Some(d) = r.soak {
                    gates.push(format!("soak {}", ui::duration(d)));
                }
                if let Some(n) = r.min_requests {
                    gates.push(format!("min-requests {n}"));
                }
                if let Some(x) = r.max_error_rate {
                    gates.push(format!("max-error-rate {x}"));
                }
                if let Some(x) = r.max_p99_ms {
                    gates.push(format!("max-p99-ms {x}"));
                }
                println!("  into {env}: {}", gates.join(", "));
            }
        }
        _ => println!(
            "{name} has no promotion policy: its aliases move ungated (set one with `sluice models policy {name} --set FILE`)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn report_move(moved: &sluice_store::registry::AliasMove, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(moved)?);
    } else {
        match moved.previous {
            Some(p) => println!(
                "{}@{}: version {p} → {}",
                moved.name, moved.alias, moved.version
            ),
            None => println!(
                "{}@{}: → version {}",
                moved.name, moved.alias, moved.version
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
