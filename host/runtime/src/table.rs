//! Tables on the host side: Arrow record batches, their conversion to and
//! from the contract's `column` values, and their Parquet encoding on disk.

use crate::bindings::sluice::pipeline::tables::{Column, Dtype, Field as WitField, Values};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sluice_contract::DType;
use std::sync::Arc;

/// Why table data could not be converted, read or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A column has an Arrow type the contract does not carry.
    #[error(
        "column `{column}` has type {data_type}, which steps cannot read; supported: boolean, int64, float64, utf8"
    )]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: DataType,
    },
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow rejected the data.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// The host-side value behind a `table` resource handle.
#[derive(Debug, Clone)]
pub struct TableRes(pub RecordBatch);

/// The host-side value behind a `table-builder` resource handle.
#[derive(Debug, Default)]
pub struct TableBuilderRes {
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
}

/// The contract's field description of each column of `batch`.
pub(crate) fn wit_fields(batch: &RecordBatch) -> Vec<WitField> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| WitField {
            name: f.name().clone(),
            dtype: dtype_of(f.data_type()).unwrap_or(Dtype::Utf8),
            nullable: f.is_nullable(),
        })
        .collect()
}

fn dtype_of(t: &DataType) -> Option<Dtype> {
    Some(match DType::of_arrow(t)? {
        DType::Boolean => Dtype::Boolean,
        DType::Int64 => Dtype::Int64,
        DType::Float64 => Dtype::Float64,
        DType::Utf8 => Dtype::Utf8,
    })
}

/// Arrow's side of the contract's column types: the one mapping between a
/// [`DType`] and the Arrow type a host-held column has.
pub trait ArrowDType: Sized {
    /// The Arrow type of a column of this dtype.
    fn arrow(self) -> DataType;
    /// The dtype of an Arrow column, if sluice tables carry its type.
    fn of_arrow(t: &DataType) -> Option<Self>;
}

impl ArrowDType for DType {
    fn arrow(self) -> DataType {
        match self {
            DType::Boolean => DataType::Boolean,
            DType::Int64 => DataType::Int64,
            DType::Float64 => DataType::Float64,
            DType::Utf8 => DataType::Utf8,
        }
    }

    fn of_arrow(t: &DataType) -> Option<Self> {
        Some(match t {
            DataType::Boolean => DType::Boolean,
            DataType::Int64 => DType::Int64,
            DataType::Float64 => DType::Float64,
            DataType::Utf8 => DType::Utf8,
            _ => return None,
        })
    }
}

/// Copies one Arrow column out as the contract's `column`.
pub(crate) fn to_wit_column(name: &str, array: &dyn Array) -> Result<Column, TableError> {
    let nulls: Vec<u64> = (0..array.len())
        .filter(|&i| array.is_null(i))
        .map(|i| i as u64)
        .collect();
    let any = array.as_any();
    let values = if let Some(a) = any.downcast_ref::<Float64Array>() {
        Values::Float64(a.values().to_vec())
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        Values::Int64(a.values().to_vec())
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        Values::Boolean((0..a.len()).map(|i| a.value(i)).collect())
    } else if let Some(a) = any.downcast_ref::<StringArray>() {
        Values::Utf8(
            (0..a.len())
                .map(|i| {
                    if a.is_null(i) {
                        String::new()
                    } else {
                        a.value(i).to_string()
                    }
                })
                .collect(),
        )
    } else {
        return Err(TableError::UnsupportedType {
            column: name.to_string(),
            data_type: array.data_type().clone(),
        });
    };
    Ok(Column { values, nulls })
}

impl TableBuilderRes {
    /// Appends a column, checking its name, length and null indices.
    pub(crate) fn add(&mut self, name: String, column: Column) -> Result<(), String> {
        if name.is_empty() {
            return Err("column names must not be empty".into());
        }
        if self.fields.iter().any(|f| f.name() == &name) {
            return Err(format!("the table already has a column named `{name}`"));
        }
        let len = match &column.values {
            Values::Boolean(v) => v.len(),
            Values::Int64(v) => v.len(),
            Values::Float64(v) => v.len(),
            Values::Utf8(v) => v.len(),
        };
        if let Some(first) = self.columns.first()
            && first.len() != len
        {
            return Err(format!(
                "column `{name}` has {len} rows but the columns before it have {}",
                first.len()
            ));
        }
        let mut valid = vec![true; len];
        for &i in &column.nulls {
            let slot = valid.get_mut(i as usize).ok_or_else(|| {
                format!("column `{name}` marks row {i} as null, but it has only {len} rows")
            })?;
            *slot = false;
        }
        let nullable = !column.nulls.is_empty();
        let validity = nullable.then(|| valid.clone());
        let (array, dtype): (ArrayRef, DataType) = match column.values {
            Values::Boolean(v) => (
                Arc::new(BooleanArray::from(zip_validity(v, &validity))),
                DataType::Boolean,
            ),
            Values::Int64(v) => (
                Arc::new(Int64Array::from(zip_validity(v, &validity))),
                DataType::Int64,
            ),
            Values::Float64(v) => (
                Arc::new(Float64Array::from(zip_validity(v, &validity))),
                DataType::Float64,
            ),
            Values::Utf8(v) => (
                Arc::new(StringArray::from(zip_validity(v, &validity))),
                DataType::Utf8,
            ),
        };
        self.fields.push(Field::new(name, dtype, nullable));
        self.columns.push(array);
        Ok(())
    }

    /// The table built so far; leaves the builder empty.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, String> {
        if self.columns.is_empty() {
            return Err("a table needs at least one column; add one with add-column".into());
        }
        let fields = std::mem::take(&mut self.fields);
        let columns = std::mem::take(&mut self.columns);
        let rows = columns[0].len();
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| e.to_string())
    }
}

fn zip_validity<T>(values: Vec<T>, validity: &Option<Vec<bool>>) -> Vec<Option<T>> {
    match validity {
        None => values.into_iter().map(Some).collect(),
        Some(valid) => values
            .into_iter()
            .zip(valid)
            .map(|(v, &ok)| ok.then_some(v))
            .collect(),
    }
}

/// A small table with one column of each type (`x` float64, `n` int64,
/// `flag` boolean, `label` utf8; one null in `x`), for exercising a step
/// without real data (`sluice component check`).
pub fn synthetic() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("n", DataType::Int64, false),
        Field::new("flag", DataType::Boolean, false),
        Field::new("label", DataType::Utf8, false),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![
            Some(1.5),
            Some(2.5),
            None,
            Some(4.0),
        ])),
        Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
        Arc::new(BooleanArray::from(vec![true, false, true, false])),
        Arc::new(StringArray::from(vec!["a", "b", "a", "c"])),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("the synthetic table is well formed")
}

/// Encodes a table as Parquet. The bytes depend only on the data (and this
/// build's Parquet writer), so equal tables get equal digests.
pub fn to_parquet(batch: &RecordBatch) -> Result<Vec<u8>, TableError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by("sluice".to_string())
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Decodes Parquet bytes into one record batch, checking every column has a
/// type steps can read.
pub fn from_parquet(bytes: impl Into<Bytes>) -> Result<RecordBatch, TableError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.into())?;
    let rows = builder.metadata().file_metadata().num_rows().max(1) as usize;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(rows).build()?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b?);
    }
    let batch = match batches.len() {
        0 => RecordBatch::new_empty(schema),
        1 => batches.pop().unwrap(),
        _ => arrow_select::concat::concat_batches(&schema, &batches)?,
    };
    for f in batch.schema().fields() {
        if dtype_of(f.data_type()).is_none() {
            return Err(TableError::UnsupportedType {
                column: f.name().clone(),
                data_type: f.data_type().clone(),
            });
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBatch {
        let mut b = TableBuilderRes::default();
        b.add(
            "x".into(),
            Column {
                values: Values::Float64(vec![1.5, 0.0, 3.0]),
                nulls: vec![1],
            },
        )
        .unwrap();
        b.add(
            "s".into(),
            Column {
                values: Values::Utf8(vec!["a".into(), "b".into(), "c".into()]),
                nulls: vec![],
            },
        )
        .unwrap();
        b.finish().unwrap()
    }

    #[test]
    fn builder_marks_listed_rows_null_and_keeps_the_rest() {
        let t = sample();
        assert_eq!(t.num_rows(), 3);
        let col = to_wit_column("x", t.column(0).as_ref()).unwrap();
        assert_eq!(col.nulls, vec![1]);
        match col.values {
            Values::Float64(v) => assert_eq!((v[0], v[2]), (1.5, 3.0)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn builder_rejects_ragged_duplicate_and_out_of_range_columns() {
        let mut b = TableBuilderRes::default();
        let col = |n: usize| Column {
            values: Values::Int64(vec![0; n]),
            nulls: vec![],
        };
        b.add("a".into(), col(2)).unwrap();
        assert!(
            b.add("a".into(), col(2))
                .unwrap_err()
                .contains("already has")
        );
        assert!(
            b.add("b".into(), col(3))
                .unwrap_err()
                .contains("has 3 rows")
        );
        let bad = Column {
            values: Values::Int64(vec![0; 2]),
            nulls: vec![5],
        };
        assert!(b.add("c".into(), bad).unwrap_err().contains("row 5"));
    }

    #[test]
    fn parquet_round_trip_preserves_values_and_nulls() {
        let t = sample();
        let bytes = to_parquet(&t).unwrap();
        let back = from_parquet(bytes.clone()).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            to_parquet(&back).unwrap(),
            bytes,
            "encoding is deterministic"
        );
    }
}
