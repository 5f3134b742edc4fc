//! Errors: why a step did not succeed ([`StepError`]) and why a table
//! operation failed ([`TableError`]).

use std::fmt;

use crate::table::DType;

/// Why a step did not succeed. The variant decides what the host does next.
#[derive(Debug, Clone, PartialEq)]
pub enum StepError {
    /// The inputs or params break the step's contract (a malformed file,
    /// schema skew, a missing column). The pipeline stops; never retried.
    InvalidInput(String),
    /// A validation gate said no. The pipeline stops, outputs are not
    /// blessed; never retried.
    Rejected(String),
    /// Anything else. Retried when the step allows retries.
    Failed(String),
}

impl StepError {
    /// The inputs or params break the step's contract.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// A validation gate said no.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::Rejected(message.into())
    }

    /// Anything else; may be retried.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// The message, without the variant.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidInput(m) | Self::Rejected(m) | Self::Failed(m) => m,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Self::Rejected(m) => write!(f, "rejected: {m}"),
            Self::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for StepError {}

/// Why a table operation failed.
#[derive(Debug, Clone, PartialEq)]
pub enum TableError {
    /// A column could not be read, e.g. because the table has no such
    /// column (the host's message names the columns that do exist).
    Column {
        /// The column asked for.
        name: String,
        /// The host's message.
        message: String,
    },
    /// The column exists but holds another type than the one asked for.
    WrongType {
        /// The column asked for.
        name: String,
        /// The type(s) the accessor accepts, e.g. `"float64 or int64"`.
        expected: &'static str,
        /// The column's actual type.
        actual: DType,
    },
    /// Building a table failed: a repeated column name, a length that differs
    /// from earlier columns, or a null index out of range.
    Build(String),
    /// The host refused an operation on tables (select, filter, sort, SQL
    /// …): an unknown column, a malformed expression; the message says which.
    Op {
        /// The operation (`filter`, `sql`).
        op: &'static str,
        /// The host's message.
        message: String,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Column { name, message } => write!(f, "column `{name}`: {message}"),
            Self::WrongType {
                name,
                expected,
                actual,
            } => write!(f, "column `{name}` has type {actual}, expected {expected}"),
            Self::Build(m) => write!(f, "building a table: {m}"),
            Self::Op { op, message } => write!(f, "{op}: {message}"),
        }
    }
}

impl std::error::Error for TableError {}

/// Reading a column the input does not have, or has with another type, is a
/// contract violation of the input ([`StepError::InvalidInput`]); a failure to
/// build a table is the step's own fault ([`StepError::Failed`]).
impl From<TableError> for StepError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::Column { .. } | TableError::WrongType { .. } => {
                Self::InvalidInput(e.to_string())
            }
            TableError::Build(_) | TableError::Op { .. } => Self::Failed(e.to_string()),
        }
    }
}
