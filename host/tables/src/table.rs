//! [`Table`]: an immutable, host-held table as a list of Arrow record
//! batches, and the column types steps can see.

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// The types a host-held column may have. Readers and operations produce
/// only these; anything else is refused with an error naming the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// Booleans.
    Boolean,
    /// 64-bit integers.
    Int64,
    /// 64-bit floats.
    Float64,
    /// UTF-8 text.
    Utf8,
    /// 32-bit floats.
    Float32,
    /// Calendar dates (days since 1970-01-01).
    Date,
    /// Instants in microseconds since the Unix epoch, with an optional
    /// time zone.
    Timestamp(Option<String>),
    /// Dictionary-encoded text (32-bit keys).
    Categorical,
}

impl ColumnType {
    /// The column type of an Arrow type, if host tables carry it.
    pub fn of_arrow(t: &DataType) -> Option<Self> {
        Some(match t {
            DataType::Boolean => Self::Boolean,
            DataType::Int64 => Self::Int64,
            DataType::Float64 => Self::Float64,
            DataType::Utf8 => Self::Utf8,
            DataType::Float32 => Self::Float32,
            DataType::Date32 => Self::Date,
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Self::Timestamp(tz.as_ref().map(|t| t.to_string()))
            }
            DataType::Dictionary(k, v)
                if k.as_ref() == &DataType::Int32 && v.as_ref() == &DataType::Utf8 =>
            {
                Self::Categorical
            }
            _ => return None,
        })
    }

    /// The Arrow type of a column of this type.
    pub fn arrow(&self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Utf8 => DataType::Utf8,
            Self::Float32 => DataType::Float32,
            Self::Date => DataType::Date32,
            Self::Timestamp(tz) => {
                DataType::Timestamp(TimeUnit::Microsecond, tz.as_deref().map(Arc::from))
            }
            Self::Categorical => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
        }
    }

    /// The one of the four basic types (`boolean`, `int64`, `float64`,
    /// `utf8`) a column of this type is presented as to a step that reads
    /// it through `column`: float32 widens, dates and timestamps are their
    /// integer counts, categoricals their text.
    pub fn basic(&self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Int64 | Self::Date | Self::Timestamp(_) => DataType::Int64,
            Self::Float64 | Self::Float32 => DataType::Float64,
            Self::Utf8 | Self::Categorical => DataType::Utf8,
        }
    }

    /// Its name in the contract (`column-type`) and in documents.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Utf8 => "utf8",
            Self::Float32 => "float32",
            Self::Date => "date",
            Self::Timestamp(_) => "timestamp",
            Self::Categorical => "categorical",
        }
    }

    /// Whether its values are numbers (integers or floats).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Self::Int64 | Self::Float64 | Self::Float32)
    }
}

/// A column whose type host tables do not carry; the message names it and
/// lists what is supported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "column `{column}` has type {data_type}, which sluice tables do not hold; supported: boolean, int64, float64, float32, utf8, date, timestamp (microseconds, with or without a time zone) and dictionary-encoded text; cast it first (for example with `compute` or SQL `CAST`)"
)]
pub struct UnsupportedType {
    /// The column.
    pub column: String,
    /// Its Arrow type.
    pub data_type: DataType,
}

/// An immutable table held by the host: a schema and the record batches
/// holding its rows, in order. Cloning shares the batches.
#[derive(Debug, Clone)]
pub struct Table {
    schema: SchemaRef,
    batches: Arc<[RecordBatch]>,
    rows: usize,
}

impl Table {
    /// A table of `batches`, which must all have `schema` (empty batches
    /// are dropped).
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self, ArrowError> {
        for b in &batches {
            if b.schema().fields() != schema.fields() {
                return Err(ArrowError::SchemaError(format!(
                    "a batch has columns {:?}, the table {:?}",
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| (f.name(), f.data_type()))
                        .collect::<Vec<_>>(),
                    schema
                        .fields()
                        .iter()
                        .map(|f| (f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                )));
            }
        }
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        Ok(Table {
            schema,
            batches: batches.into(),
            rows,
        })
    }

    /// A table of one batch.
    pub fn from_batch(batch: RecordBatch) -> Self {
        let schema = batch.schema();
        Self::new(schema, vec![batch]).expect("a batch has its own schema")
    }

    /// A table with `schema` and no rows.
    pub fn empty(schema: SchemaRef) -> Self {
        Table {
            schema,
            batches: Arc::from(Vec::new()),
            rows: 0,
        }
    }

    /// Checks every column has a type host tables carry.
    pub fn check_types(&self) -> Result<(), UnsupportedType> {
        check_schema(&self.schema)
    }

    /// The schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The record batches, in row order (none is empty).
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// The number of rows.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// The number of rows of each batch.
    pub fn batch_rows(&self) -> Vec<u64> {
        self.batches.iter().map(|b| b.num_rows() as u64).collect()
    }

    /// The column names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// The field called `name`, or an error that lists the columns there are.
    pub fn field(&self, name: &str) -> Result<&Field, NoSuchColumn> {
        self.schema
            .field_with_name(name)
            .map_err(|_| NoSuchColumn::new(name, self))
    }

    /// Rows `offset .. offset + len` (clamped to the table), sharing the data.
    pub fn slice(&self, offset: usize, len: usize) -> Table {
        let out = self
            .pieces(offset, len)
            .map(|(b, from, n)| {
                if n == b.num_rows() {
                    b.clone()
                } else {
                    b.slice(from, n)
                }
            })
            .collect();
        Table::new(self.schema.clone(), out).expect("slices keep the schema")
    }

    /// Rows `offset .. offset + len` (clamped) of column `name` as one
    /// array (a copy only when the range spans batches). Only that column
    /// is sliced: a step reading a wide table column by column pays for
    /// one column each time, not for all of them.
    pub fn column_chunk(
        &self,
        name: &str,
        offset: usize,
        len: usize,
    ) -> Result<ArrayRef, NoSuchColumn> {
        let index = self
            .schema
            .index_of(name)
            .map_err(|_| NoSuchColumn::new(name, self))?;
        let mut pieces = self.pieces(offset, len).map(|(b, from, n)| {
            let column = b.column(index);
            if n == column.len() {
                column.clone()
            } else {
                column.slice(from, n)
            }
        });
        Ok(match (pieces.next(), pieces.next()) {
            (None, _) => arrow_array::new_empty_array(self.schema.field(index).data_type()),
            (Some(one), None) => one,
            (Some(first), Some(second)) => {
                let all: Vec<ArrayRef> = [first, second].into_iter().chain(pieces).collect();
                let arrays: Vec<&dyn Array> = all.iter().map(|a| a.as_ref()).collect();
                arrow_select::concat::concat(&arrays).expect("chunks of one column concatenate")
            }
        })
    }

    /// The batches that rows `offset .. offset + len` (clamped) touch, each
    /// with the first row and the number of rows of the range within it.
    fn pieces(
        &self,
        offset: usize,
        len: usize,
    ) -> impl Iterator<Item = (&RecordBatch, usize, usize)> {
        let start = offset.min(self.rows);
        let end = start + len.min(self.rows - start);
        let mut at = 0;
        self.batches.iter().filter_map(move |b| {
            let (lo, hi) = (at, at + b.num_rows());
            at = hi;
            if hi <= start || lo >= end {
                return None;
            }
            let from = start.max(lo) - lo;
            Some((b, from, end.min(hi) - lo - from))
        })
    }

    /// The whole table as one record batch (a copy when it has several).
    pub fn to_batch(&self) -> Result<RecordBatch, ArrowError> {
        match self.batches.len() {
            0 => Ok(RecordBatch::new_empty(self.schema.clone())),
            1 => Ok(self.batches[0].clone()),
            _ => arrow_select::concat::concat_batches(&self.schema, self.batches.iter()),
        }
    }
}

/// Checks every field of `schema` has a type host tables carry.
pub fn check_schema(schema: &Schema) -> Result<(), UnsupportedType> {
    for f in schema.fields() {
        if ColumnType::of_arrow(f.data_type()).is_none() {
            return Err(UnsupportedType {
                column: f.name().clone(),
                data_type: f.data_type().clone(),
            });
        }
    }
    Ok(())
}

/// A column name that is not in the table; the message lists those that are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the table has no column `{name}`; its columns are: {}", .columns.join(", "))]
pub struct NoSuchColumn {
    /// The name asked for.
    pub name: String,
    /// The table's columns.
    pub columns: Vec<String>,
}

impl NoSuchColumn {
    /// The error for `name` in `table`.
    pub fn new(name: &str, table: &Table) -> Self {
        NoSuchColumn {
            name: name.to_string(),
            columns: table.column_names(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array};

    fn two_batches() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
        ]));
        let b = |n: Vec<i64>, x: Vec<Option<f64>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(n)) as ArrayRef,
                    Arc::new(Float64Array::from(x)),
                ],
            )
            .unwrap()
        };
        Table::new(
            schema.clone(),
            vec![
                b(vec![1, 2, 3], vec![Some(1.0), None, Some(3.0)]),
                b(vec![], vec![]),
                b(vec![4, 5], vec![Some(4.0), Some(5.0)]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_table_drops_empty_batches_and_counts_rows() {
        let t = two_batches();
        assert_eq!(t.num_rows(), 5);
        assert_eq!(t.batch_rows(), vec![3, 2]);
    }

    #[test]
    fn a_chunk_spanning_batches_joins_their_values_and_nulls() {
        let t = two_batches();
        let x = t.column_chunk("x", 1, 3).unwrap();
        let x = x.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(x.len(), 3);
        assert!(x.is_null(0));
        assert_eq!((x.value(1), x.value(2)), (3.0, 4.0));
        assert_eq!(t.column_chunk("x", 10, 5).unwrap().len(), 0);
        let err = t.column_chunk("y", 0, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the table has no column `y`; its columns are: n, x"
        );
    }

    #[test]
    fn a_chunk_within_one_batch_holds_just_its_rows() {
        let t = two_batches();
        let ints = |name, offset, len| {
            let c = t.column_chunk(name, offset, len).unwrap();
            let c = c.as_any().downcast_ref::<Int64Array>().unwrap().clone();
            c.values().to_vec()
        };
        assert_eq!(ints("n", 1, 1), vec![2]);
        assert_eq!(ints("n", 0, 3), vec![1, 2, 3]);
        assert_eq!(ints("n", 3, 2), vec![4, 5]);
        assert_eq!(ints("n", 4, 9), vec![5]);
        assert_eq!(ints("n", 2, 0), Vec::<i64>::new());
        assert_eq!(
            t.column_chunk("x", 2, 0).unwrap().data_type(),
            &DataType::Float64
        );
    }

    #[test]
    fn a_slice_is_clamped_to_the_table() {
        let t = two_batches();
        let s = t.slice(2, 100);
        assert_eq!(s.num_rows(), 3);
        assert_eq!(s.batch_rows(), vec![1, 2]);
        assert_eq!(t.slice(9, 1).num_rows(), 0);
    }

    #[test]
    fn column_types_map_to_arrow_and_back_and_unknown_types_are_named() {
        for t in [
            ColumnType::Boolean,
            ColumnType::Int64,
            ColumnType::Float64,
            ColumnType::Utf8,
            ColumnType::Float32,
            ColumnType::Date,
            ColumnType::Timestamp(Some("UTC".into())),
            ColumnType::Timestamp(None),
            ColumnType::Categorical,
        ] {
            assert_eq!(ColumnType::of_arrow(&t.arrow()), Some(t));
        }
        let schema = Schema::new(vec![Field::new("u", DataType::UInt8, false)]);
        let err = check_schema(&schema).unwrap_err().to_string();
        assert!(err.starts_with("column `u` has type UInt8"), "{err}");
    }
}
