//! Host-owned tables: read them column by column ([`Table`]), ask the host
//! to compute new ones ([`Table::select`], [`Table::filter`],
//! [`Table::group_by`], [`sql`] …), build new ones column by column
//! ([`TableBuilder`]).
//!
//! Data stays in the host as Arrow record batches; a step copies in only the
//! columns it asks for, in chunks, and lets the host do bulk work natively.
//! Nulls are `None`.

use crate::TableError;
use crate::bindings::sluice::pipeline::tables as raw;

pub use sluice_contract::DType;

/// The full type of a host-held column (see [`Table::schema`]), the
/// description of a column, and the arguments of the table operations,
/// as the contract defines them.
pub use raw::{Aggregate, ColumnInfo, ColumnType, JoinKind, SortKey, SplitBy};

/// Rows per chunk when [`Table::column`] copies a column in.
const CHUNK_ROWS: u64 = 1 << 20;

impl SortKey {
    /// Ascending order of `column`, nulls last.
    pub fn asc(column: &str) -> Self {
        SortKey {
            column: column.to_owned(),
            descending: false,
            nulls_first: false,
        }
    }

    /// Descending order of `column`, nulls last.
    pub fn desc(column: &str) -> Self {
        SortKey {
            column: column.to_owned(),
            descending: true,
            nulls_first: false,
        }
    }
}

impl Aggregate {
    /// `function` (`count`, `sum`, `mean`, `min`, `max`, `std`, `var`,
    /// `count-distinct`, `first`, `last`) of `column`, named `name`.
    pub fn new(function: &str, column: &str, name: &str) -> Self {
        Aggregate {
            function: function.to_owned(),
            column: Some(column.to_owned()),
            name: name.to_owned(),
        }
    }

    /// The number of rows, named `name`.
    pub fn count_rows(name: &str) -> Self {
        Aggregate {
            function: "count".to_owned(),
            column: None,
            name: name.to_owned(),
        }
    }
}

/// The result of a SQL query (Apache DataFusion's dialect) over the named
/// tables, computed natively by the host under the step's memory limit.
///
/// ```ignore
/// let by_city = sql("SELECT city, avg(price) AS price FROM sales GROUP BY city",
///                   &[("sales", &sales)])?;
/// ```
pub fn sql(query: &str, inputs: &[(&str, &Table)]) -> Result<Table, TableError> {
    let raw_inputs: Vec<(String, &raw::Table)> = inputs
        .iter()
        .map(|(name, t)| ((*name).to_owned(), &t.inner))
        .collect();
    raw::sql(query, &raw_inputs)
        .map(Table::from_raw)
        .map_err(|message| TableError::Op { op: "sql", message })
}

/// The tables one after another (same column names and types).
pub fn concat(parts: &[&Table]) -> Result<Table, TableError> {
    let raw_parts: Vec<&raw::Table> = parts.iter().map(|t| &t.inner).collect();
    raw::concat(&raw_parts)
        .map(Table::from_raw)
        .map_err(|message| TableError::Op {
            op: "concat",
            message,
        })
}

impl From<raw::Dtype> for DType {
    fn from(d: raw::Dtype) -> Self {
        match d {
            raw::Dtype::Boolean => Self::Boolean,
            raw::Dtype::Int64 => Self::Int64,
            raw::Dtype::Float64 => Self::Float64,
            raw::Dtype::Utf8 => Self::Utf8,
        }
    }
}

/// A column's name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column's name.
    pub name: String,
    /// The type of its values.
    pub dtype: DType,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

/// A column's values, one `Option` per row (`None` is null).
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Booleans.
    Boolean(Vec<Option<bool>>),
    /// 64-bit integers.
    Int64(Vec<Option<i64>>),
    /// 64-bit floats.
    Float64(Vec<Option<f64>>),
    /// UTF-8 strings.
    Utf8(Vec<Option<String>>),
}

impl Column {
    /// The type of the values.
    pub fn dtype(&self) -> DType {
        match self {
            Self::Boolean(_) => DType::Boolean,
            Self::Int64(_) => DType::Int64,
            Self::Float64(_) => DType::Float64,
            Self::Utf8(_) => DType::Utf8,
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Boolean(v) => v.len(),
            Self::Int64(v) => v.len(),
            Self::Float64(v) => v.len(),
            Self::Utf8(v) => v.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of null rows.
    pub fn null_count(&self) -> usize {
        fn nulls<T>(v: &[Option<T>]) -> usize {
            v.iter().filter(|x| x.is_none()).count()
        }
        match self {
            Self::Boolean(v) => nulls(v),
            Self::Int64(v) => nulls(v),
            Self::Float64(v) => nulls(v),
            Self::Utf8(v) => nulls(v),
        }
    }

    /// Converts the host's representation (values plus null indices).
    #[doc(hidden)]
    pub fn from_raw(column: raw::Column) -> Self {
        fn with_nulls<T>(values: Vec<T>, nulls: &[u64]) -> Vec<Option<T>> {
            let mut out: Vec<Option<T>> = values.into_iter().map(Some).collect();
            for &i in nulls {
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                    *slot = None;
                }
            }
            out
        }
        let nulls = &column.nulls;
        match column.values {
            raw::Values::Boolean(v) => Self::Boolean(with_nulls(v, nulls)),
            raw::Values::Int64(v) => Self::Int64(with_nulls(v, nulls)),
            raw::Values::Float64(v) => Self::Float64(with_nulls(v, nulls)),
            raw::Values::Utf8(v) => Self::Utf8(with_nulls(v, nulls)),
        }
    }

    /// Converts to the host's representation (values plus null indices).
    #[doc(hidden)]
    pub fn into_raw(self) -> raw::Column {
        fn split<T: Default>(values: Vec<Option<T>>, nulls: &mut Vec<u64>) -> Vec<T> {
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    v.unwrap_or_else(|| {
                        nulls.push(i as u64);
                        T::default()
                    })
                })
                .collect()
        }
        let mut nulls = Vec::new();
        let values = match self {
            Self::Boolean(v) => raw::Values::Boolean(split(v, &mut nulls)),
            Self::Int64(v) => raw::Values::Int64(split(v, &mut nulls)),
            Self::Float64(v) => raw::Values::Float64(split(v, &mut nulls)),
            Self::Utf8(v) => raw::Values::Utf8(split(v, &mut nulls)),
        };
        raw::Column { values, nulls }
    }
}

/// An immutable table held by the host.
#[derive(Debug)]
pub struct Table {
    inner: raw::Table,
}

impl Table {
    pub(crate) fn from_raw(inner: raw::Table) -> Self {
        Self { inner }
    }

    pub(crate) fn as_raw(&self) -> &raw::Table {
        &self.inner
    }

    /// The columns' names and types, in order.
    pub fn fields(&self) -> Vec<Field> {
        self.inner
            .fields()
            .into_iter()
            .map(|f| Field {
                name: f.name,
                dtype: f.dtype.into(),
                nullable: f.nullable,
            })
            .collect()
    }

    /// The columns' names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.inner.fields().into_iter().map(|f| f.name).collect()
    }

    /// The number of rows.
    pub fn num_rows(&self) -> u64 {
        self.inner.num_rows()
    }

    /// Rows `offset .. offset + len` (clamped to the table), without copying.
    pub fn slice(&self, offset: u64, len: u64) -> Table {
        Self::from_raw(self.inner.slice(offset, len))
    }

    /// A copy of the column `name`, whatever its type, read in chunks so
    /// that a column of any length that fits the step's memory crosses.
    /// Columns of the richer types ([`Table::schema`]) come as their basic
    /// type: float32 as float64, dates and timestamps as int64 counts (days;
    /// microseconds since the epoch), categoricals as text.
    pub fn column(&self, name: &str) -> Result<Column, TableError> {
        let rows = self.num_rows();
        let mut whole = self.column_chunk(name, 0, CHUNK_ROWS.min(rows))?;
        let mut offset = CHUNK_ROWS;
        while offset < rows {
            let chunk = self.column_chunk(name, offset, CHUNK_ROWS)?;
            match (&mut whole, chunk) {
                (Column::Boolean(a), Column::Boolean(b)) => a.extend(b),
                (Column::Int64(a), Column::Int64(b)) => a.extend(b),
                (Column::Float64(a), Column::Float64(b)) => a.extend(b),
                (Column::Utf8(a), Column::Utf8(b)) => a.extend(b),
                _ => unreachable!("chunks of one column have one type"),
            }
            offset += CHUNK_ROWS;
        }
        Ok(whole)
    }

    /// Copies of the named columns, in the order given. A table of few rows
    /// (a model server's request) is read in one host call; a larger one
    /// column by column, as [`Table::column`] reads each (contract 0.1.4).
    pub fn columns(&self, names: &[&str]) -> Result<Vec<Column>, TableError> {
        if self.num_rows() > CHUNK_ROWS {
            return names.iter().map(|name| self.column(name)).collect();
        }
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        match self.inner.columns(&owned) {
            Ok(columns) => Ok(columns.into_iter().map(Column::from_raw).collect()),
            // The host's message names the column; find which, for the error.
            Err(message) => Err(TableError::Column {
                name: names
                    .iter()
                    .find(|n| message.contains(&format!("`{n}`")))
                    .unwrap_or(&"")
                    .to_string(),
                message,
            }),
        }
    }

    /// A copy of rows `offset .. offset + len` (clamped) of column `name`.
    pub fn column_chunk(&self, name: &str, offset: u64, len: u64) -> Result<Column, TableError> {
        self.inner
            .column_chunk(name, offset, len)
            .map(Column::from_raw)
            .map_err(|message| TableError::Column {
                name: name.to_owned(),
                message,
            })
    }

    /// The columns' names and full types, in order.
    pub fn schema(&self) -> Vec<ColumnInfo> {
        self.inner.schema()
    }

    /// The row counts of the record batches the host holds the table as.
    pub fn batch_rows(&self) -> Vec<u64> {
        self.inner.batch_rows()
    }

    /// The named columns, in that order (no data is copied).
    pub fn select(&self, columns: &[&str]) -> Result<Table, TableError> {
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        self.op("select", self.inner.select(&columns))
    }

    /// New columns computed natively from SQL expressions over this
    /// table's columns: exactly the `(name, expression)` pairs, in order.
    pub fn compute(&self, columns: &[(&str, &str)]) -> Result<Table, TableError> {
        let columns: Vec<(String, String)> = columns
            .iter()
            .map(|(n, e)| ((*n).to_owned(), (*e).to_owned()))
            .collect();
        self.op("compute", self.inner.compute(&columns))
    }

    /// The rows where `predicate` (a boolean column's name, or a SQL
    /// expression) is true; null counts as false.
    pub fn filter(&self, predicate: &str) -> Result<Table, TableError> {
        self.op("filter", self.inner.filter(predicate))
    }

    /// The rows at `rows`, in that order.
    pub fn take(&self, rows: &[u64]) -> Result<Table, TableError> {
        self.op("take", self.inner.take(rows))
    }

    /// The rows ordered by `keys` (stable).
    pub fn sort(&self, keys: &[SortKey]) -> Result<Table, TableError> {
        self.op("sort", self.inner.sort(keys))
    }

    /// One row per distinct value of `keys` (sorted by them) with the
    /// aggregates; no keys: one row over the whole table.
    pub fn group_by(&self, keys: &[&str], aggregates: &[Aggregate]) -> Result<Table, TableError> {
        let keys: Vec<String> = keys.iter().map(|c| (*c).to_owned()).collect();
        self.op("group-by", self.inner.group_by(&keys, aggregates))
    }

    /// This table's rows matched with `right`'s on equal `on` columns.
    pub fn join(&self, right: &Table, on: &[&str], how: JoinKind) -> Result<Table, TableError> {
        let on: Vec<String> = on.iter().map(|c| (*c).to_owned()).collect();
        self.op("join", self.inner.join(&right.inner, &on, how))
    }

    /// `rows` rows at random without replacement, in table order;
    /// reproducible for `seed`.
    pub fn sample(&self, rows: u64, seed: u64) -> Result<Table, TableError> {
        self.op("sample", self.inner.sample(rows, seed))
    }

    /// Parts in proportion to `fractions`, each row in exactly one.
    pub fn split(
        &self,
        by: &SplitBy,
        fractions: &[f64],
        seed: u64,
    ) -> Result<Vec<Table>, TableError> {
        self.inner
            .split(by, fractions, seed)
            .map(|parts| parts.into_iter().map(Table::from_raw).collect())
            .map_err(|message| TableError::Op {
                op: "split",
                message,
            })
    }

    /// Summary statistics of the columns as JSON (`options`: a JSON
    /// object, `{}` for the defaults; see the contract docs).
    pub fn describe(&self, options: &str) -> Result<String, TableError> {
        self.inner
            .describe(options)
            .map_err(|message| TableError::Op {
                op: "describe",
                message,
            })
    }

    fn op(
        &self,
        op: &'static str,
        result: Result<raw::Table, String>,
    ) -> Result<Table, TableError> {
        result
            .map(Table::from_raw)
            .map_err(|message| TableError::Op { op, message })
    }

    /// A numeric column as floats; `int64` values are converted.
    pub fn column_f64(&self, name: &str) -> Result<Vec<Option<f64>>, TableError> {
        match self.column(name)? {
            Column::Float64(v) => Ok(v),
            Column::Int64(v) => Ok(v.into_iter().map(|x| x.map(|i| i as f64)).collect()),
            other => Err(wrong_type(name, "float64 or int64", &other)),
        }
    }

    /// An `int64` column.
    pub fn column_i64(&self, name: &str) -> Result<Vec<Option<i64>>, TableError> {
        match self.column(name)? {
            Column::Int64(v) => Ok(v),
            other => Err(wrong_type(name, "int64", &other)),
        }
    }

    /// A `boolean` column.
    pub fn column_bool(&self, name: &str) -> Result<Vec<Option<bool>>, TableError> {
        match self.column(name)? {
            Column::Boolean(v) => Ok(v),
            other => Err(wrong_type(name, "boolean", &other)),
        }
    }

    /// A `utf8` column.
    pub fn column_str(&self, name: &str) -> Result<Vec<Option<String>>, TableError> {
        match self.column(name)? {
            Column::Utf8(v) => Ok(v),
            other => Err(wrong_type(name, "utf8", &other)),
        }
    }
}

fn wrong_type(name: &str, expected: &'static str, column: &Column) -> TableError {
    TableError::WrongType {
        name: name.to_owned(),
        expected,
        actual: column.dtype(),
    }
}

/// Builds a table column by column, in the host.
///
/// ```ignore
/// let mut builder = TableBuilder::new();
/// builder
///     .add_f64("x", vec![Some(1.0), None])?
///     .add_str("label", vec![Some("a".into()), Some("b".into())])?;
/// let table = builder.finish()?;
/// ```
#[derive(Debug)]
pub struct TableBuilder {
    inner: raw::TableBuilder,
}

impl Default for TableBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TableBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            inner: raw::TableBuilder::new(),
        }
    }

    /// Appends a column. Fails if the name repeats or the length differs
    /// from earlier columns.
    pub fn add_column(&mut self, name: &str, column: Column) -> Result<&mut Self, TableError> {
        self.inner
            .add_column(name, &column.into_raw())
            .map_err(|e| TableError::Build(format!("column `{name}`: {e}")))?;
        Ok(self)
    }

    /// Appends columns in order, in one host call; on an error none of them
    /// is added (contract 0.1.4).
    pub fn add_columns(&mut self, columns: Vec<(String, Column)>) -> Result<&mut Self, TableError> {
        let raw: Vec<(String, raw::Column)> = columns
            .into_iter()
            .map(|(name, column)| (name, column.into_raw()))
            .collect();
        self.inner
            .add_columns(&raw)
            .map_err(|e| TableError::Build(e.to_string()))?;
        Ok(self)
    }

    /// Appends a `float64` column.
    pub fn add_f64(
        &mut self,
        name: &str,
        values: Vec<Option<f64>>,
    ) -> Result<&mut Self, TableError> {
        self.add_column(name, Column::Float64(values))
    }

    /// Appends an `int64` column.
    pub fn add_i64(
        &mut self,
        name: &str,
        values: Vec<Option<i64>>,
    ) -> Result<&mut Self, TableError> {
        self.add_column(name, Column::Int64(values))
    }

    /// Appends a `boolean` column.
    pub fn add_bool(
        &mut self,
        name: &str,
        values: Vec<Option<bool>>,
    ) -> Result<&mut Self, TableError> {
        self.add_column(name, Column::Boolean(values))
    }

    /// Appends a `utf8` column.
    pub fn add_str(
        &mut self,
        name: &str,
        values: Vec<Option<String>>,
    ) -> Result<&mut Self, TableError> {
        self.add_column(name, Column::Utf8(values))
    }

    /// The table built so far; the builder is left empty.
    pub fn finish(&mut self) -> Result<Table, TableError> {
        self.inner
            .finish()
            .map(Table::from_raw)
            .map_err(TableError::Build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip() {
        let col = Column::Float64(vec![Some(1.5), None, Some(-2.0), None]);
        let raw = col.clone().into_raw();
        assert_eq!(raw.nulls, vec![1, 3]);
        assert!(matches!(&raw.values, raw::Values::Float64(v) if v == &[1.5, 0.0, -2.0, 0.0]));
        assert_eq!(Column::from_raw(raw), col);

        let col = Column::Utf8(vec![None, Some("a".into())]);
        assert_eq!(Column::from_raw(col.clone().into_raw()), col);
        assert_eq!(col.null_count(), 1);
        assert_eq!(col.dtype(), DType::Utf8);
    }

    #[test]
    fn out_of_range_nulls_are_ignored() {
        let raw = raw::Column {
            values: raw::Values::Int64(vec![1, 2]),
            nulls: vec![0, 9],
        };
        assert_eq!(Column::from_raw(raw), Column::Int64(vec![None, Some(2)]));
    }
}
