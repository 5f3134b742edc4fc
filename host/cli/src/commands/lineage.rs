//! `sluice lineage REF`: where an artifact came from, back to the data
//! files it was computed from.

use crate::commands::artifacts::resolve;
use crate::commands::run::{default_store_dir, open_store};
use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use sluice_runtime::outcome::bytes as human_bytes;
use sluice_store::metadata::{ExecutionRecord, ExecutionState};
use sluice_store::{Digest, Store};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct LineageArgs {
    /// The artifact: a digest or a unique prefix of one (`sha256:`
    /// optional), or RUN/STEP/PORT where RUN is a run id, a unique prefix of
    /// one, or `latest` (e.g. `latest/stats/statistics`).
    #[arg(value_name = "REF")]
    reference: String,

    /// Store folder [default: .sluice in the current folder].
    #[arg(long, env = "SLUICE_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    /// Print the tree as nested JSON, with flat lists of the upstream steps
    /// and data files.
    #[arg(long, conflicts_with = "dot")]
    json: bool,

    /// Print a Graphviz digraph (artifacts as boxes, executions as
    /// ellipses, data files as notes, edges labelled by port); render it
    /// with `dot -Tsvg`.
    #[arg(long)]
    dot: bool,
}

/// An artifact and how it came to be.
#[derive(Debug, Serialize)]
struct ArtifactNode {
    digest: Digest,
    kind: String,
    size: i64,
    /// The execution that computed it (for a cached one, the original).
    #[serde(skip_serializing_if = "Option::is_none")]
    produced_by: Option<Box<ExecutionNode>>,
    /// The data file it was imported from, when no step produced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    imported_as: Option<ImportNode>,
    /// Already expanded elsewhere in this tree; not repeated.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    repeated: bool,
    /// Reached again from its own upstream; not expanded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cycle: bool,
}

/// An execution that produced an artifact, with its inputs.
#[derive(Debug, Serialize)]
struct ExecutionNode {
    execution_id: i64,
    run_id: String,
    step: String,
    component: String,
    component_digest: Digest,
    state: ExecutionState,
    /// The output port the artifact came out of.
    port: String,
    params: serde_json::Value,
    /// How many executions recorded this artifact as an output (cached
    /// ones included); the most recent is followed.
    producers: usize,
    /// The most recent producer was a cached execution reusing this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    reused_by: Option<Reuse>,
    inputs: Vec<InputNode>,
}

#[derive(Debug, Serialize)]
struct Reuse {
    execution_id: i64,
    run_id: String,
}

#[derive(Debug, Serialize)]
struct InputNode {
    port: String,
    source: Option<String>,
    artifact: ArtifactNode,
}

#[derive(Debug, Clone, Serialize)]
struct ImportNode {
    name: String,
    path: String,
    run_id: String,
    /// How many imports (across runs) brought these bytes in.
    imports: usize,
}

/// One upstream step, for the flat summary.
#[derive(Debug, Serialize)]
struct StepSummary {
    step: String,
    run_id: String,
    execution_id: i64,
    component: String,
    component_digest: Digest,
}

/// One data file, for the flat summary.
#[derive(Debug, Serialize)]
struct DataSummary {
    name: String,
    path: String,
    digest: Digest,
    run_id: String,
}

/// Walks the metadata upstream from an artifact.
struct Builder<'a> {
    store: &'a Store,
    expanded: HashSet<Digest>,
    on_path: Vec<Digest>,
    steps: Vec<StepSummary>,
    data: Vec<DataSummary>,
}

/// Most `cached_from` links followed before giving up (they cannot loop in
/// a store sluice wrote, but the walk must end whatever the rows say).
const MAX_CACHE_HOPS: usize = 64;

impl Builder<'_> {
    /// The node of `digest`; `via` is (run, source) of the input event that
    /// led here, to pick the matching import among several.
    fn artifact(
        &mut self,
        digest: Digest,
        via: Option<(&str, &str)>,
    ) -> anyhow::Result<ArtifactNode> {
        let record = self.store.metadata.artifact(&digest)?;
        let mut node = ArtifactNode {
            digest,
            kind: record
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |r| r.kind.clone()),
            size: record.as_ref().map_or_else(
                || self.store.objects.size_of(&digest).unwrap_or(0) as i64,
                |r| r.size,
            ),
            produced_by: None,
            imported_as: None,
            repeated: false,
            cycle: false,
        };
        if self.on_path.contains(&digest) {
            node.cycle = true;
            return Ok(node);
        }
        if !self.expanded.insert(digest) {
            node.repeated = true;
            return Ok(node);
        }
        self.on_path.push(digest);
        let producers = self.store.metadata.producers(&digest)?;
        let usable = |e: &&ExecutionRecord| {
            matches!(e.state, ExecutionState::Succeeded | ExecutionState::Cached)
                && !e
                    .events
                    .iter()
                    .any(|ev| ev.direction == "input" && ev.artifact == digest)
        };
        if let Some(latest) = producers.iter().find(usable).or(producers.first()) {
            node.produced_by = Some(Box::new(self.execution(latest, digest, producers.len())?));
        } else {
            node.imported_as = self.import(&digest, via)?;
        }
        self.on_path.pop();
        Ok(node)
    }

    /// The node of the execution that computed `digest`: `latest` itself,
    /// or for a cached execution the original whose outputs it reused.
    fn execution(
        &mut self,
        latest: &ExecutionRecord,
        digest: Digest,
        producers: usize,
    ) -> anyhow::Result<ExecutionNode> {
        let mut original = latest.clone();
        let mut seen = HashSet::from([original.id]);
        while original.state == ExecutionState::Cached && seen.len() <= MAX_CACHE_HOPS {
            let Some(from) = original.cached_from else {
                break;
            };
            if !seen.insert(from) {
                break;
            }
            original =
                self.store.metadata.execution(from).with_context(|| {
                    format!("execution {from}, reused by execution {}", latest.id)
                })?;
        }
        let reused_by = (original.id != latest.id).then(|| Reuse {
            execution_id: latest.id,
            run_id: latest.run_id.clone(),
        });
        let port = latest
            .events
            .iter()
            .find(|e| e.direction == "output" && e.artifact == digest)
            .map(|e| e.port.clone())
            .unwrap_or_default();
        if !self.steps.iter().any(|s| s.execution_id == original.id) {
            self.steps.push(StepSummary {
                step: original.step.clone(),
                run_id: original.run_id.clone(),
                execution_id: original.id,
                component: original.component.clone(),
                component_digest: original.component_digest,
            });
        }
        let mut inputs = Vec::new();
        for ev in original.events.iter().filter(|e| e.direction == "input") {
            let source = ev.source.clone().unwrap_or_default();
            let artifact = self.artifact(ev.artifact, Some((&original.run_id, &source)))?;
            inputs.push(InputNode {
                port: ev.port.clone(),
                source: ev.source.clone(),
                artifact,
            });
        }
        Ok(ExecutionNode {
            execution_id: original.id,
            run_id: original.run_id,
            step: original.step,
            component: original.component,
            component_digest: original.component_digest,
            state: original.state,
            port,
            params: original.params,
            producers,
            reused_by,
            inputs,
        })
    }

    /// The import that brought `digest` in: the one of the run and name the
    /// input event names if there is one, else the most recent.
    fn import(
        &mut self,
        digest: &Digest,
        via: Option<(&str, &str)>,
    ) -> anyhow::Result<Option<ImportNode>> {
        let imports = self.store.metadata.imported_as(digest)?;
        let matching = via.and_then(|(run, source)| {
            imports
                .iter()
                .find(|(r, name, _)| r == run && source == format!("data.{name}"))
        });
        let Some((run_id, name, path)) = matching.or(imports.first()) else {
            return Ok(None);
        };
        if !self
            .data
            .iter()
            .any(|d| d.digest == *digest && d.path == *path)
        {
            self.data.push(DataSummary {
                name: name.clone(),
                path: path.clone(),
                digest: *digest,
                run_id: run_id.clone(),
            });
        }
        Ok(Some(ImportNode {
            name: name.clone(),
            path: path.clone(),
            run_id: run_id.clone(),
            imports: imports.len(),
        }))
    }
}

pub(crate) fn run(args: &LineageArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let root = resolve(&store, &args.reference)?;
    let mut builder = Builder {
        store: &store,
        expanded: HashSet::new(),
        on_path: Vec::new(),
        steps: Vec::new(),
        data: Vec::new(),
    };
    let tree = builder.artifact(root.digest, None)?;
    if args.json {
        let out = serde_json::json!({
            "artifact": tree,
            "steps": builder.steps,
            "data": builder.data,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if args.dot {
        print!("{}", dot(&tree));
    } else {
        let mut out = String::new();
        render(&text_tree(&tree, String::new()), "", true, true, &mut out);
        print!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A line of text and the lines under it.
struct TextNode {
    label: String,
    children: Vec<TextNode>,
}

fn artifact_label(a: &ArtifactNode) -> String {
    format!(
        "{} {} ({})",
        a.kind,
        a.digest.short(12),
        human_bytes(a.size.max(0) as u64)
    )
}

fn text_tree(a: &ArtifactNode, prefix: String) -> TextNode {
    let mut label = prefix + &artifact_label(a);
    let mut children = Vec::new();
    if a.repeated {
        label.push_str("  (lineage shown above)");
    } else if a.cycle {
        label.push_str("  (cycle: an upstream of itself; not followed)");
    } else if let Some(e) = &a.produced_by {
        let mut l = format!(
            "step {}: {} {}, {} in run {} (execution {})",
            e.step,
            e.component,
            e.component_digest.short(12),
            e.state,
            e.run_id,
            e.execution_id
        );
        if let Some(r) = &e.reused_by {
            let _ = write!(
                l,
                ", reused by cached execution {} in run {}",
                r.execution_id, r.run_id
            );
        }
        if e.producers > 1 {
            let _ = write!(l, " [latest of {} producers]", e.producers);
        }
        children.push(TextNode {
            label: l,
            children: e
                .inputs
                .iter()
                .map(|i| {
                    let from = i.source.as_deref().unwrap_or("?");
                    text_tree(&i.artifact, format!("{} ← {from}: ", i.port))
                })
                .collect(),
        });
    } else if let Some(i) = &a.imported_as {
        let mut l = format!(
            "data.{} = {}  (imported by run {})",
            i.name, i.path, i.run_id
        );
        if i.imports > 1 {
            let _ = write!(l, " [imported {} times]", i.imports);
        }
        children.push(TextNode {
            label: l,
            children: Vec::new(),
        });
    } else {
        children.push(TextNode {
            label: "origin unknown: no execution or data import recorded it".into(),
            children: Vec::new(),
        });
    }
    TextNode { label, children }
}

/// Draws `node` with box-drawing characters.
fn render(node: &TextNode, indent: &str, last: bool, root: bool, out: &mut String) {
    if root {
        let _ = writeln!(out, "{}", node.label);
    } else {
        let _ = writeln!(
            out,
            "{indent}{}{}",
            if last { "└─ " } else { "├─ " },
            node.label
        );
    }
    let child_indent = if root {
        String::new()
    } else {
        format!("{indent}{}", if last { "   " } else { "│  " })
    };
    for (i, child) in node.children.iter().enumerate() {
        render(
            child,
            &child_indent,
            i + 1 == node.children.len(),
            false,
            out,
        );
    }
}

/// A Graphviz digraph of the tree, data flowing left to right.
fn dot(tree: &ArtifactNode) -> String {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let mut seen = HashSet::new();
    dot_artifact(tree, &mut nodes, &mut edges, &mut seen);
    let mut out = String::from(
        "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n",
    );
    for n in nodes {
        let _ = writeln!(out, "  {n}");
    }
    for e in edges {
        let _ = writeln!(out, "  {e}");
    }
    out.push_str("}\n");
    out
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn dot_artifact(
    a: &ArtifactNode,
    nodes: &mut Vec<String>,
    edges: &mut Vec<String>,
    seen: &mut HashSet<String>,
) {
    let id = format!("a_{}", a.digest.to_hex());
    if seen.insert(id.clone()) {
        nodes.push(format!(
            "{} [shape=box, label={}];",
            quote(&id),
            quote(&format!(
                "{}\n{}\n{}",
                a.kind,
                a.digest.short(12),
                human_bytes(a.size.max(0) as u64)
            ))
        ));
    }
    if let Some(e) = &a.produced_by {
        let eid = format!("e_{}", e.execution_id);
        if seen.insert(eid.clone()) {
            nodes.push(format!(
                "{} [shape=ellipse, label={}];",
                quote(&eid),
                quote(&format!("{}\n{}\nrun {}", e.step, e.component, e.run_id))
            ));
        }
        let edge = format!(
            "{} -> {} [label={}];",
            quote(&eid),
            quote(&id),
            quote(&e.port)
        );
        if seen.insert(edge.clone()) {
            edges.push(edge);
        }
        for i in &e.inputs {
            dot_artifact(&i.artifact, nodes, edges, seen);
            let edge = format!(
                "{} -> {} [label={}];",
                quote(&format!("a_{}", i.artifact.digest.to_hex())),
                quote(&eid),
                quote(&i.port)
            );
            if seen.insert(edge.clone()) {
                edges.push(edge);
            }
        }
    }
    if let Some(i) = &a.imported_as {
        let fid = format!("f_{}_{}", a.digest.short(16), i.path);
        if seen.insert(fid.clone()) {
            nodes.push(format!(
                "{} [shape=note, label={}];",
                quote(&fid),
                quote(&format!("data.{}\n{}", i.name, i.path))
            ));
        }
        let edge = format!(
            "{} -> {} [label={}];",
            quote(&fid),
            quote(&id),
            quote(&format!("data.{}", i.name))
        );
        if seen.insert(edge.clone()) {
            edges.push(edge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_strings_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny"), r#""x\ny""#);
    }

    #[test]
    fn trees_are_drawn_with_box_characters() {
        let leaf = |l: &str| TextNode {
            label: l.into(),
            children: Vec::new(),
        };
        let tree = TextNode {
            label: "root".into(),
            children: vec![
                TextNode {
                    label: "a".into(),
                    children: vec![leaf("a1"), leaf("a2")],
                },
                leaf("b"),
            ],
        };
        let mut out = String::new();
        render(&tree, "", true, true, &mut out);
        assert_eq!(out, "root\n├─ a\n│  ├─ a1\n│  └─ a2\n└─ b\n");
    }
}
