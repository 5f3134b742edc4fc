//! `std:ingest-parquet`: reads a Parquet `file` artifact into a table. The
//! host reads it natively, only the columns asked for (`columns`), casting
//! column types host tables do not hold where nothing is lost (smaller
//! integers to int64, other time units to microseconds …) with a warning,
//! and refusing the rest with an error that names the column.

use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, export_step};

struct IngestParquet;

impl Step for IngestParquet {
    fn describe() -> Manifest {
        Manifest::new("ingest-parquet", "0.1.0")
            .doc("Reads a Parquet file into a table, natively, with column projection.")
            .input(Port::file("file").doc("The Parquet bytes."))
            .output(Port::table("data").doc("The rows."))
            .param(
                Param::json("columns")
                    .doc("The columns to read, in this order (a list of names). Optional: all, in file order."),
            )
            .param(
                Param::json("types")
                    .doc("Column types to cast to, by name, e.g. {\"price\": \"float32\"}. Optional."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let mut options = serde_json::json!({ "format": "parquet" });
        if let Some(columns) = ctx.param::<Option<serde_json::Value>>("columns")? {
            options["columns"] = columns;
        }
        if let Some(types) = ctx.param::<Option<serde_json::Value>>("types")? {
            options["types"] = types;
        }
        sluice_std_common::ingest::ingest(ctx, &options)?;
        Ok(())
    }
}

export_step!(IngestParquet);
