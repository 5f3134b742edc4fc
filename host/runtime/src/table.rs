//! Tables on the host side of the contract: the resources a step holds
//! ([`TableRes`], [`TableBuilderRes`]), their conversion to and from the
//! contract's `column` values, and their Parquet encoding in the store.
//! What the host computes on tables is `sluice-tables`'.

use crate::bindings::sluice::pipeline::tables::{
    Column, ColumnInfo, ColumnType as WitColumnType, Dtype, Field as WitField, Values,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions,
    StringArray,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, add_encoded_arrow_schema_to_metadata};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use sluice_contract::DType;
use sluice_tables::{ColumnType, Hold, Table};
use std::sync::Arc;

/// Why table data could not be converted, read or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A column has an Arrow type the contract does not carry.
    #[error(
        "column `{column}` has type {data_type}, which steps cannot read; supported: boolean, int64, float64, utf8, float32, date, timestamp (microseconds) and dictionary-encoded text"
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
    /// The encoding grew past the bytes it was allowed.
    #[error("its Parquet encoding passed {limit} bytes ({written} written when encoding stopped)")]
    TooLarge {
        /// The bytes allowed.
        limit: u64,
        /// The bytes written when encoding stopped.
        written: u64,
    },
}

/// The host-side value behind a `table` resource handle: the table, and
/// its reservation in the step's memory pool (released when the guest
/// drops the handle).
#[derive(Debug)]
pub struct TableRes {
    /// The table.
    pub table: Table,
    _hold: Hold,
}

impl TableRes {
    /// A handle's value holding `table` under `hold`.
    pub fn new(table: Table, hold: Hold) -> Self {
        TableRes { table, _hold: hold }
    }

    /// A table no step's pool counts (a server's request).
    pub fn unaccounted(batch: RecordBatch) -> Self {
        Self::new(Table::from_batch(batch), Hold::none())
    }
}

/// The host-side value behind a `table-builder` resource handle. The
/// columns added so far count toward the step's memory limit.
#[derive(Debug, Default)]
pub struct TableBuilderRes {
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
    holds: Vec<Hold>,
}

/// The contract's field description of each column of `schema`, in the
/// four basic types (`schema` names the full types).
pub(crate) fn wit_fields(schema: &Schema) -> Vec<WitField> {
    schema
        .fields()
        .iter()
        .map(|f| WitField {
            name: f.name().clone(),
            dtype: ColumnType::of_arrow(f.data_type())
                .and_then(|t| dtype_of(&t.basic()))
                .unwrap_or(Dtype::Utf8),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// The contract's full description of each column of `schema`.
pub(crate) fn column_infos(schema: &Schema) -> Vec<ColumnInfo> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let t = ColumnType::of_arrow(f.data_type()).unwrap_or(ColumnType::Utf8);
            let (column_type, timezone) = match t {
                ColumnType::Boolean => (WitColumnType::Boolean, None),
                ColumnType::Int64 => (WitColumnType::Int64, None),
                ColumnType::Float64 => (WitColumnType::Float64, None),
                ColumnType::Utf8 => (WitColumnType::Utf8, None),
                ColumnType::Float32 => (WitColumnType::Float32, None),
                ColumnType::Date => (WitColumnType::Date, None),
                ColumnType::Timestamp(tz) => (WitColumnType::Timestamp, tz),
                ColumnType::Categorical => (WitColumnType::Categorical, None),
            };
            ColumnInfo {
                name: f.name().clone(),
                column_type,
                nullable: f.is_nullable(),
                timezone,
            }
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

/// Copies one Arrow column out as the contract's `column`, presenting the
/// richer column types as their basic type (float32 widened, dates and
/// timestamps as integer counts, categoricals as text).
pub(crate) fn to_wit_column(name: &str, array: &dyn Array) -> Result<Column, TableError> {
    let basic = ColumnType::of_arrow(array.data_type()).map(|t| t.basic());
    if let Some(basic) = basic
        && &basic != array.data_type()
    {
        let cast = match array.data_type() {
            // Dates and timestamps reinterpret their integers; arrow's cast
            // to Int64 does the same for both.
            DataType::Date32 | DataType::Timestamp(..) => {
                arrow_cast::cast(array, &DataType::Int64)?
            }
            _ => arrow_cast::cast(array, &basic)?,
        };
        return to_wit_column(name, cast.as_ref());
    }
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
        // Values become the column's buffer as they are (no copy); a
        // validity bitmap is made only for a column that has nulls.
        let nulls = if column.nulls.is_empty() {
            None
        } else {
            let mut valid = vec![true; len];
            for &i in &column.nulls {
                let slot = valid.get_mut(i as usize).ok_or_else(|| {
                    format!("column `{name}` marks row {i} as null, but it has only {len} rows")
                })?;
                *slot = false;
            }
            Some(NullBuffer::from(valid))
        };
        let nullable = nulls.is_some();
        let (array, dtype): (ArrayRef, DataType) = match column.values {
            Values::Boolean(v) => (
                Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls)),
                DataType::Boolean,
            ),
            Values::Int64(v) => (
                Arc::new(Int64Array::new(ScalarBuffer::from(v), nulls)),
                DataType::Int64,
            ),
            Values::Float64(v) => (
                Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls)),
                DataType::Float64,
            ),
            Values::Utf8(v) => {
                let text = StringArray::from(v);
                let (offsets, values, _) = text.into_parts();
                (
                    Arc::new(StringArray::new(offsets, values, nulls)),
                    DataType::Utf8,
                )
            }
        };
        self.fields.push(Field::new(name, dtype, nullable));
        self.columns.push(array);
        Ok(())
    }

    /// Appends columns in order, each checked as [`TableBuilderRes::add`]
    /// checks it; on an error none of them is added. Returns how many were.
    pub(crate) fn add_all(&mut self, columns: Vec<(String, Column)>) -> Result<usize, String> {
        let before = self.columns.len();
        let added = columns.len();
        if before == 0 {
            self.fields.reserve(added);
            self.columns.reserve(added);
        }
        for (name, column) in columns {
            if let Err(e) = self.add(name, column) {
                self.fields.truncate(before);
                self.columns.truncate(before);
                return Err(e);
            }
        }
        Ok(added)
    }

    /// The size of the `n` columns added last, to reserve for them.
    pub(crate) fn size_of_last(&self, n: usize) -> u64 {
        let from = self.columns.len().saturating_sub(n);
        self.columns[from..]
            .iter()
            .map(|c| c.get_array_memory_size() as u64)
            .sum()
    }

    /// The names of the `n` columns added last.
    pub(crate) fn last_column_names(&self, n: usize) -> impl Iterator<Item = &str> + Clone {
        let from = self.fields.len().saturating_sub(n);
        self.fields[from..].iter().map(|f| f.name().as_str())
    }

    /// Keeps `hold` (for a column added) until the builder finishes or drops.
    pub(crate) fn keep(&mut self, hold: Hold) {
        self.holds.push(hold);
    }

    /// The table built so far; leaves the builder empty.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, String> {
        if self.columns.is_empty() {
            return Err("a table needs at least one column; add one with add-column".into());
        }
        let fields = std::mem::take(&mut self.fields);
        let columns = std::mem::take(&mut self.columns);
        self.holds.clear();
        let rows = columns[0].len();
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| e.to_string())
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

/// Rows per Parquet row group (and per record batch when read back): big
/// enough for fast columnar work, small enough to stream.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Encodes a table as Parquet. The bytes depend only on the data (and this
/// build's Parquet writer), so equal tables get equal digests.
///
/// Row groups of [`ROW_GROUP_ROWS`] rows; within each, the columns are
/// encoded on every core at once and appended in column order, so the
/// bytes do not depend on the number of threads.
pub fn to_parquet(table: &Table) -> Result<Vec<u8>, TableError> {
    to_parquet_within(table, u64::MAX)
}

/// [`to_parquet`], stopping with [`TableError::TooLarge`] as soon as a row
/// group takes the encoding past `limit` bytes: an output too big for its
/// step's output limit is refused without encoding the rest of it.
pub fn to_parquet_within(table: &Table, limit: u64) -> Result<Vec<u8>, TableError> {
    let schema = table.schema().clone();
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by("sluice".to_string())
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let parquet_schema = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(&schema)?;
    if parquet_schema.num_columns() != schema.fields().len() {
        // Nested columns (not a type steps make): the plain writer.
        let out = to_parquet_serial(table, props)?;
        if out.len() as u64 > limit {
            return Err(TableError::TooLarge {
                limit,
                written: out.len() as u64,
            });
        }
        return Ok(out);
    }
    add_encoded_arrow_schema_to_metadata(&schema, &mut props);
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, parquet_schema.root_schema_ptr(), Arc::new(props))?;
    let factory = ArrowRowGroupWriterFactory::new(&writer, schema.clone());
    let rows = table.num_rows();
    for (index, start) in (0..rows).step_by(ROW_GROUP_ROWS).enumerate() {
        let group = table.slice(start, ROW_GROUP_ROWS.min(rows - start));
        let writers = factory.create_column_writers(index)?;
        let (fields, parts) = (schema.fields(), group.batches());
        let chunks = in_parallel(writers, |j, mut w: ArrowColumnWriter| {
            for part in parts {
                for leaf in compute_leaves(&fields[j], part.column(j))? {
                    w.write(&leaf)?;
                }
            }
            w.close()
        })?;
        let mut row_group = writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        if writer.bytes_written() as u64 > limit {
            return Err(TableError::TooLarge {
                limit,
                written: writer.bytes_written() as u64,
            });
        }
    }
    writer.close()?;
    Ok(out)
}

/// Runs `work(i, item)` on every item on up to one thread per core (item
/// `i` on thread `i mod threads`) and returns the results in the items'
/// order, so that what is built from them does not depend on the number of
/// threads: the columns of a row group when encoding, the row groups when
/// decoding.
fn in_parallel<I: Send, T: Send, E: Send>(
    items: Vec<I>,
    work: impl Fn(usize, I) -> Result<T, E> + Sync,
) -> Result<Vec<T>, E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let mut lanes: Vec<Vec<(usize, I)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        lanes[i % threads].push((i, item));
    }
    let work = &work;
    let done: Vec<Vec<(usize, T)>> = std::thread::scope(|s| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                s.spawn(move || {
                    lane.into_iter()
                        .map(|(i, item)| Ok((i, work(i, item)?)))
                        .collect::<Result<Vec<_>, E>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a Parquet worker does not panic"))
            .collect::<Result<_, _>>()
    })?;
    let mut done: Vec<(usize, T)> = done.into_iter().flatten().collect();
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

/// [`to_parquet`] with the plain (one-thread) writer.
fn to_parquet_serial(table: &Table, props: WriterProperties) -> Result<Vec<u8>, TableError> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, table.schema().clone(), Some(props))?;
    for batch in table.batches() {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(out)
}

/// Encodes one record batch as Parquet (see [`to_parquet`]).
pub fn batch_to_parquet(batch: &RecordBatch) -> Result<Vec<u8>, TableError> {
    to_parquet(&Table::from_batch(batch.clone()))
}

/// Decodes Parquet bytes into a table of one batch per row group, checking
/// every column has a type tables hold. Row groups are decoded on every
/// core at once.
pub fn from_parquet(bytes: impl Into<Bytes>) -> Result<Table, TableError> {
    let bytes: Bytes = bytes.into();
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?;
    let schema = builder.schema().clone();
    let groups = builder.metadata().num_row_groups();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(groups)
        .max(1);
    let batches = if threads == 1 {
        let reader = builder.with_batch_size(ROW_GROUP_ROWS).build()?;
        reader.collect::<Result<Vec<_>, _>>()?
    } else {
        let metadata = builder.metadata().clone();
        let decoded = in_parallel((0..groups).collect(), |_, g: usize| {
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                bytes.clone(),
                ArrowReaderMetadata::try_new(metadata.clone(), Default::default())?,
            )
            .with_row_groups(vec![g])
            .with_batch_size(ROW_GROUP_ROWS)
            .build()?;
            Ok::<_, TableError>(reader.collect::<Result<Vec<_>, _>>()?)
        })?;
        decoded.into_iter().flatten().collect()
    };
    let table = Table::new(schema, batches)?;
    if let Err(e) = table.check_types() {
        return Err(TableError::UnsupportedType {
            column: e.column,
            data_type: e.data_type,
        });
    }
    Ok(table)
}

/// Decodes Parquet bytes into one record batch (for callers that need a
/// whole table at once: the monitor, a server's request log).
pub fn batch_from_parquet(bytes: impl Into<Bytes>) -> Result<RecordBatch, TableError> {
    Ok(from_parquet(bytes)?.to_batch()?)
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
    fn builder_keeps_values_and_nulls_of_every_type() {
        let mut b = TableBuilderRes::default();
        let columns = [
            ("b", Values::Boolean(vec![true, false, true])),
            ("n", Values::Int64(vec![7, 8, 9])),
            ("x", Values::Float64(vec![0.5, 1.5, 2.5])),
            ("s", Values::Utf8(vec!["a".into(), "b".into(), "c".into()])),
        ];
        for (name, values) in columns.clone() {
            let nulls = if name == "n" { vec![] } else { vec![0, 2] };
            b.add(name.into(), Column { values, nulls }).unwrap();
        }
        let t = b.finish().unwrap();
        for (i, (name, values)) in columns.into_iter().enumerate() {
            let field = t.schema().field(i).clone();
            assert_eq!(field.is_nullable(), name != "n", "{name}");
            let back = to_wit_column(name, t.column(i).as_ref()).unwrap();
            let nulls = if name == "n" { vec![] } else { vec![0, 2] };
            assert_eq!(back.nulls, nulls, "{name}");
            match (back.values, values) {
                (Values::Boolean(a), Values::Boolean(e)) => assert_eq!(a[1], e[1]),
                (Values::Int64(a), Values::Int64(e)) => assert_eq!(a, e),
                (Values::Float64(a), Values::Float64(e)) => assert_eq!(a[1], e[1]),
                (Values::Utf8(a), Values::Utf8(e)) => assert_eq!(a[1], e[1]),
                (a, e) => panic!("{name}: {a:?} is not {e:?}"),
            }
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
        let bytes = batch_to_parquet(&t).unwrap();
        let back = batch_from_parquet(bytes.clone()).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            batch_to_parquet(&back).unwrap(),
            bytes,
            "encoding is deterministic"
        );
    }

    /// A table of `rows` rows over several batches of uneven sizes: a
    /// float column with nulls, text, a timestamp with a zone and a
    /// dictionary-encoded column.
    fn wide(rows: usize) -> Table {
        use arrow_array::{DictionaryArray, TimestampMicrosecondArray, types::Int32Type};
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, false),
            Field::new(
                "t",
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new(
                "c",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ),
        ]));
        let mut batches = Vec::new();
        let mut start = 0;
        for len in [rows / 3, 7, rows - rows / 3 - 7] {
            let range = start..start + len;
            let x: Float64Array = range
                .clone()
                .map(|i| (i % 11 != 0).then_some(i as f64 * 0.5))
                .collect();
            let s: StringArray = range
                .clone()
                .map(|i| Some(format!("r{}", i % 1000)))
                .collect();
            let t = TimestampMicrosecondArray::from(
                range
                    .clone()
                    .map(|i| i as i64 * 1_000_000)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC");
            let c: DictionaryArray<Int32Type> = range
                .clone()
                .map(|i| ["low", "mid", "high"][i % 3])
                .collect();
            batches.push(
                RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(x), Arc::new(s), Arc::new(t), Arc::new(c)],
                )
                .unwrap(),
            );
            start += len;
        }
        Table::new(schema, batches).unwrap()
    }

    #[test]
    fn parallel_parquet_encoding_matches_the_plain_writer_and_round_trips() {
        // Three row groups, the last one partial.
        let rows = 2 * ROW_GROUP_ROWS + 1234;
        let table = wide(rows);
        let bytes = to_parquet(&table).unwrap();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by("sluice".to_string())
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        assert!(
            bytes == to_parquet_serial(&table, props).unwrap(),
            "the column-parallel writer writes what the plain writer writes"
        );
        let back = from_parquet(bytes.clone()).unwrap();
        assert_eq!(
            back.schema(),
            table.schema(),
            "types and time zones survive"
        );
        assert_eq!(
            back.batch_rows(),
            vec![ROW_GROUP_ROWS as u64, ROW_GROUP_ROWS as u64, 1234]
        );
        assert_eq!(back.to_batch().unwrap(), table.to_batch().unwrap());

        // Under a limit, encoding stops at the first row group past it.
        let first_group = to_parquet(&table.slice(0, ROW_GROUP_ROWS)).unwrap().len() as u64;
        match to_parquet_within(&table, first_group / 2) {
            Err(TableError::TooLarge { limit, written }) => {
                assert_eq!(limit, first_group / 2);
                assert!(written < bytes.len() as u64 / 2, "stopped early: {written}");
            }
            other => panic!("expected TooLarge, got {:?}", other.map(|b| b.len())),
        }
        assert_eq!(
            to_parquet_within(&table, bytes.len() as u64).unwrap(),
            bytes
        );
    }
}
