//! The host side of the `tables` interface: table handles, and the
//! operations a step asks the host to compute on them.
//!
//! Every table a handle refers to is reserved in the step's memory budget
//! (through the session's ledger) for as long as the handle lives; an
//! operation whose result would not fit traps the step with a memory-limit
//! failure that says what it was holding. Work runs on the table compute
//! threads, so a step's time limit can abandon it.

use crate::bindings::sluice::pipeline::tables;
use crate::host::StepState;
use crate::table::{self, TableBuilderRes, TableRes};
use arrow_array::ArrayRef;
use sluice_tables::ops::{self, Aggregate, JoinKind, OpError, SortKey, SplitBy};
use sluice_tables::{Hold, MemoryError, Table};
use wasmtime::component::Resource;

/// Raised (as a trap) when the host cannot hold what a step asked for
/// within the step's memory limit.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostMemoryExceeded(pub(crate) MemoryError);

/// The result of an operation as the contract returns it: a trap for a
/// memory failure, the message for anything else.
type OpResult<T> = wasmtime::Result<Result<T, String>>;

impl StepState {
    /// A new handle for `table`, reserved in the step's pool; `what` names
    /// it if the limit does not allow it.
    pub(crate) fn push_table(
        &mut self,
        what: &str,
        table: Table,
    ) -> wasmtime::Result<Resource<TableRes>> {
        let hold = self
            .session
            .ledger()
            .hold(what, &table)
            .map_err(|e| wasmtime::Error::new(HostMemoryExceeded(e)))?;
        self.limiter.observe();
        Ok(self.resources.push(TableRes::new(table, hold))?)
    }

    /// The table behind a handle (sharing its data).
    pub(crate) fn table(&self, handle: &Resource<TableRes>) -> wasmtime::Result<Table> {
        Ok(self.resources.get(handle)?.table.clone())
    }

    /// Counts copies of columns against the step's memory while they are
    /// handed to the guest: roughly twice their size, for the converted
    /// values. `what` names them, if the step's memory is exceeded.
    fn hold_copies(
        &mut self,
        arrays: &[ArrayRef],
        what: impl Fn() -> String,
    ) -> wasmtime::Result<Hold> {
        let size = arrays
            .iter()
            .map(|a| a.get_array_memory_size() as u64 * 2)
            .sum();
        let hold = self
            .session
            .ledger()
            .hold_bytes(std::fmt::from_fn(|f| f.write_str(&what())), size)
            .map_err(|e| wasmtime::Error::new(HostMemoryExceeded(e)))?;
        self.limiter.observe();
        Ok(hold)
    }

    /// Counts the `added` columns just added to a builder against the
    /// step's memory, for as long as the builder holds them.
    fn hold_added(
        &mut self,
        this: &Resource<TableBuilderRes>,
        added: usize,
    ) -> wasmtime::Result<()> {
        let builder = self.resources.get_mut(this)?;
        let hold = self
            .session
            .ledger()
            .hold_bytes(
                format_args!(
                    "column{} {} of a table being built",
                    plural(added),
                    quoted(builder.last_column_names(added))
                ),
                builder.size_of_last(added),
            )
            .map_err(|e| wasmtime::Error::new(HostMemoryExceeded(e)))?;
        builder.keep(hold);
        self.limiter.observe();
        Ok(())
    }

    /// Turns an operation's outcome into a new handle, or its error.
    fn finish_op(
        &mut self,
        what: &str,
        result: Result<Table, OpError>,
    ) -> OpResult<Resource<TableRes>> {
        match result {
            Ok(t) => Ok(Ok(self.push_table(what, t)?)),
            Err(e) => {
                if e.is_unavailable() {
                    self.io.unavailable = Some(e.to_string());
                }
                op_error(e)
            }
        }
    }
}

/// A memory failure traps; any other error goes back to the step.
fn op_error<T>(e: OpError) -> OpResult<T> {
    match e {
        OpError::Memory(m) => Err(wasmtime::Error::new(HostMemoryExceeded(m))),
        other => Ok(Err(other.to_string())),
    }
}

impl tables::Host for StepState {
    async fn concat(&mut self, parts: Vec<Resource<TableRes>>) -> OpResult<Resource<TableRes>> {
        let parts = parts
            .iter()
            .map(|p| self.table(p))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let result = self.session.compute(move || ops::concat(&parts)).await;
        self.finish_op("the result of concat", result)
    }

    async fn sql(
        &mut self,
        query: String,
        inputs: Vec<(String, Resource<TableRes>)>,
    ) -> OpResult<Resource<TableRes>> {
        let inputs = inputs
            .iter()
            .map(|(name, t)| Ok((name.clone(), self.table(t)?)))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let session = self.session.clone();
        let result = sluice_tables::sql::sql(&session, &query, &inputs).await;
        self.finish_op("the result of a SQL query", result)
    }
}

impl tables::HostTable for StepState {
    fn fields(&mut self, this: Resource<TableRes>) -> wasmtime::Result<Vec<tables::Field>> {
        Ok(table::wit_fields(self.resources.get(&this)?.table.schema()))
    }

    fn num_rows(&mut self, this: Resource<TableRes>) -> wasmtime::Result<u64> {
        Ok(self.resources.get(&this)?.table.num_rows() as u64)
    }

    fn column(&mut self, this: Resource<TableRes>, name: String) -> OpResult<tables::Column> {
        let rows = self.resources.get(&this)?.table.num_rows() as u64;
        self.column_chunk(this, name, 0, rows)
    }

    fn slice(
        &mut self,
        this: Resource<TableRes>,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Resource<TableRes>> {
        let t = self.table(&this)?;
        let sliced = t.slice(saturate(offset), saturate(len));
        self.push_table("a slice", sliced)
    }

    fn schema(&mut self, this: Resource<TableRes>) -> wasmtime::Result<Vec<tables::ColumnInfo>> {
        Ok(table::column_infos(
            self.resources.get(&this)?.table.schema(),
        ))
    }

    fn column_chunk(
        &mut self,
        this: Resource<TableRes>,
        name: String,
        offset: u64,
        len: u64,
    ) -> OpResult<tables::Column> {
        let t = self.table(&this)?;
        let array = match t.column_chunk(&name, saturate(offset), saturate(len)) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let _hold = self.hold_copies(std::slice::from_ref(&array), || {
            format!("a copy of column `{name}`")
        })?;
        Ok(table::to_wit_column(&name, array.as_ref()).map_err(|e| e.to_string()))
    }

    fn columns(
        &mut self,
        this: Resource<TableRes>,
        names: Vec<String>,
    ) -> OpResult<Vec<tables::Column>> {
        let t = self.table(&this)?;
        let mut arrays = Vec::with_capacity(names.len());
        for name in &names {
            match t.column_chunk(name, 0, t.num_rows()) {
                Ok(a) => arrays.push(a),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        let _hold = self.hold_copies(&arrays, || {
            format!(
                "copies of column{} {}",
                plural(names.len()),
                quoted(names.iter().map(String::as_str))
            )
        })?;
        Ok(names
            .iter()
            .zip(&arrays)
            .map(|(name, a)| table::to_wit_column(name, a.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string()))
    }

    fn batch_rows(&mut self, this: Resource<TableRes>) -> wasmtime::Result<Vec<u64>> {
        Ok(self.resources.get(&this)?.table.batch_rows())
    }

    async fn select(
        &mut self,
        this: Resource<TableRes>,
        columns: Vec<String>,
    ) -> OpResult<Resource<TableRes>> {
        let t = self.table(&this)?;
        let result = ops::select(&t, &columns);
        self.finish_op("the result of select", result)
    }

    async fn compute(
        &mut self,
        this: Resource<TableRes>,
        columns: Vec<(String, String)>,
    ) -> OpResult<Resource<TableRes>> {
        let t = self.table(&this)?;
        let session = self.session.clone();
        let result = ops::compute(&session, &t, &columns).await;
        self.finish_op("the result of compute", result)
    }

    async fn filter(
        &mut self,
        this: Resource<TableRes>,
        predicate: String,
    ) -> OpResult<Resource<TableRes>> {
        let t = self.table(&this)?;
        let session = self.session.clone();
        let result = ops::filter(&session, &t, &predicate).await;
        self.finish_op("the result of filter", result)
    }

    async fn take(
        &mut self,
        this: Resource<TableRes>,
        rows: Vec<u64>,
    ) -> OpResult<Resource<TableRes>> {
        let t = self.table(&this)?;
        let result = self.session.compute(move || ops::take(&t, &rows)).await;
        self.finish_op("the result of take", result)
    }

    async fn sort(
        &mut self,
        this: Resource<TableRes>,
        keys: Vec<tables::SortKey>,
    ) -> OpResult<Resource<TableRes>> {
        let t = self.table(&this)?;
        let keys: Vec<SortKey> = keys
            .into_iter()
            .map(|k| SortKey {
                column: k.column,
                descending: k.descending,
                nulls_first: k.nulls_first,
            })
            .collect();
        let session = self.session.clone();
        let result = ops::sort(&session, &t, &keys).await;
        self.finish_op("the result of sort", result)
    }

    async fn group_by(
        &mut self,
        this: Resource<TableRes>,
        keys: Vec<String>,
        aggregates: Vec<tables::Aggregate>,
    ) -> OpResult<Resource<TableRes>> {
        let t = self.table(&this)?;
        let aggregates: Vec<Aggregate> = aggregates
            .into_iter()
            .map(|a| Aggregate {
                function: a.function,
                column: a.column,
                name: a.name,
            })
            .collect();
        let session = self.session.clone();
        let result = ops::group_by(&session, &t, &keys, &aggregates).await;
        self.finish_op("the result of group-by", result)
    }

    async fn join(
        &mut self,
        this: Resource<TableRes>,
        right: Resource<TableRes>,
        on: Vec<String>,
        how: tables::JoinKind,
    ) -> OpResult<Resource<TableRes>> {
        let left = self.table(&this)?;
        let right = self.table(&right)?;
        let how = match how {
            tables::JoinKind::Inner => JoinKind::Inner,
            tables::JoinKind::Left => JoinKind::Left,
            tables::JoinKind::Right => JoinKind::Right,
            tables::JoinKind::Full => JoinKind::Full,
            tables::JoinKind::Semi => JoinKind::Semi,
            tables::JoinKind::Anti => JoinKind::Anti,
        };
        let session = self.session.clone();
        let result = ops::join(&session, &left, &right, &on, how).await;
        self.finish_op("the result of join", result)
    }

    async fn sample(
        &mut self,
        this: Resource<TableRes>,
        rows: u64,
        seed: u64,
    ) -> OpResult<Resource<TableRes>> {
        let t = self.table(&this)?;
        let result = self
            .session
            .compute(move || ops::sample(&t, rows, seed))
            .await;
        self.finish_op("the sample", result)
    }

    async fn split(
        &mut self,
        this: Resource<TableRes>,
        by: tables::SplitBy,
        fractions: Vec<f64>,
        seed: u64,
    ) -> OpResult<Vec<Resource<TableRes>>> {
        let t = self.table(&this)?;
        let by = match by {
            tables::SplitBy::Random => SplitBy::Random,
            tables::SplitBy::Stratified(c) => SplitBy::Stratified(c),
            tables::SplitBy::Hash(cs) => SplitBy::Hash(cs),
            tables::SplitBy::Ordered(c) => SplitBy::Ordered(c),
        };
        let parts = match self
            .session
            .compute(move || ops::split(&t, &by, &fractions, seed))
            .await
        {
            Ok(parts) => parts,
            Err(e) => return op_error(e),
        };
        let mut handles = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            handles.push(self.push_table(&format!("part {} of a split", i + 1), part)?);
        }
        Ok(Ok(handles))
    }

    async fn describe(&mut self, this: Resource<TableRes>, options: String) -> OpResult<String> {
        let t = self.table(&this)?;
        let options: sluice_tables::describe::DescribeOptions =
            match serde_json::from_str(if options.trim().is_empty() {
                "{}"
            } else {
                &options
            }) {
                Ok(o) => o,
                Err(e) => return Ok(Err(format!("the describe options are not valid: {e}"))),
            };
        match self
            .session
            .compute(move || sluice_tables::describe::describe(&t, &options))
            .await
        {
            Ok(doc) => Ok(Ok(doc.to_string())),
            Err(e) => op_error(e),
        }
    }

    fn drop(&mut self, this: Resource<TableRes>) -> wasmtime::Result<()> {
        self.resources.delete(this)?;
        Ok(())
    }
}

impl tables::HostTableBuilder for StepState {
    fn new(&mut self) -> wasmtime::Result<Resource<TableBuilderRes>> {
        Ok(self.resources.push(TableBuilderRes::default())?)
    }

    fn add_column(
        &mut self,
        this: Resource<TableBuilderRes>,
        name: String,
        data: tables::Column,
    ) -> OpResult<()> {
        if let Err(e) = self.resources.get_mut(&this)?.add(name, data) {
            return Ok(Err(e));
        }
        self.hold_added(&this, 1)?;
        Ok(Ok(()))
    }

    fn add_columns(
        &mut self,
        this: Resource<TableBuilderRes>,
        columns: Vec<(String, tables::Column)>,
    ) -> OpResult<()> {
        let added = match self.resources.get_mut(&this)?.add_all(columns) {
            Ok(added) => added,
            Err(e) => return Ok(Err(e)),
        };
        self.hold_added(&this, added)?;
        Ok(Ok(()))
    }

    fn finish(&mut self, this: Resource<TableBuilderRes>) -> OpResult<Resource<TableRes>> {
        match self.resources.get_mut(&this)?.finish() {
            Ok(batch) => Ok(Ok(
                self.push_table("the built table", Table::from_batch(batch))?
            )),
            Err(e) => Ok(Err(e)),
        }
    }

    fn drop(&mut self, this: Resource<TableBuilderRes>) -> wasmtime::Result<()> {
        self.resources.delete(this)?;
        Ok(())
    }
}

/// A guest's u64 as a row count or index (saturating on 32-bit hosts).
fn saturate(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// "s" for a count other than one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Names in backquotes, separated by commas, at most five of them; written
/// only if an error message needs them.
fn quoted<'a>(names: impl Iterator<Item = &'a str> + Clone) -> impl std::fmt::Display {
    std::fmt::from_fn(move |f| {
        let count = names.clone().count();
        for (i, name) in names.clone().take(5).enumerate() {
            write!(f, "{}`{name}`", if i == 0 { "" } else { ", " })?;
        }
        if count > 5 {
            write!(f, " and {} more", count - 5)?;
        }
        Ok(())
    })
}
