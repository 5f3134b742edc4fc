//! The table operations of the `tables` interface (0.1.1), done natively:
//! [`select`], [`compute`], [`filter`], [`take`], [`sort`], [`group_by`],
//! [`join`], [`sample`], [`split`] and [`concat`], and [`normalize`], which
//! brings any engine result back to the column types host tables hold.
//!
//! Row-wise work (select, take, filter, compute, sample, split, concat) is
//! done with Arrow kernels batch by batch, in parallel over the compute
//! threads, keeping row order. Work that must see all rows at once (sort,
//! group-by, join) runs as an Apache DataFusion query in the step's
//! [`Session`], so its state is reserved in the step's memory budget and
//! spills to disk where the engine can; a hidden row-number column makes
//! every such result's row order deterministic.
//!
//! Without the `operators` feature (the edge runtime) there is no query
//! engine: sort, group-by, join and the SQL expressions of compute and
//! filter are refused with [`OpError::Invalid`] and a message that says to
//! run them with `sluice` ([`OpError::is_unavailable`] tells them apart);
//! everything else works the same.
//!
//! `split` by `random` and `stratified` reproduces, row for row, the
//! assignment of the guest step `std:split` for the same seed and
//! fractions, so pipelines that move from the guest step to the host
//! operation keep their train, eval and test tables.

use crate::engine::{Session, parallelism};
use crate::memory::MemoryError;
use crate::table::{ColumnType, NoSuchColumn, Table, UnsupportedType};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array, UInt64Array,
};
use arrow_buffer::BooleanBuffer;
use arrow_cast::{CastOptions, cast_with_options};
use arrow_ord::sort::sort_to_indices;
#[cfg(feature = "operators")]
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, Schema, SchemaRef, SortOptions, TimeUnit};
use arrow_select::filter::filter_record_batch;
#[cfg(feature = "operators")]
use datafusion::{
    common::tree_node::TreeNode,
    common::{Column, DFSchema, SchemaError, TableReference},
    datasource::MemTable,
    error::DataFusionError,
    execution::SessionState,
    functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, stddev, sum, var_sample},
    functions_aggregate::first_last::{first_value_udaf, last_value_udaf},
    logical_expr::expr::NullTreatment,
    logical_expr::simplify::SimplifyContext,
    logical_expr::{ExprFunctionExt, SortExpr},
    optimizer::simplify_expressions::ExprSimplifier,
    physical_expr::PhysicalExpr,
    prelude::{DataFrame, Expr, JoinType, ident, lit, when},
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a table operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// The request is wrong (unknown column, bad expression, type mismatch,
    /// bad fractions); the message says what and what to do.
    #[error("{0}")]
    Invalid(String),
    /// Holding the result (or the query state) would exceed the step's
    /// memory limit.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The engine failed for another reason.
    #[error("{0}")]
    Engine(String),
}

impl From<NoSuchColumn> for OpError {
    fn from(e: NoSuchColumn) -> Self {
        OpError::Invalid(e.to_string())
    }
}

impl From<UnsupportedType> for OpError {
    fn from(e: UnsupportedType) -> Self {
        OpError::Invalid(e.to_string())
    }
}

impl OpError {
    /// Whether this is the refusal of an operation that needs the query
    /// engine, by a build without it (the edge runtime): see
    /// [`unavailable`]. Such a failure is the build's, not the request's.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OpError::Invalid(m) if m.contains(NOT_IN_EDGE))
    }

    /// The same error with `context` (what was being done) in front of an
    /// `Invalid` message.
    pub(crate) fn context(self, context: impl std::fmt::Display) -> Self {
        match self {
            OpError::Invalid(m) => OpError::Invalid(format!("{context}: {m}")),
            other => other,
        }
    }
}

/// An Arrow failure inside a kernel: the engine's fault, not the request's.
fn engine(e: impl std::fmt::Display) -> OpError {
    OpError::Engine(e.to_string())
}

/// Maps a DataFusion error met while doing `what` to an [`OpError`]: an
/// exhausted pool is [`OpError::Memory`]; planning, SQL, type and
/// data errors are [`OpError::Invalid`] (an unknown column of `table`, when
/// given, is reported with the table's columns); the rest is
/// [`OpError::Engine`].
#[cfg(feature = "operators")]
pub(crate) fn df_error(
    what: &str,
    s: &Session,
    e: &DataFusionError,
    table: Option<&Table>,
) -> OpError {
    let root = e.find_root();
    match root {
        DataFusionError::ResourcesExhausted(message) => OpError::Memory(MemoryError {
            what: what.to_string(),
            requested: requested_bytes(message),
            held: s.reserved(),
            limit: s.limit(),
        }),
        DataFusionError::SchemaError(inner, _) => match (inner.as_ref(), table) {
            (SchemaError::FieldNotFound { field, .. }, Some(t)) => {
                OpError::Invalid(no_such_column(&field.name, t))
            }
            _ => OpError::Invalid(clean(root)),
        },
        #[cfg(feature = "sql")]
        DataFusionError::SQL(..) => OpError::Invalid(clean(root)),
        DataFusionError::Plan(_)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_)
        | DataFusionError::Execution(_) => OpError::Invalid(clean(root)),
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            ArrowError::CastError(_)
            | ArrowError::ComputeError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::ParseError(_)
            | ArrowError::SchemaError(_) => OpError::Invalid(clean(root)),
            _ => OpError::Engine(clean(root)),
        },
        _ => OpError::Engine(clean(root)),
    }
}

/// `name` is not a column of `t`: the columns there are, and a hint when
/// one differs only in case (SQL lower-cases unquoted names).
#[cfg(feature = "operators")]
fn no_such_column(name: &str, t: &Table) -> String {
    let mut message = NoSuchColumn::new(name, t).to_string();
    if let Some(c) = t
        .column_names()
        .into_iter()
        .find(|c| c != name && c.to_lowercase() == name.to_lowercase())
    {
        message.push_str(&format!(
            " (SQL lower-cases unquoted names: write \"{c}\" in double quotes)"
        ));
    }
    message
}

/// A DataFusion error's message without its category prefix or backtrace.
#[cfg(feature = "operators")]
fn clean(e: &DataFusionError) -> String {
    let message = match e {
        #[cfg(feature = "sql")]
        DataFusionError::SQL(p, _) => p.to_string(),
        other => other.message().into_owned(),
    };
    let message = message
        .split(DataFusionError::BACK_TRACE_SEP)
        .next()
        .unwrap_or_default();
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(message);
    message.trim().to_string()
}

/// The bytes a DataFusion "Resources exhausted" message says were asked
/// for (`Failed to allocate additional 1024.0 KB for …`); 0 if it does not say.
#[cfg(feature = "operators")]
fn requested_bytes(message: &str) -> u64 {
    let Some(at) = message.find("allocate additional ") else {
        return 0;
    };
    let mut words = message[at + "allocate additional ".len()..].split_whitespace();
    let (Some(number), Some(unit)) = (words.next(), words.next()) else {
        return 0;
    };
    let Ok(value) = number.parse::<f64>() else {
        return 0;
    };
    let scale: f64 = match unit {
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    (value * scale) as u64
}

/// One key of [`sort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The column sorted on.
    pub column: String,
    /// Largest values first.
    pub descending: bool,
    /// Whether nulls come before the other values.
    pub nulls_first: bool,
}

/// One aggregate of [`group_by`]: `function` of `column`, output as `name`.
///
/// Functions: `count` (rows, or non-null values when `column` is set),
/// `sum`, `mean`, `min`, `max`, `std` and `var` (sample: divided by n − 1),
/// `count-distinct`, `first` and `last` (the first and last non-null value
/// in table order). All but `count` without a column ignore nulls; a group
/// with no non-null value gets null (`count`s get 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The function (see the type's documentation).
    pub function: String,
    /// The column aggregated; `None` only for `count`.
    pub column: Option<String>,
    /// The output column's name.
    pub name: String,
}

/// How [`join`] matches rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Matched pairs only.
    Inner,
    /// Every left row; right columns null where it has no match.
    Left,
    /// Every right row; left columns null where it has no match.
    Right,
    /// Every row of both.
    Full,
    /// Left rows that have a match (left columns only).
    Semi,
    /// Left rows that have no match (left columns only).
    Anti,
}

/// How [`split`] assigns rows to parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitBy {
    /// At random, reproducibly for the seed (as `std:split`).
    Random,
    /// At random within each value of this column, so every part keeps the
    /// column's proportions (as `std:split` with `stratify`).
    Stratified(String),
    /// By a seeded hash of these columns' values: equal keys land in the
    /// same part on every run and machine.
    Hash(Vec<String>),
    /// By this column's order: the first part holds the smallest values;
    /// nulls go first; ties never straddle parts.
    Ordered(String),
}

/// Rows per output batch where an operation builds new batches.
const CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// select, take, concat, sample

/// The named columns of `t`, in the order given, sharing its data (no copy).
/// A name not in the table, or named twice, is an error listing the columns.
pub fn select(t: &Table, columns: &[String]) -> Result<Table, OpError> {
    let mut indices = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(OpError::Invalid(format!(
                "column `{c}` is selected twice; name each column once"
            )));
        }
        indices.push(
            t.schema()
                .index_of(c)
                .map_err(|_| NoSuchColumn::new(c, t))?,
        );
    }
    let schema = Arc::new(t.schema().project(&indices).map_err(engine)?);
    let batches = t
        .batches()
        .iter()
        .map(|b| {
            batch(
                &schema,
                indices.iter().map(|&i| b.column(i).clone()).collect(),
                b.num_rows(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Table::new(schema, batches).map_err(engine)
}

/// A record batch of `columns` with `schema` and `rows` rows (the row count
/// matters only for a batch without columns).
fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch, OpError> {
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(engine)
}

/// The rows of `t` at `rows` (0-based), in that order; an index may repeat.
/// An index past the end is an error naming it and the row count.
pub fn take(t: &Table, rows: &[u64]) -> Result<Table, OpError> {
    let n = t.num_rows() as u64;
    if let Some(bad) = rows.iter().find(|&&r| r >= n) {
        return Err(OpError::Invalid(format!(
            "row index {bad} is out of range: the table has {n} rows (indices start at 0)"
        )));
    }
    gather(t, rows)
}

/// Rows `indices` of `b` (each below its length), in that order.
fn take_batch(b: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch, OpError> {
    let columns = b
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c.as_ref(), indices, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(engine)?;
    batch(b.schema_ref(), columns, indices.len())
}

/// The rows of `t` at `rows` (all in range), in that order: one `take` per
/// input batch when the indices ascend (a batch taken whole is shared, not
/// copied), else `take` in chunks of [`CHUNK`] rows from each column made
/// one array.
fn gather(t: &Table, rows: &[u64]) -> Result<Table, OpError> {
    let schema = t.schema().clone();
    if rows.is_empty() {
        return Ok(Table::empty(schema));
    }
    if schema.fields().is_empty() {
        let b = batch(&schema, Vec::new(), rows.len())?;
        return Table::new(schema, vec![b]).map_err(engine);
    }
    let batches = t.batches();
    let starts = batch_starts(t);
    let strict = rows.windows(2).all(|w| w[0] < w[1]);
    let out: Vec<RecordBatch> = if strict || rows.windows(2).all(|w| w[0] <= w[1]) {
        let work: Vec<usize> = (0..batches.len()).collect();
        let parts = par_map(&work, rows.len(), |&i| {
            let (lo, hi) = (starts[i] as u64, starts[i + 1] as u64);
            let from = rows.partition_point(|&r| r < lo);
            let to = rows.partition_point(|&r| r < hi);
            let mine = &rows[from..to];
            if mine.is_empty() {
                return Ok(None);
            }
            if strict && mine.len() as u64 == hi - lo {
                return Ok(Some(batches[i].clone()));
            }
            let local = UInt32Array::from_iter_values(mine.iter().map(|&r| (r - lo) as u32));
            take_batch(&batches[i], &local).map(Some)
        });
        parts
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect()
    } else if batches.len() == 1 {
        let chunks: Vec<&[u64]> = rows.chunks(CHUNK).collect();
        par_map(&chunks, rows.len(), |c| {
            take_batch(
                &batches[0],
                &UInt32Array::from_iter_values(c.iter().map(|&r| r as u32)),
            )
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
    } else {
        // Column by column: the column in one array (a sequential copy),
        // then `take` per chunk of indices, which is much faster than
        // interleaving from many batches; one column is copied at a time.
        let chunks: Vec<&[u64]> = rows.chunks(CHUNK).collect();
        let indices: Vec<UInt64Array> = chunks
            .iter()
            .map(|c| UInt64Array::from(c.to_vec()))
            .collect();
        let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); chunks.len()];
        for i in 0..schema.fields().len() {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            let whole = arrow_select::concat::concat(&parts).map_err(engine)?;
            let taken = par_map(&indices, rows.len(), |ix| {
                arrow_select::take::take(whole.as_ref(), ix, None).map_err(engine)
            });
            for (chunk, a) in columns.iter_mut().zip(taken) {
                chunk.push(a?);
            }
        }
        columns
            .into_iter()
            .zip(&chunks)
            .map(|(c, rows)| batch(&schema, c, rows.len()))
            .collect::<Result<Vec<_>, _>>()?
    };
    Table::new(schema, out).map_err(engine)
}

/// The first row of each batch of `t`, and the row count at the end.
fn batch_starts(t: &Table) -> Vec<usize> {
    let mut starts = Vec::with_capacity(t.batches().len() + 1);
    let mut at = 0;
    starts.push(0);
    for b in t.batches() {
        at += b.num_rows();
        starts.push(at);
    }
    starts
}

/// The tables one after another. Every part must have the same column
/// names and types, in the same order; the error names the first
/// difference (parts counted from 1). A column is nullable in the result if
/// it is in any part. The data is shared, not copied.
pub fn concat(parts: &[Table]) -> Result<Table, OpError> {
    let Some(first) = parts.first() else {
        return Err(OpError::Invalid(
            "concat needs at least one table".to_string(),
        ));
    };
    let want = first.schema().fields();
    for (i, p) in parts.iter().enumerate().skip(1) {
        let have = p.schema().fields();
        for (j, (a, b)) in want.iter().zip(have.iter()).enumerate() {
            if a.name() != b.name() {
                return Err(OpError::Invalid(format!(
                    "concat: part {} has column `{}` at position {} where part 1 has `{}`; \
                     every part needs the same columns in the same order (use `select`)",
                    i + 1,
                    b.name(),
                    j + 1,
                    a.name()
                )));
            }
            if a.data_type() != b.data_type() {
                return Err(OpError::Invalid(format!(
                    "concat: column `{}` is {} in part {} but {} in part 1; cast one first \
                     (with `compute`)",
                    a.name(),
                    type_name(b.data_type()),
                    i + 1,
                    type_name(a.data_type())
                )));
            }
        }
        if have.len() != want.len() {
            let (more, fewer, extra) = if have.len() > want.len() {
                (i + 1, 1, &have[want.len()])
            } else {
                (1, i + 1, &want[have.len()])
            };
            return Err(OpError::Invalid(format!(
                "concat: part {more} has a column `{}` that part {fewer} lacks; every part \
                 needs the same columns in the same order (use `select`)",
                extra.name()
            )));
        }
    }
    let fields: Vec<Field> = want
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let nullable = parts.iter().any(|p| p.schema().field(j).is_nullable());
            f.as_ref().clone().with_nullable(nullable)
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        first.schema().metadata().clone(),
    ));
    let mut batches = Vec::new();
    for p in parts {
        for b in p.batches() {
            if b.schema_ref().fields() == schema.fields() {
                batches.push(b.clone());
            } else {
                batches.push(batch(&schema, b.columns().to_vec(), b.num_rows())?);
            }
        }
    }
    Table::new(schema, batches).map_err(engine)
}

/// A column type's name for messages: the contract's name, with the time
/// zone of a timestamp; Arrow's for other types.
fn type_name(t: &DataType) -> String {
    match ColumnType::of_arrow(t) {
        Some(ColumnType::Timestamp(Some(tz))) => format!("timestamp ({tz})"),
        Some(c) => c.name().to_string(),
        None => t.to_string(),
    }
}

/// `rows` rows of `t` chosen at random without replacement (the whole
/// table if it has no more), in table order, reproducibly for `seed`: the
/// rows [`sample_indices`] names.
pub fn sample(t: &Table, rows: u64, seed: u64) -> Result<Table, OpError> {
    let n = t.num_rows();
    if rows >= n as u64 {
        return Ok(t.clone());
    }
    gather(t, &sample_indices(n as u64, rows, seed))
}

/// The indices, increasing, of `k` of `n` rows chosen at random without
/// replacement (all `n` if `k ≥ n`), reproducibly for `seed`: what
/// [`sample`] (and so a step's `tables.sample`) keeps, which `sluice test`
/// also uses to sample a file it never holds whole.
///
/// The rows are chosen by Floyd's algorithm driven by SplitMix64 seeded
/// with `seed`: for `j` from `n − k` to `n − 1`, draw `r` uniform in
/// `0..=j`; choose `r`, or `j` if `r` is already chosen.
pub fn sample_indices(n: u64, k: u64, seed: u64) -> Vec<u64> {
    if k >= n {
        return (0..n).collect();
    }
    let n = n as usize;
    let mut chosen = vec![0u64; n.div_ceil(64)];
    let mut rng = SplitMix64::new(seed);
    for j in n - k as usize..n {
        let r = rng.below(j as u64 + 1) as usize;
        let pick = if (chosen[r / 64] >> (r % 64)) & 1 == 1 {
            j
        } else {
            r
        };
        chosen[pick / 64] |= 1 << (pick % 64);
    }
    let mut indices = Vec::with_capacity(k as usize);
    for (w, &bits) in chosen.iter().enumerate() {
        let mut bits = bits;
        while bits != 0 {
            indices.push((w * 64) as u64 + u64::from(bits.trailing_zeros()));
            bits &= bits - 1;
        }
    }
    indices
}

// ---------------------------------------------------------------------------
// normalize

/// Brings a table (an engine result) to the column types host tables hold,
/// casting where needed (columns already right are shared, not copied):
///
/// - every integer type → int64 (a uint64 value above `i64::MAX` is an
///   error naming the column);
/// - float16 → float32; large and view text → utf8;
/// - date64 → date (whole days, toward zero);
/// - timestamps of any unit → microseconds, time zone kept (nanoseconds
///   are truncated; seconds and milliseconds that overflow are an error);
/// - dictionaries of text with any key type → categorical (int32 keys);
///   dictionaries of other values → their values' type, unpacked;
/// - the null type (an untyped all-null column, as `SELECT NULL AS x`
///   gives) → float64, all null, as pandas would hold it.
///
/// Any other type (decimals, binary, lists, structs, intervals, durations,
/// times of day) is an [`OpError::Invalid`] naming the column and saying
/// to cast it.
pub fn normalize(t: Table) -> Result<Table, OpError> {
    let schema = t.schema().clone();
    let mut targets = Vec::with_capacity(schema.fields().len());
    let mut changed = false;
    for f in schema.fields() {
        let target = target_type(f.name(), f.data_type())?;
        changed |= &target != f.data_type();
        targets.push(target);
    }
    if !changed {
        return Ok(t);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(&targets)
        .map(|(f, to)| {
            f.as_ref()
                .clone()
                .with_data_type(to.clone())
                .with_nullable(f.is_nullable() || f.data_type() == &DataType::Null)
        })
        .collect();
    let normal = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let mut batches = Vec::with_capacity(t.batches().len());
    for b in t.batches() {
        let mut columns = Vec::with_capacity(b.num_columns());
        for ((c, to), f) in b.columns().iter().zip(&targets).zip(schema.fields()) {
            if c.data_type() == to {
                columns.push(c.clone());
            } else {
                columns.push(cast_with_options(c, to, &options).map_err(|e| {
                    OpError::Invalid(format!(
                        "column `{}`: its {} values cannot be held as {}: {e}",
                        f.name(),
                        c.data_type(),
                        type_name(to)
                    ))
                })?);
            }
        }
        batches.push(batch(&normal, columns, b.num_rows())?);
    }
    Table::new(normal, batches).map_err(engine)
}

/// The type [`normalize`] gives a column `name` of type `t`.
fn target_type(name: &str, t: &DataType) -> Result<DataType, OpError> {
    use DataType as D;
    let unsupported = || {
        OpError::from(UnsupportedType {
            column: name.to_string(),
            data_type: t.clone(),
        })
    };
    Ok(match t {
        D::Boolean | D::Int64 | D::Float64 | D::Utf8 | D::Float32 | D::Date32 => t.clone(),
        D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => D::Int64,
        D::Float16 => D::Float32,
        D::LargeUtf8 | D::Utf8View => D::Utf8,
        D::Date64 => D::Date32,
        D::Null => D::Float64,
        D::Timestamp(_, tz) => D::Timestamp(TimeUnit::Microsecond, tz.clone()),
        D::Dictionary(_, v) if matches!(v.as_ref(), D::Utf8 | D::LargeUtf8 | D::Utf8View) => {
            D::Dictionary(Box::new(D::Int32), Box::new(D::Utf8))
        }
        D::Dictionary(_, v) => target_type(name, v).map_err(|_| unsupported())?,
        _ => return Err(unsupported()),
    })
}

/// A table of `batches` from the engine, whose schema is `schema`; batches
/// whose schema differs only in metadata or nullability are re-labelled.
#[cfg(feature = "operators")]
pub(crate) fn assemble(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Table, OpError> {
    let batches = batches
        .into_iter()
        .map(|b| {
            if b.schema_ref().fields() == schema.fields() {
                Ok(b)
            } else {
                let rows = b.num_rows();
                batch(&schema, b.columns().to_vec(), rows)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Table::new(schema, batches).map_err(engine)
}

// ---------------------------------------------------------------------------
// compute, filter

/// Work units for row-wise kernels: the batches of `t`, batches of more
/// than [`UNIT`] rows sliced (zero-copy) so the compute threads share the
/// work. A table without rows gives one empty batch, so that expressions
/// still have a schema to be evaluated against.
fn units(t: &Table) -> Vec<RecordBatch> {
    if t.batches().is_empty() {
        return vec![RecordBatch::new_empty(t.schema().clone())];
    }
    let mut out = Vec::new();
    for b in t.batches() {
        let mut at = 0;
        while at < b.num_rows() {
            let len = UNIT.min(b.num_rows() - at);
            out.push(b.slice(at, len));
            at += len;
        }
    }
    out
}

/// The most rows a work unit of a row-wise kernel has.
const UNIT: usize = 256 * 1024;

/// The words every refusal by a build without the query engine has (see
/// [`unavailable`]), by which [`OpError::is_unavailable`] knows one.
pub const NOT_IN_EDGE: &str = "not available in sluice-edge";

/// What a build without the query engine (the edge runtime, `sluice-edge`)
/// says when asked for `what`, an operation that needs it: what the build
/// can do, and to run it with `sluice`.
pub fn unavailable(what: &str) -> String {
    format!(
        "{what}: {NOT_IN_EDGE}, which replays transforms without a query engine (it has \
         column reads, select, take, slice, concat, sample, split, describe and table \
         building; sort, group-by, join, SQL and SQL expressions in compute and filter need \
         sluice's query engine): run this with `sluice` (`sluice predict`, `sluice serve`)"
    )
}

/// What a build with the query engine but without SQL says when asked for SQL.
#[cfg(all(feature = "operators", not(feature = "sql")))]
pub(crate) const NO_SQL: &str = "SQL is not available in this build of sluice (the edge runtime has no SQL \
     engine; it replays transforms): run this step with `sluice`";

/// `sql` read as an expression over `df_schema`'s columns.
#[cfg(feature = "sql")]
fn parse_expression(
    state: &SessionState,
    sql: &str,
    df_schema: &DFSchema,
) -> Result<Expr, DataFusionError> {
    state.create_logical_expr(sql, df_schema)
}

/// Without SQL, no expression can be read.
#[cfg(all(feature = "operators", not(feature = "sql")))]
fn parse_expression(_: &SessionState, sql: &str, _: &DFSchema) -> Result<Expr, DataFusionError> {
    Err(DataFusionError::Plan(format!("`{sql}`: {NO_SQL}")))
}

/// `sql`, a SQL expression over `t`'s columns, planned against `t`'s
/// schema (types coerced, functions resolved) for evaluation per batch.
#[cfg(feature = "operators")]
fn plan_expression(
    state: &SessionState,
    t: &Table,
    sql: &str,
    df_schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>, DataFusionError> {
    let expr = parse_expression(state, sql, df_schema)?;
    let aggregate = expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::AggregateFunction(_) | Expr::WindowFunction(_)
        ))
    })?;
    if aggregate {
        return Err(DataFusionError::Plan(
            "aggregate and window functions (sum, count, avg, row_number, …) work on groups \
             of rows, not one row: use group-by, or SQL"
                .to_string(),
        ));
    }
    // Coerced and simplified as a query's expressions are: some functions
    // (`coalesce`, `nvl`) only run once rewritten.
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(df_schema.clone()))
        .with_config_options(Arc::clone(state.config_options()))
        .with_query_execution_start_time(state.execution_props().query_execution_start_time)
        .build();
    let simplifier = ExprSimplifier::new(context);
    let expr = simplifier.simplify(simplifier.coerce(expr, df_schema)?)?;
    state.create_physical_expr(expr, df_schema).and_then(|e| {
        e.data_type(t.schema())?;
        Ok(e)
    })
}

/// A table's schema as DataFusion plans against it (unqualified names).
#[cfg(feature = "operators")]
fn df_schema(t: &Table) -> Result<DFSchema, OpError> {
    DFSchema::try_from(t.schema().as_ref().clone()).map_err(|e| OpError::Invalid(clean(&e)))
}

/// New columns computed from SQL expressions over `t`'s columns
/// (`(x - 3.5) / 2.0`, `coalesce(x, 0)`, `extract(hour from ts)`,
/// `case when c = 'a' then 1.0 else 0.0 end`), one per `(name,
/// expression)`: the result has exactly these columns, in order, one row
/// per row of `t`, with types as [`normalize`] gives them.
///
/// Expressions are DataFusion SQL: unquoted names are lower-cased, so a
/// column with capitals or spaces is written in double quotes (`"Age"`).
/// Aggregates are not allowed (use [`group_by`]). The expressions are
/// planned once and evaluated batch by batch on the compute threads.
///
/// Without the `operators` feature every expression is refused (see
/// [`unavailable`]) before anything is planned or built.
pub async fn compute(
    s: &Session,
    t: &Table,
    columns: &[(String, String)],
) -> Result<Table, OpError> {
    for (i, (name, _)) in columns.iter().enumerate() {
        if columns[..i].iter().any(|(n, _)| n == name) {
            return Err(OpError::Invalid(format!(
                "compute: the column name `{name}` is given twice; name each column once"
            )));
        }
    }
    #[cfg(feature = "operators")]
    return evaluate(s, t, columns).await;
    #[cfg(not(feature = "operators"))]
    {
        let _ = (s, t);
        Err(OpError::Invalid(match columns.first() {
            Some((name, sql)) => {
                unavailable(&format!("compute `{name}` = `{sql}`: SQL expressions"))
            }
            None => unavailable("compute: SQL expressions"),
        }))
    }
}

/// [`compute`]'s work once the request is checked: plans every expression,
/// then evaluates them batch by batch.
#[cfg(feature = "operators")]
async fn evaluate(s: &Session, t: &Table, columns: &[(String, String)]) -> Result<Table, OpError> {
    let schema = df_schema(t)?;
    let state = s.context().state();
    let mut exprs = Vec::with_capacity(columns.len());
    let mut fields = Vec::with_capacity(columns.len());
    for (name, sql) in columns {
        let context = || format!("compute `{name}` = `{sql}`");
        let e = plan_expression(&state, t, sql, &schema)
            .map_err(|e| df_error("compute", s, &e, Some(t)).context(context()))?;
        let data_type = e
            .data_type(t.schema())
            .map_err(|e| df_error("compute", s, &e, Some(t)).context(context()))?;
        let nullable = e.nullable(t.schema()).unwrap_or(true);
        fields.push(Field::new(name, data_type, nullable));
        exprs.push(e);
    }
    let (t, session, columns) = (t.clone(), s.clone(), columns.to_vec());
    s.compute(move || {
        let work = units(&t);
        let arrays = par_map(&work, t.num_rows(), |b| {
            exprs
                .iter()
                .zip(&fields)
                .zip(&columns)
                .map(|((e, f), (name, sql))| {
                    let a = e
                        .evaluate(b)
                        .and_then(|v| v.into_array(b.num_rows()))
                        .map_err(|e| {
                            df_error("compute", &session, &e, Some(&t))
                                .context(format!("compute `{name}` = `{sql}`"))
                        })?;
                    if a.data_type() == f.data_type() {
                        Ok(a)
                    } else {
                        arrow_cast::cast(&a, f.data_type()).map_err(engine)
                    }
                })
                .collect::<Result<Vec<ArrayRef>, OpError>>()
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let fields: Vec<Field> = fields
            .iter()
            .enumerate()
            .map(|(j, f)| {
                let nulls = arrays.iter().any(|a| a[j].null_count() > 0);
                f.clone().with_nullable(f.is_nullable() || nulls)
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batches = arrays
            .into_iter()
            .zip(&work)
            .map(|(a, b)| batch(&schema, a, b.num_rows()))
            .collect::<Result<Vec<_>, _>>()?;
        normalize(Table::new(schema, batches).map_err(engine)?)
    })
    .await
}

/// The rows of `t` where `predicate` is true, in order; null counts as
/// false. `predicate` is the name of a boolean column (filtered directly
/// with Arrow's filter kernel) or a SQL expression over the columns
/// (`age > 30 and city = 'Oslo'`; see [`compute`] on names), evaluated batch
/// by batch. A predicate that is not boolean is an error. Without the
/// `operators` feature only a boolean column can be given (an expression is
/// refused, see [`unavailable`]).
pub async fn filter(s: &Session, t: &Table, predicate: &str) -> Result<Table, OpError> {
    let column = match t.schema().index_of(predicate) {
        Ok(i) => {
            let f = t.schema().field(i);
            if f.data_type() != &DataType::Boolean {
                return Err(OpError::Invalid(format!(
                    "filter: column `{predicate}` is {}, not boolean; give a boolean column or \
                     a SQL predicate such as `{predicate} > 0`",
                    type_name(f.data_type())
                )));
            }
            Some(i)
        }
        Err(_) => None,
    };
    #[cfg(not(feature = "operators"))]
    if column.is_none() {
        return Err(OpError::Invalid(unavailable(&format!(
            "filter `{predicate}`: SQL predicates (only a boolean column can filter here)"
        ))));
    }
    #[cfg(feature = "operators")]
    let expr = match column {
        Some(_) => None,
        None => {
            let context = || format!("filter `{predicate}`");
            let schema = df_schema(t)?;
            let e = plan_expression(&s.context().state(), t, predicate, &schema)
                .map_err(|e| df_error("filter", s, &e, Some(t)).context(context()))?;
            let data_type = e
                .data_type(t.schema())
                .map_err(|e| df_error("filter", s, &e, Some(t)).context(context()))?;
            if data_type != DataType::Boolean && data_type != DataType::Null {
                return Err(OpError::Invalid(format!(
                    "filter `{predicate}`: the predicate gives {} values, not booleans; compare \
                     it with something (`... > 0`)",
                    type_name(&data_type)
                )));
            }
            Some(e)
        }
    };
    #[cfg(feature = "operators")]
    let (session, predicate) = (s.clone(), predicate.to_string());
    let t = t.clone();
    s.compute(move || {
        let work = units(&t);
        let parts = par_map(&work, t.num_rows(), |b| {
            #[cfg(not(feature = "operators"))]
            let mask: ArrayRef = b.column(column.expect("checked: a column")).clone();
            #[cfg(feature = "operators")]
            let mask: ArrayRef = match (column, &expr) {
                (Some(i), _) => b.column(i).clone(),
                (None, Some(e)) => e
                    .evaluate(b)
                    .and_then(|v| v.into_array(b.num_rows()))
                    .map_err(|e| {
                        df_error("filter", &session, &e, Some(&t))
                            .context(format!("filter `{predicate}`"))
                    })?,
                (None, None) => unreachable!("a column or an expression"),
            };
            let mask = match mask.data_type() {
                DataType::Boolean => mask.as_boolean().clone(),
                _ => BooleanArray::new_null(b.num_rows()),
            };
            let kept = mask.true_count();
            if kept == b.num_rows() {
                Ok(b.clone())
            } else if kept == 0 {
                Ok(b.slice(0, 0))
            } else {
                filter_record_batch(b, &mask).map_err(engine)
            }
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        Table::new(t.schema().clone(), coalesce(&t.schema().clone(), parts)?).map_err(engine)
    })
    .await
}

/// `batches` with runs of small ones joined into batches of about
/// [`CHUNK`] rows (large batches pass as they are).
fn coalesce(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, OpError> {
    let mut out = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    let flush = |pending: &mut Vec<RecordBatch>, out: &mut Vec<RecordBatch>| {
        match pending.len() {
            0 => {}
            1 => out.push(pending.pop().expect("one batch")),
            _ => {
                let rows = pending.iter().map(RecordBatch::num_rows).sum();
                let joined = if schema.fields().is_empty() {
                    batch(schema, Vec::new(), rows)?
                } else {
                    arrow_select::concat::concat_batches(schema, pending.iter()).map_err(engine)?
                };
                out.push(joined);
                pending.clear();
            }
        }
        Ok::<(), OpError>(())
    };
    for b in batches {
        if b.num_rows() == 0 {
            continue;
        }
        if b.num_rows() >= CHUNK {
            flush(&mut pending, &mut out)?;
            pending_rows = 0;
            out.push(b);
            continue;
        }
        pending_rows += b.num_rows();
        pending.push(b);
        if pending_rows >= CHUNK {
            flush(&mut pending, &mut out)?;
            pending_rows = 0;
        }
    }
    flush(&mut pending, &mut out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// sort, group-by, join (DataFusion queries)

/// A name starting with `base` that is not a column of any of `tables`.
#[cfg(feature = "operators")]
fn fresh_name(base: &str, tables: &[&Table]) -> String {
    let taken = |n: &str| tables.iter().any(|t| t.schema().index_of(n).is_ok());
    let mut name = base.to_string();
    let mut i = 1;
    while taken(&name) {
        name = format!("{base}_{i}");
        i += 1;
    }
    name
}

/// `t` as a DataFusion table: its batches (shared, not copied) in one
/// partition (see [`Session::context`] for why), and, if `row` is given,
/// an extra non-null uint64 column of that name holding each row's number.
///
/// Batches are never sliced (the engine counts a slice as its whole
/// buffers), and columns that are small slices of large buffers are copied
/// (see [`compact`]).
#[cfg(feature = "operators")]
pub(crate) fn provider(t: &Table, row: Option<&str>) -> Result<Arc<MemTable>, DataFusionError> {
    let mut fields: Vec<Field> = t
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if let Some(r) = row {
        fields.push(Field::new(r, DataType::UInt64, false));
    }
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        t.schema().metadata().clone(),
    ));
    let n = 1;
    let per = t.num_rows().div_ceil(n).max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new()];
    let (mut in_partition, mut at) = (0usize, 0u64);
    for b in t.batches() {
        if in_partition >= per && partitions.len() < n {
            partitions.push(Vec::new());
            in_partition = 0;
        }
        let mut columns = b.columns().iter().map(compact).collect::<Vec<_>>();
        if row.is_some() {
            let len = b.num_rows() as u64;
            columns.push(Arc::new(UInt64Array::from_iter_values(at..at + len)));
            at += len;
        }
        let b = RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )?;
        in_partition += b.num_rows();
        partitions.last_mut().expect("one partition").push(b);
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

/// `a`, copied if it is a small slice of larger buffers. The engine counts
/// a batch's whole buffers against the memory pool, so a table of many
/// slices of one large batch (a `slice`, an engine result) would be counted
/// many times over and fail a limit it fits in.
#[cfg(feature = "operators")]
fn compact(a: &ArrayRef) -> ArrayRef {
    let data = a.to_data();
    let held = data.get_buffer_memory_size();
    let used = data.get_slice_memory_size().unwrap_or(held);
    if held <= 2 * used + 64 * 1024 {
        return a.clone();
    }
    let all = UInt32Array::from_iter_values(0..a.len() as u32);
    arrow_select::take::take(a.as_ref(), &all, None).unwrap_or_else(|_| a.clone())
}

/// Runs `df` to the end: its schema and batches.
#[cfg(feature = "operators")]
async fn collect(df: DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>), DataFusionError> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok((schema, batches))
}

/// An unqualified column reference, the name taken as it is.
#[cfg(feature = "operators")]
fn column(name: &str) -> Expr {
    ident(name)
}

/// A column of the table registered as `table`.
#[cfg(feature = "operators")]
fn qualified(table: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(TableReference::bare(table)), name))
}

/// The rows of `t` ordered by `keys` (the first key first); stable: rows
/// equal on every key keep their table order. Runs as a DataFusion sort in
/// the step's memory pool (spilling to disk when it must); a table too
/// large to sort even so is [`OpError::Memory`].
#[cfg(feature = "operators")]
pub async fn sort(s: &Session, t: &Table, keys: &[SortKey]) -> Result<Table, OpError> {
    for k in keys {
        t.field(&k.column)?;
    }
    if keys.is_empty() || t.num_rows() < 2 {
        return Ok(t.clone());
    }
    let row = fresh_name("__sluice_row", &[t]);
    let (t2, keys, session) = (t.clone(), keys.to_vec(), s.clone());
    let result = s
        .run(async move {
            let ctx = session.context();
            let df = ctx.read_table(provider(&t2, Some(&row))?)?;
            let mut order: Vec<SortExpr> = keys
                .iter()
                .map(|k| column(&k.column).sort(!k.descending, k.nulls_first))
                .collect();
            order.push(column(&row).sort(true, false));
            let out: Vec<Expr> = t2.column_names().iter().map(|n| column(n)).collect();
            collect(df.sort(order)?.select(out)?).await
        })
        .await;
    let (schema, batches) = result.map_err(|e| df_error("a sort", s, &e, Some(t)))?;
    normalize(assemble(schema, batches)?)
}

/// Whether `function` needs a numeric column.
#[cfg(feature = "operators")]
fn numeric_only(function: &str) -> bool {
    matches!(function, "sum" | "mean" | "std" | "var")
}

/// The aggregate functions [`group_by`] knows.
#[cfg(feature = "operators")]
const FUNCTIONS: [&str; 10] = [
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "std",
    "var",
    "count-distinct",
    "first",
    "last",
];

/// The DataFusion expression of aggregate `a` (checked), ordering `first`
/// and `last` by the row-number column `row`.
#[cfg(feature = "operators")]
fn aggregate_expr(a: &Aggregate, row: &str) -> Result<Expr, DataFusionError> {
    let Some(c) = &a.column else {
        return Ok(count(lit(1i64)));
    };
    let c = column(c);
    let by_row = || vec![column(row).sort(true, false)];
    Ok(match a.function.as_str() {
        "count" => count(c),
        "sum" => sum(c),
        "mean" => avg(c),
        "min" => min(c),
        "max" => max(c),
        "std" => stddev(c),
        "var" => var_sample(c),
        "count-distinct" => count_distinct(c),
        "first" => first_value_udaf()
            .call(vec![c])
            .order_by(by_row())
            .null_treatment(NullTreatment::IgnoreNulls)
            .build()?,
        "last" => last_value_udaf()
            .call(vec![c])
            .order_by(by_row())
            .null_treatment(NullTreatment::IgnoreNulls)
            .build()?,
        other => unreachable!("checked: {other}"),
    })
}

/// One row per distinct combination of the `keys` columns' values (null
/// is a value of its own), sorted by the keys (ascending, nulls first),
/// with the key columns then one column per aggregate (see [`Aggregate`]).
/// Without keys: one row over the whole table (also when it has no rows).
/// Runs as a DataFusion aggregation in the step's memory pool.
#[cfg(feature = "operators")]
pub async fn group_by(
    s: &Session,
    t: &Table,
    keys: &[String],
    aggregates: &[Aggregate],
) -> Result<Table, OpError> {
    let mut names: Vec<&str> = Vec::new();
    for k in keys {
        t.field(k)
            .map_err(|e| OpError::from(e).context("group-by key"))?;
        if names.contains(&k.as_str()) {
            return Err(OpError::Invalid(format!(
                "group-by: the key `{k}` is given twice"
            )));
        }
        names.push(k);
    }
    for a in aggregates {
        let context = || format!("group-by aggregate `{}`", a.name);
        if !FUNCTIONS.contains(&a.function.as_str()) {
            return Err(OpError::Invalid(format!(
                "{}: unknown function `{}`; the functions are {}",
                context(),
                a.function,
                FUNCTIONS.join(", ")
            )));
        }
        match &a.column {
            None if a.function != "count" => {
                return Err(OpError::Invalid(format!(
                    "{}: `{}` needs a column",
                    context(),
                    a.function
                )));
            }
            None => {}
            Some(c) => {
                let f = t
                    .field(c)
                    .map_err(|e| OpError::from(e).context(context()))?;
                let numeric = ColumnType::of_arrow(f.data_type()).is_some_and(|c| c.is_numeric());
                if numeric_only(&a.function) && !numeric {
                    return Err(OpError::Invalid(format!(
                        "{}: `{}` needs a numeric column, and `{c}` is {}",
                        context(),
                        a.function,
                        type_name(f.data_type())
                    )));
                }
            }
        }
        if names.contains(&a.name.as_str()) {
            return Err(OpError::Invalid(format!(
                "group-by: the output column `{}` is named twice (keys and aggregates need \
                 distinct names)",
                a.name
            )));
        }
        names.push(&a.name);
    }
    let row = fresh_name("__sluice_row", &[t]);
    let needs_row = aggregates
        .iter()
        .any(|a| a.function == "first" || a.function == "last");
    let (t2, keys, aggregates, session) =
        (t.clone(), keys.to_vec(), aggregates.to_vec(), s.clone());
    let result = s
        .run(async move {
            let ctx = session.context();
            let df = ctx.read_table(provider(&t2, needs_row.then_some(row.as_str()))?)?;
            let group: Vec<Expr> = keys.iter().map(|k| column(k)).collect();
            let aggr = aggregates
                .iter()
                .map(|a| Ok(aggregate_expr(a, &row)?.alias(&a.name)))
                .collect::<Result<Vec<_>, DataFusionError>>()?;
            let mut df = df.aggregate(group, aggr)?;
            if !keys.is_empty() {
                df = df.sort(keys.iter().map(|k| column(k).sort(true, true)).collect())?;
            }
            let out: Vec<Expr> = keys
                .iter()
                .chain(aggregates.iter().map(|a| &a.name))
                .map(|n| column(n))
                .collect();
            collect(df.select(out)?).await
        })
        .await;
    let (schema, batches) = result.map_err(|e| df_error("a group-by", s, &e, Some(t)))?;
    normalize(assemble(schema, batches)?)
}

/// Whether join keys of types `a` and `b` can be compared: the same
/// type, two numbers, two texts (utf8 or categorical) or two timestamps.
#[cfg(feature = "operators")]
fn comparable(a: &DataType, b: &DataType) -> bool {
    use ColumnType as C;
    match (ColumnType::of_arrow(a), ColumnType::of_arrow(b)) {
        (Some(x), Some(y)) => {
            x == y
                || (x.is_numeric() && y.is_numeric())
                || (matches!(x, C::Utf8 | C::Categorical) && matches!(y, C::Utf8 | C::Categorical))
                || (matches!(x, C::Timestamp(_)) && matches!(y, C::Timestamp(_)))
        }
        _ => a == b,
    }
}

/// `left`'s rows matched with `right`'s on equal values of the `on`
/// columns (in both tables; nulls never match), as `how` says.
///
/// The result has `left`'s columns, then `right`'s columns that are not
/// keys (semi and anti joins: `left`'s columns only). For right and full
/// joins a key column holds the right row's key where the left row is
/// missing. A non-key column name in both tables is an error (rename or
/// drop one first). Rows come in left-table order (a left row's matches in
/// right-table order), then the right rows without a match in right-table
/// order. Runs as a DataFusion hash join in the step's memory pool.
#[cfg(feature = "operators")]
pub async fn join(
    s: &Session,
    left: &Table,
    right: &Table,
    on: &[String],
    how: JoinKind,
) -> Result<Table, OpError> {
    if on.is_empty() {
        return Err(OpError::Invalid(
            "join needs at least one key column in `on`".to_string(),
        ));
    }
    for (i, k) in on.iter().enumerate() {
        if on[..i].contains(k) {
            return Err(OpError::Invalid(format!(
                "join: the key `{k}` is given twice"
            )));
        }
        let l = left
            .field(k)
            .map_err(|e| OpError::from(e).context("join key, left table"))?;
        let r = right
            .field(k)
            .map_err(|e| OpError::from(e).context("join key, right table"))?;
        if !comparable(l.data_type(), r.data_type()) {
            return Err(OpError::Invalid(format!(
                "join: the key `{k}` is {} in the left table and {} in the right; cast one \
                 (with `compute`) so they compare",
                type_name(l.data_type()),
                type_name(r.data_type())
            )));
        }
    }
    let keeps_right = !matches!(how, JoinKind::Semi | JoinKind::Anti);
    if keeps_right {
        for f in right.schema().fields() {
            if !on.contains(f.name()) && left.schema().index_of(f.name()).is_ok() {
                return Err(OpError::Invalid(format!(
                    "join: both tables have a column `{}` that is not a key; rename or drop \
                     one of them first (`compute`, `select`)",
                    f.name()
                )));
            }
        }
    }
    let left_row = fresh_name("__sluice_left_row", &[left, right]);
    let right_row = fresh_name("__sluice_right_row", &[left, right]);
    let (l2, r2, on, session) = (left.clone(), right.clone(), on.to_vec(), s.clone());
    let result = s
        .run(async move {
            let ctx = session.context();
            ctx.register_table(TableReference::bare("l"), provider(&l2, Some(&left_row))?)?;
            ctx.register_table(TableReference::bare("r"), provider(&r2, Some(&right_row))?)?;
            let l = ctx.table(TableReference::bare("l")).await?;
            let r = ctx.table(TableReference::bare("r")).await?;
            let condition = on.iter().map(|k| qualified("l", k).eq(qualified("r", k)));
            let kind = match how {
                JoinKind::Inner => JoinType::Inner,
                JoinKind::Left => JoinType::Left,
                JoinKind::Right => JoinType::Right,
                JoinKind::Full => JoinType::Full,
                JoinKind::Semi => JoinType::LeftSemi,
                JoinKind::Anti => JoinType::LeftAnti,
            };
            let df = l.join_on(r, kind, condition)?;
            let mut out = Vec::new();
            let mut order = vec![qualified("l", &left_row).sort(true, false)];
            for name in l2.column_names() {
                let value = if on.contains(&name) && matches!(how, JoinKind::Right | JoinKind::Full)
                {
                    when(
                        qualified("l", &left_row).is_not_null(),
                        qualified("l", &name),
                    )
                    .otherwise(qualified("r", &name))?
                } else {
                    qualified("l", &name)
                };
                out.push(value.alias(&name));
            }
            if keeps_right {
                for name in r2.column_names() {
                    if !on.contains(&name) {
                        out.push(qualified("r", &name).alias(&name));
                    }
                }
                order.push(qualified("r", &right_row).sort(true, false));
            }
            collect(df.sort(order)?.select(out)?).await
        })
        .await;
    let (schema, batches) = result.map_err(|e| df_error("a join", s, &e, None))?;
    normalize(assemble(schema, batches)?)
}

// ---------------------------------------------------------------------------
// split

/// [`sort`] in a build without the query engine: refused (see [`unavailable`]).
#[cfg(not(feature = "operators"))]
pub async fn sort(_: &Session, _: &Table, _: &[SortKey]) -> Result<Table, OpError> {
    Err(OpError::Invalid(unavailable("sort")))
}

/// [`group_by`] in a build without the query engine: refused (see
/// [`unavailable`]).
#[cfg(not(feature = "operators"))]
pub async fn group_by(
    _: &Session,
    _: &Table,
    _: &[String],
    _: &[Aggregate],
) -> Result<Table, OpError> {
    Err(OpError::Invalid(unavailable("group-by")))
}

/// [`join`] in a build without the query engine: refused (see
/// [`unavailable`]).
#[cfg(not(feature = "operators"))]
pub async fn join(
    _: &Session,
    _: &Table,
    _: &Table,
    _: &[String],
    _: JoinKind,
) -> Result<Table, OpError> {
    Err(OpError::Invalid(unavailable("join")))
}

// ---------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea and Flood 2014), as the guest SDK has it.
///
/// This MUST stay bit-identical to `sdk/rust/src/rng.rs` (`SplitMix64`):
/// [`split`] reproduces `std:split`'s row assignment with it.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A uniform integer in `0..bound` (`bound` > 0), without modulo bias.
    fn below(&mut self, bound: u64) -> u64 {
        let zone = (u64::MAX / bound) * bound;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates, from the end).
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// SplitMix64's output function: a bijective 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The shares of [`split`]'s parts: `fractions` as given if they already
/// sum to 1 (within 1e-6, as `std:split` accepts them: so the split is
/// bit-identical to the guest step's), else divided by their sum.
fn shares(fractions: &[f64]) -> Result<Vec<f64>, OpError> {
    if fractions.is_empty() {
        return Err(OpError::Invalid(
            "split needs at least one fraction".to_string(),
        ));
    }
    if fractions.len() > usize::from(u16::MAX) {
        return Err(OpError::Invalid(format!(
            "split into {} parts: at most {} parts",
            fractions.len(),
            u16::MAX
        )));
    }
    for (i, f) in fractions.iter().enumerate() {
        if !f.is_finite() || *f < 0.0 {
            return Err(OpError::Invalid(format!(
                "split: fraction {} is {f}; fractions are weights, positive numbers of any \
                 total (0 gives an empty part)",
                i + 1
            )));
        }
    }
    let total: f64 = fractions.iter().sum();
    if total <= 0.0 {
        return Err(OpError::Invalid(
            "split: the fractions are all 0; give at least one positive weight".to_string(),
        ));
    }
    if (total - 1.0).abs() <= 1e-6 {
        Ok(fractions.to_vec())
    } else {
        Ok(fractions.iter().map(|f| f / total).collect())
    }
}

/// The row count at the end of each part of `n` rows cut in `shares`:
/// `round(n × (s₀ + … + sᵢ))`, never decreasing, at most `n`; the last is `n`.
fn cuts(n: usize, shares: &[f64]) -> Vec<usize> {
    let mut out = Vec::with_capacity(shares.len());
    let (mut acc, mut prev) = (0.0f64, 0usize);
    for s in &shares[..shares.len() - 1] {
        acc += s;
        let c = ((n as f64 * acc).round() as usize).max(prev).min(n);
        out.push(c);
        prev = c;
    }
    out.push(n);
    out
}

/// The rows of `t` in parts in proportion to `fractions` (weights of any
/// total, none negative, at least one positive; a zero weight gives an
/// empty part), each row in exactly one part.
///
/// - [`SplitBy::Random`] and [`SplitBy::Stratified`]: exactly `std:split`'s
///   assignment for the same seed and fractions (with three fractions:
///   train, eval, test). The rows (of each stratum in turn, strata in
///   ascending order of the value as text — the way the step saw them —
///   nulls first) are shuffled by Fisher–Yates driven by SplitMix64 seeded
///   with `seed`; part `i` ends after `round(n × (f₀ + … + fᵢ))` rows
///   overall; each stratum first gets `floor(m × fᵢ)` rows of each part and
///   its remaining rows go to the (stratum, part) pairs with the largest
///   fractional parts (ties in seeded random stratum order) while the part
///   has room. Fractions that sum to 1 within 1e-6 are used as given, other
///   weights divided by their sum.
/// - [`SplitBy::Hash`]: row goes to part `i` where `u` (below) falls in
///   `[f₀ + … + fᵢ₋₁, f₀ + … + fᵢ)`, `u` being the top 53 bits of a hash of
///   the key values over 2⁵³. The hash is FNV-1a (64-bit) over the seed's 8
///   little-endian bytes, then per key column a tag byte and the value's
///   canonical bytes — null `0`; boolean `1`, 0 or 1; int64, date (days)
///   and timestamp (µs) `2`, 8 bytes LE; float32/float64 `3`, the float64
///   bits LE (−0 as 0, one NaN); utf8 and categorical `4`, the length as 8
///   bytes LE then the UTF-8 bytes — finished with SplitMix64's mixer.
///   Part sizes follow the fractions on average.
/// - [`SplitBy::Ordered`]: the rows sorted by the column (ascending, nulls
///   first, ties in table order), cut after `round(n × (f₀ + … + fᵢ))`
///   rows, each cut moved forward past rows equal to the last row before
///   it, so equal values never straddle two parts (a part may be empty).
///
/// Rows keep table order within each part, except with `Ordered`, whose
/// parts are in the column's order.
pub fn split(t: &Table, by: &SplitBy, fractions: &[f64], seed: u64) -> Result<Vec<Table>, OpError> {
    let shares = shares(fractions)?;
    let n = t.num_rows();
    if u32::try_from(n).is_err() {
        return Err(OpError::Invalid(format!(
            "split: the table has {n} rows; split handles at most {} rows",
            u32::MAX
        )));
    }
    match by {
        SplitBy::Random => {
            let labels = assign(n, None, &shares, seed);
            by_labels(t, &labels, shares.len())
        }
        SplitBy::Stratified(name) => {
            t.field(name)
                .map_err(|e| OpError::from(e).context("split stratified by"))?;
            let (strata, count) = strata(t, name)?;
            let labels = assign(n, Some((&strata, count)), &shares, seed);
            by_labels(t, &labels, shares.len())
        }
        SplitBy::Hash(columns) => {
            if columns.is_empty() {
                return Err(OpError::Invalid(
                    "split by hash needs at least one column".to_string(),
                ));
            }
            for c in columns {
                t.field(c)
                    .map_err(|e| OpError::from(e).context("split by hash of"))?;
            }
            let labels = hash_labels(t, columns, &shares, seed)?;
            by_labels(t, &labels, shares.len())
        }
        SplitBy::Ordered(name) => {
            t.field(name)
                .map_err(|e| OpError::from(e).context("split ordered by"))?;
            ordered(t, name, &shares)
        }
    }
}

/// The part of each of `rows` rows, split as `std:split`'s `assign` does
/// (generalised from three parts to any number; identical for three):
/// `groups` gives each row's stratum (numbered in the guest's stratum
/// order) and the number of strata.
fn assign(rows: usize, groups: Option<(&[u32], usize)>, shares: &[f64], seed: u64) -> Vec<u16> {
    let k = shares.len();
    let mut rng = SplitMix64::new(seed);
    let mut members: Vec<Vec<u32>> = match groups {
        Some((ids, count)) => {
            let mut sizes = vec![0usize; count];
            for &g in ids {
                sizes[g as usize] += 1;
            }
            let mut m: Vec<Vec<u32>> = sizes.into_iter().map(Vec::with_capacity).collect();
            for (row, &g) in ids.iter().enumerate().take(rows) {
                m[g as usize].push(row as u32);
            }
            m
        }
        None => vec![(0..rows as u32).collect()],
    };
    for m in &mut members {
        rng.shuffle(m);
    }
    let ends = cuts(rows, shares);
    let mut room: Vec<usize> = ends
        .iter()
        .scan(0, |prev, &c| {
            let r = c - *prev;
            *prev = c;
            Some(r)
        })
        .collect();
    // Floors first.
    let mut counts: Vec<Vec<usize>> = members
        .iter()
        .map(|m| {
            shares
                .iter()
                .map(|f| (m.len() as f64 * f).floor() as usize)
                .collect()
        })
        .collect();
    let mut left: Vec<usize> = Vec::with_capacity(members.len());
    for (m, c) in members.iter().zip(&mut counts) {
        for s in 0..k {
            c[s] = c[s].min(room[s]);
            room[s] -= c[s];
        }
        let given: usize = c.iter().sum();
        // Rounding in the floors can overshoot a stratum by one.
        if given > m.len() {
            let s = (0..k).rev().find(|&s| c[s] > 0).unwrap_or(0);
            c[s] -= given - m.len();
            room[s] += given - m.len();
        }
        left.push(m.len() - c.iter().sum::<usize>());
    }
    // Then the rows left over, largest fractional part first.
    let ties: Vec<u64> = members.iter().map(|_| rng.next_u64()).collect();
    let mut candidates: Vec<(f64, u64, usize, usize)> = Vec::new();
    for (g, m) in members.iter().enumerate() {
        if left[g] == 0 {
            continue;
        }
        for (s, f) in shares.iter().enumerate() {
            let exact = m.len() as f64 * f;
            candidates.push((exact - exact.floor(), ties[g], g, s));
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.3.cmp(&b.3)));
    for &(fraction, _, g, s) in &candidates {
        if fraction > 0.0 && left[g] > 0 && room[s] > 0 {
            counts[g][s] += 1;
            left[g] -= 1;
            room[s] -= 1;
        }
    }
    // Whatever is still left (rare) fills the parts that have room.
    for (g, c) in counts.iter_mut().enumerate() {
        for s in 0..k {
            let n = left[g].min(room[s]);
            c[s] += n;
            left[g] -= n;
            room[s] -= n;
        }
    }
    let mut labels = vec![0u16; rows];
    for (m, c) in members.iter().zip(&counts) {
        let mut at = 0;
        for (s, &count) in c.iter().enumerate() {
            // The last part takes the rest, as the guest's does.
            let end = if s + 1 == k { m.len() } else { at + count };
            for &r in &m[at..end] {
                labels[r as usize] = s as u16;
            }
            at = end;
        }
    }
    labels
}

/// A fast, non-cryptographic hasher (FxHash's step) for the strata maps.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(b));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    fn finish(&self) -> u64 {
        mix(self.0)
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A row's stratum before strata are ordered: null.
const NULL_STRATUM: u32 = u32::MAX;

/// Distinct values seen so far, each with its number and its text.
struct Interner<K> {
    ids: FxMap<K, u32>,
    texts: Vec<String>,
}

impl<K: Hash + Eq> Interner<K> {
    fn new() -> Self {
        Interner {
            ids: FxMap::default(),
            texts: Vec::new(),
        }
    }

    fn id(&mut self, key: K, text: impl FnOnce() -> String) -> u32 {
        let texts = &mut self.texts;
        *self.ids.entry(key).or_insert_with(|| {
            texts.push(text());
            (texts.len() - 1) as u32
        })
    }
}

/// Each row's stratum for [`SplitBy::Stratified`], numbered in the order
/// `std:split` visits them (nulls first, then ascending order of the value
/// as the text the step saw: the way `column` presents it — floats as
/// float64 printed by Rust, dates and timestamps as their integer counts,
/// categoricals as their text), and the number of strata.
fn strata(t: &Table, name: &str) -> Result<(Vec<u32>, usize), OpError> {
    let index = t
        .schema()
        .index_of(name)
        .map_err(|_| NoSuchColumn::new(name, t))?;
    let data_type = t.schema().field(index).data_type().clone();
    let mut ids: Vec<u32> = Vec::with_capacity(t.num_rows());
    let columns = t.batches().iter().map(|b| b.column(index));
    let texts = match &data_type {
        DataType::Boolean => {
            let mut i = Interner::new();
            for c in columns {
                for v in c.as_boolean() {
                    ids.push(v.map_or(NULL_STRATUM, |v| i.id(v, || v.to_string())));
                }
            }
            i.texts
        }
        DataType::Int64 => integers(columns.map(|c| c.as_primitive::<Int64Type>()), &mut ids),
        DataType::Timestamp(TimeUnit::Microsecond, _) => integers(
            columns.map(|c| c.as_primitive::<TimestampMicrosecondType>()),
            &mut ids,
        ),
        DataType::Date32 => {
            let mut i = Interner::new();
            for c in columns {
                for v in c.as_primitive::<Date32Type>() {
                    ids.push(v.map_or(NULL_STRATUM, |v| i.id(v, || v.to_string())));
                }
            }
            i.texts
        }
        DataType::Float64 | DataType::Float32 => {
            let mut i = Interner::new();
            for c in columns {
                let values: Box<dyn Iterator<Item = Option<f64>>> = match c.data_type() {
                    DataType::Float32 => Box::new(
                        c.as_primitive::<Float32Type>()
                            .iter()
                            .map(|v| v.map(f64::from)),
                    ),
                    _ => Box::new(c.as_primitive::<Float64Type>().iter()),
                };
                for v in values {
                    ids.push(v.map_or(NULL_STRATUM, |v| {
                        let bits = if v.is_nan() {
                            f64::NAN.to_bits()
                        } else {
                            v.to_bits()
                        };
                        i.id(bits, || v.to_string())
                    }));
                }
            }
            i.texts
        }
        DataType::Utf8 => {
            let mut i: Interner<&str> = Interner::new();
            for c in t.batches().iter().map(|b| b.column(index)) {
                for v in c.as_string::<i32>() {
                    ids.push(v.map_or(NULL_STRATUM, |v| i.id(v, || v.to_string())));
                }
            }
            i.texts
        }
        DataType::Dictionary(k, v)
            if k.as_ref() == &DataType::Int32 && v.as_ref() == &DataType::Utf8 =>
        {
            let mut i: Interner<&str> = Interner::new();
            for c in t.batches().iter().map(|b| b.column(index)) {
                let d = c.as_dictionary::<Int32Type>();
                let values = d.values().as_string::<i32>();
                // Values are interned when a row uses them: a stratum
                // without rows would change the guest's random draws.
                let mut of_value: Vec<Option<u32>> = vec![None; values.len()];
                for key in d.keys() {
                    ids.push(match key {
                        None => NULL_STRATUM,
                        Some(k) => *of_value[k as usize].get_or_insert_with(|| {
                            let k = k as usize;
                            if values.is_null(k) {
                                NULL_STRATUM
                            } else {
                                let v = values.value(k);
                                i.id(v, || v.to_string())
                            }
                        }),
                    });
                }
            }
            i.texts
        }
        other => {
            return Err(UnsupportedType {
                column: name.to_string(),
                data_type: other.clone(),
            }
            .into());
        }
    };
    // Order the distinct texts; equal texts are one stratum.
    let mut order: Vec<u32> = (0..texts.len() as u32).collect();
    order.sort_by(|&a, &b| texts[a as usize].cmp(&texts[b as usize]));
    let has_null = ids.contains(&NULL_STRATUM);
    let mut final_id = vec![0u32; texts.len()];
    let mut next = u32::from(has_null);
    for (i, &p) in order.iter().enumerate() {
        if i > 0 && texts[order[i - 1] as usize] != texts[p as usize] {
            next += 1;
        }
        final_id[p as usize] = next;
    }
    let count = if texts.is_empty() {
        usize::from(has_null)
    } else {
        next as usize + 1
    };
    for id in &mut ids {
        *id = if *id == NULL_STRATUM {
            0
        } else {
            final_id[*id as usize]
        };
    }
    Ok((ids, count))
}

/// Strata of 64-bit integer columns (values as decimal text).
fn integers<'a, T>(
    columns: impl Iterator<Item = &'a arrow_array::PrimitiveArray<T>>,
    ids: &mut Vec<u32>,
) -> Vec<String>
where
    T: arrow_array::ArrowPrimitiveType<Native = i64>,
{
    let mut i = Interner::new();
    for c in columns {
        for v in c {
            ids.push(v.map_or(NULL_STRATUM, |v| i.id(v, || v.to_string())));
        }
    }
    i.texts
}

/// FNV-1a's 64-bit prime and offset basis.
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;
const FNV_BASIS: u64 = 0xCBF2_9CE4_8422_2325;

/// FNV-1a: `h` continued over `bytes`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Each row's part for [`SplitBy::Hash`] (the hash is described there).
fn hash_labels(
    t: &Table,
    columns: &[String],
    shares: &[f64],
    seed: u64,
) -> Result<Vec<u16>, OpError> {
    let n = t.num_rows();
    let mut h = vec![fnv(FNV_BASIS, &seed.to_le_bytes()); n];
    for name in columns {
        let index = t
            .schema()
            .index_of(name)
            .map_err(|_| NoSuchColumn::new(name, t))?;
        let mut at = 0;
        for b in t.batches() {
            let c = b.column(index);
            let hs = &mut h[at..at + c.len()];
            at += c.len();
            let int = |hs: &mut [u64], v: &mut dyn Iterator<Item = Option<i64>>| {
                for (h, v) in hs.iter_mut().zip(v) {
                    *h = match v {
                        None => fnv(*h, &[0]),
                        Some(v) => fnv(fnv(*h, &[2]), &v.to_le_bytes()),
                    }
                }
            };
            let float = |hs: &mut [u64], v: &mut dyn Iterator<Item = Option<f64>>| {
                for (h, v) in hs.iter_mut().zip(v) {
                    *h = match v {
                        None => fnv(*h, &[0]),
                        Some(v) => {
                            let v = if v == 0.0 { 0.0 } else { v };
                            let bits = if v.is_nan() {
                                f64::NAN.to_bits()
                            } else {
                                v.to_bits()
                            };
                            fnv(fnv(*h, &[3]), &bits.to_le_bytes())
                        }
                    }
                }
            };
            let text = |h: u64, v: Option<&str>| match v {
                None => fnv(h, &[0]),
                Some(v) => fnv(
                    fnv(fnv(h, &[4]), &(v.len() as u64).to_le_bytes()),
                    v.as_bytes(),
                ),
            };
            match c.data_type() {
                DataType::Boolean => {
                    for (h, v) in hs.iter_mut().zip(c.as_boolean()) {
                        *h = match v {
                            None => fnv(*h, &[0]),
                            Some(v) => fnv(*h, &[1, u8::from(v)]),
                        }
                    }
                }
                DataType::Int64 => int(hs, &mut c.as_primitive::<Int64Type>().iter()),
                DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    int(hs, &mut c.as_primitive::<TimestampMicrosecondType>().iter())
                }
                DataType::Date32 => int(
                    hs,
                    &mut c
                        .as_primitive::<Date32Type>()
                        .iter()
                        .map(|v| v.map(i64::from)),
                ),
                DataType::Float64 => float(hs, &mut c.as_primitive::<Float64Type>().iter()),
                DataType::Float32 => float(
                    hs,
                    &mut c
                        .as_primitive::<Float32Type>()
                        .iter()
                        .map(|v| v.map(f64::from)),
                ),
                DataType::Utf8 => {
                    for (h, v) in hs.iter_mut().zip(c.as_string::<i32>()) {
                        *h = text(*h, v);
                    }
                }
                DataType::Dictionary(k, v)
                    if k.as_ref() == &DataType::Int32 && v.as_ref() == &DataType::Utf8 =>
                {
                    let d = c.as_dictionary::<Int32Type>();
                    let values = d.values().as_string::<i32>();
                    for (h, k) in hs.iter_mut().zip(d.keys()) {
                        let v = k.and_then(|k| {
                            let k = k as usize;
                            values.is_valid(k).then(|| values.value(k))
                        });
                        *h = text(*h, v);
                    }
                }
                other => {
                    return Err(UnsupportedType {
                        column: name.clone(),
                        data_type: other.clone(),
                    }
                    .into());
                }
            }
        }
    }
    let mut ends = Vec::with_capacity(shares.len());
    let total: f64 = shares.iter().sum();
    let mut acc = 0.0;
    for s in shares {
        acc += s / total;
        ends.push(acc);
    }
    let last = shares.iter().rposition(|&s| s > 0.0).unwrap_or(0) as u16;
    let scale = 1.0 / (1u64 << 53) as f64;
    Ok(h.into_iter()
        .map(|h| {
            let u = (mix(h) >> 11) as f64 * scale;
            ends.iter().position(|&e| u < e).map_or(last, |p| p as u16)
        })
        .collect())
}

/// The parts of `t` given each row's part (`labels`), rows in table order,
/// batch by batch: Arrow's filter kernel per part for few parts, else
/// `take` per part of each batch's rows bucketed by part.
fn by_labels(t: &Table, labels: &[u16], parts: usize) -> Result<Vec<Table>, OpError> {
    let starts = batch_starts(t);
    let work: Vec<usize> = (0..t.batches().len()).collect();
    let pieces = par_map(&work, t.num_rows(), |&i| {
        let b = &t.batches()[i];
        let mine = &labels[starts[i]..starts[i + 1]];
        let mut out: Vec<Option<RecordBatch>> = Vec::with_capacity(parts);
        if parts <= 8 {
            for p in 0..parts {
                let p = p as u16;
                let mask = BooleanBuffer::collect_bool(mine.len(), |j| mine[j] == p);
                let kept = mask.count_set_bits();
                out.push(if kept == 0 {
                    None
                } else if kept == mine.len() {
                    Some(b.clone())
                } else {
                    Some(filter_record_batch(b, &BooleanArray::new(mask, None)).map_err(engine)?)
                });
            }
        } else {
            let mut sizes = vec![0usize; parts + 1];
            for &l in mine {
                sizes[l as usize + 1] += 1;
            }
            for p in 1..=parts {
                sizes[p] += sizes[p - 1];
            }
            let mut next = sizes.clone();
            let mut rows = vec![0u32; mine.len()];
            for (j, &l) in mine.iter().enumerate() {
                rows[next[l as usize]] = j as u32;
                next[l as usize] += 1;
            }
            let rows = UInt32Array::from(rows);
            for p in 0..parts {
                let (lo, hi) = (sizes[p], sizes[p + 1]);
                out.push(match hi - lo {
                    0 => None,
                    len if len == mine.len() => Some(b.clone()),
                    len => Some(take_batch(b, &rows.slice(lo, len))?),
                });
            }
        }
        Ok::<_, OpError>(out)
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    (0..parts)
        .map(|p| {
            let batches: Vec<RecordBatch> = pieces.iter().filter_map(|v| v[p].clone()).collect();
            Table::new(t.schema().clone(), batches).map_err(engine)
        })
        .collect()
}

/// [`SplitBy::Ordered`]: see [`split`].
fn ordered(t: &Table, name: &str, shares: &[f64]) -> Result<Vec<Table>, OpError> {
    let n = t.num_rows();
    let values = t.column_chunk(name, 0, n)?;
    let options = SortOptions {
        descending: false,
        nulls_first: true,
    };
    let (_, indices, _) = sort_to_indices(&values, Some(options), None)
        .map_err(engine)?
        .into_parts();
    // same[i]: sorted rows i and i + 1 hold equal values (nulls equal).
    let same = {
        let sorted = arrow_select::take::take(
            values.as_ref(),
            &UInt32Array::new(indices.clone(), None),
            None,
        )
        .map_err(engine)?;
        drop(values);
        if n < 2 {
            BooleanBuffer::new_unset(0)
        } else {
            arrow_ord::cmp::not_distinct(&sorted.slice(0, n - 1), &sorted.slice(1, n - 1))
                .map_err(engine)?
                .values()
                .clone()
        }
    };
    let mut order: Vec<u32> = indices.into();
    // Ties in table order: each run of set bits is a run of equal rows.
    for (from, to) in same.set_slices() {
        order[from..=to].sort_unstable();
    }
    let mut parts = Vec::with_capacity(shares.len());
    let mut prev = 0;
    for target in cuts(n, shares) {
        let mut end = target.max(prev);
        while end > 0 && end < n && same.value(end - 1) {
            end += 1;
        }
        let rows: Vec<u64> = order[prev..end].iter().map(|&r| u64::from(r)).collect();
        parts.push(gather(t, &rows)?);
        prev = end;
    }
    Ok(parts)
}

// ---------------------------------------------------------------------------
// parallelism

/// `f` over `items` on up to [`parallelism`] threads, results in order;
/// on the calling thread when there is one item or `rows` (the work's
/// size) is small.
fn par_map<T: Sync, R: Send>(items: &[T], rows: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = parallelism().min(items.len());
    if threads <= 1 || rows < 100_000 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    *results[i].lock().expect("no thread panicked holding it") = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .expect("no thread panicked holding it")
                .expect("every item was done")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "operators")]
    use arrow_array::TimestampMicrosecondArray;
    use arrow_array::{DictionaryArray, Float64Array, Int32Array, Int64Array, StringArray};
    use futures::executor::block_on;

    fn table(columns: Vec<(&str, ArrayRef)>) -> Table {
        Table::from_batch(
            RecordBatch::try_from_iter_with_nullable(
                columns.into_iter().map(|(n, a)| (n, a, true)),
            )
            .unwrap(),
        )
    }

    /// `t` re-cut into batches of `sizes` rows.
    fn chunked(t: &Table, sizes: &[usize]) -> Table {
        let b = t.to_batch().unwrap();
        let mut at = 0;
        let mut out = Vec::new();
        for &s in sizes {
            out.push(b.slice(at, s));
            at += s;
        }
        assert_eq!(at, t.num_rows());
        Table::new(t.schema().clone(), out).unwrap()
    }

    fn ints(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    fn floats(v: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    fn texts(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn bools(v: &[Option<bool>]) -> ArrayRef {
        Arc::new(BooleanArray::from(v.to_vec()))
    }

    fn col(t: &Table, name: &str) -> ArrayRef {
        t.column_chunk(name, 0, t.num_rows()).unwrap()
    }

    fn i64s(t: &Table, name: &str) -> Vec<Option<i64>> {
        col(t, name).as_primitive::<Int64Type>().iter().collect()
    }

    fn f64s(t: &Table, name: &str) -> Vec<Option<f64>> {
        col(t, name).as_primitive::<Float64Type>().iter().collect()
    }

    fn strs(t: &Table, name: &str) -> Vec<Option<String>> {
        col(t, name)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn owned(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|x| x.map(str::to_string)).collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn invalid(e: OpError) -> String {
        match e {
            OpError::Invalid(m) => m,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    /// Six people in batches of 2, 3 and 1 rows.
    fn people() -> Table {
        chunked(
            &table(vec![
                (
                    "id",
                    ints(&[Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)]),
                ),
                (
                    "city",
                    texts(&[
                        Some("Oslo"),
                        Some("Bergen"),
                        None,
                        Some("Oslo"),
                        Some("Bergen"),
                        Some("Oslo"),
                    ]),
                ),
                (
                    "age",
                    ints(&[Some(30), None, Some(41), Some(25), Some(30), Some(52)]),
                ),
                (
                    "score",
                    floats(&[Some(1.5), Some(2.0), None, Some(4.0), Some(0.5), None]),
                ),
                (
                    "ok",
                    bools(&[Some(true), None, Some(false), Some(true), Some(true), None]),
                ),
            ]),
            &[2, 3, 1],
        )
    }

    const PEOPLE_COLUMNS: &str = "id, city, age, score, ok";

    fn empty_people() -> Table {
        Table::empty(people().schema().clone())
    }

    // --- select ----------------------------------------------------------

    #[test]
    fn select_projects_in_the_order_given_without_copying() {
        let t = people();
        let s = select(&t, &names(&["age", "id"])).unwrap();
        assert_eq!(s.column_names(), names(&["age", "id"]));
        assert_eq!(s.batch_rows(), vec![2, 3, 1]);
        assert_eq!(
            i64s(&s, "age"),
            vec![Some(30), None, Some(41), Some(25), Some(30), Some(52)]
        );
        assert!(Arc::ptr_eq(
            s.batches()[1].column(0),
            t.batches()[1].column(2)
        ));
        let none = select(&t, &[]).unwrap();
        assert_eq!((none.num_rows(), none.column_names().len()), (6, 0));
        assert_eq!(
            select(&empty_people(), &names(&["ok"])).unwrap().num_rows(),
            0
        );
    }

    #[test]
    fn select_names_unknown_and_repeated_columns() {
        let t = people();
        assert_eq!(
            select(&t, &names(&["id", "nope"])).unwrap_err(),
            OpError::Invalid(format!(
                "the table has no column `nope`; its columns are: {PEOPLE_COLUMNS}"
            ))
        );
        assert_eq!(
            invalid(select(&t, &names(&["id", "id"])).unwrap_err()),
            "column `id` is selected twice; name each column once"
        );
    }

    // --- take ------------------------------------------------------------

    #[test]
    fn take_picks_rows_in_the_order_given_across_batches() {
        let t = people();
        let r = take(&t, &[5, 0, 3, 3]).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(6), Some(1), Some(4), Some(4)]);
        assert_eq!(
            f64s(&r, "score"),
            vec![None, Some(1.5), Some(4.0), Some(4.0)]
        );
        let r = take(&t, &[1, 2, 3]).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(2), Some(3), Some(4)]);
        assert_eq!(
            strs(&r, "city"),
            owned(&[Some("Bergen"), None, Some("Oslo")])
        );
        // A batch taken whole is shared.
        let r = take(&t, &[2, 3, 4]).unwrap();
        assert!(Arc::ptr_eq(
            r.batches()[0].column(0),
            t.batches()[1].column(0)
        ));
        // Repeats in ascending order are not mistaken for the whole batch.
        let r = take(&t, &[2, 2, 4]).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(3), Some(3), Some(5)]);
        let r = take(&t, &[]).unwrap();
        assert_eq!((r.num_rows(), r.column_names().len()), (0, 5));
    }

    #[test]
    fn take_refuses_an_index_past_the_end() {
        assert_eq!(
            invalid(take(&people(), &[0, 6]).unwrap_err()),
            "row index 6 is out of range: the table has 6 rows (indices start at 0)"
        );
        assert_eq!(
            invalid(take(&empty_people(), &[0]).unwrap_err()),
            "row index 0 is out of range: the table has 0 rows (indices start at 0)"
        );
    }

    // --- filter ----------------------------------------------------------

    #[test]
    fn filter_by_a_boolean_column_treats_null_as_false() {
        let s = Session::unlimited();
        let r = block_on(filter(&s, &people(), "ok")).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(1), Some(4), Some(5)]);
        let all_null = table(vec![
            ("b", bools(&[None, None, None])),
            ("x", ints(&[Some(1), Some(2), Some(3)])),
        ]);
        let r = block_on(filter(&s, &all_null, "b")).unwrap();
        assert_eq!((r.num_rows(), r.column_names().len()), (0, 2));
        let r = block_on(filter(&s, &empty_people(), "ok")).unwrap();
        assert_eq!(r.num_rows(), 0);
    }

    #[test]
    #[cfg(feature = "operators")]
    fn filter_by_a_sql_predicate() {
        let s = Session::unlimited();
        let t = people();
        let r = block_on(filter(&s, &t, "age > 28 and city = 'Oslo'")).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(1), Some(6)]);
        assert_eq!(r.schema(), t.schema());
        let r = block_on(filter(&s, &t, "score is null")).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(3), Some(6)]);
        let r = block_on(filter(&s, &t, "NOT ok")).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(3)]);
        let r = block_on(filter(&s, &empty_people(), "age > 1")).unwrap();
        assert_eq!(r.num_rows(), 0);
        // Many rows over many batches keep their order.
        let n = 300_000i64;
        let big = table(vec![(
            "v",
            Arc::new(Int64Array::from_iter_values(0..n)) as ArrayRef,
        )]);
        let big = chunked(&big, &[100_000, 150_000, 50_000]);
        let r = block_on(filter(&s, &big, "v % 3 = 0")).unwrap();
        assert_eq!(r.num_rows(), 100_000);
        let v = col(&r, "v");
        let v = v.as_primitive::<Int64Type>();
        assert!(
            v.values()
                .iter()
                .enumerate()
                .all(|(i, &x)| x == 3 * i as i64)
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn filter_errors_say_what_is_wrong() {
        let s = Session::unlimited();
        let t = people();
        assert_eq!(
            invalid(block_on(filter(&s, &t, "agee > 1")).unwrap_err()),
            format!(
                "filter `agee > 1`: the table has no column `agee`; its columns are: \
                 {PEOPLE_COLUMNS}"
            )
        );
        assert_eq!(
            invalid(block_on(filter(&s, &t, "age")).unwrap_err()),
            "filter: column `age` is int64, not boolean; give a boolean column or a SQL \
             predicate such as `age > 0`"
        );
        assert_eq!(
            invalid(block_on(filter(&s, &t, "age + 1")).unwrap_err()),
            "filter `age + 1`: the predicate gives int64 values, not booleans; compare it with \
             something (`... > 0`)"
        );
        let e = invalid(block_on(filter(&s, &t, "age >")).unwrap_err());
        assert!(e.starts_with("filter `age >`: "), "{e}");
        let upper = table(vec![("Age", ints(&[Some(1)]))]);
        assert_eq!(
            invalid(block_on(filter(&s, &upper, "Age > 0")).unwrap_err()),
            "filter `Age > 0`: the table has no column `age`; its columns are: Age (SQL \
             lower-cases unquoted names: write \"Age\" in double quotes)"
        );
        let r = block_on(filter(&s, &upper, "\"Age\" > 0")).unwrap();
        assert_eq!(r.num_rows(), 1);
    }

    // --- compute ---------------------------------------------------------

    #[test]
    #[cfg(feature = "operators")]
    fn compute_evaluates_sql_expressions_per_row() {
        let s = Session::unlimited();
        let t = people();
        let r = block_on(compute(
            &s,
            &t,
            &[
                ("a2".into(), "age * 2".into()),
                ("c".into(), "coalesce(score, 0)".into()),
                (
                    "flag".into(),
                    "case when city = 'Oslo' then 1.0 else 0.0 end".into(),
                ),
                ("up".into(), "upper(city)".into()),
            ],
        ))
        .unwrap();
        assert_eq!(r.column_names(), names(&["a2", "c", "flag", "up"]));
        assert_eq!(r.batch_rows(), vec![2, 3, 1]);
        let types: Vec<DataType> = r
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int64,
                DataType::Float64,
                DataType::Float64,
                DataType::Utf8
            ]
        );
        assert_eq!(
            i64s(&r, "a2"),
            vec![Some(60), None, Some(82), Some(50), Some(60), Some(104)]
        );
        assert_eq!(
            f64s(&r, "c"),
            vec![
                Some(1.5),
                Some(2.0),
                Some(0.0),
                Some(4.0),
                Some(0.5),
                Some(0.0)
            ]
        );
        assert_eq!(
            f64s(&r, "flag"),
            vec![
                Some(1.0),
                Some(0.0),
                Some(0.0),
                Some(1.0),
                Some(0.0),
                Some(1.0)
            ]
        );
        assert_eq!(
            strs(&r, "up"),
            owned(&[
                Some("OSLO"),
                Some("BERGEN"),
                None,
                Some("OSLO"),
                Some("BERGEN"),
                Some("OSLO")
            ])
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn compute_extracts_parts_of_timestamps() {
        let s = Session::unlimited();
        // 2024-01-01T05:30:00Z, 2024-01-01T23:59:59Z, null.
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_704_087_000_000_000),
            Some(1_704_153_599_000_000),
            None,
        ]));
        let t = table(vec![("ts", ts)]);
        let r = block_on(compute(
            &s,
            &t,
            &[
                ("hour".into(), "extract(hour from ts)".into()),
                ("year".into(), "date_part('year', ts)".into()),
            ],
        ))
        .unwrap();
        assert_eq!(r.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(i64s(&r, "hour"), vec![Some(5), Some(23), None]);
        assert_eq!(i64s(&r, "year"), vec![Some(2024), Some(2024), None]);
    }

    #[test]
    #[cfg(feature = "operators")]
    fn compute_over_an_empty_table_keeps_the_types() {
        let s = Session::unlimited();
        let r = block_on(compute(
            &s,
            &empty_people(),
            &[("x".into(), "'a'".into()), ("y".into(), "age + 1".into())],
        ))
        .unwrap();
        assert_eq!(r.num_rows(), 0);
        assert_eq!(r.schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(r.schema().field(1).data_type(), &DataType::Int64);
        // A constant fills every row.
        let r = block_on(compute(&s, &people(), &[("one".into(), "1".into())])).unwrap();
        assert_eq!(i64s(&r, "one"), vec![Some(1); 6]);
    }

    #[test]
    #[cfg(feature = "operators")]
    fn compute_errors_name_the_column_and_expression() {
        let s = Session::unlimited();
        let t = people();
        assert_eq!(
            invalid(block_on(compute(&s, &t, &[("x".into(), "nope + 1".into())])).unwrap_err()),
            format!(
                "compute `x` = `nope + 1`: the table has no column `nope`; its columns are: \
                 {PEOPLE_COLUMNS}"
            )
        );
        assert_eq!(
            invalid(
                block_on(compute(
                    &s,
                    &t,
                    &[("x".into(), "1".into()), ("x".into(), "2".into())]
                ))
                .unwrap_err()
            ),
            "compute: the column name `x` is given twice; name each column once"
        );
        assert_eq!(
            invalid(block_on(compute(&s, &t, &[("x".into(), "sum(age)".into())])).unwrap_err()),
            "compute `x` = `sum(age)`: aggregate and window functions (sum, count, avg, \
             row_number, …) work on groups of rows, not one row: use group-by, or SQL"
        );
        assert_eq!(
            invalid(block_on(compute(&s, &t, &[("x".into(), "age / 0".into())])).unwrap_err()),
            "compute `x` = `age / 0`: Divide by zero error"
        );
        assert_eq!(
            invalid(
                block_on(compute(&s, &t, &[("x".into(), "CAST(city AS INT)".into())])).unwrap_err()
            ),
            "compute `x` = `CAST(city AS INT)`: Cast error: Cannot cast string 'Oslo' to value \
             of Int32 type"
        );
    }

    #[cfg(not(feature = "operators"))]
    #[test]
    fn without_the_query_engine_its_operations_are_refused_saying_to_run_them_with_sluice() {
        let s = Session::new(1 << 20);
        let t = people();
        let e = block_on(compute(&s, &t, &[("x".into(), "age + 1".into())])).unwrap_err();
        assert!(e.is_unavailable(), "{e:?}");
        assert_eq!(
            invalid(e),
            "compute `x` = `age + 1`: SQL expressions: not available in sluice-edge, which \
             replays transforms without a query engine (it has column reads, select, take, \
             slice, concat, sample, split, describe and table building; sort, group-by, join, \
             SQL and SQL expressions in compute and filter need sluice's query engine): run \
             this with `sluice` (`sluice predict`, `sluice serve`)"
        );
        // The request is still checked first.
        let twice = [("x".into(), "1".into()), ("x".into(), "2".into())];
        let e = block_on(compute(&s, &t, &twice)).unwrap_err();
        assert!(!e.is_unavailable());
        assert_eq!(
            invalid(e),
            "compute: the column name `x` is given twice; name each column once"
        );

        // A boolean column filters as in every build; an expression is refused.
        let r = block_on(filter(&s, &t, "ok")).unwrap();
        assert_eq!(i64s(&r, "id"), vec![Some(1), Some(4), Some(5)]);
        assert_eq!(
            invalid(block_on(filter(&s, &t, "age")).unwrap_err()),
            "filter: column `age` is int64, not boolean; give a boolean column or a SQL \
             predicate such as `age > 0`"
        );
        let e = block_on(filter(&s, &t, "age > 30")).unwrap_err();
        assert!(e.is_unavailable());
        assert!(invalid(e).starts_with(
            "filter `age > 30`: SQL predicates (only a boolean column can filter here): \
                 not available in sluice-edge"
        ));

        let refused = [
            block_on(sort(&s, &t, &[])).unwrap_err(),
            block_on(group_by(&s, &t, &names(&["city"]), &[])).unwrap_err(),
            block_on(join(&s, &t, &t, &names(&["id"]), JoinKind::Inner)).unwrap_err(),
            block_on(crate::sql::sql(&s, "SELECT 1", &[])).unwrap_err(),
        ];
        for (e, op) in refused.into_iter().zip(["sort", "group-by", "join", "sql"]) {
            assert!(e.is_unavailable(), "{e:?}");
            let m = invalid(e);
            assert!(
                m.starts_with(&format!("{op}: not available in sluice-edge")),
                "{m}"
            );
            assert!(m.ends_with("run this with `sluice` (`sluice predict`, `sluice serve`)"));
        }
        assert_eq!(s.reserved(), 0, "nothing was built or held for a refusal");
    }

    // --- sort ------------------------------------------------------------

    #[cfg(feature = "operators")]
    fn key(column: &str, descending: bool, nulls_first: bool) -> SortKey {
        SortKey {
            column: column.into(),
            descending,
            nulls_first,
        }
    }

    #[test]
    #[cfg(feature = "operators")]
    fn sort_orders_by_several_keys_with_nulls_where_asked() {
        let s = Session::unlimited();
        let t = people();
        let r = block_on(sort(
            &s,
            &t,
            &[key("city", false, true), key("age", true, false)],
        ))
        .unwrap();
        assert_eq!(
            i64s(&r, "id"),
            vec![Some(3), Some(5), Some(2), Some(6), Some(1), Some(4)]
        );
        assert_eq!(r.schema(), t.schema());
        // Stable: equal cities keep table order; nulls last.
        let r = block_on(sort(&s, &t, &[key("city", false, false)])).unwrap();
        assert_eq!(
            i64s(&r, "id"),
            vec![Some(2), Some(5), Some(1), Some(4), Some(6), Some(3)]
        );
        // Descending, nulls first; the two 30s keep table order.
        let r = block_on(sort(&s, &t, &[key("age", true, true)])).unwrap();
        assert_eq!(
            i64s(&r, "id"),
            vec![Some(2), Some(6), Some(3), Some(1), Some(5), Some(4)]
        );
        let r = block_on(sort(&s, &empty_people(), &[key("age", false, true)])).unwrap();
        assert_eq!(r.num_rows(), 0);
        assert_eq!(
            invalid(block_on(sort(&s, &t, &[key("nope", false, true)])).unwrap_err()),
            format!("the table has no column `nope`; its columns are: {PEOPLE_COLUMNS}")
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn sort_is_stable_over_many_batches() {
        let s = Session::unlimited();
        let n = 10_000i64;
        let t = table(vec![
            (
                "k",
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 3))) as ArrayRef,
            ),
            ("i", Arc::new(Int64Array::from_iter_values(0..n))),
        ]);
        let t = chunked(&t, &[1000, 3000, 2500, 3500]);
        let r = block_on(sort(&s, &t, &[key("k", true, false)])).unwrap();
        let k = i64s(&r, "k");
        let i = i64s(&r, "i");
        let expected: Vec<(Option<i64>, Option<i64>)> = [2, 1, 0]
            .iter()
            .flat_map(|&k| {
                (0..n)
                    .filter(move |i| i % 3 == k)
                    .map(move |i| (Some(k), Some(i)))
            })
            .collect();
        assert_eq!(k.into_iter().zip(i).collect::<Vec<_>>(), expected);
    }

    #[test]
    #[cfg(feature = "operators")]
    fn sort_beyond_the_memory_limit_is_a_memory_error_not_a_panic() {
        // 400,000 rows of text and numbers (about 14 MiB, in slices that the
        // query copies) under a 4 MiB limit: the engine's sort wants 10 MiB
        // for merging before it can spill, so it fails cleanly.
        let n = 400_000usize;
        let t = table(vec![
            (
                "s",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("value-{:012}", (i * 7919) % n)),
                )) as ArrayRef,
            ),
            (
                "x",
                Arc::new(Int64Array::from_iter_values((0..n as i64).rev())),
            ),
        ]);
        let t = chunked(&t, &vec![10_000; 40]);
        let s = Session::new(4 << 20);
        match block_on(sort(&s, &t, &[key("s", false, true)])) {
            Err(OpError::Memory(e)) => {
                assert_eq!(e.what, "a sort");
                assert_eq!(e.limit, 4 << 20);
                assert!(e.requested > 0, "{e:?}");
            }
            other => panic!("expected a memory error, got {other:?}"),
        }
        // The query's reservations are released (its tasks end shortly after).
        let start = std::time::Instant::now();
        while s.reserved() > 0 && start.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(s.reserved(), 0);
    }

    // --- group-by --------------------------------------------------------

    #[cfg(feature = "operators")]
    fn agg(function: &str, column: Option<&str>, name: &str) -> Aggregate {
        Aggregate {
            function: function.into(),
            column: column.map(str::to_string),
            name: name.into(),
        }
    }

    #[cfg(feature = "operators")]
    fn every_aggregate() -> Vec<Aggregate> {
        vec![
            agg("count", None, "n"),
            agg("count", Some("age"), "n_age"),
            agg("sum", Some("age"), "sum_age"),
            agg("mean", Some("score"), "mean_score"),
            agg("min", Some("age"), "min_age"),
            agg("max", Some("score"), "max_score"),
            agg("std", Some("age"), "std_age"),
            agg("var", Some("age"), "var_age"),
            agg("count-distinct", Some("age"), "distinct_age"),
            agg("first", Some("score"), "first_score"),
            agg("last", Some("score"), "last_score"),
        ]
    }

    #[test]
    #[cfg(feature = "operators")]
    fn group_by_computes_every_aggregate_and_sorts_by_the_keys() {
        let s = Session::unlimited();
        let r = block_on(group_by(
            &s,
            &people(),
            &names(&["city"]),
            &every_aggregate(),
        ))
        .unwrap();
        assert_eq!(
            r.column_names(),
            names(&[
                "city",
                "n",
                "n_age",
                "sum_age",
                "mean_score",
                "min_age",
                "max_score",
                "std_age",
                "var_age",
                "distinct_age",
                "first_score",
                "last_score"
            ])
        );
        // Groups: null (id 3), Bergen (ids 2, 5), Oslo (ids 1, 4, 6).
        assert_eq!(
            strs(&r, "city"),
            owned(&[None, Some("Bergen"), Some("Oslo")])
        );
        assert_eq!(i64s(&r, "n"), vec![Some(1), Some(2), Some(3)]);
        assert_eq!(i64s(&r, "n_age"), vec![Some(1), Some(1), Some(3)]);
        assert_eq!(i64s(&r, "sum_age"), vec![Some(41), Some(30), Some(107)]);
        assert_eq!(f64s(&r, "mean_score"), vec![None, Some(1.25), Some(2.75)]);
        assert_eq!(i64s(&r, "min_age"), vec![Some(41), Some(30), Some(25)]);
        assert_eq!(f64s(&r, "max_score"), vec![None, Some(2.0), Some(4.0)]);
        // Oslo's ages 30, 25, 52: mean 107/3, squared deviations 1238/3,
        // sample variance 619/3.
        let var = f64s(&r, "var_age");
        assert_eq!(&var[..2], &[None, None]);
        assert!((var[2].unwrap() - 619.0 / 3.0).abs() < 1e-9, "{var:?}");
        let std = f64s(&r, "std_age");
        assert_eq!(&std[..2], &[None, None]);
        assert!((std[2].unwrap() - (619.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert_eq!(i64s(&r, "distinct_age"), vec![Some(1), Some(1), Some(3)]);
        assert_eq!(f64s(&r, "first_score"), vec![None, Some(2.0), Some(1.5)]);
        assert_eq!(f64s(&r, "last_score"), vec![None, Some(0.5), Some(4.0)]);
    }

    #[test]
    #[cfg(feature = "operators")]
    fn group_by_without_keys_gives_one_row_even_for_no_rows() {
        let s = Session::unlimited();
        let aggs = [
            agg("count", None, "n"),
            agg("sum", Some("age"), "sum_age"),
            agg("mean", Some("age"), "mean_age"),
        ];
        let r = block_on(group_by(&s, &people(), &[], &aggs)).unwrap();
        assert_eq!(i64s(&r, "n"), vec![Some(6)]);
        assert_eq!(i64s(&r, "sum_age"), vec![Some(178)]);
        assert_eq!(f64s(&r, "mean_age"), vec![Some(178.0 / 5.0)]);
        let r = block_on(group_by(&s, &empty_people(), &[], &aggs)).unwrap();
        assert_eq!(i64s(&r, "n"), vec![Some(0)]);
        assert_eq!(i64s(&r, "sum_age"), vec![None]);
        let r = block_on(group_by(&s, &empty_people(), &names(&["city"]), &aggs)).unwrap();
        assert_eq!((r.num_rows(), r.column_names().len()), (0, 4));
    }

    #[test]
    #[cfg(feature = "operators")]
    fn group_by_several_keys_over_several_batches() {
        let s = Session::unlimited();
        let t = chunked(
            &table(vec![
                (
                    "a",
                    ints(&[Some(2), Some(1), Some(2), None, Some(1), Some(2)]),
                ),
                (
                    "b",
                    texts(&[Some("x"), Some("y"), Some("x"), Some("x"), Some("y"), None]),
                ),
                (
                    "v",
                    floats(&[
                        Some(1.0),
                        Some(2.0),
                        Some(3.0),
                        Some(4.0),
                        Some(5.0),
                        Some(6.0),
                    ]),
                ),
            ]),
            &[1, 4, 1],
        );
        let r = block_on(group_by(
            &s,
            &t,
            &names(&["a", "b"]),
            &[
                agg("sum", Some("v"), "total"),
                agg("first", Some("v"), "first"),
            ],
        ))
        .unwrap();
        assert_eq!(i64s(&r, "a"), vec![None, Some(1), Some(2), Some(2)]);
        assert_eq!(
            strs(&r, "b"),
            owned(&[Some("x"), Some("y"), None, Some("x")])
        );
        assert_eq!(
            f64s(&r, "total"),
            vec![Some(4.0), Some(7.0), Some(6.0), Some(4.0)]
        );
        assert_eq!(
            f64s(&r, "first"),
            vec![Some(4.0), Some(2.0), Some(6.0), Some(1.0)]
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn group_by_refuses_bad_requests() {
        let s = Session::unlimited();
        let t = people();
        let run = |keys: &[&str], aggs: &[Aggregate]| {
            invalid(block_on(group_by(&s, &t, &names(keys), aggs)).unwrap_err())
        };
        assert_eq!(
            run(&["nope"], &[]),
            format!(
                "group-by key: the table has no column `nope`; its columns are: {PEOPLE_COLUMNS}"
            )
        );
        assert_eq!(
            run(&[], &[agg("median", Some("age"), "m")]),
            "group-by aggregate `m`: unknown function `median`; the functions are count, sum, \
             mean, min, max, std, var, count-distinct, first, last"
        );
        assert_eq!(
            run(&[], &[agg("mean", Some("city"), "m")]),
            "group-by aggregate `m`: `mean` needs a numeric column, and `city` is utf8"
        );
        assert_eq!(
            run(&[], &[agg("sum", None, "m")]),
            "group-by aggregate `m`: `sum` needs a column"
        );
        assert_eq!(
            run(&["city"], &[agg("count", None, "city")]),
            "group-by: the output column `city` is named twice (keys and aggregates need \
             distinct names)"
        );
        assert_eq!(
            run(&[], &[agg("max", Some("nope"), "m")]),
            format!(
                "group-by aggregate `m`: the table has no column `nope`; its columns are: \
                 {PEOPLE_COLUMNS}"
            )
        );
    }

    // --- join ------------------------------------------------------------

    #[cfg(feature = "operators")]
    fn left() -> Table {
        chunked(
            &table(vec![
                ("k", ints(&[Some(1), Some(2), None, Some(2), Some(3)])),
                (
                    "lv",
                    texts(&[Some("a"), Some("b"), Some("c"), Some("d"), Some("e")]),
                ),
            ]),
            &[2, 3],
        )
    }

    #[cfg(feature = "operators")]
    fn right() -> Table {
        chunked(
            &table(vec![
                (
                    "rv",
                    texts(&[Some("x"), Some("y"), Some("z"), Some("w"), Some("v")]),
                ),
                ("k", ints(&[Some(2), None, Some(4), Some(2), Some(1)])),
            ]),
            &[3, 2],
        )
    }

    #[cfg(feature = "operators")]
    fn joined(how: JoinKind) -> Table {
        block_on(join(
            &Session::unlimited(),
            &left(),
            &right(),
            &names(&["k"]),
            how,
        ))
        .unwrap()
    }

    #[test]
    #[cfg(feature = "operators")]
    fn inner_and_left_joins_keep_left_order_and_never_match_nulls() {
        let r = joined(JoinKind::Inner);
        assert_eq!(r.column_names(), names(&["k", "lv", "rv"]));
        assert_eq!(
            i64s(&r, "k"),
            vec![Some(1), Some(2), Some(2), Some(2), Some(2)]
        );
        assert_eq!(
            strs(&r, "lv"),
            owned(&[Some("a"), Some("b"), Some("b"), Some("d"), Some("d")])
        );
        assert_eq!(
            strs(&r, "rv"),
            owned(&[Some("v"), Some("x"), Some("w"), Some("x"), Some("w")])
        );
        let r = joined(JoinKind::Left);
        assert_eq!(
            i64s(&r, "k"),
            vec![Some(1), Some(2), Some(2), None, Some(2), Some(2), Some(3)]
        );
        assert_eq!(
            strs(&r, "lv"),
            owned(&[
                Some("a"),
                Some("b"),
                Some("b"),
                Some("c"),
                Some("d"),
                Some("d"),
                Some("e")
            ])
        );
        assert_eq!(
            strs(&r, "rv"),
            owned(&[
                Some("v"),
                Some("x"),
                Some("w"),
                None,
                Some("x"),
                Some("w"),
                None
            ])
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn right_and_full_joins_add_unmatched_right_rows_in_right_order() {
        let r = joined(JoinKind::Right);
        assert_eq!(
            i64s(&r, "k"),
            vec![Some(1), Some(2), Some(2), Some(2), Some(2), None, Some(4)]
        );
        assert_eq!(
            strs(&r, "lv"),
            owned(&[
                Some("a"),
                Some("b"),
                Some("b"),
                Some("d"),
                Some("d"),
                None,
                None
            ])
        );
        assert_eq!(
            strs(&r, "rv"),
            owned(&[
                Some("v"),
                Some("x"),
                Some("w"),
                Some("x"),
                Some("w"),
                Some("y"),
                Some("z")
            ])
        );
        let r = joined(JoinKind::Full);
        assert_eq!(
            i64s(&r, "k"),
            vec![
                Some(1),
                Some(2),
                Some(2),
                None,
                Some(2),
                Some(2),
                Some(3),
                None,
                Some(4)
            ]
        );
        assert_eq!(
            strs(&r, "lv"),
            owned(&[
                Some("a"),
                Some("b"),
                Some("b"),
                Some("c"),
                Some("d"),
                Some("d"),
                Some("e"),
                None,
                None
            ])
        );
        assert_eq!(
            strs(&r, "rv"),
            owned(&[
                Some("v"),
                Some("x"),
                Some("w"),
                None,
                Some("x"),
                Some("w"),
                None,
                Some("y"),
                Some("z")
            ])
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn semi_and_anti_joins_keep_left_rows_only() {
        let r = joined(JoinKind::Semi);
        assert_eq!(r.column_names(), names(&["k", "lv"]));
        assert_eq!(i64s(&r, "k"), vec![Some(1), Some(2), Some(2)]);
        assert_eq!(strs(&r, "lv"), owned(&[Some("a"), Some("b"), Some("d")]));
        let r = joined(JoinKind::Anti);
        assert_eq!(i64s(&r, "k"), vec![None, Some(3)]);
        assert_eq!(strs(&r, "lv"), owned(&[Some("c"), Some("e")]));
        let s2 = Session::unlimited();
        let r = block_on(join(
            &s2,
            &Table::empty(left().schema().clone()),
            &right(),
            &names(&["k"]),
            JoinKind::Full,
        ))
        .unwrap();
        assert_eq!(
            i64s(&r, "k"),
            vec![Some(2), None, Some(4), Some(2), Some(1)]
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn join_refuses_unknown_keys_clashing_columns_and_incomparable_keys() {
        let s = Session::unlimited();
        let run = |l: &Table, r: &Table, on: &[&str]| {
            invalid(block_on(join(&s, l, r, &names(on), JoinKind::Inner)).unwrap_err())
        };
        assert_eq!(
            run(&left(), &right(), &["lv"]),
            "join key, right table: the table has no column `lv`; its columns are: rv, k"
        );
        assert_eq!(
            run(&left(), &right(), &[]),
            "join needs at least one key column in `on`"
        );
        let clash = table(vec![("k", ints(&[Some(1)])), ("lv", texts(&[Some("q")]))]);
        assert_eq!(
            run(&left(), &clash, &["k"]),
            "join: both tables have a column `lv` that is not a key; rename or drop one of \
             them first (`compute`, `select`)"
        );
        let text_key = table(vec![("k", texts(&[Some("1")]))]);
        assert_eq!(
            run(&left(), &text_key, &["k"]),
            "join: the key `k` is int64 in the left table and utf8 in the right; cast one \
             (with `compute`) so they compare"
        );
    }

    // --- sample ----------------------------------------------------------

    fn numbered(n: usize, sizes: &[usize]) -> Table {
        let t = table(vec![(
            "id",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        )]);
        if sizes.is_empty() {
            t
        } else {
            chunked(&t, sizes)
        }
    }

    fn ids(t: &Table) -> Vec<i64> {
        i64s(t, "id").into_iter().map(Option::unwrap).collect()
    }

    #[test]
    fn sample_is_floyds_algorithm_in_table_order() {
        // Floyd's algorithm with SplitMix64, computed independently.
        assert_eq!(
            ids(&sample(&numbered(10, &[3, 7]), 4, 7).unwrap()),
            vec![0, 2, 3, 4]
        );
        assert_eq!(
            ids(&sample(&numbered(6, &[]), 3, 1).unwrap()),
            vec![0, 1, 4]
        );
        assert_eq!(
            ids(&sample(&numbered(20, &[5; 4]), 5, 0).unwrap()),
            vec![1, 4, 7, 12, 15]
        );
        assert_eq!(sample(&numbered(5, &[]), 9, 3).unwrap().num_rows(), 5);
        assert_eq!(sample(&numbered(5, &[]), 0, 3).unwrap().num_rows(), 0);
        let big = numbered(10_000, &[2500; 4]);
        let a = ids(&sample(&big, 100, 42).unwrap());
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, ids(&sample(&big, 100, 42).unwrap()));
        assert_ne!(a, ids(&sample(&big, 100, 43).unwrap()));
    }

    // --- split -----------------------------------------------------------

    /// Each row's part (by the `id` column, which numbers the rows).
    fn labels(parts: &[Table], n: usize) -> Vec<u8> {
        let mut l = vec![u8::MAX; n];
        for (p, t) in parts.iter().enumerate() {
            for i in ids(t) {
                assert_eq!(l[i as usize], u8::MAX, "row {i} in two parts");
                l[i as usize] = p as u8;
            }
        }
        assert!(l.iter().all(|&x| x != u8::MAX), "every row in a part");
        l
    }

    fn sizes(parts: &[Table]) -> Vec<usize> {
        parts.iter().map(Table::num_rows).collect()
    }

    const GUEST: [f64; 3] = [0.7, 0.15, 0.15];

    /// FNV-1a over the labels, as the reference program printed it.
    fn fnv_labels(l: &[u8]) -> u64 {
        l.iter().fold(0xcbf29ce484222325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        })
    }

    #[test]
    fn random_and_stratified_splits_reproduce_the_guest_step() {
        // Expected assignments printed by std:split's `assign` and
        // SplitMix64 (components/split, sdk/rust/src/rng.rs) compiled natively.
        let r = split(&numbered(20, &[6, 14]), &SplitBy::Random, &GUEST, 42).unwrap();
        assert_eq!(
            labels(&r, 20),
            vec![2, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 2, 0, 0, 0, 0]
        );
        let r = split(&numbered(7, &[]), &SplitBy::Random, &GUEST, 0).unwrap();
        assert_eq!(labels(&r, 7), vec![1, 0, 2, 0, 0, 0, 0]);
        let r = split(&numbered(11, &[]), &SplitBy::Random, &[0.6, 0.0, 0.4], 5).unwrap();
        assert_eq!(labels(&r, 11), vec![0, 2, 0, 0, 2, 2, 0, 0, 2, 0, 0]);
        let r = split(&numbered(1000, &[300, 700]), &SplitBy::Random, &GUEST, 123).unwrap();
        assert_eq!(sizes(&r), vec![700, 150, 150]);
        assert_eq!(fnv_labels(&labels(&r, 1000)), 6933649398996406693);
        // Weights that are not fractions give the same split once normalised.
        let w = split(
            &numbered(1000, &[]),
            &SplitBy::Random,
            &[7.0, 1.5, 1.5],
            123,
        )
        .unwrap();
        assert_eq!(labels(&w, 1000), labels(&r, 1000));

        // Stratified by an int64 column with nulls: strata ordered as text
        // (null, "-1", "10", "9").
        let key: Vec<Option<i64>> = (0..24)
            .map(|i| match i % 6 {
                0 => None,
                1 | 3 => Some(10),
                2 | 4 => Some(9),
                _ => Some(-1),
            })
            .collect();
        let t = chunked(
            &table(vec![
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(0..24)) as ArrayRef,
                ),
                ("g", ints(&key)),
            ]),
            &[5, 19],
        );
        let r = split(&t, &SplitBy::Stratified("g".into()), &[0.5, 0.25, 0.25], 7).unwrap();
        assert_eq!(
            labels(&r, 24),
            vec![
                1, 2, 2, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 2, 1, 0, 0, 2, 2, 0, 1, 1, 2
            ]
        );
        // Float strata as the step printed them: "0.5", "NaN", "-0", null, "2".
        let f: Vec<Option<f64>> = (0..15)
            .map(|i| match i % 5 {
                0 => Some(0.5),
                1 => Some(f64::NAN),
                2 => Some(-0.0),
                3 => None,
                _ => Some(2.0),
            })
            .collect();
        let t = table(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..15)) as ArrayRef,
            ),
            ("g", floats(&f)),
        ]);
        let r = split(&t, &SplitBy::Stratified("g".into()), &GUEST, 3).unwrap();
        assert_eq!(
            labels(&r, 15),
            vec![1, 0, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // 1000 rows, strata "0".."4" and null.
        let g: Vec<Option<i64>> = (0..1000)
            .map(|i| if i % 7 == 0 { None } else { Some((i * 31) % 5) })
            .collect();
        let t = chunked(
            &table(vec![
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(0..1000)) as ArrayRef,
                ),
                ("g", ints(&g)),
            ]),
            &[100, 400, 500],
        );
        let r = split(&t, &SplitBy::Stratified("g".into()), &GUEST, 99).unwrap();
        assert_eq!(fnv_labels(&labels(&r, 1000)), 7381863140519576901);
    }

    #[test]
    fn stratified_split_by_categorical_text_matches_plain_text() {
        let values = ["b", "a", "c", "a", "b", "a", "a", "c", "b", "a"];
        let n = values.len();
        let plain = table(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
            ),
            ("g", texts(&values.map(Some))),
        ]);
        let dict: DictionaryArray<Int32Type> = values.iter().copied().collect();
        let categorical = table(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
            ),
            ("g", Arc::new(dict) as ArrayRef),
        ]);
        let by = SplitBy::Stratified("g".into());
        assert_eq!(
            labels(&split(&plain, &by, &[0.5, 0.5], 11).unwrap(), n),
            labels(&split(&categorical, &by, &[0.5, 0.5], 11).unwrap(), n)
        );
    }

    #[test]
    fn random_split_sizes_follow_the_fractions_and_the_seed() {
        let t = numbered(100, &[40, 60]);
        let r = split(&t, &SplitBy::Random, &GUEST, 0).unwrap();
        assert_eq!(sizes(&r), vec![70, 15, 15]);
        assert!(r.iter().all(|p| ids(p).windows(2).all(|w| w[0] < w[1])));
        assert_eq!(
            sizes(&split(&numbered(10, &[]), &SplitBy::Random, &GUEST, 0).unwrap()),
            vec![7, 2, 1]
        );
        let a = labels(
            &split(&numbered(500, &[]), &SplitBy::Random, &GUEST, 42).unwrap(),
            500,
        );
        assert_eq!(
            a,
            labels(
                &split(&numbered(500, &[]), &SplitBy::Random, &GUEST, 42).unwrap(),
                500
            )
        );
        assert_ne!(
            a,
            labels(
                &split(&numbered(500, &[]), &SplitBy::Random, &GUEST, 43).unwrap(),
                500
            )
        );
        let empty = split(&numbered(0, &[]), &SplitBy::Random, &GUEST, 1).unwrap();
        assert_eq!(sizes(&empty), vec![0, 0, 0]);
        assert_eq!(empty[2].column_names(), names(&["id"]));
    }

    #[test]
    fn stratified_split_keeps_each_class_in_proportion() {
        // 80 "a", 20 "b", 10 null.
        let keys: Vec<Option<&str>> = (0..110)
            .map(|i| match i % 11 {
                0 => None,
                1 | 2 => Some("b"),
                _ => Some("a"),
            })
            .collect();
        let t = table(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..110)) as ArrayRef,
            ),
            ("y", texts(&keys)),
        ]);
        let r = split(&t, &SplitBy::Stratified("y".into()), &[0.5, 0.25, 0.25], 9).unwrap();
        assert_eq!(sizes(&r), vec![55, 28, 27]);
        let count =
            |p: &Table, k: Option<&str>| strs(p, "y").iter().filter(|v| v.as_deref() == k).count();
        assert_eq!(
            [
                count(&r[0], None),
                count(&r[0], Some("a")),
                count(&r[0], Some("b"))
            ],
            [5, 40, 10]
        );
        assert_eq!([count(&r[1], Some("a")), count(&r[1], Some("b"))], [20, 5]);
        assert_eq!([count(&r[2], Some("a")), count(&r[2], Some("b"))], [20, 5]);
        assert_eq!(
            invalid(split(&t, &SplitBy::Stratified("z".into()), &GUEST, 0).unwrap_err()),
            "split stratified by: the table has no column `z`; its columns are: id, y"
        );
    }

    #[test]
    fn hash_split_puts_equal_keys_together_reproducibly() {
        let n = 10_000;
        let t = chunked(
            &table(vec![
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
                ),
                (
                    "user",
                    Arc::new(StringArray::from_iter(
                        (0..n).map(|i| (i % 13 != 0).then(|| format!("user-{}", i % 1000))),
                    )),
                ),
            ]),
            &[3000, 7000],
        );
        let by = SplitBy::Hash(vec!["user".into()]);
        let r = split(&t, &by, &[0.5, 0.5], 7).unwrap();
        let l = labels(&r, n);
        let user = strs(&t, "user");
        let mut part_of: HashMap<Option<String>, u8> = HashMap::new();
        for (u, &p) in user.iter().zip(&l) {
            assert_eq!(
                *part_of.entry(u.clone()).or_insert(p),
                p,
                "{u:?} straddles parts"
            );
        }
        assert!((4000..6000).contains(&r[0].num_rows()), "{:?}", sizes(&r));
        assert!(r.iter().all(|p| ids(p).windows(2).all(|w| w[0] < w[1])));
        assert_eq!(l, labels(&split(&t, &by, &[0.5, 0.5], 7).unwrap(), n));
        assert_ne!(l, labels(&split(&t, &by, &[0.5, 0.5], 8).unwrap(), n));
        // Pinned: the hash must not change between releases or machines.
        let small = table(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..8)) as ArrayRef,
            ),
            (
                "k",
                ints(&[
                    Some(1),
                    Some(2),
                    Some(3),
                    None,
                    Some(1),
                    Some(5),
                    Some(6),
                    Some(7),
                ]),
            ),
            (
                "s",
                texts(&[
                    Some("a"),
                    Some("b"),
                    Some("c"),
                    Some("d"),
                    Some("a"),
                    None,
                    Some("g"),
                    Some("h"),
                ]),
            ),
        ]);
        let by = SplitBy::Hash(vec!["k".into(), "s".into()]);
        let pinned = labels(&split(&small, &by, &[0.5, 0.5], 0).unwrap(), 8);
        assert_eq!(pinned[0], pinned[4]);
        assert_eq!(pinned, PINNED_HASH_LABELS.to_vec());
        // Many parts take the bucketing path; every row lands once.
        let r = split(&t, &SplitBy::Hash(vec!["id".into()]), &[1.0; 12], 1).unwrap();
        assert_eq!(r.len(), 12);
        labels(&r, n);
        assert!(
            r.iter()
                .all(|p| p.num_rows() > 600 && ids(p).windows(2).all(|w| w[0] < w[1]))
        );
    }

    const PINNED_HASH_LABELS: [u8; 8] = [1, 0, 0, 1, 1, 1, 0, 0];

    #[test]
    fn ordered_split_cuts_in_order_without_splitting_ties() {
        let v = [
            Some(3),
            Some(1),
            None,
            Some(2),
            Some(2),
            Some(2),
            Some(5),
            Some(1),
            None,
            Some(4),
        ];
        let t = chunked(
            &table(vec![
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(0..10)) as ArrayRef,
                ),
                ("v", ints(&v)),
            ]),
            &[4, 6],
        );
        let by = SplitBy::Ordered("v".into());
        let r = split(&t, &by, &[0.5, 0.5], 0).unwrap();
        // Sorted: null(2) null(8) 1(1) 1(7) 2(3) 2(4) | 2(5) would straddle: cut moves to 7.
        assert_eq!(ids(&r[0]), vec![2, 8, 1, 7, 3, 4, 5]);
        assert_eq!(ids(&r[1]), vec![0, 9, 6]);
        let r = split(&t, &by, &[0.2, 0.8], 0).unwrap();
        assert_eq!(ids(&r[0]), vec![2, 8]);
        let r = split(&t, &by, &[0.1, 0.1, 0.8], 0).unwrap();
        assert_eq!(sizes(&r), vec![2, 0, 8]);
        let same = table(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..4)) as ArrayRef,
            ),
            ("v", ints(&[Some(1); 4])),
        ]);
        assert_eq!(
            sizes(&split(&same, &by, &[0.5, 0.5], 0).unwrap()),
            vec![4, 0]
        );
    }

    #[test]
    fn split_refuses_bad_fractions() {
        let t = numbered(3, &[]);
        let run = |f: &[f64]| invalid(split(&t, &SplitBy::Random, f, 0).unwrap_err());
        assert_eq!(run(&[]), "split needs at least one fraction");
        assert_eq!(
            run(&[0.5, -0.5]),
            "split: fraction 2 is -0.5; fractions are weights, positive numbers of any total \
             (0 gives an empty part)"
        );
        assert_eq!(
            run(&[0.0, 0.0]),
            "split: the fractions are all 0; give at least one positive weight"
        );
        assert!(run(&[f64::NAN]).contains("fraction 1 is NaN"));
    }

    // --- concat ----------------------------------------------------------

    #[test]
    fn concat_appends_parts_and_widens_nullability() {
        let strict = Table::from_batch(
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)])),
                vec![ints(&[Some(1), Some(2)])],
            )
            .unwrap(),
        );
        let loose = chunked(
            &table(vec![("x", ints(&[None, Some(4), Some(5)]))]),
            &[1, 2],
        );
        let r = concat(&[strict.clone(), loose, Table::empty(strict.schema().clone())]).unwrap();
        assert_eq!(
            i64s(&r, "x"),
            vec![Some(1), Some(2), None, Some(4), Some(5)]
        );
        assert!(r.schema().field(0).is_nullable());
        assert_eq!(r.batch_rows(), vec![2, 1, 2]);
    }

    #[test]
    fn concat_names_the_first_difference() {
        let a = table(vec![("x", ints(&[Some(1)])), ("y", texts(&[Some("a")]))]);
        let renamed = table(vec![("x", ints(&[Some(1)])), ("z", texts(&[Some("a")]))]);
        let retyped = table(vec![
            ("x", floats(&[Some(1.0)])),
            ("y", texts(&[Some("a")])),
        ]);
        let wider = table(vec![
            ("x", ints(&[Some(1)])),
            ("y", texts(&[Some("a")])),
            ("w", ints(&[Some(1)])),
        ]);
        assert_eq!(
            invalid(concat(&[a.clone(), a.clone(), renamed]).unwrap_err()),
            "concat: part 3 has column `z` at position 2 where part 1 has `y`; every part needs \
             the same columns in the same order (use `select`)"
        );
        assert_eq!(
            invalid(concat(&[a.clone(), retyped]).unwrap_err()),
            "concat: column `x` is float64 in part 2 but int64 in part 1; cast one first (with \
             `compute`)"
        );
        assert_eq!(
            invalid(concat(&[a.clone(), wider.clone()]).unwrap_err()),
            "concat: part 2 has a column `w` that part 1 lacks; every part needs the same \
             columns in the same order (use `select`)"
        );
        assert_eq!(
            invalid(concat(&[wider, a]).unwrap_err()),
            "concat: part 1 has a column `w` that part 2 lacks; every part needs the same \
             columns in the same order (use `select`)"
        );
        assert_eq!(
            invalid(concat(&[]).unwrap_err()),
            "concat needs at least one table"
        );
    }

    // --- normalize -------------------------------------------------------

    #[test]
    fn normalize_brings_engine_types_to_table_types() {
        use arrow_array::{
            Date64Array, LargeStringArray, StringViewArray, TimestampNanosecondArray,
            TimestampSecondArray, UInt8Array, UInt64Array,
        };
        let f16 = arrow_cast::cast(&floats(&[Some(1.5), None]), &DataType::Float16).unwrap();
        let dict8: DictionaryArray<arrow_array::types::Int8Type> =
            vec![Some("a"), None].into_iter().collect();
        let dict_int: DictionaryArray<Int32Type> = DictionaryArray::new(
            Int32Array::from(vec![Some(1), None]),
            Arc::new(Int32Array::from(vec![7, 8])),
        );
        let t = table(vec![
            (
                "i32",
                Arc::new(Int32Array::from(vec![Some(-3), None])) as ArrayRef,
            ),
            ("u8", Arc::new(UInt8Array::from(vec![Some(255), None]))),
            ("u64", Arc::new(UInt64Array::from(vec![Some(7), None]))),
            ("f16", f16),
            (
                "large",
                Arc::new(LargeStringArray::from(vec![Some("x"), None])),
            ),
            (
                "view",
                Arc::new(StringViewArray::from(vec![Some("y"), None])),
            ),
            (
                "d64",
                Arc::new(Date64Array::from(vec![Some(86_400_000 * 3), None])),
            ),
            (
                "ns",
                Arc::new(
                    TimestampNanosecondArray::from(vec![Some(1_500_000_999), None])
                        .with_timezone("UTC"),
                ),
            ),
            (
                "s",
                Arc::new(TimestampSecondArray::from(vec![Some(2), None])),
            ),
            ("dict8", Arc::new(dict8)),
            ("dict_int", Arc::new(dict_int)),
            ("null", Arc::new(arrow_array::NullArray::new(2))),
        ]);
        let r = normalize(t).unwrap();
        let types: Vec<Option<ColumnType>> = r
            .schema()
            .fields()
            .iter()
            .map(|f| ColumnType::of_arrow(f.data_type()))
            .collect();
        use ColumnType as C;
        assert_eq!(
            types,
            [
                C::Int64,
                C::Int64,
                C::Int64,
                C::Float32,
                C::Utf8,
                C::Utf8,
                C::Date,
                C::Timestamp(Some("UTC".into())),
                C::Timestamp(None),
                C::Categorical,
                C::Int64,
                C::Float64
            ]
            .map(Some)
        );
        assert_eq!(i64s(&r, "i32"), vec![Some(-3), None]);
        assert_eq!(i64s(&r, "u8"), vec![Some(255), None]);
        assert_eq!(i64s(&r, "u64"), vec![Some(7), None]);
        assert_eq!(
            col(&r, "f16")
                .as_primitive::<Float32Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(1.5), None]
        );
        assert_eq!(strs(&r, "view"), owned(&[Some("y"), None]));
        assert_eq!(
            col(&r, "d64")
                .as_primitive::<Date32Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(3), None]
        );
        assert_eq!(
            col(&r, "ns")
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(1_500_000), None]
        );
        assert_eq!(
            col(&r, "s")
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(2_000_000), None]
        );
        let d = col(&r, "dict8");
        let d = d.as_dictionary::<Int32Type>();
        assert_eq!(d.values().as_string::<i32>().value(0), "a");
        assert!(d.is_null(1));
        assert_eq!(i64s(&r, "dict_int"), vec![Some(8), None]);
        assert_eq!(f64s(&r, "null"), vec![None, None]);
        assert!(r.schema().field(11).is_nullable());
    }

    #[test]
    fn normalize_shares_right_columns_and_refuses_what_tables_cannot_hold() {
        let t = people();
        let r = normalize(t.clone()).unwrap();
        assert!(Arc::ptr_eq(
            r.batches()[0].column(0),
            t.batches()[0].column(0)
        ));
        let big = table(vec![(
            "u",
            Arc::new(arrow_array::UInt64Array::from(vec![u64::MAX])) as ArrayRef,
        )]);
        let e = invalid(normalize(big).unwrap_err());
        assert!(
            e.starts_with("column `u`: its UInt64 values cannot be held as int64"),
            "{e}"
        );
        let dec = table(vec![(
            "d",
            Arc::new(
                arrow_array::Decimal128Array::from(vec![Some(150)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ) as ArrayRef,
        )]);
        let e = invalid(normalize(dec).unwrap_err());
        assert!(
            e.starts_with("column `d` has type Decimal128(10, 2), which sluice"),
            "{e}"
        );
    }

    #[test]
    #[cfg(feature = "operators")]
    fn resource_messages_give_the_requested_bytes() {
        assert_eq!(
            requested_bytes("Failed to allocate additional 2.0 MB for ExternalSorter[0] with 0 B"),
            2 << 20
        );
        assert_eq!(
            requested_bytes("Failed to allocate additional 512.0 B for x"),
            512
        );
        assert_eq!(requested_bytes("something else"), 0);
    }
}
