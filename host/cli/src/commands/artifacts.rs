//! `sluice artifacts …`: browse, inspect and export what the store holds.

use crate::commands::run::{default_store_dir, open_store};
use crate::ui;
use anyhow::Context as _;
use clap::Subcommand;
use sluice_runtime::outcome::bytes as human_bytes;
use sluice_store::metadata::{ArtifactRecord, ArtifactUse};
use sluice_store::{Store, refs};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum ArtifactsCommand {
    /// List artifacts, newest first, with the step (or data file) that
    /// produced each.
    ///
    /// PRODUCER is RUN/STEP/PORT for step outputs (the most recent
    /// execution that output it) and data.NAME for imported data files.
    List {
        /// Only artifacts of this kind: table, file, statistics, schema,
        /// metrics, transform or model.
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one artifact: kind, size, digest, where its bytes are, which
    /// executions produced and consumed it, and a preview of documents.
    ///
    /// Documents (schema, statistics, metrics, transform) are previewed as
    /// pretty-printed JSON, first 40 lines.
    Show {
        /// A digest or a unique prefix of one (`sha256:` optional), or
        /// RUN/STEP/PORT where RUN is a run id, a unique prefix of one, or
        /// `latest` (e.g. `latest/stats/statistics`).
        #[arg(value_name = "REF")]
        reference: String,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy an artifact's bytes out of the store, checked against its digest.
    ///
    /// Tables come out as Parquet, documents as JSON, files as they went in.
    Export {
        /// A digest or a unique prefix of one, or RUN/STEP/PORT (see `show`).
        #[arg(value_name = "REF")]
        reference: String,
        /// Where to write the bytes; `-` writes them to stdout.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Store folder [default: .sluice in the current folder].
        #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
        store: Option<PathBuf>,
    },
}

/// Kinds whose bytes are JSON documents, previewed by `show`.
/// (A model artifact is its card, a JSON document naming the ONNX bytes.)
const DOCUMENT_KINDS: &[&str] = &["schema", "statistics", "metrics", "transform", "model"];
/// Lines of a document `show` prints.
const PREVIEW_LINES: usize = 40;

pub(crate) fn run(cmd: &ArtifactsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ArtifactsCommand::List {
            kind,
            limit,
            store,
            json,
        } => {
            let store = open_store(&store.clone().unwrap_or_else(default_store_dir))?;
            list(&store, kind.as_deref(), *limit, *json)
        }
        ArtifactsCommand::Show {
            reference,
            store,
            json,
        } => {
            let store = open_store(&store.clone().unwrap_or_else(default_store_dir))?;
            show(&store, reference, *json)
        }
        ArtifactsCommand::Export {
            reference,
            output,
            store,
        } => {
            let store = open_store(&store.clone().unwrap_or_else(default_store_dir))?;
            export(&store, reference, output)
        }
    }
}

fn list(store: &Store, kind: Option<&str>, limit: usize, json: bool) -> anyhow::Result<ExitCode> {
    let artifacts = store.metadata.artifacts_of_kind(kind, limit)?;
    let mut labelled = Vec::with_capacity(artifacts.len());
    for a in artifacts {
        let producer = refs::producer(store, &a.digest)?.to_string();
        labelled.push((a, producer));
    }
    if json {
        let out: Vec<_> = labelled
            .iter()
            .map(|(a, producer)| {
                serde_json::json!({
                    "digest": a.digest,
                    "kind": a.kind,
                    "size": a.size,
                    "created_at": a.created_at,
                    "producer": producer,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![vec![
        "DIGEST".to_string(),
        "KIND".into(),
        "SIZE".into(),
        "CREATED".into(),
        "PRODUCER".into(),
    ]];
    for (a, producer) in &labelled {
        rows.push(vec![
            a.digest.short(12),
            a.kind.clone(),
            human_bytes(a.size.max(0) as u64),
            a.created_at.clone(),
            producer.clone(),
        ]);
    }
    ui::print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

/// The first [`PREVIEW_LINES`] lines of a document, pretty-printed, and how
/// many lines were left out.
fn preview(store: &Store, a: &ArtifactRecord) -> Option<(String, usize)> {
    if !DOCUMENT_KINDS.contains(&a.kind.as_str()) {
        return None;
    }
    let bytes = store.objects.get(&a.digest).ok()?;
    let text = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => {
            let mut out = String::new();
            pretty(&v, 0, &mut out);
            out
        }
        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let shown = lines.len().min(PREVIEW_LINES);
    // A line longer than a screen (a 100 MB string) is cut and says so.
    let cut: Vec<String> = lines[..shown]
        .iter()
        .map(
            |l| match sluice_runtime::outcome::cut_text(l, PREVIEW_LINE_BYTES) {
                (all, 0) => all.to_string(),
                (kept, more) => format!("{kept}… ({more} more bytes)"),
            },
        )
        .collect();
    Some((cut.join("\n"), lines.len() - shown))
}

/// Longest preview line shown, in bytes.
const PREVIEW_LINE_BYTES: usize = 200;

/// Pretty-prints JSON like `to_string_pretty`, except that short arrays
/// and objects of scalars stay on one line (histograms, quantiles), so a
/// preview shows more of the document.
fn pretty(v: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            let scalars = items
                .iter()
                .all(|i| !matches!(i, Value::Array(_) | Value::Object(_)));
            let inline = items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if scalars && inline.len() + indent * 2 <= 100 {
                out.push('[');
                out.push_str(&inline);
                out.push(']');
                return;
            }
            out.push_str("[\n");
            for (n, item) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                pretty(item, indent + 1, out);
                out.push_str(if n + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::Object(map) => {
            let inline = map
                .iter()
                .map(|(k, v)| format!("{}: {v}", Value::String(k.clone())))
                .collect::<Vec<_>>()
                .join(", ");
            if map
                .values()
                .all(|v| !matches!(v, Value::Array(_) | Value::Object(_)))
                && inline.len() <= 60
            {
                out.push_str("{ ");
                out.push_str(&inline);
                out.push_str(" }");
                return;
            }
            out.push_str("{\n");
            for (n, (k, item)) in map.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                pretty(item, indent + 1, out);
                out.push_str(if n + 1 < map.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn show(store: &Store, reference: &str, json: bool) -> anyhow::Result<ExitCode> {
    let a = refs::resolve(store, reference)?;
    let path = store.objects.path_of(&a.digest);
    let present = store.objects.contains(&a.digest);
    let uses = store.metadata.artifact_uses(&a.digest)?;
    let (producers, consumers): (Vec<&ArtifactUse>, Vec<&ArtifactUse>) =
        uses.iter().partition(|u| u.direction == "output");
    let imports = store.metadata.imported_as(&a.digest)?;
    let preview = preview(store, &a);
    if json {
        let out = serde_json::json!({
            "digest": a.digest,
            "kind": a.kind,
            "size": a.size,
            "created_at": a.created_at,
            "path": path,
            "present": present,
            "producers": producers,
            "consumers": consumers,
            "imports": imports
                .iter()
                .map(|(run_id, name, path)| serde_json::json!({"run_id": run_id, "name": name, "path": path}))
                .collect::<Vec<_>>(),
            "preview": preview.as_ref().map(|(text, _)| text),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("artifact {}", a.digest);
    println!("kind     {}", a.kind);
    println!(
        "size     {} ({} bytes)",
        human_bytes(a.size.max(0) as u64),
        a.size
    );
    println!("created  {}", a.created_at);
    println!(
        "path     {}{}",
        path.display(),
        if present {
            ""
        } else {
            "  (missing from the store!)"
        }
    );
    let table = |title: &str, uses: &[&ArtifactUse]| {
        println!();
        println!("{title}:");
        let mut rows = vec![vec![
            "RUN".to_string(),
            "STEP".into(),
            "PORT".into(),
            "STATE".into(),
            "EXECUTION".into(),
        ]];
        for u in uses {
            let state = match (u.state.as_str(), u.cached_from) {
                (s, Some(from)) => format!("{s} (from execution {from})"),
                (s, None) => s.to_string(),
            };
            let port = match &u.source {
                Some(src) => format!("{} ← {src}", u.port),
                None => u.port.clone(),
            };
            rows.push(vec![
                u.run_id.clone(),
                u.step.clone(),
                port,
                state,
                u.execution_id.to_string(),
            ]);
        }
        ui::print_table(&rows);
    };
    if !producers.is_empty() {
        table("produced by", &producers);
    }
    if !imports.is_empty() {
        println!();
        println!("imported as:");
        for (run_id, name, path) in &imports {
            println!("  data.{name} = {path}  (run {run_id})");
        }
    }
    if producers.is_empty() && imports.is_empty() {
        println!();
        println!("produced by: nothing recorded");
    }
    if consumers.is_empty() {
        println!();
        println!("consumed by: no execution");
    } else {
        table("consumed by", &consumers);
    }
    if let Some((text, more)) = preview {
        println!();
        println!("preview:");
        for line in text.lines() {
            println!("  {line}");
        }
        if more > 0 {
            println!(
                "  … {more} more line(s); `sluice artifacts export {} -o FILE` for all of it",
                a.digest.short(12)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn export(store: &Store, reference: &str, output: &std::path::Path) -> anyhow::Result<ExitCode> {
    let a = refs::resolve(store, reference)?;
    // `get` re-hashes the bytes: a corrupt object is refused, never exported.
    let mut bytes = store.objects.get(&a.digest)?;
    if a.kind == "model" {
        // A model exports as its ONNX bytes, loadable by any ONNX runtime;
        // its card goes beside a file as `NAME.card.json`.
        let card: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the card of model {} is not JSON", a.digest))?;
        let onnx = refs::model_onnx(&bytes)
            .with_context(|| format!("the card of model {} names no ONNX bytes", a.digest))?;
        if output.as_os_str() != "-" {
            let card_path = output.with_extension("card.json");
            std::fs::write(&card_path, serde_json::to_string_pretty(&card)?)
                .with_context(|| format!("writing {}", card_path.display()))?;
            eprintln!("wrote the model card to {}", card_path.display());
        }
        bytes = store.objects.get(&onnx)?;
    }
    if output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes).context("writing to stdout")?;
        out.flush().context("writing to stdout")?;
    } else {
        std::fs::write(output, &bytes).with_context(|| format!("writing {}", output.display()))?;
        eprintln!(
            "wrote {} {} ({}) to {}",
            a.kind,
            a.digest.short(12),
            human_bytes(bytes.len() as u64),
            output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_keep_short_scalar_arrays_on_one_line() {
        let v = serde_json::json!({"a": [1, 2, 3], "b": {"c": "x"}, "d": [], "e": [{"f": null}, {"g": []}]});
        let mut out = String::new();
        pretty(&v, 0, &mut out);
        assert_eq!(
            out,
            "{\n  \"a\": [1, 2, 3],\n  \"b\": { \"c\": \"x\" },\n  \"d\": [],\n  \"e\": [\n    { \"f\": null },\n    {\n      \"g\": []\n    }\n  ]\n}"
        );
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, v);
    }
}
