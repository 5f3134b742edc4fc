//! `std:ingest-csv`: reads the CSV bytes of a `file` artifact into a table,
//! inferring each column's type. The host parses the file natively, on
//! every core (`context.read-file`); this step passes its params and
//! reports what the read found.
//!
//! Each column is `boolean` if every non-missing value is `true` or `false`
//! (any case), else `int64` if every one parses as an integer, else `float64`
//! if every one parses as a number, else — if every value is a date
//! (`2024-01-05`) or every one a date-time (`2024-01-05T10:00:00Z`) — `date`
//! or `timestamp`, else `utf8`. A column with no non-missing values is
//! `utf8`. Fields are trimmed before inference; values listed in the
//! `missing` param become nulls. `types` forces a column's type. A column
//! that is mostly numbers but holds some text is read as text, with a
//! warning that names the values and their lines. A file with a header and
//! no rows, a row with the wrong number of fields, or a value that does not
//! parse as a forced type is invalid input; the message names the line and
//! the column. See `docs/steps/ingest-csv.md`.

use sluice_sdk::{Context, Manifest, Param, Port, Step, StepError, Value, export_step};

/// Values treated as missing unless the `missing` param says otherwise.
const DEFAULT_MISSING: &[&str] = &["", "NA", "N/A", "NaN", "null", "NULL", "None"];

struct IngestCsv;

impl Step for IngestCsv {
    fn describe() -> Manifest {
        let missing = format!(
            "[{}]",
            DEFAULT_MISSING
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Manifest::new("ingest-csv", "0.2.0")
            .doc("Parses a CSV file into a table, natively, inferring column types (boolean, int64, float64, date, timestamp, utf8).")
            .input(Port::file("file").doc("The CSV bytes (UTF-8)."))
            .output(Port::table("data").doc("The parsed rows."))
            .param(
                Param::text("delimiter")
                    .default(",")
                    .doc("The field delimiter: one ASCII character, or `\\t` / `tab`."),
            )
            .param(
                Param::boolean("header")
                    .default(true)
                    .doc("Whether the first line names the columns; if not they are named column_1 .. column_n."),
            )
            .param(
                Param::json("missing")
                    .default(Value::Json(missing))
                    .doc("Field values (after trimming) that mean a missing value; replaces the default list."),
            )
            .param(
                Param::json("types")
                    .doc("Column types to use instead of the inferred ones, by name, e.g. {\"zip\": \"utf8\", \"price\": \"float32\", \"city\": \"categorical\"}: boolean, int64, float64, float32, utf8, categorical, date, timestamp. Optional."),
            )
            .param(
                Param::json("columns")
                    .doc("The columns to keep, in this order (a list of names). Optional: all, in file order."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let mut options = serde_json::json!({
            "format": "csv",
            "csv": {
                "delimiter": ctx.param::<String>("delimiter")?,
                "header": ctx.param::<bool>("header")?,
                "missing": ctx.param::<serde_json::Value>("missing")?,
            },
        });
        if let Some(types) = ctx.param::<Option<serde_json::Value>>("types")? {
            options["types"] = types;
        }
        if let Some(columns) = ctx.param::<Option<serde_json::Value>>("columns")? {
            options["columns"] = columns;
        }
        sluice_std_common::ingest::ingest(ctx, &options)?;
        Ok(())
    }
}

export_step!(IngestCsv);
