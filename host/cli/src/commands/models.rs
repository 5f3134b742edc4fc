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
    /// Show a model: every version with its metrics, run and aliases, and
    /// the history of alias moves; or one version with its card.
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
    /// Point an alias (e.g. `production`) at a version, atomically; the move
    /// is kept in the model's history.
    #[command(
        after_help = "Example:\n  sluice models promote breast-cancer 3 --alias production --reason \"beats v2 by 1.2 points\""
    )]
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
                if *json {
                    let out = serde_json::json!({
                        "name": name,
                        "versions": versions,
                        "history": history,
                        "request_logs": logs,
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
                            "  {}  {}: {from}{}  by {}{}",
                            h.at,
                            h.alias,
                            h.version,
                            h.who,
                            if h.reason.is_empty() {
                                String::new()
                            } else {
                                format!("  ({})", h.reason)
                            }
                        );
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
            store,
            json,
        } => {
            let store = store_at(store)?;
            let now = sluice_store::time::now();
            let moved = store
                .metadata
                .set_alias(name, alias, *version, &who(), reason, &now)?;
            report_move(&moved, *json)
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
