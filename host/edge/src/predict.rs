//! `sluice-edge predict`: rows as CSV in, predictions as CSV out, through
//! the same transform-then-model path as the server.

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema};
use sluice_runtime::table::ArrowDType;
use sluice_serve::ServedModel;
use std::io::Write;
use std::sync::Arc;

/// Rows predicted at a time.
const CHUNK_ROWS: usize = 8192;

/// The reader of a CSV file's rows, the model's input columns typed as it
/// takes them and the others as inferred from the first thousand rows.
fn reader<'a>(
    bytes: &'a [u8],
    model: &ServedModel,
) -> Result<arrow_csv::reader::BufReader<&'a [u8]>, String> {
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (inferred, _) = format
        .infer_schema(bytes, Some(1000))
        .map_err(|e| format!("the rows are not CSV with a header: {e}"))?;
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match model.inputs().and_then(|s| s.column(f.name())) {
            Some(c) => Field::new(f.name(), c.column_type.arrow(), true),
            None => f.as_ref().clone(),
        })
        .collect();
    arrow_csv::ReaderBuilder::new(Arc::new(Schema::new(fields)))
        .with_format(format)
        .with_batch_size(CHUNK_ROWS)
        .build_buffered(bytes)
        .map_err(|e| format!("reading the rows: {e}"))
}

/// All rows of a CSV file in one batch.
pub fn read_csv(bytes: &[u8], model: &ServedModel) -> Result<RecordBatch, String> {
    let batches = reader(bytes, model)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the rows: {e}"))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or("there are no rows")?;
    arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| e.to_string())
}

/// Predicts every row of `bytes` (CSV) and writes the prediction columns
/// as CSV to `out`; returns the rows predicted.
pub fn predict_csv(bytes: &[u8], model: &ServedModel, out: impl Write) -> Result<u64, String> {
    let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(out);
    let mut rows = 0u64;
    for chunk in reader(bytes, model)? {
        let chunk = chunk.map_err(|e| format!("reading the rows: {e}"))?;
        let predictions = model.predict(&chunk).map_err(|e| {
            format!(
                "in rows {}–{} (row 1 is the first after the header): {e}",
                rows + 1,
                rows + chunk.num_rows() as u64
            )
        })?;
        writer
            .write(&predictions)
            .map_err(|e| format!("writing the predictions: {e}"))?;
        rows += chunk.num_rows() as u64;
    }
    if rows == 0 {
        return Err("there are no rows".into());
    }
    Ok(rows)
}
