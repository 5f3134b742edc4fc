//! `sluice lineage REF`: where an artifact came from, back to the data
//! files it was computed from.
//!
//! The walk itself is `sluice_store::lineage`; this module draws its tree as
//! text or as a Graphviz digraph.

use crate::commands::run::{default_store_dir, open_store};
use clap::Args;
use sluice_runtime::outcome::bytes as human_bytes;
use sluice_store::lineage::ArtifactNode;
use sluice_store::refs;
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

pub(crate) fn run(args: &LineageArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&args.store.clone().unwrap_or_else(default_store_dir))?;
    let root = refs::resolve(&store, &args.reference)?;
    let lineage = sluice_store::lineage::trace(&store, root.digest)?;
    let tree = &lineage.artifact;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lineage)?);
    } else if args.dot {
        print!("{}", dot(tree));
    } else {
        let mut out = String::new();
        render(&text_tree(tree, String::new()), "", true, true, &mut out);
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
