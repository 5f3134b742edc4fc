//! What a served model takes and gives: named, typed columns.
//!
//! A request is a table of the model's *raw* inputs (what its transform
//! was fitted on, before preprocessing); the response is the prediction
//! table. Both the Open Inference Protocol's tensors and MLflow's data
//! frames are converted to and from these columns here, so the two APIs
//! accept and refuse exactly the same data.

use arrow_array::types::{ArrowPrimitiveType, Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, PrimitiveArray, RecordBatch, RecordBatchOptions,
    StringArray,
};
use arrow_buffer::{Buffer, NullBufferBuilder, ScalarBuffer};
use arrow_schema::{Field, Schema};
use serde_json::Value;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

pub use sluice_contract::DType;
pub use sluice_runtime::table::ArrowDType;

/// The Open Inference Protocol datatype of a column's tensor.
pub fn oip_datatype(column: DType) -> &'static str {
    match column {
        DType::Boolean => "BOOL",
        DType::Int64 => "INT64",
        DType::Float64 => "FP64",
        DType::Utf8 => "BYTES",
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub column_type: DType,
}

/// Why request data does not fit a model's inputs. Each message names the
/// column and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

/// The columns a model takes, in order.
#[derive(Debug, Clone)]
pub struct Signature {
    columns: Vec<ColumnSpec>,
    /// The Arrow schema of its tables, made once: every request table is
    /// made with it, and a table that has it needs no conforming.
    schema: Arc<Schema>,
    /// Each column's position, by name (the first, were a name repeated):
    /// matching a request's columns to the model's then costs the same per
    /// column at any width. Searching the list instead made a 1,000-column
    /// request spend 5 ms on it, and a 3,000-column one 33 ms.
    positions: HashMap<String, usize>,
}

impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns
    }
}

impl Eq for Signature {}

impl Signature {
    /// The signature of `columns`, in that order.
    pub fn new(columns: Vec<ColumnSpec>) -> Self {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.column_type.arrow(), true))
                .collect::<Vec<_>>(),
        ));
        let mut positions = HashMap::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            positions.entry(c.name.clone()).or_insert(i);
        }
        Signature {
            columns,
            schema,
            positions,
        }
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[ColumnSpec] {
        &self.columns
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.positions.get(name).map(|&i| &self.columns[i])
    }

    /// The position and spec of the column called `name`, looked for first
    /// at `hint` (where it is when a client sends the columns in the
    /// model's order, as most do: then no name is hashed).
    pub fn column_near(&self, hint: usize, name: &str) -> Option<(usize, &ColumnSpec)> {
        match self.columns.get(hint) {
            Some(c) if c.name == name && self.positions.len() == self.columns.len() => {
                Some((hint, c))
            }
            _ => self.positions.get(name).map(|&i| (i, &self.columns[i])),
        }
    }

    /// Where each of the signature's columns is among `names` (the first
    /// of that name; `None`: not there), and the names it does not take,
    /// in their order. A name the signature repeats finds the same place
    /// each time.
    fn place<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> (Vec<Option<usize>>, Vec<&'n str>) {
        let distinct = self.positions.len() == self.columns.len();
        let mut at = vec![None; self.columns.len()];
        let mut unknown = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            // Clients mostly send the columns in the model's order: then
            // no name is hashed.
            let found = if distinct && self.columns.get(i).is_some_and(|c| c.name == name) {
                Some(i)
            } else {
                self.positions.get(name).copied()
            };
            match found {
                Some(p) => {
                    at[p].get_or_insert(i);
                }
                None => unknown.push(name),
            }
        }
        if !distinct {
            // Only each name's first column was placed: the others follow it.
            for (p, c) in self.columns.iter().enumerate() {
                at[p] = at[self.positions[&c.name]];
            }
        }
        (at, unknown)
    }

    /// The names of the signature's columns that `at` did not find.
    fn missing(&self, at: &[Option<usize>]) -> Vec<&str> {
        self.columns
            .iter()
            .zip(at)
            .filter(|(_, a)| a.is_none())
            .map(|(c, _)| c.name.as_str())
            .collect()
    }

    /// The column names, for messages: the first 32, then how many more
    /// (the model's metadata lists them all).
    pub fn names(&self) -> String {
        listed(self.columns.iter().map(|c| c.name.as_str()), "")
    }

    /// The Arrow schema of a request table.
    pub fn schema(&self) -> Arc<Schema> {
        self.schema.clone()
    }

    /// A request table from JSON values, one list per column (in any order;
    /// every column of the signature must be present, no other). `what`
    /// says how columns are called in messages ("input", "column").
    pub fn table_from_json(
        &self,
        columns: Vec<(String, Vec<Value>)>,
        what: &str,
    ) -> Result<RecordBatch, DataError> {
        self.table_from(columns, what)
    }

    /// A request table from columns of values of any source (JSON values,
    /// typed tensors), named by owned or borrowed names, checked as
    /// [`Signature::table_from_json`] says.
    pub fn table_from<N: AsRef<str>, C: ColumnValues>(
        &self,
        columns: Vec<(N, C)>,
        what: &str,
    ) -> Result<RecordBatch, DataError> {
        let (at, unknown) = self.place(columns.iter().map(|(n, _)| n.as_ref()));
        if !unknown.is_empty() {
            return Err(DataError(format!(
                "unknown {what}{} {}; the model takes: {}",
                plural(unknown.len()),
                listed(unknown.iter().copied(), "`"),
                self.names()
            )));
        }
        let missing = self.missing(&at);
        if !missing.is_empty() {
            return Err(DataError(format!(
                "missing {what}{} {}; the model takes: {}",
                plural(missing.len()),
                listed(missing.iter().copied(), "`"),
                self.names()
            )));
        }
        let rows = columns.first().map_or(0, |(_, v)| v.count());
        if let Some((n, v)) = columns.iter().find(|(_, v)| v.count() != rows) {
            return Err(DataError(format!(
                "{what} `{}` has {} values but `{}` has {rows}; every {what} needs one value per row",
                n.as_ref(),
                v.count(),
                columns[0].0.as_ref()
            )));
        }
        let values = |at: Option<usize>| &columns[at.expect("no column is missing")].1;
        let mut shared = SharedNumbers::for_signature(self, rows);
        let in_shared: SmallVec<[bool; 64]> = self
            .columns
            .iter()
            .zip(&at)
            .map(|(spec, &at)| {
                spec.column_type == DType::Float64
                    && values(at).numbers().is_some_and(|n| shared.push(n))
            })
            .collect();
        let mut shared = shared.columns();
        let arrays = self
            .columns
            .iter()
            .zip(at)
            .zip(in_shared)
            .map(
                |((spec, at), in_shared)| match in_shared.then(|| shared.next()).flatten() {
                    Some(column) => Ok(column),
                    None => values(at).to_array(&spec.name, spec.column_type, what),
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
        batch(self.schema(), arrays, rows)
    }

    /// A request table from rows of scalars whose columns `names` names
    /// (each of the signature's columns once, in any order): the shape of
    /// MLflow's `dataframe_split`, made without a JSON tree. `None` when the
    /// rows do not fit as [`Signature::table_from_json`] would take them
    /// (a name unknown or missing, a row of another length, a value of the
    /// wrong kind, no rows): that one then says why.
    pub fn table_from_rows(&self, names: &[&str], rows: &[Vec<Scalar<'_>>]) -> Option<RecordBatch> {
        if rows.is_empty() || names.len() != self.columns.len() {
            return None;
        }
        if rows.iter().any(|r| r.len() != names.len()) {
            return None;
        }
        let (at, unknown) = self.place(names.iter().copied());
        if !unknown.is_empty() {
            return None;
        }
        let mut shared = SharedNumbers::for_signature(self, rows.len());
        let in_shared = self
            .columns
            .iter()
            .zip(&at)
            .map(|(spec, &at)| {
                let at = at?;
                let numbers = rows.iter().map(|r| r[at].borrowed().float());
                Some(spec.column_type == DType::Float64 && shared.push(numbers))
            })
            .collect::<Option<SmallVec<[bool; 64]>>>()?;
        let mut shared = shared.columns();
        let arrays = self
            .columns
            .iter()
            .zip(at)
            .zip(in_shared)
            .map(
                |((spec, at), in_shared)| match in_shared.then(|| shared.next()).flatten() {
                    Some(column) => Some(column),
                    None => {
                        let cells = rows.iter().map(|r| Some(r[at?].borrowed()));
                        scalar_column(spec.column_type, cells).ok()
                    }
                },
            )
            .collect::<Option<Vec<_>>>()?;
        batch(self.schema(), arrays, rows.len()).ok()
    }

    /// `table` with exactly the signature's columns, in order, cast to their
    /// types (integers widen to floats; numbers do not become text).
    pub fn conform(&self, table: &RecordBatch) -> Result<RecordBatch, DataError> {
        if Arc::ptr_eq(table.schema_ref(), &self.schema) {
            // Made by this signature (a request table, or a batch of them).
            return Ok(table.clone());
        }
        let (at, _) = self.place(
            table
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str()),
        );
        let missing = self.missing(&at);
        if !missing.is_empty() {
            return Err(DataError(format!(
                "missing column{} {}; the model takes: {}",
                plural(missing.len()),
                listed(missing.iter().copied(), "`"),
                self.names()
            )));
        }
        let arrays = self
            .columns
            .iter()
            .zip(at)
            .map(|(spec, at)| {
                let array = table.column(at.expect("no column is missing"));
                cast_column(&spec.name, array, spec.column_type)
            })
            .collect::<Result<Vec<_>, _>>()?;
        batch(self.schema(), arrays, table.num_rows())
    }
}

/// Float64 columns without nulls, written one after another into one
/// buffer that each column then slices: one allocation for all of a
/// table's number columns, where a column of its own costs two (its
/// values and their owner), sixty for a one-row request of thirty.
pub(crate) struct SharedNumbers {
    values: Vec<f64>,
    rows: usize,
    room: usize,
}

impl SharedNumbers {
    /// Room for `columns` columns of `rows` rows, taken when the first
    /// column is written (a table none of whose columns is written
    /// allocates nothing).
    pub(crate) fn new(rows: usize, columns: usize) -> Self {
        SharedNumbers {
            values: Vec::new(),
            rows,
            room: rows * columns,
        }
    }

    /// Room for `rows` rows of each of `signature`'s number columns.
    fn for_signature(signature: &Signature, rows: usize) -> Self {
        let floats = signature
            .columns
            .iter()
            .filter(|c| c.column_type == DType::Float64);
        Self::new(rows, floats.count())
    }

    /// Appends a column's numbers (`Some(Some(x))` each); `false`, leaving
    /// nothing appended, at the first that is null or not a number, or
    /// when there are not `rows` of them.
    pub(crate) fn push(&mut self, numbers: impl Iterator<Item = Option<Option<f64>>>) -> bool {
        if self.values.capacity() == 0 {
            self.values.reserve_exact(self.room);
        }
        let start = self.values.len();
        for n in numbers {
            match n {
                Some(Some(x)) => self.values.push(x),
                _ => break,
            }
        }
        let written = self.values.len() == start + self.rows;
        if !written {
            self.values.truncate(start);
        }
        written
    }

    /// The columns written, in order, each a slice of the one buffer.
    pub(crate) fn columns(self) -> impl Iterator<Item = ArrayRef> {
        let rows = self.rows;
        let count = self.values.len().checked_div(rows).unwrap_or(0);
        let buffer = (count > 0).then(|| Buffer::from_vec(self.values));
        buffer.into_iter().flat_map(move |buffer| {
            (0..count).map(move |i| {
                let values = ScalarBuffer::new(buffer.clone(), i * rows, rows);
                Arc::new(Float64Array::new(values, None)) as ArrayRef
            })
        })
    }
}

fn batch(
    schema: Arc<Schema>,
    arrays: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, DataError> {
    RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| DataError(e.to_string()))
}

/// How many names a message lists before it says how many more there are:
/// an error about a 3,000-column model stays a line a person can read
/// (and a request naming 100,000 unknown columns does not get them back).
const LISTED: usize = 32;

/// `names` separated by commas, each between `quote`s: the first
/// [`LISTED`], then "and N more".
fn listed<'a>(names: impl ExactSizeIterator<Item = &'a str>, quote: &str) -> String {
    let more = names.len().saturating_sub(LISTED);
    let mut out = names
        .take(LISTED)
        .map(|n| format!("{quote}{n}{quote}"))
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A column's values before they become an Arrow array of the model's
/// column type.
pub trait ColumnValues {
    /// How many values.
    fn count(&self) -> usize;
    /// The values as an array of `column_type`, or why they cannot be one
    /// (naming the `what` called `name` and the first bad position).
    fn to_array(&self, name: &str, column_type: DType, what: &str) -> Result<ArrayRef, DataError>;

    /// The values as the numbers a float64 column holds (`Some(None)` a
    /// null, `None` a value that is not a number), for sources whose
    /// numbers are copied into the column; `None` for sources whose
    /// numbers the column takes without a copy, or that have none.
    fn numbers(&self) -> Option<impl Iterator<Item = Option<Option<f64>>> + '_> {
        None::<std::iter::Empty<_>>
    }
}

impl ColumnValues for Vec<Value> {
    fn count(&self) -> usize {
        self.len()
    }

    fn to_array(&self, name: &str, column_type: DType, what: &str) -> Result<ArrayRef, DataError> {
        json_column(name, column_type, self, what)
    }

    fn numbers(&self) -> Option<impl Iterator<Item = Option<Option<f64>>> + '_> {
        Some(self.iter().map(|v| scalar(v).and_then(Scalar::float)))
    }
}

impl<C: ColumnValues + Clone> ColumnValues for std::borrow::Cow<'_, C> {
    fn count(&self) -> usize {
        (**self).count()
    }

    fn to_array(&self, name: &str, column_type: DType, what: &str) -> Result<ArrayRef, DataError> {
        (**self).to_array(name, column_type, what)
    }

    fn numbers(&self) -> Option<impl Iterator<Item = Option<Option<f64>>> + '_> {
        (**self).numbers()
    }
}

/// A column of `column_type` from JSON values (`null` is a missing value).
fn json_column(
    name: &str,
    column_type: DType,
    values: &[Value],
    what: &str,
) -> Result<ArrayRef, DataError> {
    let bad = |i: usize, v: &Value| {
        DataError(format!(
            "{what} `{name}` holds {} at position {i}, but the model takes {} there",
            shown(v),
            match column_type {
                DType::Boolean => "true/false",
                DType::Int64 => "whole numbers",
                DType::Float64 => "numbers",
                DType::Utf8 => "text",
            }
        ))
    };
    scalar_column(column_type, values.iter().map(scalar)).map_err(|i| bad(i, &values[i]))
}

/// A column of `column_type` from scalars (`None`: a value that is not
/// one, such as a list), or the position of the first that does not fit.
/// The one place that says which values each column type takes, whether
/// they come from a JSON tree or straight from a request's bytes.
fn scalar_column<'a>(
    column_type: DType,
    cells: impl Iterator<Item = Option<Scalar<'a>>>,
) -> Result<ArrayRef, usize> {
    fn typed<'a, T, A>(
        cells: impl Iterator<Item = Option<Scalar<'a>>>,
        cell: fn(Scalar<'a>) -> Option<Option<T>>,
    ) -> Result<ArrayRef, usize>
    where
        A: FromIterator<Option<T>> + Array + 'static,
    {
        let array = cells
            .enumerate()
            .map(|(i, c)| c.and_then(cell).ok_or(i))
            .collect::<Result<A, usize>>()?;
        Ok(Arc::new(array))
    }
    /// A number column: the values in a plain `Vec` (which becomes the
    /// array's buffer as it is) and a validity bitmap only once a null is
    /// met. Arrow's `FromIterator` builds both in 64-byte-aligned buffers,
    /// the allocator's slow path, and copies them through an `ArrayData`:
    /// for a one-row request that was most of a column's cost.
    fn numbers<'a, T: ArrowPrimitiveType>(
        cells: impl Iterator<Item = Option<Scalar<'a>>>,
        cell: fn(Scalar<'a>) -> Option<Option<T::Native>>,
    ) -> Result<ArrayRef, usize> {
        let mut values = Vec::with_capacity(cells.size_hint().0);
        let mut nulls = NullBufferBuilder::new(values.capacity());
        for (i, c) in cells.enumerate() {
            match c.and_then(cell).ok_or(i)? {
                Some(v) => {
                    values.push(v);
                    nulls.append_non_null();
                }
                None => {
                    values.push(T::Native::default());
                    nulls.append_null();
                }
            }
        }
        Ok(Arc::new(PrimitiveArray::<T>::new(
            ScalarBuffer::from(values),
            nulls.finish(),
        )))
    }
    match column_type {
        DType::Float64 => numbers::<Float64Type>(cells, Scalar::float),
        DType::Int64 => numbers::<Int64Type>(cells, Scalar::int),
        DType::Boolean => typed::<_, BooleanArray>(cells, Scalar::boolean),
        DType::Utf8 => typed::<_, StringArray>(cells, Scalar::text),
    }
}

/// A JSON value as a scalar; `None` for a list or an object.
fn scalar(v: &Value) -> Option<Scalar<'_>> {
    Some(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Scalar::Int(i),
            (None, Some(u)) => Scalar::UInt(u),
            (None, None) => Scalar::Float(n.as_f64()?),
        },
        Value::String(s) => Scalar::Text(s.as_str().into()),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// One JSON value that is not a list or an object, read straight from the
/// request's bytes (text borrowed from them where it has no escapes).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// `null`: a missing value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number that fits an `i64`.
    Int(i64),
    /// A whole number above `i64::MAX`.
    UInt(u64),
    /// Any other number.
    Float(f64),
    /// Text.
    Text(std::borrow::Cow<'a, str>),
}

impl<'a> Scalar<'a> {
    /// The same value, its text borrowed from this one.
    fn borrowed(&self) -> Scalar<'_> {
        match self {
            Scalar::Text(t) => Scalar::Text(t.as_ref().into()),
            Scalar::Null => Scalar::Null,
            Scalar::Bool(b) => Scalar::Bool(*b),
            Scalar::Int(i) => Scalar::Int(*i),
            Scalar::UInt(u) => Scalar::UInt(*u),
            Scalar::Float(f) => Scalar::Float(*f),
        }
    }

    // What each column type takes: `Some(None)` for null, `None` for a
    // value that does not fit.

    /// In a float64 column: any number.
    fn float(self) -> Option<Option<f64>> {
        match self {
            Scalar::Null => Some(None),
            Scalar::Int(i) => Some(Some(i as f64)),
            Scalar::UInt(u) => Some(Some(u as f64)),
            Scalar::Float(f) => Some(Some(f)),
            Scalar::Bool(_) | Scalar::Text(_) => None,
        }
    }

    /// In an int64 column: a whole number that fits, or a float with no
    /// fraction small enough to be exact.
    fn int(self) -> Option<Option<i64>> {
        match self {
            Scalar::Null => Some(None),
            Scalar::Int(i) => Some(Some(i)),
            Scalar::UInt(u) => i64::try_from(u).ok().map(Some),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(Some(f as i64)),
            Scalar::Float(_) | Scalar::Bool(_) | Scalar::Text(_) => None,
        }
    }

    /// In a boolean column: `true` or `false`.
    fn boolean(self) -> Option<Option<bool>> {
        match self {
            Scalar::Null => Some(None),
            Scalar::Bool(b) => Some(Some(b)),
            _ => None,
        }
    }

    /// In a text column: text.
    fn text(self) -> Option<Option<std::borrow::Cow<'a, str>>> {
        match self {
            Scalar::Null => Some(None),
            Scalar::Text(t) => Some(Some(t)),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, text, true, false or null")
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(i64::try_from(v).map_or(Scalar::UInt(v), Scalar::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(v.to_string().into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(v.into()))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A JSON value as shown in a message, shortened.
fn shown(v: &Value) -> String {
    let text = match v {
        Value::String(s) => format!("the text {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
        other => other.to_string(),
    };
    if text.len() > 60 {
        format!("{}…", &text[..text.floor_char_boundary(60)])
    } else {
        text
    }
}

/// `array` as a column of `to`.
fn cast_column(name: &str, array: &ArrayRef, to: DType) -> Result<ArrayRef, DataError> {
    let from = array.data_type();
    if *from == to.arrow() {
        return Ok(array.clone());
    }
    let from_type = DType::of_arrow(from);
    let allowed = match (from_type, to) {
        (Some(f), DType::Float64) => f.is_numeric(),
        (Some(DType::Float64), DType::Int64) => {
            let a = array.as_any().downcast_ref::<Float64Array>().unwrap();
            a.iter().flatten().all(|v| v.fract() == 0.0)
        }
        // Narrow integers and floats (Parquet files from other tools).
        (None, DType::Float64 | DType::Int64) => from.is_numeric(),
        _ => false,
    };
    if !allowed {
        return Err(DataError(format!(
            "column `{name}` is {from}, but the model takes {} there",
            to.name()
        )));
    }
    arrow_cast::cast(array, &to.arrow()).map_err(|e| DataError(format!("column `{name}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use serde_json::json;

    fn signature() -> Signature {
        Signature::new(vec![
            ColumnSpec {
                name: "radius".into(),
                column_type: DType::Float64,
            },
            ColumnSpec {
                name: "count".into(),
                column_type: DType::Int64,
            },
            ColumnSpec {
                name: "site".into(),
                column_type: DType::Utf8,
            },
        ])
    }

    #[test]
    fn json_columns_become_a_typed_table_in_signature_order() {
        let t = signature()
            .table_from_json(
                vec![
                    ("site".into(), vec![json!("a"), Value::Null]),
                    ("count".into(), vec![json!(3), json!(4.0)]),
                    ("radius".into(), vec![json!(1.5), json!(2)]),
                ],
                "input",
            )
            .unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(t.schema().field(0).name(), "radius");
        let r = t.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(r.values().to_vec(), vec![1.5, 2.0]);
        let c = t.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(c.values().to_vec(), vec![3, 4]);
        assert!(t.column(2).is_null(1));
    }

    #[test]
    fn json_number_columns_without_nulls_are_slices_of_one_buffer() {
        let two_floats = Signature::new(
            ["a", "b", "c"]
                .into_iter()
                .map(|name| ColumnSpec {
                    name: name.into(),
                    column_type: DType::Float64,
                })
                .collect(),
        );
        let t = two_floats
            .table_from_json(
                vec![
                    ("c".into(), vec![json!(5), json!(6.5)]),
                    ("b".into(), vec![json!(3.0), Value::Null]),
                    ("a".into(), vec![json!(1.5), json!(-2)]),
                ],
                "input",
            )
            .unwrap();
        let column = |i: usize| t.column(i).as_any().downcast_ref::<Float64Array>().unwrap();
        let (a, b, c) = (column(0), column(1), column(2));
        assert_eq!(a.values().to_vec(), [1.5, -2.0]);
        assert_eq!(c.values().to_vec(), [5.0, 6.5]);
        assert!(a.nulls().is_none() && c.nulls().is_none());
        // `c` follows `a` in the same allocation; `b`, with a null, has
        // its own buffer and its validity bitmap.
        assert_eq!(c.values().as_ptr(), a.values().as_ptr().wrapping_add(2));
        assert_eq!(a.values().inner().data_ptr(), c.values().inner().data_ptr());
        assert_ne!(a.values().inner().data_ptr(), b.values().inner().data_ptr());
        assert_eq!((b.value(0), b.is_null(1)), (3.0, true));
        // Rows of scalars (`dataframe_split`) share the same way.
        let rows = [
            vec![Scalar::Float(1.5), Scalar::Int(3), Scalar::Null],
            vec![Scalar::Int(-2), Scalar::Float(4.5), Scalar::Float(6.5)],
        ];
        let t = two_floats.table_from_rows(&["a", "c", "b"], &rows).unwrap();
        let (ra, rb, rc) = (
            t.column(0).as_any().downcast_ref::<Float64Array>().unwrap(),
            t.column(1).as_any().downcast_ref::<Float64Array>().unwrap(),
            t.column(2).as_any().downcast_ref::<Float64Array>().unwrap(),
        );
        assert_eq!(
            (ra.values().to_vec(), rc.values().to_vec()),
            (vec![1.5, -2.0], vec![3.0, 4.5])
        );
        assert_eq!(
            ra.values().inner().data_ptr(),
            rc.values().inner().data_ptr()
        );
        assert_eq!((rb.is_null(0), rb.value(1)), (true, 6.5));
        // A value that is not a number still gets its message, named by
        // its column and position, after the columns before it shared.
        let e = two_floats
            .table_from_json(
                vec![
                    ("a".into(), vec![json!(1.0)]),
                    ("b".into(), vec![json!(2.0)]),
                    ("c".into(), vec![json!("x")]),
                ],
                "input",
            )
            .unwrap_err();
        assert!(
            e.0.contains("input `c` holds the text \"x\" at position 0"),
            "{e}"
        );
    }

    #[test]
    fn number_columns_keep_their_nulls_where_they_were() {
        let t = signature()
            .table_from_json(
                vec![
                    ("site".into(), vec![json!("a"), json!("b"), json!("c")]),
                    ("count".into(), vec![Value::Null, json!(4), json!(5.0)]),
                    ("radius".into(), vec![json!(1.5), Value::Null, json!(2)]),
                ],
                "input",
            )
            .unwrap();
        let r = t.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(
            (0..3)
                .map(|i| r.is_valid(i).then(|| r.value(i)))
                .collect::<Vec<_>>(),
            [Some(1.5), None, Some(2.0)]
        );
        let c = t.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(
            (0..3)
                .map(|i| c.is_valid(i).then(|| c.value(i)))
                .collect::<Vec<_>>(),
            [None, Some(4), Some(5)]
        );
        // A column without nulls carries no validity bitmap at all.
        let full = signature()
            .table_from_json(
                vec![
                    ("site".into(), vec![json!("a")]),
                    ("count".into(), vec![json!(1)]),
                    ("radius".into(), vec![json!(1.5)]),
                ],
                "input",
            )
            .unwrap();
        assert!(full.column(0).nulls().is_none() && full.column(1).nulls().is_none());
    }

    #[test]
    fn bad_json_columns_are_refused_naming_the_column() {
        let s = signature();
        let e = s
            .table_from_json(vec![("radius".into(), vec![json!(1)])], "input")
            .unwrap_err();
        assert!(e.0.contains("missing inputs `count`, `site`"), "{e}");
        let e = s
            .table_from_json(
                vec![
                    ("radius".into(), vec![json!("big")]),
                    ("count".into(), vec![json!(1)]),
                    ("site".into(), vec![json!("a")]),
                ],
                "input",
            )
            .unwrap_err();
        assert!(
            e.0.contains("`radius` holds the text \"big\" at position 0"),
            "{e}"
        );
        let e = s
            .table_from_json(
                vec![
                    ("radius".into(), vec![json!(1)]),
                    ("count".into(), vec![json!(1.5)]),
                    ("site".into(), vec![json!("a")]),
                ],
                "input",
            )
            .unwrap_err();
        assert!(e.0.contains("whole numbers"), "{e}");
        let e = s
            .table_from_json(
                vec![
                    ("radius".into(), vec![json!(1), json!(2)]),
                    ("count".into(), vec![json!(1)]),
                    ("site".into(), vec![json!("a")]),
                    ("age".into(), vec![json!(1)]),
                ],
                "input",
            )
            .unwrap_err();
        assert!(e.0.contains("unknown input `age`"), "{e}");
    }

    #[test]
    fn conform_widens_integers_and_refuses_text_for_numbers() {
        let s = Signature::new(vec![ColumnSpec {
            name: "x".into(),
            column_type: DType::Float64,
        }]);
        let ints = RecordBatch::try_from_iter([
            ("y", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("x", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
        ])
        .unwrap();
        let t = s.conform(&ints).unwrap();
        assert_eq!(t.num_columns(), 1);
        let x = t.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(x.value(0), 7.0);
        let text =
            RecordBatch::try_from_iter([("x", Arc::new(StringArray::from(vec!["7"])) as ArrayRef)])
                .unwrap();
        assert!(s.conform(&text).unwrap_err().0.contains("takes float64"));
    }

    #[test]
    fn a_repeated_model_column_takes_the_first_request_column_of_its_name() {
        let s = Signature::new(
            ["a", "b", "a"]
                .map(|n| ColumnSpec {
                    name: n.into(),
                    column_type: DType::Float64,
                })
                .to_vec(),
        );
        let floats = |t: &RecordBatch| -> Vec<f64> {
            t.columns()
                .iter()
                .map(|c| c.as_any().downcast_ref::<Float64Array>().unwrap().value(0))
                .collect()
        };
        // In the model's order, in another order, and with the name twice.
        for (columns, expected) in [
            (vec![("a", 1), ("b", 2)], [1.0, 2.0, 1.0]),
            (vec![("b", 2), ("a", 1)], [1.0, 2.0, 1.0]),
            (vec![("a", 1), ("b", 2), ("a", 3)], [1.0, 2.0, 1.0]),
        ] {
            let json = columns
                .iter()
                .map(|&(n, v)| (n.to_string(), vec![json!(v)]))
                .collect();
            assert_eq!(floats(&s.table_from_json(json, "input").unwrap()), expected);
            let table = RecordBatch::try_from_iter(columns.iter().map(|&(n, v)| {
                (
                    n,
                    Arc::new(Float64Array::from(vec![f64::from(v)])) as ArrayRef,
                )
            }))
            .unwrap();
            assert_eq!(floats(&s.conform(&table).unwrap()), expected);
        }
        let e = s
            .table_from_json(vec![("b".into(), vec![json!(2)])], "input")
            .unwrap_err();
        assert!(e.0.starts_with("missing inputs `a`, `a`;"), "{e}");
    }
}
