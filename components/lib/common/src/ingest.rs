//! The body of the ingest steps: the host reads the `file` input natively
//! (`context.read-file`) and the step writes the table as its `data`
//! output, reporting what the read found.

use serde::Deserialize;
use sluice_sdk::{Context, StepError};

/// The host's report of a read (the fields the steps use).
#[derive(Debug, Deserialize)]
pub struct ReadReport {
    /// Rows read.
    pub rows: u64,
    /// Each column's name, type and missing count.
    pub columns: Vec<ReadColumn>,
    /// What did not stop the read but deserves a look.
    #[serde(default)]
    pub warnings: Vec<ReadWarning>,
}

/// One column of a [`ReadReport`].
#[derive(Debug, Deserialize)]
pub struct ReadColumn {
    /// Its name.
    pub name: String,
    /// Its type (`int64`, `timestamp` …).
    #[serde(rename = "type")]
    pub column_type: String,
    /// Its nulls.
    pub missing: u64,
}

/// One warning of a [`ReadReport`].
#[derive(Debug, Deserialize)]
pub struct ReadWarning {
    /// The 1-based line, if the warning is about one.
    pub line: Option<u64>,
    /// The column, if the warning is about one.
    pub column: Option<String>,
    /// What, and what to do.
    pub message: String,
}

impl ReadReport {
    /// `name: type, …`, with `?` after the type of a column holding nulls.
    pub fn schema_summary(&self) -> String {
        self.columns
            .iter()
            .map(|c| {
                let nullable = if c.missing > 0 { "?" } else { "" };
                format!("{}: {}{nullable}", c.name, c.column_type)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads input `file` with `options` (the host's read options, JSON) and
/// writes it as output `data`; warnings become `warn` log lines and the
/// `warnings` metric.
pub fn ingest(ctx: &Context, options: &serde_json::Value) -> Result<ReadReport, StepError> {
    ctx.progress(0, 1, "reading");
    let (table, report) = ctx.read_file("file", &options.to_string())?;
    let report: ReadReport = serde_json::from_str(&report)
        .map_err(|e| StepError::failed(format!("the host's read report is not valid: {e}")))?;
    for w in &report.warnings {
        ctx.warn(&w.message);
    }
    ctx.info(format!(
        "inferred schema ({} rows): {}",
        report.rows,
        report.schema_summary()
    ));
    ctx.output_table("data", &table)?;
    ctx.progress(1, 1, "read");
    ctx.metric("rows", report.rows as f64);
    ctx.metric("columns", report.columns.len() as f64);
    ctx.metric("warnings", report.warnings.len() as f64);
    Ok(report)
}
