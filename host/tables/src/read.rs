//! Files read as tables natively ([`read`]): CSV, Parquet and JSON lines,
//! with a report of what was found ([`ReadReport`]).
//!
//! # CSV
//!
//! The rules are `std:ingest-csv`'s (`docs/steps/ingest-csv.md`), so that a
//! file reads as the same table on the host as in that step — the same
//! names, types, values, nulls and nullable flags (a column is nullable
//! when it holds a null) — and the same files are refused:
//!
//! - one UTF-8 byte-order mark is skipped; a file of nothing but whitespace
//!   is empty;
//! - records are RFC 4180 as the `csv` crate reads them: a field in double
//!   quotes may hold the delimiter, line breaks and `""` (one `"`); a quote
//!   counts only as a field's first character; after a closing quote the
//!   rest of the field is kept as written; an unterminated quote runs to the
//!   end of the file; records end with `\n`, `\r\n` or `\r`; blank lines
//!   are skipped;
//! - every field is trimmed of (Unicode) whitespace, then compared with the
//!   missing-value tokens (exactly) and becomes a null if it is one;
//! - with a header the first record names the columns (none empty, none
//!   repeated, after trimming); without, they are `column_1` … and the first
//!   record is data; every record must have as many fields;
//! - each column is `boolean` if every value is `true`/`false` (any case),
//!   else `int64` if every one parses as a 64-bit integer, else `float64`
//!   if every one parses as a number (Rust's `f64` syntax: `1e3`, `.5`,
//!   `inf`, `nan`), else text; a column with no value is `utf8`, all null.
//!
//! Two differences, on purpose:
//!
//! - a column the step reads as `utf8` whose values are all dates
//!   (`YYYY-MM-DD`) is a `date` column, and one whose values are all
//!   date-times (`2024-01-05T10:00:00`, `2024-01-05 10:00:00.250`,
//!   `2024-01-05T10:00Z`; RFC 3339 and ISO 8601 with `T`, `t` or a space)
//!   is a `timestamp` (microseconds): with time zone `UTC` when every value
//!   has an offset or `Z` (converted to UTC), without one when none has
//!   (mixed: text). Digits beyond microseconds are dropped. Nothing that
//!   the step reads as boolean or a number changes;
//! - a file with a header and no rows is an error (the step gave a table
//!   of `utf8` columns and no rows).
//!
//! A text column that is mostly numbers (or booleans, or dates), or that
//! turns from them to text part-way down the file, gets a [`Warning`] that
//! names the values that made it text and their lines.
//!
//! Options may force a column's type ([`ReadOptions::types`]): then a value
//! that does not parse is an error naming its line and column.
//!
//! The file is parsed on every core: it is split at record boundaries (found
//! by a scan that knows which line breaks are inside quotes), each part is
//! parsed straight into typed Arrow buffers (a column that turns out wider
//! in some part is widened afterwards, re-reading only that part's text),
//! and each part becomes one record batch of about
//! [`DEFAULT_BATCH_ROWS`] rows. Memory is the table's plus one part's
//! buffers per core.
//!
//! # Parquet and JSON lines
//!
//! Parquet is read with its column projection, in batches of
//! [`COLUMNAR_BATCH_ROWS`] rows. JSON lines (one object per line) are read
//! with the types inferred over the whole file. Column types host tables do
//! not hold are cast where nothing is lost (smaller and unsigned integers to
//! `int64`, `float16` to `float32`, large and view strings to `utf8`, other
//! time units to microseconds, other dictionaries to `Int32` keys) or where
//! it is the only sensible reading (decimals to `float64`), with a warning
//! in the report; anything else is refused naming the column.

use crate::engine::parallelism;
use crate::table::{ColumnType, Table};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float32Array, Float64Array, Int64Array,
    RecordBatch, RecordBatchOptions, StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The field values that mean a missing value unless [`CsvOptions::missing`]
/// says otherwise (`std:ingest-csv`'s default).
pub const DEFAULT_MISSING: [&str; 7] = ["", "NA", "N/A", "NaN", "null", "NULL", "None"];

/// The rows a record batch of a CSV file holds, roughly (parts are cut by
/// bytes, on the file's average record length).
pub const DEFAULT_BATCH_ROWS: usize = 1 << 18;

/// The rows of each record batch read from Parquet or JSON lines.
pub const COLUMNAR_BATCH_ROWS: usize = 1 << 16;

/// The smallest part of a CSV file parsed by one core (unless
/// [`ReadOptions::batch_rows`] asks for smaller batches).
const MIN_PART_BYTES: usize = 1 << 20;

/// The largest part of a CSV file parsed by one core.
const MAX_PART_BYTES: usize = 256 << 20;

/// How many values that made a column text a warning lists.
const EXAMPLES: usize = 3;

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Comma- (or otherwise) separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line (`jsonl` and `ndjson` are accepted as names).
    #[serde(alias = "jsonl", alias = "ndjson")]
    JsonLines,
}

impl Format {
    /// Its name in options and reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::JsonLines => "json-lines",
        }
    }
}

/// The format of a file from its first bytes: Parquet if it starts with
/// `PAR1`, JSON lines if its first non-whitespace byte (after a byte-order
/// mark) is `{`, else CSV.
pub fn sniff(bytes: &[u8]) -> Format {
    if bytes.starts_with(b"PAR1") {
        return Format::Parquet;
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Format::JsonLines,
        _ => Format::Csv,
    }
}

/// A column type a read can be told to give a column
/// ([`ReadOptions::types`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadType {
    /// `true` / `false`, in any case.
    Boolean,
    /// 64-bit integers.
    Int64,
    /// 64-bit floats.
    Float64,
    /// 32-bit floats.
    Float32,
    /// Text, as written (trimmed).
    Utf8,
    /// `YYYY-MM-DD` dates.
    Date,
    /// Date-times (microseconds): `UTC` when the values carry offsets, else
    /// without a time zone; a date alone is midnight.
    Timestamp,
    /// Text, dictionary-encoded.
    Categorical,
}

impl ReadType {
    /// Its name in options.
    pub fn name(self) -> &'static str {
        match self {
            ReadType::Boolean => "boolean",
            ReadType::Int64 => "int64",
            ReadType::Float64 => "float64",
            ReadType::Float32 => "float32",
            ReadType::Utf8 => "utf8",
            ReadType::Date => "date",
            ReadType::Timestamp => "timestamp",
            ReadType::Categorical => "categorical",
        }
    }
}

/// The CSV dialect: `std:ingest-csv`'s params, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CsvOptions {
    /// The field delimiter: one ASCII character, or `\t` / `tab`; default `,`.
    pub delimiter: String,
    /// Whether the first record names the columns (default true); if not,
    /// they are named `column_1` … `column_n`.
    pub header: bool,
    /// Field values (after trimming) that mean a missing value, compared
    /// exactly; replaces [`DEFAULT_MISSING`], it does not add to it.
    pub missing: Vec<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: ",".into(),
            header: true,
            missing: DEFAULT_MISSING.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// How to read a file; every field is optional (`{}` reads with the
/// defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ReadOptions {
    /// The format; by default told from the bytes ([`sniff`]).
    pub format: Option<Format>,
    /// The columns to read, in this order; by default all, in file order.
    pub columns: Option<Vec<String>>,
    /// The CSV dialect (ignored for other formats).
    pub csv: CsvOptions,
    /// Column types to use instead of the inferred ones, by column name. In
    /// a CSV file a value that does not parse as the type is an error; other
    /// formats are cast.
    pub types: BTreeMap<String, ReadType>,
    /// Rows per record batch: roughly, for CSV (default
    /// [`DEFAULT_BATCH_ROWS`]); exactly, for the others (default
    /// [`COLUMNAR_BATCH_ROWS`]).
    pub batch_rows: Option<usize>,
}

/// What reading a file found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadReport {
    /// The file's format.
    pub format: Format,
    /// Rows read.
    pub rows: u64,
    /// The table's columns, in order.
    pub columns: Vec<ColumnReport>,
    /// Things worth a look that did not stop the read.
    pub warnings: Vec<Warning>,
}

/// One column of a [`ReadReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnReport {
    /// Its name.
    pub name: String,
    /// Its type ([`ColumnType::name`]).
    #[serde(rename = "type")]
    pub column_type: String,
    /// Its time zone, for a timestamp column that has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Its nulls.
    pub missing: u64,
}

/// Something about the file that did not stop the read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// The 1-based line it is about (the first, if several), if any.
    pub line: Option<u64>,
    /// The column it is about, if any.
    pub column: Option<String>,
    /// What, and what to do.
    pub message: String,
}

/// Why a file could not be read. Every message names the file and, where
/// they are known, the 1-based line and the column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// The options cannot be used.
    #[error("{file}: {message}")]
    Options {
        /// The file.
        file: String,
        /// What is wrong with them.
        message: String,
    },
    /// The file holds nothing but whitespace.
    #[error("{file}: the file is empty")]
    Empty {
        /// The file.
        file: String,
    },
    /// The file holds a header but no rows.
    #[error("{file}: the file holds a header but no rows")]
    NoRows {
        /// The file.
        file: String,
    },
    /// A header name is empty.
    #[error(
        "{file}, line {line}: the header's column {position} has an empty name; name every column (pandas writes an unnamed index column first unless saved with `index=False`)"
    )]
    EmptyName {
        /// The file.
        file: String,
        /// The header's line.
        line: u64,
        /// The column's 1-based position.
        position: usize,
    },
    /// A header name is repeated.
    #[error(
        "{file}, line {line}: the header repeats column name `{name}` (columns {first} and {second})"
    )]
    RepeatedName {
        /// The file.
        file: String,
        /// The header's line.
        line: u64,
        /// The name.
        name: String,
        /// Its first 1-based position.
        first: usize,
        /// Its second.
        second: usize,
    },
    /// A record has more or fewer fields than the header.
    #[error(
        "{file}, line {line}: expected {expected} fields but found {found} (as many as {basis}); a field holding the delimiter must be in double quotes"
    )]
    FieldCount {
        /// The file.
        file: String,
        /// The record's (first) line.
        line: u64,
        /// The fields of every record.
        expected: usize,
        /// The fields of this one.
        found: usize,
        /// What fixed `expected`: the header, or the first record.
        basis: &'static str,
    },
    /// A field is not UTF-8.
    #[error(
        "{file}, line {line}, field {field}{}: invalid UTF-8; convert the file to UTF-8 first",
        column.as_ref().map(|c| format!(" (column `{c}`)")).unwrap_or_default()
    )]
    Utf8 {
        /// The file.
        file: String,
        /// The record's (first) line.
        line: u64,
        /// The field's 1-based position.
        field: usize,
        /// Its column, unless it is in the header.
        column: Option<String>,
    },
    /// A value does not parse as the type its column was given.
    #[error("{file}, line {line}, column `{column}`: {message}")]
    Value {
        /// The file.
        file: String,
        /// The record's (first) line.
        line: u64,
        /// The column.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
    /// A column cannot be read as a host column (its type, or a cast).
    #[error("{file}, column `{column}`: {message}")]
    Column {
        /// The file.
        file: String,
        /// The column.
        column: String,
        /// Why.
        message: String,
    },
    /// The file is not readable in its format.
    #[error("{file}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Malformed {
        /// The file.
        file: String,
        /// The format it was read as.
        format: Format,
        /// The line at fault, where known.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
}

/// Reads `bytes`, the contents of `file_name` (used in messages), as a
/// table; see the module documentation for the rules.
pub fn read(
    file_name: &str,
    bytes: Bytes,
    options: &ReadOptions,
) -> Result<(Table, ReadReport), ReadError> {
    let format = options.format.unwrap_or_else(|| sniff(&bytes));
    if let Some(columns) = &options.columns {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(ReadError::Options {
                file: file_name.into(),
                message: format!("option `columns` names column `{dup}` twice"),
            });
        }
    }
    if options.batch_rows == Some(0) {
        return Err(ReadError::Options {
            file: file_name.into(),
            message: "option `batch-rows` must be at least 1".into(),
        });
    }
    match format {
        Format::Csv => csv::read(file_name, &bytes, options),
        Format::Parquet => read_parquet(file_name, bytes, options),
        Format::JsonLines => read_json_lines(file_name, &bytes, options),
    }
}

/// Runs `f(0) … f(n - 1)` on up to `threads` threads, returning the results
/// in order. A panic in `f` is resumed on the caller's thread.
pub(crate) fn parallel_map<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = threads.min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, T)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break out;
                        }
                        out.push((i, f(i)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut all: Vec<(usize, T)> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|p| p.0);
    all.into_iter().map(|p| p.1).collect()
}

/// The names a projection selects, as indices into `names`, in the order
/// asked; also checks that `types` names only columns there are.
fn project(file: &str, names: &[String], options: &ReadOptions) -> Result<Vec<usize>, ReadError> {
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let unknown = |what: &str, name: &str| ReadError::Options {
        file: file.into(),
        message: format!(
            "option `{what}` names column `{name}`, which the file does not have; its columns are: {}",
            names.join(", ")
        ),
    };
    if let Some(name) = options
        .types
        .keys()
        .find(|n| !index.contains_key(n.as_str()))
    {
        return Err(unknown("types", name));
    }
    match &options.columns {
        None => Ok((0..names.len()).collect()),
        Some(columns) => columns
            .iter()
            .map(|c| {
                index
                    .get(c.as_str())
                    .copied()
                    .ok_or_else(|| unknown("columns", c))
            })
            .collect(),
    }
}

/// The report of a table read.
fn report(format: Format, table: &Table, warnings: Vec<Warning>) -> ReadReport {
    let columns = table
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let t = ColumnType::of_arrow(f.data_type());
            ColumnReport {
                name: f.name().clone(),
                column_type: t.as_ref().map_or("unsupported", ColumnType::name).into(),
                timezone: match t {
                    Some(ColumnType::Timestamp(tz)) => tz,
                    _ => None,
                },
                missing: table
                    .batches()
                    .iter()
                    .map(|b| b.column(i).logical_null_count() as u64)
                    .sum(),
            }
        })
        .collect();
    ReadReport {
        format,
        rows: table.num_rows() as u64,
        columns,
        warnings,
    }
}

// ---- values ---------------------------------------------------------------

/// `true` / `false` in any case (the step's rule).
fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `v.parse::<i64>()`, faster: an optional sign, then ASCII digits.
fn parse_i64(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        let mut n: i64 = 0;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            n = n * 10 + i64::from(d);
        }
        return Some(if negative { -n } else { n });
    }
    let mut n: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(i64::from(d))?
        } else {
            n.checked_add(i64::from(d))?
        };
    }
    Some(n)
}

/// Powers of ten a double holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `v.parse::<f64>()`, faster for plain decimals (`-12.345`): when the
/// digits make an integer below 2^53 and there are at most 22 after the
/// point, integer / 10^k is exact over exact and so correctly rounded — the
/// value `str::parse` gives (its own fast path). Anything else is left to
/// `str::parse`.
#[inline]
fn parse_f64(v: &str) -> Option<f64> {
    let b = v.as_bytes();
    let (negative, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut fraction: Option<usize> = None;
    for (i, &c) in rest.iter().enumerate() {
        let d = c.wrapping_sub(b'0');
        if d <= 9 {
            if digits >= 19 {
                return v.parse().ok();
            }
            mantissa = mantissa * 10 + u64::from(d);
            digits += 1;
        } else if c == b'.' && fraction.is_none() {
            fraction = Some(i + 1);
        } else {
            return v.parse().ok();
        }
    }
    let scale = fraction.map_or(0, |f| rest.len() - f);
    if digits == 0 || mantissa > 1 << 53 || scale > 22 {
        return v.parse().ok();
    }
    let x = mantissa as f64 / EXACT_POWERS_OF_TEN[scale];
    Some(if negative { -x } else { x })
}

/// Exactly `b.len()` ASCII digits as a number.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| {
        let d = c.wrapping_sub(b'0');
        (d <= 9).then(|| n * 10 + u32::from(d))
    })
}

/// Days since 1970-01-01 of a valid calendar date.
fn days_from_civil(y: u32, m: u32, d: u32) -> Option<i32> {
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > days_in_month {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

/// A `YYYY-MM-DD` date as days since 1970-01-01.
fn parse_date(v: &str) -> Option<i32> {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    days_from_civil(digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A date-time, `YYYY-MM-DD(T|t| )HH:MM[:SS[.fraction]][Z|z|±HH[:MM]|±HHMM]`,
/// as microseconds since the epoch (in UTC when it has an offset, else of
/// its wall clock) and whether it had an offset. Fraction digits beyond
/// microseconds are dropped.
fn parse_datetime(v: &str) -> Option<(i64, bool)> {
    let b = v.as_bytes();
    if b.len() < 16 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    let days = parse_date(v.get(..10)?)?;
    let (hour, minute) = (digits(&b[11..13])?, digits(&b[14..16])?);
    let mut rest = &b[16..];
    let mut second = 0;
    let mut micros = 0i64;
    if let [b':', s1, s2, tail @ ..] = rest {
        second = digits(&[*s1, *s2])?;
        rest = tail;
        if let [b'.', tail @ ..] = rest {
            let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            for (i, &c) in tail[..n].iter().enumerate() {
                if i < 6 {
                    micros = micros * 10 + i64::from(c - b'0');
                }
            }
            for _ in n..6 {
                micros *= 10;
            }
            rest = &tail[n..];
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let offset_minutes: Option<i64> = match rest {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i64::from(h * 60 + m);
            Some(if *sign == b'-' { -minutes } else { minutes })
        }
        _ => return None,
    };
    let wall = i64::from(days) * MICROS_PER_DAY
        + i64::from((hour * 60 + minute) * 60 + second) * 1_000_000
        + micros;
    Some(match offset_minutes {
        None => (wall, false),
        Some(m) => (wall - m * 60_000_000, true),
    })
}

/// `str::trim`, skipped when the field starts and ends with visible ASCII.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&z)) if (0x21..0x80).contains(&a) && (0x21..0x80).contains(&z) => s,
        _ => s.trim(),
    }
}

// ---- Parquet and JSON lines ----------------------------------------------

/// The host type a column of `t` is read as, and a note when it was cast;
/// `None` when host tables cannot hold it.
fn host_type(t: &DataType) -> Option<(DataType, Option<&'static str>)> {
    use DataType::*;
    if ColumnType::of_arrow(t).is_some() {
        return Some((t.clone(), None));
    }
    Some(match t {
        Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32 => (Int64, Some("widened to int64")),
        UInt64 => (Int64, Some("read as int64")),
        Float16 => (Float32, Some("widened to float32")),
        Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => (
            Float64,
            Some("read as float64 (decimals become binary floats)"),
        ),
        LargeUtf8 | Utf8View => (Utf8, None),
        Null => (Utf8, None),
        Date64 => (Date32, Some("read as date (days)")),
        Timestamp(_, tz) => (
            Timestamp(TimeUnit::Microsecond, tz.clone()),
            Some("read in microseconds"),
        ),
        Dictionary(_, v) if matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View) => {
            (Dictionary(Box::new(Int32), Box::new(Utf8)), None)
        }
        _ => return None,
    })
}

/// The type `forced` gives a column now of type `from`.
fn forced_type(forced: ReadType, from: &DataType) -> DataType {
    match forced {
        ReadType::Timestamp => match from {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            _ => DataType::Timestamp(TimeUnit::Microsecond, None),
        },
        ReadType::Boolean => DataType::Boolean,
        ReadType::Int64 => DataType::Int64,
        ReadType::Float64 => DataType::Float64,
        ReadType::Float32 => DataType::Float32,
        ReadType::Utf8 => DataType::Utf8,
        ReadType::Date => DataType::Date32,
        ReadType::Categorical => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
    }
}

/// Converts batches of a columnar file: projects and orders columns, casts
/// them to host types (or the types asked for), and notes the casts.
struct Conversion {
    format: Format,
    schema: SchemaRef,
    /// Per output column: its index in the batches read.
    sources: Vec<usize>,
    warnings: Vec<Warning>,
}

impl Conversion {
    /// For batches with schema `read` (the wanted columns at least, in any
    /// order), outputs columns `wanted` (indices into `names`) in the order
    /// asked.
    fn new(
        format: Format,
        file: &str,
        read: &Schema,
        names: &[String],
        wanted: &[usize],
        options: &ReadOptions,
    ) -> Result<Self, ReadError> {
        let mut fields = Vec::with_capacity(wanted.len());
        let mut sources = Vec::with_capacity(wanted.len());
        let mut warnings = Vec::new();
        for &w in wanted {
            let name = &names[w];
            let source = read
                .index_of(name)
                .expect("the projection read every wanted column");
            let field = read.field(source);
            let to = match options.types.get(name) {
                Some(&forced) => forced_type(forced, field.data_type()),
                None => {
                    let Some((to, note)) = host_type(field.data_type()) else {
                        return Err(ReadError::Column {
                            file: file.into(),
                            column: name.clone(),
                            message: format!(
                                "it has type {}, which sluice tables do not hold; supported: boolean, integers, floats, decimals, text, date, timestamp and dictionary-encoded text; leave the column out with option `columns`",
                                field.data_type()
                            ),
                        });
                    };
                    if let Some(note) = note {
                        warnings.push(Warning {
                            line: None,
                            column: Some(name.clone()),
                            message: format!(
                                "column `{name}` has type {}: {note}",
                                field.data_type()
                            ),
                        });
                    }
                    to
                }
            };
            fields.push(Field::new(name, to, field.is_nullable()));
            sources.push(source);
        }
        Ok(Conversion {
            format,
            schema: Arc::new(Schema::new(fields)),
            sources,
            warnings,
        })
    }

    fn convert(&self, file: &str, batch: &RecordBatch) -> Result<RecordBatch, ReadError> {
        let options = arrow_cast::CastOptions {
            safe: false,
            ..Default::default()
        };
        let columns = self
            .sources
            .iter()
            .zip(self.schema.fields())
            .map(|(&s, f)| {
                let c = batch.column(s);
                if c.data_type() == f.data_type() {
                    return Ok(c.clone());
                }
                arrow_cast::cast_with_options(c, f.data_type(), &options).map_err(|e| {
                    ReadError::Column {
                        file: file.into(),
                        column: f.name().clone(),
                        message: format!(
                            "its values do not convert from {} to {}: {e}",
                            c.data_type(),
                            f.data_type()
                        ),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .map_err(|e| ReadError::Malformed {
            file: file.into(),
            format: self.format,
            line: None,
            message: e.to_string(),
        })
    }
}

fn read_parquet(
    file: &str,
    bytes: Bytes,
    options: &ReadOptions,
) -> Result<(Table, ReadReport), ReadError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let malformed = |e: &dyn std::fmt::Display| ReadError::Malformed {
        file: file.into(),
        format: Format::Parquet,
        line: None,
        message: format!("not a readable Parquet file: {e}"),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| malformed(&e))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let wanted = project(file, &names, options)?;
    let mut roots = wanted.clone();
    roots.sort_unstable();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(options.batch_rows.unwrap_or(COLUMNAR_BATCH_ROWS))
        .build()
        .map_err(|e| malformed(&e))?;
    let conversion = Conversion::new(
        Format::Parquet,
        file,
        &arrow_array::RecordBatchReader::schema(&reader),
        &names,
        &wanted,
        options,
    )?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| malformed(&e))?;
        batches.push(conversion.convert(file, &batch)?);
    }
    let table =
        Table::new(conversion.schema.clone(), batches).expect("converted batches share a schema");
    let report = report(Format::Parquet, &table, conversion.warnings);
    Ok((table, report))
}

/// The first line of JSON-lines text that is not a JSON object, and why.
fn bad_json_line(text: &[u8]) -> Option<(u64, String)> {
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => return Some((i as u64 + 1, "the line is not a JSON object".into())),
            Err(e) => return Some((i as u64 + 1, format!("not JSON: {e}"))),
        }
    }
    None
}

fn read_json_lines(
    file: &str,
    bytes: &[u8],
    options: &ReadOptions,
) -> Result<(Table, ReadReport), ReadError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadError::Empty { file: file.into() });
    }
    let malformed = |e: &dyn std::fmt::Display| {
        let (line, message) = match bad_json_line(text) {
            Some((line, why)) => (Some(line), why),
            None => (None, e.to_string()),
        };
        ReadError::Malformed {
            file: file.into(),
            format: Format::JsonLines,
            line,
            message,
        }
    };
    let (inferred, _) =
        arrow_json::reader::infer_json_schema_from_seekable(std::io::Cursor::new(text), None)
            .map_err(|e| malformed(&e))?;
    let names: Vec<String> = inferred.fields().iter().map(|f| f.name().clone()).collect();
    let wanted = project(file, &names, options)?;
    // Read the wanted columns (in file order) as host types where JSON
    // gives them directly; `Conversion` casts the rest.
    let mut sorted = wanted.clone();
    sorted.sort_unstable();
    let read_fields: Vec<Field> = sorted
        .iter()
        .map(|&i| {
            let f = inferred.field(i);
            match f.data_type() {
                DataType::Null => Field::new(f.name(), DataType::Utf8, true),
                _ => f.clone().with_nullable(true),
            }
        })
        .collect();
    let read_schema = Arc::new(Schema::new(read_fields));
    let conversion = Conversion::new(
        Format::JsonLines,
        file,
        &read_schema,
        &names,
        &wanted,
        options,
    )?;
    let reader = arrow_json::ReaderBuilder::new(read_schema)
        .with_batch_size(options.batch_rows.unwrap_or(COLUMNAR_BATCH_ROWS))
        .build(std::io::Cursor::new(text))
        .map_err(|e| malformed(&e))?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| malformed(&e))?;
        batches.push(conversion.convert(file, &batch)?);
    }
    // A column is nullable when it holds a null, as for CSV.
    let fields: Vec<Field> = conversion
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let nulls = batches.iter().any(|b| b.column(i).null_count() > 0);
            f.as_ref().clone().with_nullable(nulls)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batches = batches
        .into_iter()
        .map(|b| {
            RecordBatch::try_new_with_options(
                schema.clone(),
                b.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
            )
            .expect("only nullability changed")
        })
        .collect();
    let table = Table::new(schema, batches).expect("batches share the schema");
    let report = report(Format::JsonLines, &table, conversion.warnings);
    Ok((table, report))
}

// ---- CSV ------------------------------------------------------------------

/// The delimiter option: one ASCII character, or `\t` / `tab`.
fn delimiter(text: &str) -> Result<u8, String> {
    let d = match text {
        "\\t" | "tab" => b'\t',
        _ if text.len() == 1 && text.is_ascii() => text.as_bytes()[0],
        _ => {
            return Err(format!(
                "option `csv.delimiter` must be one ASCII character (or `\\t` / `tab`), found {text:?}"
            ));
        }
    };
    if matches!(d, b'"' | b'\n' | b'\r') {
        return Err(format!(
            "option `csv.delimiter` cannot be {text:?}: quotes and line breaks have their own meaning"
        ));
    }
    Ok(d)
}

/// The 1-based lines of byte offsets of `data` (a line ends with `\n`,
/// `\r\n` or `\r`).
fn lines_of(data: &[u8], mut offsets: Vec<usize>) -> HashMap<usize, u64> {
    offsets.sort_unstable();
    offsets.dedup();
    let mut out = HashMap::with_capacity(offsets.len());
    let (mut at, mut line) = (0usize, 1u64);
    for off in offsets {
        let end = off.min(data.len()).max(at);
        let seg = &data[at..end];
        line += memchr::memchr_iter(b'\n', seg).count() as u64;
        line += memchr::memchr_iter(b'\r', seg)
            .filter(|&i| data.get(at + i + 1) != Some(&b'\n'))
            .count() as u64;
        at = end;
        out.insert(off, line);
    }
    out
}

mod csv {
    //! The CSV reader: a tokenizer with the `csv` crate's semantics, a split
    //! of the file at record boundaries, typed column builders, and the
    //! glue that runs them on every core.

    use super::*;
    use std::ops::Range;
    use std::sync::Mutex;

    /// The delimiter and the missing-value tokens.
    pub(super) struct Dialect {
        delimiter: u8,
        /// Bytes that end an unquoted field.
        special: [bool; 256],
        missing: Vec<String>,
        /// Bit `n` set when a token has `n` bytes (bit 63: 63 or more).
        missing_lengths: u64,
        /// The first bytes of tokens.
        missing_first: [bool; 256],
    }

    impl Dialect {
        pub(super) fn new(delimiter: u8, missing: &[String]) -> Self {
            let mut special = [false; 256];
            special[usize::from(delimiter)] = true;
            special[usize::from(b'\n')] = true;
            special[usize::from(b'\r')] = true;
            Dialect {
                delimiter,
                special,
                missing: missing.to_vec(),
                missing_lengths: missing.iter().fold(0, |m, t| m | 1 << t.len().min(63)),
                missing_first: {
                    let mut first = [false; 256];
                    for t in missing {
                        if let Some(&c) = t.as_bytes().first() {
                            first[usize::from(c)] = true;
                        }
                    }
                    first
                },
            }
        }

        #[inline]
        fn is_missing(&self, v: &str) -> bool {
            self.missing_lengths & (1 << v.len().min(63)) != 0
                && v.as_bytes()
                    .first()
                    .is_none_or(|&c| self.missing_first[usize::from(c)])
                && self.missing.iter().any(|m| m == v)
        }

        /// The end of an unquoted field that starts at `i`: the first
        /// delimiter or line break, found eight bytes at a time.
        #[inline]
        fn scan(&self, b: &[u8], mut i: usize) -> usize {
            const ONES: u64 = 0x0101_0101_0101_0101;
            const HIGHS: u64 = 0x8080_8080_8080_8080;
            // Bytes equal to `c` get their high bit set; the lowest such
            // byte is exact (higher ones may be false positives).
            let matches = |w: u64, c: u8| {
                let x = w ^ (ONES * u64::from(c));
                x.wrapping_sub(ONES) & !x & HIGHS
            };
            while let Some(chunk) = b.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                let m = matches(w, self.delimiter) | matches(w, b'\n') | matches(w, b'\r');
                if m != 0 {
                    return i + (m.trailing_zeros() / 8) as usize;
                }
                i += 8;
            }
            while i < b.len() && !self.special[usize::from(b[i])] {
                i += 1;
            }
            i
        }

        /// Reads the record at `pos` (after any blank lines) into `fields`,
        /// whose quoted fields with escapes go to `scratch`; returns where
        /// it starts and where the next one may start, or `None` at the end.
        #[inline]
        pub(super) fn record(
            &self,
            b: &[u8],
            mut pos: usize,
            fields: &mut Vec<Span>,
            scratch: &mut Vec<u8>,
        ) -> Option<(usize, usize)> {
            fields.clear();
            scratch.clear();
            while pos < b.len() && (b[pos] == b'\n' || b[pos] == b'\r') {
                pos += 1;
            }
            if pos >= b.len() {
                return None;
            }
            let start = pos;
            loop {
                if pos < b.len() && b[pos] == b'"' {
                    let (span, end) = self.quoted(b, pos + 1, scratch);
                    fields.push(span);
                    pos = end;
                } else {
                    let end = self.scan(b, pos);
                    fields.push(Span {
                        start: pos,
                        end,
                        scratch: false,
                    });
                    pos = end;
                }
                match b.get(pos) {
                    None => return Some((start, pos)),
                    Some(&c) if c == self.delimiter => pos += 1,
                    Some(_) => return Some((start, pos + 1)),
                }
            }
        }

        /// Reads a quoted field whose content starts at `pos`; returns where
        /// the field ends (at a delimiter, a line break or the end).
        fn quoted(&self, b: &[u8], mut pos: usize, scratch: &mut Vec<u8>) -> (Span, usize) {
            let content = pos;
            let from = scratch.len();
            let mut escaped = false;
            // The start of the text not yet copied to `scratch`.
            let mut segment = pos;
            let close = loop {
                match memchr::memchr(b'"', &b[pos..]) {
                    // Unterminated: the field runs to the end.
                    None => break b.len(),
                    Some(k) => {
                        let quote = pos + k;
                        if b.get(quote + 1) != Some(&b'"') {
                            break quote;
                        }
                        // `""`: one quote.
                        scratch.extend_from_slice(&b[segment..=quote]);
                        escaped = true;
                        pos = quote + 2;
                        segment = pos;
                    }
                }
            };
            // After the closing quote the field goes on as written.
            let after = (close + 1).min(b.len());
            let end = self.scan(b, after);
            let span = if !escaped && end == after {
                Span {
                    start: content,
                    end: close,
                    scratch: false,
                }
            } else {
                scratch.extend_from_slice(&b[segment..close]);
                scratch.extend_from_slice(&b[after..end]);
                Span {
                    start: from,
                    end: scratch.len(),
                    scratch: true,
                }
            };
            (span, end)
        }

        /// Where to cut `body` into parts of about `target` bytes: each cut
        /// right after a line break that is not inside quotes. Returns the
        /// parts' starts (the first is 0).
        pub(super) fn cuts(&self, body: &[u8], target: usize) -> Vec<usize> {
            let target = target.max(1);
            let mut starts = vec![0];
            let mut want = target;
            // Bytes before `pos` are classified, and `pos` is outside quotes.
            let mut pos = 0;
            while want < body.len() {
                let quote = memchr::memchr(b'"', &body[pos..]).map_or(body.len(), |k| pos + k);
                while want < quote {
                    let from = want.max(pos);
                    match memchr::memchr2(b'\n', b'\r', &body[from..quote]) {
                        Some(k) => {
                            let cut = from + k + 1;
                            if cut < body.len() {
                                starts.push(cut);
                            }
                            want = cut + target;
                        }
                        None => want = quote,
                    }
                }
                if quote >= body.len() {
                    break;
                }
                let opening = quote == 0
                    || matches!(body[quote - 1], b'\n' | b'\r')
                    || body[quote - 1] == self.delimiter;
                pos = if opening {
                    // Skip the quoted field; `""` is an escaped quote.
                    let mut at = quote + 1;
                    loop {
                        match memchr::memchr(b'"', &body[at..]) {
                            None => break body.len(),
                            Some(k) if body.get(at + k + 1) == Some(&b'"') => at += k + 2,
                            Some(k) => break at + k + 1,
                        }
                    }
                } else {
                    quote + 1
                };
            }
            starts
        }

        /// The column names and where the data starts: after the header, or
        /// at the first record.
        fn header(
            &self,
            file: &str,
            data: &[u8],
            header: bool,
        ) -> Result<(Vec<String>, usize), ReadError> {
            let mut fields = Vec::new();
            let mut scratch = Vec::new();
            let Some((start, next)) = self.record(data, 0, &mut fields, &mut scratch) else {
                return Err(ReadError::Empty { file: file.into() });
            };
            if !header {
                let names = (1..=fields.len()).map(|i| format!("column_{i}")).collect();
                return Ok((names, start));
            }
            let line = lines_of(data, vec![start])[&start];
            let mut names: Vec<String> = Vec::with_capacity(fields.len());
            let mut texts = Vec::with_capacity(fields.len());
            for (i, &f) in fields.iter().enumerate() {
                texts.push(
                    field(data, None, &scratch, f).map_err(|()| ReadError::Utf8 {
                        file: file.into(),
                        line,
                        field: i + 1,
                        column: None,
                    })?,
                );
            }
            for (i, name) in texts.into_iter().enumerate() {
                let name = trim(name);
                if name.is_empty() {
                    return Err(ReadError::EmptyName {
                        file: file.into(),
                        line,
                        position: i + 1,
                    });
                }
                if let Some(first) = names.iter().position(|n| n == name) {
                    return Err(ReadError::RepeatedName {
                        file: file.into(),
                        line,
                        name: name.into(),
                        first: first + 1,
                        second: i + 1,
                    });
                }
                names.push(name.to_owned());
            }
            Ok((names, next))
        }
    }

    /// A field of a record: bytes `start..end` of the part, or of the
    /// record's scratch buffer.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Span {
        start: usize,
        end: usize,
        scratch: bool,
    }

    /// A field's text, or `Err` when it is not UTF-8. `text` is the part as
    /// text when it is all UTF-8.
    #[inline(always)]
    fn field<'a>(
        part: &'a [u8],
        text: Option<&'a str>,
        scratch: &'a [u8],
        s: Span,
    ) -> Result<&'a str, ()> {
        if s.scratch {
            std::str::from_utf8(&scratch[s.start..s.end]).map_err(drop)
        } else if let Some(t) = text {
            t.get(s.start..s.end).ok_or(())
        } else {
            std::str::from_utf8(&part[s.start..s.end]).map_err(drop)
        }
    }

    /// The kind of values a column (or a part of it) holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Kind {
        /// None yet (only nulls).
        Empty,
        Bool,
        Int,
        Float,
        Float32,
        Date,
        /// Date-times; with offsets (UTC) or not, when known.
        Time(Option<bool>),
        Text,
    }

    impl Kind {
        /// The narrowest kind of one value.
        fn of(v: &str) -> Kind {
            if parse_bool(v).is_some() {
                Kind::Bool
            } else if parse_i64(v).is_some() {
                Kind::Int
            } else if parse_f64(v).is_some() {
                Kind::Float
            } else if parse_date(v).is_some() {
                Kind::Date
            } else if let Some((_, utc)) = parse_datetime(v) {
                Kind::Time(Some(utc))
            } else {
                Kind::Text
            }
        }

        /// The kind that holds both (inference).
        fn join(self, other: Kind) -> Kind {
            match (self, other) {
                (Kind::Empty, k) | (k, Kind::Empty) => k,
                (a, b) if a == b => a,
                (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
                _ => Kind::Text,
            }
        }

        fn data_type(self, categorical: bool) -> DataType {
            match self {
                Kind::Text if categorical => {
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
                }
                Kind::Empty | Kind::Text => DataType::Utf8,
                Kind::Bool => DataType::Boolean,
                Kind::Int => DataType::Int64,
                Kind::Float => DataType::Float64,
                Kind::Float32 => DataType::Float32,
                Kind::Date => DataType::Date32,
                Kind::Time(utc) => DataType::Timestamp(
                    TimeUnit::Microsecond,
                    utc.unwrap_or(false).then(|| Arc::from("UTC")),
                ),
            }
        }
    }

    /// Which values of a text column would have been numbers, booleans or
    /// dates, for warnings.
    #[derive(Debug, Clone, Default)]
    pub(super) struct TextStats {
        values: u64,
        /// Numbers, booleans, dates or date-times.
        cats: [CatStats; 3],
    }

    #[derive(Debug, Clone, Default)]
    struct CatStats {
        count: u64,
        /// Offset of the last value in the category.
        last: Option<usize>,
        /// Offset of the first value not in it.
        first_other: Option<usize>,
        /// The first values not in it, with their offsets.
        others: Vec<(String, usize)>,
    }

    const CATEGORIES: [&str; 3] = ["numeric", "boolean", "dates or date-times"];

    impl TextStats {
        fn add(&mut self, v: &str, at: usize) {
            self.values += 1;
            let numeric = parse_f64(v).is_some();
            let boolean = !numeric && parse_bool(v).is_some();
            let datetime =
                !numeric && !boolean && (parse_date(v).is_some() || parse_datetime(v).is_some());
            for (c, yes) in self.cats.iter_mut().zip([numeric, boolean, datetime]) {
                if yes {
                    c.count += 1;
                    c.last = Some(at);
                } else {
                    c.first_other.get_or_insert(at);
                    if c.others.len() < EXAMPLES {
                        c.others.push((v.to_owned(), at));
                    }
                }
            }
        }

        /// Adds the stats of the part after this one.
        fn merge(&mut self, next: TextStats) {
            self.values += next.values;
            for (c, n) in self.cats.iter_mut().zip(next.cats) {
                c.count += n.count;
                c.last = n.last.or(c.last);
                c.first_other = c.first_other.or(n.first_other);
                let room = EXAMPLES - c.others.len();
                c.others.extend(n.others.into_iter().take(room));
            }
        }

        /// The offsets a warning about this column may name.
        fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
            self.cats.iter().flat_map(|c| {
                c.last
                    .into_iter()
                    .chain(c.first_other)
                    .chain(c.others.iter().map(|o| o.1))
            })
        }

        /// A warning when the column is mostly of one category, or turns
        /// from it to text part-way down.
        fn warning(&self, column: &str, line: &dyn Fn(usize) -> u64) -> Option<Warning> {
            let (cat, c) = self
                .cats
                .iter()
                .enumerate()
                .find(|(_, c)| c.count > 0 && c.count < self.values)?;
            let bad = self.values - c.count;
            let first_other = c.first_other?;
            let last = c.last?;
            let changed = last < first_other && c.count >= 2;
            let mostly = c.count >= bad;
            if !changed && !mostly {
                return None;
            }
            let mut examples: Vec<String> = c
                .others
                .iter()
                .map(|(v, at)| format!("`{v}` on line {}", line(*at)))
                .collect();
            if bad > c.others.len() as u64 {
                examples.push("…".into());
            }
            let examples = examples.join(", ");
            let what = CATEGORIES[cat];
            let s = if bad == 1 { "" } else { "s" };
            let head = if changed {
                format!(
                    "column `{column}` is {what} up to line {} but not from line {} on ({bad} value{s}: {examples})",
                    line(last),
                    line(first_other)
                )
            } else {
                format!("column `{column}` is {what} except for {bad} value{s} ({examples})")
            };
            Some(Warning {
                line: Some(line(first_other)),
                column: Some(column.to_owned()),
                message: format!(
                    "{head}; it was read as text: add the token{s} to the missing values (option `csv.missing`, std:ingest-csv's `missing`) or fix the rows"
                ),
            })
        }
    }

    /// Text values: Arrow offsets and bytes.
    #[derive(Debug)]
    struct TextBuild {
        offsets: Vec<i32>,
        data: Vec<u8>,
        stats: TextStats,
    }

    impl TextBuild {
        fn new(nulls: usize, capacity: usize) -> Self {
            let mut offsets = Vec::with_capacity(capacity.max(nulls) + 1);
            offsets.resize(nulls + 1, 0);
            TextBuild {
                offsets,
                data: Vec::new(),
                stats: TextStats::default(),
            }
        }

        #[inline]
        fn push(&mut self, v: &str) {
            self.data.extend_from_slice(v.as_bytes());
            // A part is under 2 GiB (checked when cut), and so its text.
            self.offsets.push(self.data.len() as i32);
        }

        #[inline]
        fn push_null(&mut self) {
            let last = *self.offsets.last().expect("offsets start with 0");
            self.offsets.push(last);
        }
    }

    /// The values of one column of one part, as they are parsed.
    #[derive(Debug)]
    enum Build {
        Empty,
        Bool(BooleanBufferBuilder),
        Int {
            values: Vec<i64>,
            /// Rows written `-0`: `-0.0` should the column become float.
            negative_zeros: Vec<usize>,
        },
        Float(Vec<f64>),
        Float32(Vec<f32>),
        Date(Vec<i32>),
        Time {
            values: Vec<i64>,
            /// Whether values have offsets, and the offset of the first
            /// that told.
            utc: Option<(bool, usize)>,
        },
        Text(TextBuild),
        /// Became text part-way: its text is read again afterwards.
        NeedsText,
    }

    impl Build {
        /// A build of `kind` holding `nulls` nulls.
        fn start(kind: Kind, nulls: usize, capacity: usize) -> Build {
            fn zeros<T: Clone + Default>(n: usize, capacity: usize) -> Vec<T> {
                let mut v = Vec::with_capacity(capacity.max(n));
                v.resize(n, T::default());
                v
            }
            match kind {
                Kind::Empty => Build::Empty,
                Kind::Bool => {
                    let mut b = BooleanBufferBuilder::new(capacity.max(nulls));
                    b.append_n(nulls, false);
                    Build::Bool(b)
                }
                Kind::Int => Build::Int {
                    values: zeros(nulls, capacity),
                    negative_zeros: Vec::new(),
                },
                Kind::Float => Build::Float(zeros(nulls, capacity)),
                Kind::Float32 => Build::Float32(zeros(nulls, capacity)),
                Kind::Date => Build::Date(zeros(nulls, capacity)),
                Kind::Time(_) => Build::Time {
                    values: zeros(nulls, capacity),
                    utc: None,
                },
                Kind::Text => Build::Text(TextBuild::new(nulls, capacity)),
            }
        }

        #[inline]
        fn push_default(&mut self) {
            match self {
                Build::Empty | Build::NeedsText => {}
                Build::Bool(b) => b.append(false),
                Build::Int { values, .. } => values.push(0),
                Build::Float(v) => v.push(0.0),
                Build::Float32(v) => v.push(0.0),
                Build::Date(v) => v.push(0),
                Build::Time { values, .. } => values.push(0),
                Build::Text(t) => t.push_null(),
            }
        }

        /// Integers as floats, as `str::parse::<f64>` reads their text: the
        /// same value (both round to nearest, ties to even), and `-0` as
        /// `-0.0`.
        fn int_to_float(values: &[i64], negative_zeros: &[usize]) -> Vec<f64> {
            let mut floats: Vec<f64> = values.iter().map(|&x| x as f64).collect();
            for &i in negative_zeros {
                floats[i] = -0.0;
            }
            floats
        }
    }

    /// Why a value could not be taken by a column of a forced type.
    #[derive(Debug)]
    enum Refusal {
        /// The value does not parse (the message says as what).
        Bad(String),
        /// A date-time with (or without) an offset where an earlier one
        /// (at offset `first`) had none (or one).
        Mixed { first: usize, has_offset: bool },
    }

    /// One column of one part.
    #[derive(Debug)]
    struct ColBuild {
        build: Build,
        nulls: NullBufferBuilder,
        rows: usize,
        null_count: usize,
        forced: Option<ReadType>,
        capacity: usize,
    }

    impl ColBuild {
        fn new(forced: Option<ReadType>, capacity: usize) -> Self {
            let build = match forced {
                None => Build::Empty,
                Some(t) => Build::start(forced_kind(t), 0, capacity),
            };
            ColBuild {
                build,
                nulls: NullBufferBuilder::new(capacity),
                rows: 0,
                null_count: 0,
                forced,
                capacity,
            }
        }

        fn kind(&self) -> Kind {
            match &self.build {
                Build::Empty => Kind::Empty,
                Build::Bool(_) => Kind::Bool,
                Build::Int { .. } => Kind::Int,
                Build::Float(_) => Kind::Float,
                Build::Float32(_) => Kind::Float32,
                Build::Date(_) => Kind::Date,
                Build::Time { utc, .. } => Kind::Time(utc.map(|u| u.0)),
                Build::Text(_) | Build::NeedsText => Kind::Text,
            }
        }

        /// Adds a value (`None`: missing) of the record at offset `at`.
        #[inline]
        fn push(&mut self, v: Option<&str>, at: usize) -> Result<(), Refusal> {
            match v {
                None => {
                    self.nulls.append_null();
                    self.null_count += 1;
                    self.build.push_default();
                }
                Some(v) => {
                    match self.forced {
                        None => self.push_inferred(v, at),
                        Some(_) => self.push_forced(v, at)?,
                    }
                    self.nulls.append_non_null();
                }
            }
            self.rows += 1;
            Ok(())
        }

        #[inline]
        fn push_inferred(&mut self, v: &str, at: usize) {
            match &mut self.build {
                Build::Float(values) => match parse_f64(v) {
                    Some(x) => values.push(x),
                    None => self.build = Build::NeedsText,
                },
                Build::Int {
                    values,
                    negative_zeros,
                } => {
                    if let Some(x) = parse_i64(v) {
                        if x == 0 && v.starts_with('-') {
                            negative_zeros.push(values.len());
                        }
                        values.push(x);
                    } else if let Some(x) = parse_f64(v) {
                        let mut floats = Build::int_to_float(values, negative_zeros);
                        floats.reserve(self.capacity.saturating_sub(floats.len()));
                        floats.push(x);
                        self.build = Build::Float(floats);
                    } else {
                        self.build = Build::NeedsText;
                    }
                }
                Build::Bool(values) => match parse_bool(v) {
                    Some(x) => values.append(x),
                    None => self.build = Build::NeedsText,
                },
                Build::Date(values) => match parse_date(v) {
                    Some(x) => values.push(x),
                    None => self.build = Build::NeedsText,
                },
                Build::Time { values, utc } => match parse_datetime(v) {
                    Some((x, u)) if utc.is_some_and(|(w, _)| w == u) => values.push(x),
                    _ => self.build = Build::NeedsText,
                },
                Build::Text(t) => {
                    t.push(v);
                    t.stats.add(v, at);
                }
                Build::NeedsText => {}
                Build::Empty | Build::Float32(_) => {
                    let kind = Kind::of(v);
                    self.build = Build::start(kind, self.rows, self.capacity);
                    if let (Build::Time { utc, .. }, Kind::Time(Some(u))) = (&mut self.build, kind)
                    {
                        *utc = Some((u, at));
                    }
                    self.push_inferred(v, at);
                }
            }
        }

        fn push_forced(&mut self, v: &str, at: usize) -> Result<(), Refusal> {
            let bad = |what: &str| Refusal::Bad(format!("`{v}` is not {what}"));
            match &mut self.build {
                Build::Bool(values) => {
                    values.append(parse_bool(v).ok_or_else(|| bad("a boolean (true or false)"))?)
                }
                Build::Int { values, .. } => values
                    .push(parse_i64(v).ok_or_else(|| bad("an int64 (a whole number of 64 bits)"))?),
                Build::Float(values) => values.push(parse_f64(v).ok_or_else(|| bad("a number"))?),
                Build::Float32(values) => {
                    values.push(v.parse::<f32>().map_err(|_| bad("a number"))?)
                }
                Build::Date(values) => {
                    values.push(parse_date(v).ok_or_else(|| bad("a date (YYYY-MM-DD)"))?)
                }
                Build::Time { values, utc } => {
                    let (x, has_offset) = match parse_datetime(v) {
                        Some((x, o)) => (x, Some(o)),
                        None => match parse_date(v) {
                            Some(d) => (i64::from(d) * MICROS_PER_DAY, None),
                            None => {
                                return Err(bad(
                                    "a date-time (RFC 3339 or ISO 8601, such as 2024-01-05T10:00:00Z or 2024-01-05 10:00:00)",
                                ));
                            }
                        },
                    };
                    if let Some(o) = has_offset {
                        match *utc {
                            None => *utc = Some((o, at)),
                            Some((u, first)) if u != o => {
                                return Err(Refusal::Mixed {
                                    first,
                                    has_offset: o,
                                });
                            }
                            Some(_) => {}
                        }
                    }
                    values.push(x);
                }
                Build::Text(text) => text.push(v),
                Build::Empty | Build::NeedsText => {
                    unreachable!("a column of a forced type has its build from the start")
                }
            }
            Ok(())
        }

        /// The column as an array of `to`: its kind's type, or float64 for
        /// integers, or any type when it holds only nulls.
        fn finish(mut self, to: &DataType) -> ArrayRef {
            let nulls = self.nulls.finish();
            let rows = self.rows;
            match std::mem::replace(&mut self.build, Build::Empty) {
                Build::Empty => new_null_array(to, rows),
                Build::Bool(mut b) => Arc::new(BooleanArray::new(b.finish(), nulls)),
                Build::Int {
                    values,
                    negative_zeros,
                } => {
                    if to == &DataType::Float64 {
                        let floats = Build::int_to_float(&values, &negative_zeros);
                        Arc::new(Float64Array::new(ScalarBuffer::from(floats), nulls))
                    } else {
                        Arc::new(Int64Array::new(ScalarBuffer::from(values), nulls))
                    }
                }
                Build::Float(values) => {
                    Arc::new(Float64Array::new(ScalarBuffer::from(values), nulls))
                }
                Build::Float32(values) => {
                    Arc::new(Float32Array::new(ScalarBuffer::from(values), nulls))
                }
                Build::Date(values) => {
                    Arc::new(Date32Array::new(ScalarBuffer::from(values), nulls))
                }
                Build::Time { values, .. } => {
                    let tz = match to {
                        DataType::Timestamp(_, tz) => tz.clone(),
                        _ => None,
                    };
                    Arc::new(
                        TimestampMicrosecondArray::new(ScalarBuffer::from(values), nulls)
                            .with_timezone_opt(tz),
                    )
                }
                Build::Text(t) => {
                    let offsets = OffsetBuffer::new(ScalarBuffer::from(t.offsets));
                    let text: ArrayRef =
                        Arc::new(StringArray::new(offsets, Buffer::from_vec(t.data), nulls));
                    if to == &DataType::Utf8 {
                        text
                    } else {
                        arrow_cast::cast(&text, to).expect("text casts to a dictionary")
                    }
                }
                Build::NeedsText => unreachable!("text is read again before finishing"),
            }
        }
    }

    fn forced_kind(t: ReadType) -> Kind {
        match t {
            ReadType::Boolean => Kind::Bool,
            ReadType::Int64 => Kind::Int,
            ReadType::Float64 => Kind::Float,
            ReadType::Float32 => Kind::Float32,
            ReadType::Utf8 | ReadType::Categorical => Kind::Text,
            ReadType::Date => Kind::Date,
            ReadType::Timestamp => Kind::Time(None),
        }
    }

    /// The columns read and how.
    struct Plan {
        dialect: Dialect,
        /// Fields per record.
        fields: usize,
        /// Per column read: its field and forced type.
        columns: Vec<(usize, Option<ReadType>)>,
        /// Per field: the column read from it, if any.
        slots: Vec<Option<usize>>,
    }

    /// What went wrong in a part, at a record's offset.
    #[derive(Debug)]
    enum Fault {
        FieldCount {
            at: usize,
            found: usize,
        },
        Utf8 {
            at: usize,
            field: usize,
        },
        Value {
            at: usize,
            column: usize,
            value: String,
            refusal: Refusal,
        },
    }

    /// One part, parsed.
    #[derive(Debug)]
    struct PartOut {
        rows: usize,
        columns: Vec<ColBuild>,
        fault: Option<Fault>,
    }

    /// Parses `data[range]`, a run of whole records, with `plan`; stops at
    /// the first fault, or early when `stop` says an earlier part failed.
    fn parse_part(
        data: &[u8],
        range: Range<usize>,
        plan: &Plan,
        index: usize,
        stop: &AtomicUsize,
        row_bytes: usize,
    ) -> PartOut {
        let base = range.start;
        let part = &data[range];
        let capacity = part.len() / row_bytes.max(1) + 16;
        let mut columns: Vec<ColBuild> = plan
            .columns
            .iter()
            .map(|&(_, forced)| ColBuild::new(forced, capacity))
            .collect();
        let stopped = || stop.load(Ordering::Relaxed) < index;
        let (rows, fault) = match std::str::from_utf8(part) {
            Ok(text) => parse_text(text, base, plan, &mut columns, &stopped),
            Err(_) => parse_bytes(part, base, plan, &mut columns, &stopped),
        };
        if fault.is_some() {
            stop.fetch_min(index, Ordering::Relaxed);
        }
        PartOut {
            rows,
            columns,
            fault,
        }
    }

    /// Parses a part that is all UTF-8, each field straight into its
    /// column; returns the rows read and the first fault.
    fn parse_text(
        text: &str,
        base: usize,
        plan: &Plan,
        columns: &mut [ColBuild],
        stopped: &dyn Fn() -> bool,
    ) -> (usize, Option<Fault>) {
        let b = text.as_bytes();
        let dialect = &plan.dialect;
        let mut scratch = Vec::new();
        let mut pos = 0;
        let mut rows = 0usize;
        loop {
            while pos < b.len() && (b[pos] == b'\n' || b[pos] == b'\r') {
                pos += 1;
            }
            if pos >= b.len() {
                return (rows, None);
            }
            let at = base + pos;
            scratch.clear();
            // The first fault among the values; a wrong number of fields
            // comes first, so the record is read to its end regardless.
            let mut refused = None;
            let mut fields = 0;
            loop {
                let (span, end) = if b[pos..].first() == Some(&b'"') {
                    dialect.quoted(b, pos + 1, &mut scratch)
                } else {
                    let end = dialect.scan(b, pos);
                    let span = Span {
                        start: pos,
                        end,
                        scratch: false,
                    };
                    (span, end)
                };
                pos = end;
                if refused.is_none()
                    && let Some(&Some(k)) = plan.slots.get(fields)
                {
                    match field(b, Some(text), &scratch, span) {
                        Err(()) => {
                            refused = Some(Fault::Utf8 {
                                at,
                                field: fields + 1,
                            })
                        }
                        Ok(v) => {
                            let v = trim(v);
                            let v = (!dialect.is_missing(v)).then_some(v);
                            if let Err(refusal) = columns[k].push(v, at) {
                                refused = Some(Fault::Value {
                                    at,
                                    column: k,
                                    value: v.unwrap_or_default().to_owned(),
                                    refusal,
                                });
                            }
                        }
                    }
                }
                fields += 1;
                match b.get(pos) {
                    Some(&c) if c == dialect.delimiter => pos += 1,
                    Some(_) => {
                        pos += 1;
                        break;
                    }
                    None => break,
                }
            }
            if fields != plan.fields {
                return (rows, Some(Fault::FieldCount { at, found: fields }));
            }
            if refused.is_some() {
                return (rows, refused);
            }
            rows += 1;
            if rows.is_multiple_of(8192) && stopped() {
                return (rows, None);
            }
        }
    }

    /// Parses a part that is not all UTF-8: record by record, each field
    /// checked (the first that is not UTF-8 is the fault).
    fn parse_bytes(
        part: &[u8],
        base: usize,
        plan: &Plan,
        columns: &mut [ColBuild],
        stopped: &dyn Fn() -> bool,
    ) -> (usize, Option<Fault>) {
        let mut fields = Vec::with_capacity(plan.fields);
        let mut scratch = Vec::new();
        let mut pos = 0;
        let mut rows = 0usize;
        while let Some((start, next)) = plan.dialect.record(part, pos, &mut fields, &mut scratch) {
            pos = next;
            let at = base + start;
            if let Some(i) = fields
                .iter()
                .position(|&f| field(part, None, &scratch, f).is_err())
            {
                return (rows, Some(Fault::Utf8 { at, field: i + 1 }));
            }
            if fields.len() != plan.fields {
                let found = fields.len();
                return (rows, Some(Fault::FieldCount { at, found }));
            }
            for (k, (column, &(f, _))) in columns.iter_mut().zip(&plan.columns).enumerate() {
                let v = trim(field(part, None, &scratch, fields[f]).unwrap_or_default());
                let v = (!plan.dialect.is_missing(v)).then_some(v);
                if let Err(refusal) = column.push(v, at) {
                    let value = v.unwrap_or_default().to_owned();
                    return (
                        rows,
                        Some(Fault::Value {
                            at,
                            column: k,
                            value,
                            refusal,
                        }),
                    );
                }
            }
            rows += 1;
            if rows.is_multiple_of(8192) && stopped() {
                return (rows, None);
            }
        }
        (rows, None)
    }

    /// The text of columns `wanted` (indices into `plan.columns`) of a part
    /// that parsed without fault.
    fn part_text(
        data: &[u8],
        range: Range<usize>,
        plan: &Plan,
        wanted: &[usize],
        rows: usize,
    ) -> Vec<ColBuild> {
        let base = range.start;
        let part = &data[range];
        let text = std::str::from_utf8(part).ok();
        let mut columns: Vec<ColBuild> = wanted
            .iter()
            .map(|_| {
                let mut c = ColBuild::new(None, rows);
                c.build = Build::Text(TextBuild::new(0, rows));
                c
            })
            .collect();
        let mut fields = Vec::with_capacity(plan.fields);
        let mut scratch = Vec::new();
        let mut pos = 0;
        while let Some((start, next)) = plan.dialect.record(part, pos, &mut fields, &mut scratch) {
            pos = next;
            for (c, &k) in columns.iter_mut().zip(wanted) {
                let f = fields[plan.columns[k].0];
                let v = trim(field(part, text, &scratch, f).unwrap_or_default());
                let v = (!plan.dialect.is_missing(v)).then_some(v);
                // A text column takes any value.
                let _ = c.push(v, base + start);
            }
        }
        columns
    }

    /// The average bytes of a record near the start of `body`.
    fn row_bytes(body: &[u8]) -> usize {
        let sample = &body[..body.len().min(1 << 16)];
        let lines = memchr::memchr_iter(b'\n', sample).count();
        let lines = if lines == 0 {
            memchr::memchr_iter(b'\r', sample).count()
        } else {
            lines
        };
        sample
            .len()
            .checked_div(lines)
            .map_or(body.len(), |n| n)
            .max(1)
    }

    /// Reads CSV `bytes`; see the module documentation.
    pub(super) fn read(
        file: &str,
        bytes: &[u8],
        options: &ReadOptions,
    ) -> Result<(Table, ReadReport), ReadError> {
        let csv = &options.csv;
        let delimiter = delimiter(&csv.delimiter).map_err(|message| ReadError::Options {
            file: file.into(),
            message,
        })?;
        let data = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if data.iter().all(u8::is_ascii_whitespace) {
            return Err(ReadError::Empty { file: file.into() });
        }
        let dialect = Dialect::new(delimiter, &csv.missing);
        let (names, body_start) = dialect.header(file, data, csv.header)?;
        let wanted = project(file, &names, options)?;
        let mut slots = vec![None; names.len()];
        for (k, &i) in wanted.iter().enumerate() {
            slots[i] = Some(k);
        }
        let plan = Plan {
            dialect,
            fields: names.len(),
            columns: wanted
                .iter()
                .map(|&i| (i, options.types.get(&names[i]).copied()))
                .collect(),
            slots,
        };

        // Cut the records into parts and parse them on every core.
        let body = &data[body_start..];
        let row_bytes = row_bytes(body);
        let part_bytes = match options.batch_rows {
            Some(rows) => row_bytes.saturating_mul(rows).min(MAX_PART_BYTES),
            None => row_bytes
                .saturating_mul(DEFAULT_BATCH_ROWS)
                .clamp(MIN_PART_BYTES, MAX_PART_BYTES),
        };
        let cuts = plan.dialect.cuts(body, part_bytes);
        let ranges: Vec<Range<usize>> = cuts
            .iter()
            .zip(cuts.iter().skip(1).chain([&body.len()]))
            .map(|(&a, &b)| body_start + a..body_start + b)
            .collect();
        if let Some(r) = ranges.iter().find(|r| r.len() > i32::MAX as usize) {
            let line = lines_of(data, vec![r.start])[&r.start];
            return Err(ReadError::Malformed {
                file: file.into(),
                format: Format::Csv,
                line: Some(line),
                message: "a record of more than 2 GiB (an unbalanced quote?)".into(),
            });
        }
        let threads = parallelism();
        let stop = AtomicUsize::new(usize::MAX);
        let parts = parallel_map(ranges.len(), threads, |i| {
            parse_part(data, ranges[i].clone(), &plan, i, &stop, row_bytes)
        });
        let fault_line = |offsets: Vec<usize>| lines_of(data, offsets);
        let column_name = |k: usize| names[plan.columns[k].0].clone();
        if let Some(fault) = parts.iter().find_map(|p| p.fault.as_ref()) {
            return Err(match fault {
                Fault::FieldCount { at, found } => ReadError::FieldCount {
                    file: file.into(),
                    line: fault_line(vec![*at])[at],
                    expected: plan.fields,
                    found: *found,
                    basis: if csv.header {
                        "the header has"
                    } else {
                        "the first record has"
                    },
                },
                Fault::Utf8 { at, field } => ReadError::Utf8 {
                    file: file.into(),
                    line: fault_line(vec![*at])[at],
                    field: *field,
                    column: names.get(field - 1).cloned(),
                },
                Fault::Value {
                    at,
                    column,
                    value,
                    refusal,
                } => {
                    let forced = plan.columns[*column].1.map_or("", ReadType::name);
                    let message = match refusal {
                        Refusal::Bad(m) => {
                            format!("{m} (option `types` makes the column {forced})")
                        }
                        Refusal::Mixed { first, has_offset } => {
                            let lines = fault_line(vec![*first]);
                            let (has, other) = if *has_offset {
                                ("has", "has none")
                            } else {
                                ("has no", "has one")
                            };
                            format!(
                                "`{value}` {has} UTC offset but the date-time on line {} {other}; give every value an offset, or none",
                                lines[first]
                            )
                        }
                    };
                    ReadError::Value {
                        file: file.into(),
                        line: fault_line(vec![*at])[at],
                        column: column_name(*column),
                        message,
                    }
                }
            });
        }
        let rows: usize = parts.iter().map(|p| p.rows).sum();
        if rows == 0 {
            return Err(ReadError::NoRows { file: file.into() });
        }

        // The columns' types: inferred over every part, or forced.
        let mut types = Vec::with_capacity(plan.columns.len());
        for (k, &(_, forced)) in plan.columns.iter().enumerate() {
            let kind = match forced {
                None => parts
                    .iter()
                    .fold(Kind::Empty, |kind, p| kind.join(p.columns[k].kind())),
                Some(ReadType::Timestamp) => {
                    let mut told: Option<(bool, usize)> = None;
                    for p in &parts {
                        if let Build::Time { utc: Some(u), .. } = p.columns[k].build {
                            match told {
                                None => told = Some(u),
                                Some(t) if t.0 != u.0 => {
                                    let lines = fault_line(vec![t.1, u.1]);
                                    let (has, other) = if u.0 {
                                        ("has", "has none")
                                    } else {
                                        ("has no", "has one")
                                    };
                                    return Err(ReadError::Value {
                                        file: file.into(),
                                        line: lines[&u.1],
                                        column: column_name(k),
                                        message: format!(
                                            "the date-time {has} UTC offset but the one on line {} {other}; give every value an offset, or none",
                                            lines[&t.1]
                                        ),
                                    });
                                }
                                Some(_) => {}
                            }
                        }
                    }
                    Kind::Time(told.map(|t| t.0))
                }
                Some(t) => forced_kind(t),
            };
            types.push(kind.data_type(forced == Some(ReadType::Categorical)));
        }
        let schema: SchemaRef = Arc::new(Schema::new(
            plan.columns
                .iter()
                .enumerate()
                .map(|(k, &(f, _))| {
                    let nulls = parts.iter().any(|p| p.columns[k].null_count > 0);
                    Field::new(&names[f], types[k].clone(), nulls)
                })
                .collect::<Vec<_>>(),
        ));

        // Finish each part as a batch, reading again the text of columns
        // that became text elsewhere.
        let parts: Vec<Mutex<Option<PartOut>>> =
            parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
        let finished = parallel_map(parts.len(), threads, |i| {
            let mut part = parts[i]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("each part is finished once");
            let again: Vec<usize> = (0..plan.columns.len())
                .filter(|&k| {
                    types[k] == DataType::Utf8
                        && plan.columns[k].1.is_none()
                        && !matches!(part.columns[k].build, Build::Text(_) | Build::Empty)
                })
                .collect();
            if !again.is_empty() {
                let texts = part_text(data, ranges[i].clone(), &plan, &again, part.rows);
                for (&k, text) in again.iter().zip(texts) {
                    part.columns[k] = text;
                }
            }
            let mut stats: Vec<Option<TextStats>> = Vec::with_capacity(plan.columns.len());
            let mut arrays = Vec::with_capacity(plan.columns.len());
            for (k, mut column) in part.columns.into_iter().enumerate() {
                stats.push(match &mut column.build {
                    Build::Text(t) if plan.columns[k].1.is_none() => {
                        Some(std::mem::take(&mut t.stats))
                    }
                    _ => None,
                });
                arrays.push(column.finish(&types[k]));
            }
            let batch = RecordBatch::try_new_with_options(
                schema.clone(),
                arrays,
                &RecordBatchOptions::new().with_row_count(Some(part.rows)),
            )
            .expect("every part's columns have the table's types");
            (batch, stats)
        });

        let mut batches = Vec::with_capacity(finished.len());
        let mut stats: Vec<Option<TextStats>> = vec![None; plan.columns.len()];
        for (batch, part_stats) in finished {
            batches.push(batch);
            for (all, s) in stats.iter_mut().zip(part_stats) {
                match (all.as_mut(), s) {
                    (Some(a), Some(s)) => a.merge(s),
                    (None, s) => *all = s,
                    (Some(_), None) => {}
                }
            }
        }
        let offsets: Vec<usize> = stats.iter().flatten().flat_map(|s| s.offsets()).collect();
        let lines = lines_of(data, offsets);
        let line = |at: usize| lines.get(&at).copied().unwrap_or(0);
        let warnings = stats
            .iter()
            .enumerate()
            .filter_map(|(k, s)| s.as_ref()?.warning(&column_name(k), &line))
            .collect();
        let table = Table::new(schema, batches).expect("the batches have the schema");
        let report = report(Format::Csv, &table, warnings);
        Ok((table, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    };

    /// `std:ingest-csv`'s parser (`components/ingest-csv/src/lib.rs`),
    /// ported with the `csv` crate it uses: what the reader must match.
    mod guest {
        #[derive(Debug, Clone, PartialEq)]
        pub enum Col {
            Boolean(Vec<Option<bool>>),
            Int64(Vec<Option<i64>>),
            Float64(Vec<Option<f64>>),
            Utf8(Vec<Option<String>>),
        }

        fn invalid(line: u64, message: impl std::fmt::Display) -> String {
            format!("line {line}: {message}")
        }

        pub fn parse(
            bytes: &[u8],
            delimiter: u8,
            header: bool,
            missing: &[String],
        ) -> Result<Vec<(String, Col)>, String> {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err("the file is empty".into());
            }
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .flexible(true)
                .from_reader(bytes);
            let mut names: Option<Vec<String>> = None;
            let mut cells: Vec<Vec<Option<String>>> = Vec::new();
            let mut record = csv::ByteRecord::new();
            loop {
                match reader.read_byte_record(&mut record) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return Err(e.to_string()),
                }
                let line = || record.position().map_or(0, |p| line_at(bytes, p.byte()));
                let fields = record
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        std::str::from_utf8(f).map(str::trim).map_err(|_| {
                            invalid(line(), format!("invalid UTF-8 in field {}", i + 1))
                        })
                    })
                    .collect::<Result<Vec<&str>, _>>()?;
                let Some(expected) = names.as_ref().map(Vec::len) else {
                    names = Some(if header {
                        header_names(&fields, line())?
                    } else {
                        (1..=fields.len()).map(|i| format!("column_{i}")).collect()
                    });
                    cells = vec![Vec::new(); fields.len()];
                    if !header {
                        push_row(&mut cells, &fields, missing);
                    }
                    continue;
                };
                if fields.len() != expected {
                    return Err(invalid(
                        line(),
                        format!("expected {expected} fields but found {}", fields.len()),
                    ));
                }
                push_row(&mut cells, &fields, missing);
            }
            let names = names.ok_or_else(|| "the file is empty".to_string())?;
            Ok(names
                .into_iter()
                .zip(cells.into_iter().map(infer))
                .collect())
        }

        fn line_at(bytes: &[u8], offset: u64) -> u64 {
            let mut end = usize::try_from(offset).map_or(bytes.len(), |o| o.min(bytes.len()));
            while matches!(bytes.get(end), Some(b'\n' | b'\r')) {
                end += 1;
            }
            bytes[..end].iter().filter(|&&b| b == b'\n').count() as u64 + 1
        }

        fn push_row(cells: &mut [Vec<Option<String>>], fields: &[&str], missing: &[String]) {
            for (column, field) in cells.iter_mut().zip(fields) {
                let is_missing = missing.iter().any(|m| m == field);
                column.push((!is_missing).then(|| field.to_string()));
            }
        }

        fn header_names(fields: &[&str], line: u64) -> Result<Vec<String>, String> {
            let mut names: Vec<String> = Vec::with_capacity(fields.len());
            for (i, &name) in fields.iter().enumerate() {
                if name.is_empty() {
                    return Err(invalid(
                        line,
                        format!("the header's column {} has an empty name", i + 1),
                    ));
                }
                if let Some(first) = names.iter().position(|n| n == name) {
                    return Err(invalid(
                        line,
                        format!(
                            "the header repeats column name `{name}` (columns {} and {})",
                            first + 1,
                            i + 1
                        ),
                    ));
                }
                names.push(name.to_string());
            }
            Ok(names)
        }

        fn parse_bool(v: &str) -> Option<bool> {
            if v.eq_ignore_ascii_case("true") {
                Some(true)
            } else if v.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        }

        fn infer(values: Vec<Option<String>>) -> Col {
            let present: Vec<&String> = values.iter().flatten().collect();
            if present.is_empty() {
                return Col::Utf8(values);
            }
            if present.iter().all(|v| parse_bool(v).is_some()) {
                Col::Boolean(
                    values
                        .iter()
                        .map(|v| v.as_deref().and_then(parse_bool))
                        .collect(),
                )
            } else if present.iter().all(|v| v.parse::<i64>().is_ok()) {
                Col::Int64(
                    values
                        .iter()
                        .map(|v| v.as_deref().and_then(|s| s.parse().ok()))
                        .collect(),
                )
            } else if present.iter().all(|v| v.parse::<f64>().is_ok()) {
                Col::Float64(
                    values
                        .iter()
                        .map(|v| v.as_deref().and_then(|s| s.parse().ok()))
                        .collect(),
                )
            } else {
                Col::Utf8(values)
            }
        }
    }

    fn options() -> ReadOptions {
        ReadOptions::default()
    }

    fn read_bytes(text: &[u8], options: &ReadOptions) -> Result<(Table, ReadReport), ReadError> {
        read("data.csv", Bytes::copy_from_slice(text), options)
    }

    fn ok(text: &str) -> (Table, ReadReport) {
        read_bytes(text.as_bytes(), &options()).unwrap()
    }

    fn err(text: &[u8]) -> String {
        read_bytes(text, &options()).unwrap_err().to_string()
    }

    /// The table's columns in the guest's terms (dates and timestamps as
    /// their text is not recoverable: `None`).
    fn as_guest(t: &Table) -> Vec<(String, Option<guest::Col>)> {
        t.schema()
            .fields()
            .iter()
            .map(|f| {
                let c = t.column_chunk(f.name(), 0, t.num_rows()).unwrap();
                let col = match c.data_type() {
                    DataType::Boolean => Some(guest::Col::Boolean(c.as_boolean().iter().collect())),
                    DataType::Int64 => Some(guest::Col::Int64(
                        c.as_primitive::<Int64Type>().iter().collect(),
                    )),
                    DataType::Float64 => Some(guest::Col::Float64(
                        c.as_primitive::<Float64Type>().iter().collect(),
                    )),
                    DataType::Utf8 => Some(guest::Col::Utf8(
                        c.as_string::<i32>()
                            .iter()
                            .map(|v| v.map(str::to_owned))
                            .collect(),
                    )),
                    _ => None,
                };
                (f.name().clone(), col)
            })
            .collect()
    }

    /// Float columns compared by bits (so `-0.0` and NaN count).
    fn same(a: &guest::Col, b: &guest::Col) -> bool {
        match (a, b) {
            (guest::Col::Float64(x), guest::Col::Float64(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|(p, q)| p.map(f64::to_bits) == q.map(f64::to_bits))
            }
            _ => a == b,
        }
    }

    /// A small deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const POOLS: [&[&str]; 6] = [
        &[
            "1",
            "-2",
            "+3",
            "007",
            "-0",
            "42",
            " 5 ",
            "99999999999999999999",
            "NA",
            "",
        ],
        &[
            "1.5",
            ".5",
            "1e3",
            "2",
            "-0",
            "inf",
            "-Infinity",
            "nan",
            "NaN",
            "1E-2",
            "5.",
        ],
        &["true", "FALSE", "True", "false", "", "null"],
        &[
            "x",
            "a b",
            "n/a",
            "é",
            "\u{a0}7\u{a0}",
            "\"q,1\"",
            "\"a\"\"b\"",
            "None",
            "\"\"",
        ],
        &[
            "2024-01-05",
            "2023-12-31",
            "2024-02-29",
            "",
            "2024-01-05T10:00:00Z",
        ],
        &[
            "2024-01-05T10:00:00Z",
            "2024-01-05 10:00:00+02:00",
            "2024-01-05t10:00:00.5z",
            "NA",
        ],
    ];
    const ODD: [&str; 12] = [
        "\"multi\nline\"",
        "\"x\"y",
        "abc",
        "12a",
        "\"1,5\"",
        "1.5",
        "3",
        "true",
        "  ",
        "\"\"\"",
        "2024-13-01",
        "\"a\r\nb\"",
    ];

    fn random_csv(rng: &mut Rng) -> (Vec<u8>, u8, bool, Vec<String>) {
        let delimiter = [b',', b';', b'\t'][rng.below(3)];
        let header = rng.below(5) != 0;
        let ending = ["\n", "\r\n", "\r"][rng.below(3)];
        let missing: Vec<String> = if rng.below(4) == 0 {
            vec!["-".into(), "NA".into()]
        } else {
            DEFAULT_MISSING.iter().map(|s| s.to_string()).collect()
        };
        let columns = 1 + rng.below(4);
        let pools: Vec<usize> = (0..columns).map(|_| rng.below(POOLS.len())).collect();
        let d = (delimiter as char).to_string();
        let mut text = String::new();
        if rng.below(10) == 0 {
            text.push('\u{feff}');
        }
        if header {
            let names: Vec<&str> = (0..columns)
                .map(|i| {
                    if rng.below(40) == 0 {
                        ["", "a", " b "][rng.below(3)]
                    } else {
                        ["a", "b", "c", "d", "e"][i]
                    }
                })
                .collect();
            text.push_str(&names.join(&d));
            text.push_str(ending);
        }
        let rows = rng.below(12);
        for r in 0..rows {
            if rng.below(15) == 0 {
                text.push_str(ending);
            }
            let mut n = columns;
            if rng.below(60) == 0 {
                n = if n > 1 && rng.below(2) == 0 {
                    n - 1
                } else {
                    n + 1
                };
            }
            let fields: Vec<&str> = (0..n)
                .map(|i| {
                    let pool = pools[i.min(columns - 1)];
                    if rng.below(25) == 0 {
                        rng.pick(&ODD)
                    } else {
                        rng.pick(POOLS[pool])
                    }
                })
                .collect();
            text.push_str(&fields.join(&d));
            if r + 1 < rows || rng.below(3) != 0 {
                text.push_str(ending);
            }
        }
        if rng.below(30) == 0 {
            text.push_str("\"unterminated");
        }
        let mut bytes = text.into_bytes();
        if rng.below(40) == 0 && !bytes.is_empty() {
            let at = rng.below(bytes.len());
            bytes.insert(at, 0xff);
        }
        (bytes, delimiter, header, missing)
    }

    /// The line number in an error message (`line 3:` or `, line 3`).
    fn line_in(message: &str) -> Option<u64> {
        let at = message.find("line ")? + 5;
        message[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    #[test]
    fn reads_every_file_as_the_ingest_step_does() {
        let mut rng = Rng(0x5eed_1234_abcd_9876);
        let (mut compared, mut refused, mut dated) = (0, 0, 0);
        for case in 0..4000 {
            let (bytes, delimiter, header, missing) = random_csv(&mut rng);
            let expected = guest::parse(&bytes, delimiter, header, &missing);
            let options = ReadOptions {
                csv: CsvOptions {
                    delimiter: (delimiter as char).to_string(),
                    header,
                    missing: missing.clone(),
                },
                batch_rows: [None, Some(1), Some(2), Some(5)][case % 4],
                ..ReadOptions::default()
            };
            let got = read_bytes(&bytes, &options);
            let shown = String::from_utf8_lossy(&bytes);
            match (expected, got) {
                (Ok(columns), Ok((table, report))) => {
                    compared += 1;
                    let mine = as_guest(&table);
                    assert_eq!(mine.len(), columns.len(), "{shown:?}");
                    for ((name, col), (my_name, my_col)) in columns.iter().zip(&mine) {
                        assert_eq!(name, my_name, "{shown:?}");
                        match my_col {
                            Some(c) => assert!(same(col, c), "{shown:?}: {col:?} vs {c:?}"),
                            None => {
                                // The one change: dates and date-times the
                                // step leaves as text.
                                dated += 1;
                                assert!(matches!(col, guest::Col::Utf8(_)), "{shown:?}");
                            }
                        }
                        let f = table.schema().field_with_name(name).unwrap().clone();
                        let nulls = match col {
                            guest::Col::Boolean(v) => v.iter().any(Option::is_none),
                            guest::Col::Int64(v) => v.iter().any(Option::is_none),
                            guest::Col::Float64(v) => v.iter().any(Option::is_none),
                            guest::Col::Utf8(v) => v.iter().any(Option::is_none),
                        };
                        assert_eq!(f.is_nullable(), nulls, "{shown:?}: {name}");
                    }
                    assert_eq!(report.rows as usize, table.num_rows());
                }
                (Ok(columns), Err(e)) => {
                    // The other change: a header and no rows is an error.
                    assert!(matches!(e, ReadError::NoRows { .. }), "{shown:?}: {e}");
                    assert!(header, "{shown:?}");
                    assert!(
                        columns.iter().all(|(_, c)| c == &guest::Col::Utf8(vec![])),
                        "{shown:?}"
                    );
                }
                (Err(expected), Err(e)) => {
                    refused += 1;
                    let message = e.to_string();
                    assert!(message.starts_with("data.csv"), "{message}");
                    // The step counts only `\n` as a line end.
                    if !shown.contains('\r') {
                        assert_eq!(
                            line_in(&expected),
                            line_in(&message),
                            "{shown:?}: {message}"
                        );
                    }
                }
                (Err(expected), Ok(_)) => panic!("{shown:?}: the step refuses it: {expected}"),
            }
        }
        assert!(
            compared > 2000 && refused > 100 && dated > 100,
            "{compared} {refused} {dated}"
        );
    }

    fn column(t: &Table, name: &str) -> ArrayRef {
        t.column_chunk(name, 0, t.num_rows()).unwrap()
    }

    #[test]
    fn infers_each_type_as_the_step_does() {
        let (t, report) =
            ok("b,i,f,s,mixed\nTrue,1,1.5,x,1\nfalse,-2,2,y,true\nTRUE,+3,1e3,z,2.5\n");
        let types: Vec<&str> = report
            .columns
            .iter()
            .map(|c| c.column_type.as_str())
            .collect();
        assert_eq!(types, ["boolean", "int64", "float64", "utf8", "utf8"]);
        let b = column(&t, "b");
        assert_eq!(
            b.as_boolean().iter().collect::<Vec<_>>(),
            [Some(true), Some(false), Some(true)]
        );
        let i = column(&t, "i");
        assert_eq!(i.as_primitive::<Int64Type>().values(), &[1, -2, 3]);
        let f = column(&t, "f");
        assert_eq!(
            f.as_primitive::<Float64Type>().values(),
            &[1.5, 2.0, 1000.0]
        );
        assert!(t.schema().fields().iter().all(|f| !f.is_nullable()));
        // Integers beyond 64 bits are floats; leading zeros go; inf and nan
        // are numbers; `-0` among floats stays negative.
        let (t, _) = ok("big,z,n\n99999999999999999999,007,inf\n1,-0,nan\n2,3,-0\n1.5,4,1\n");
        assert_eq!(t.schema().field(0).data_type(), &DataType::Float64);
        assert_eq!(
            column(&t, "z").as_primitive::<Int64Type>().values(),
            &[7, 0, 3, 4]
        );
        let n = column(&t, "n");
        let n = n.as_primitive::<Float64Type>().values();
        assert!(n[0].is_infinite() && n[1].is_nan() && n[2].to_bits() == (-0.0f64).to_bits());
        let (t, _) = ok("x\n-0\n1.5\n");
        let x = column(&t, "x");
        assert_eq!(
            x.as_primitive::<Float64Type>().value(0).to_bits(),
            (-0.0f64).to_bits()
        );
    }

    #[test]
    fn missing_values_become_nulls_and_fields_are_trimmed() {
        let (t, report) = ok("a, b ,c\n 1 ,NA,\nNaN, x ,null\n3,,None\n");
        assert_eq!(t.column_names(), ["a", "b", "c"]);
        let a = column(&t, "a");
        assert_eq!(
            a.as_primitive::<Int64Type>().iter().collect::<Vec<_>>(),
            [Some(1), None, Some(3)]
        );
        let b = column(&t, "b");
        assert_eq!(
            b.as_string::<i32>().iter().collect::<Vec<_>>(),
            [None, Some("x"), None]
        );
        // Only missing values: utf8, all null.
        assert_eq!(column(&t, "c").null_count(), 3);
        assert_eq!(report.columns[2].column_type, "utf8");
        assert_eq!(report.columns[2].missing, 3);
        assert!(t.schema().fields().iter().all(|f| f.is_nullable()));
        // `nan` is not in the missing list: a NaN value, not a null.
        let (t, _) = ok("x\nnan\n1\n");
        assert_eq!(column(&t, "x").null_count(), 0);
    }

    #[test]
    fn custom_missing_delimiter_and_no_header() {
        let options = ReadOptions {
            csv: CsvOptions {
                delimiter: ";".into(),
                header: false,
                missing: vec!["-".into()],
            },
            ..ReadOptions::default()
        };
        let (t, _) = read_bytes(b"1;-\n2;NA\n", &options).unwrap();
        assert_eq!(t.column_names(), ["column_1", "column_2"]);
        assert_eq!(
            column(&t, "column_1").as_primitive::<Int64Type>().values(),
            &[1, 2]
        );
        assert_eq!(
            column(&t, "column_2")
                .as_string::<i32>()
                .iter()
                .collect::<Vec<_>>(),
            [None, Some("NA")]
        );
        for tab in ["tab", "\\t", "\t"] {
            let options = ReadOptions {
                csv: CsvOptions {
                    delimiter: tab.into(),
                    ..CsvOptions::default()
                },
                ..ReadOptions::default()
            };
            let (t, _) = read_bytes(b"a\tb\n1\t2\n", &options).unwrap();
            assert_eq!(t.column_names(), ["a", "b"]);
        }
        for bad in [";;", "é", "\""] {
            let options = ReadOptions {
                csv: CsvOptions {
                    delimiter: bad.into(),
                    ..CsvOptions::default()
                },
                ..ReadOptions::default()
            };
            let e = read_bytes(b"a\n1\n", &options).unwrap_err().to_string();
            assert!(e.contains("option `csv.delimiter`"), "{e}");
        }
    }

    #[test]
    fn bom_crlf_and_quotes() {
        let (t, _) = ok(
            "\u{feff}name,n,note\r\n\"Smith, J\",1,\"two\r\nlines\"\r\n\"a \"\"q\"\"\",2,\"x\"y\r\n",
        );
        assert_eq!(t.column_names(), ["name", "n", "note"]);
        let name = column(&t, "name");
        assert_eq!(
            name.as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("Smith, J"), Some("a \"q\"")]
        );
        let note = column(&t, "note");
        assert_eq!(
            note.as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("two\r\nlines"), Some("xy")]
        );
        assert_eq!(
            column(&t, "n").as_primitive::<Int64Type>().values(),
            &[1, 2]
        );
        // Old Mac line ends, and blank lines.
        let (t, _) = ok("a,b\r1,2\r\r3,4\r");
        assert_eq!(t.num_rows(), 2);
    }

    #[test]
    fn bad_input_names_the_file_line_and_column() {
        assert_eq!(
            err(b"a,b\n"),
            "data.csv: the file holds a header but no rows"
        );
        assert_eq!(err(b"  \n\n"), "data.csv: the file is empty");
        assert_eq!(err(b""), "data.csv: the file is empty");
        let e = err(b"a,b,c\n1,2,3\n4,5\n");
        assert!(
            e.starts_with(
                "data.csv, line 3: expected 3 fields but found 2 (as many as the header has)"
            ),
            "{e}"
        );
        let e = err(b"a,b\n1,2\n\n1,2,3\n");
        assert!(
            e.starts_with("data.csv, line 4: expected 2 fields but found 3"),
            "{e}"
        );
        let e = err(b",b\n1,2\n");
        assert!(
            e.starts_with("data.csv, line 1: the header's column 1 has an empty name"),
            "{e}"
        );
        let e = err(b"a,,c\n1,2,3\n");
        assert!(
            e.contains("line 1: the header's column 2 has an empty name"),
            "{e}"
        );
        assert_eq!(
            err(b"a,b, a\n1,2,3\n"),
            "data.csv, line 1: the header repeats column name `a` (columns 1 and 3)"
        );
        assert_eq!(
            err(b"a,b\n1,2\n3,\xff\xfe\n"),
            "data.csv, line 3, field 2 (column `b`): invalid UTF-8; convert the file to UTF-8 first"
        );
        // A record's first line is named when a quoted field spans several.
        let e = err(b"a,b\n\"x\ny\",1\n1,2,3\n");
        assert!(e.starts_with("data.csv, line 4:"), "{e}");
    }

    #[test]
    fn a_mostly_numeric_column_is_text_with_a_warning() {
        let mut text = String::from("id,age\n");
        for i in 0..40 {
            let age = match i {
                15 | 29 => "n/a".to_string(),
                18 => "?".to_string(),
                _ => (20 + i).to_string(),
            };
            text.push_str(&format!("{i},{age}\n"));
        }
        let (t, report) = ok(&text);
        assert_eq!(t.schema().field(1).data_type(), &DataType::Utf8);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        let w = &report.warnings[0];
        assert_eq!((w.line, w.column.as_deref()), (Some(17), Some("age")));
        assert_eq!(
            w.message,
            "column `age` is numeric except for 3 values (`n/a` on line 17, `?` on line 20, `n/a` on line 31); it was read as text: add the tokens to the missing values (option `csv.missing`, std:ingest-csv's `missing`) or fix the rows"
        );
        // Text columns of text get no warning.
        let (_, report) = ok("name\nAda\nBob\n7\n");
        assert!(report.warnings.is_empty());
    }

    #[test]
    fn a_column_that_turns_to_text_part_way_is_named_with_its_line() {
        let mut text = String::from("x\n");
        for i in 0..30 {
            text.push_str(&format!("{i}.5\n"));
        }
        for i in 0..50 {
            text.push_str(&format!("item {i}\n"));
        }
        for batch_rows in [None, Some(7)] {
            let options = ReadOptions {
                batch_rows,
                ..ReadOptions::default()
            };
            let (t, report) = read_bytes(text.as_bytes(), &options).unwrap();
            assert_eq!(t.schema().field(0).data_type(), &DataType::Utf8);
            let x = column(&t, "x");
            assert_eq!(x.as_string::<i32>().value(0), "0.5");
            assert_eq!(x.as_string::<i32>().value(79), "item 49");
            let w = &report.warnings[0];
            assert_eq!(w.line, Some(32));
            assert!(
                w.message.starts_with(
                    "column `x` is numeric up to line 31 but not from line 32 on (50 values: `item 0` on line 32, `item 1` on line 33, `item 2` on line 34, …)"
                ),
                "{}",
                w.message
            );
        }
    }

    #[test]
    fn dates_and_date_times_where_the_step_reads_text() {
        let (t, report) = ok(
            "d,utc,naive,mixed,bad\n2024-01-05,2024-01-05T10:00:00Z,2024-01-05 10:00:00,2024-01-05,2024-02-30\n2024-03-01,2024-01-05T12:30:00+02:00,2024-01-05T10:00:00.123456789,2024-01-05T00:00:00,2024-01-01\n",
        );
        let types: Vec<&str> = report
            .columns
            .iter()
            .map(|c| c.column_type.as_str())
            .collect();
        assert_eq!(types, ["date", "timestamp", "timestamp", "utf8", "utf8"]);
        assert_eq!(report.columns[1].timezone.as_deref(), Some("UTC"));
        assert_eq!(report.columns[2].timezone, None);
        let d = column(&t, "d");
        assert_eq!(d.as_primitive::<Date32Type>().values(), &[19727, 19783]);
        let utc = column(&t, "utc");
        let at_10 = 1_704_448_800_000_000i64; // 2024-01-05T10:00:00Z
        assert_eq!(
            utc.as_primitive::<TimestampMicrosecondType>().values(),
            &[at_10, at_10 + 1_800_000_000]
        );
        assert_eq!(
            utc.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let naive = column(&t, "naive");
        assert_eq!(
            naive.as_primitive::<TimestampMicrosecondType>().values(),
            &[at_10, at_10 + 123_456]
        );
        // Offsets on some values only: text.
        let (t, _) = ok("t\n2024-01-05T10:00:00Z\n2024-01-05T10:00:00\n");
        assert_eq!(t.schema().field(0).data_type(), &DataType::Utf8);
        for (text, expected) in [
            ("2024-01-05t10:00z", Some((at_10, true))),
            (
                "2024-01-05T10:00:00-0130",
                Some((at_10 + 5_400_000_000, true)),
            ),
            (
                "2024-01-05T10:00:00+01",
                Some((at_10 - 3_600_000_000, true)),
            ),
            ("1969-12-31T23:59:59.5", Some((-500_000, false))),
            ("2024-01-05T24:00:00", None),
            ("2024-01-05T10:00:00+", None),
            ("2024-01-05T10", None),
            ("2024-1-05T10:00", None),
        ] {
            assert_eq!(parse_datetime(text), expected, "{text}");
        }
        assert_eq!(parse_date("2000-02-29"), Some(11016));
        assert_eq!(parse_date("1900-02-29"), None);
        assert_eq!(parse_date("0001-01-01"), Some(-719_162));
    }

    #[test]
    fn types_can_be_forced() {
        let options = ReadOptions {
            types: [
                ("f", ReadType::Float32),
                ("c", ReadType::Categorical),
                ("t", ReadType::Timestamp),
                ("i", ReadType::Float64),
                ("s", ReadType::Utf8),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..ReadOptions::default()
        };
        let (t, report) = read_bytes(
            b"f,c,t,i,s\n1.25,a,2024-01-05,1,007\n,b,2024-01-05T10:00:00Z,2,x\n3,a,,3,true\n",
            &options,
        )
        .unwrap();
        let types: Vec<&str> = report
            .columns
            .iter()
            .map(|c| c.column_type.as_str())
            .collect();
        assert_eq!(
            types,
            ["float32", "categorical", "timestamp", "float64", "utf8"]
        );
        assert_eq!(report.columns[2].timezone.as_deref(), Some("UTC"));
        let f = column(&t, "f");
        assert_eq!(f.as_primitive::<Float32Type>().value(0), 1.25);
        assert!(f.is_null(1));
        let c = column(&t, "c");
        let c = c.as_dictionary::<Int32Type>();
        assert_eq!(c.values().len(), 2);
        let s = column(&t, "s");
        assert_eq!(s.as_string::<i32>().value(0), "007");
        let t_col = column(&t, "t");
        assert_eq!(
            t_col.as_primitive::<TimestampMicrosecondType>().value(0),
            19727 * MICROS_PER_DAY
        );

        let options = ReadOptions {
            types: [("n".to_string(), ReadType::Int64)].into(),
            ..ReadOptions::default()
        };
        let e = read_bytes(b"n\n1\n2\nabc\n", &options)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "data.csv, line 4, column `n`: `abc` is not an int64 (a whole number of 64 bits) (option `types` makes the column int64)"
        );
        let options = ReadOptions {
            types: [("t".to_string(), ReadType::Timestamp)].into(),
            batch_rows: Some(1),
            ..ReadOptions::default()
        };
        let e = read_bytes(b"t\n2024-01-05T10:00:00Z\n2024-01-05T10:00:00\n", &options)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("data.csv, line 3, column `t`: the date-time has no UTC offset but the one on line 2 has one"), "{e}");
        let options = ReadOptions {
            types: [("zz".to_string(), ReadType::Int64)].into(),
            ..ReadOptions::default()
        };
        let e = read_bytes(b"n\n1\n", &options).unwrap_err().to_string();
        assert_eq!(
            e,
            "data.csv: option `types` names column `zz`, which the file does not have; its columns are: n"
        );
    }

    #[test]
    fn columns_can_be_chosen_and_ordered() {
        let options = ReadOptions {
            columns: Some(vec!["c".into(), "a".into()]),
            ..ReadOptions::default()
        };
        let (t, report) = read_bytes(b"a,b,c\n1,x,2.5\n2,y,3\n", &options).unwrap();
        assert_eq!(t.column_names(), ["c", "a"]);
        assert_eq!(report.columns[0].column_type, "float64");
        // Every record still needs every field.
        let e = read_bytes(b"a,b,c\n1,x\n", &options).unwrap_err();
        assert!(matches!(e, ReadError::FieldCount { line: 2, .. }), "{e}");
        let options = ReadOptions {
            columns: Some(vec!["nope".into()]),
            ..ReadOptions::default()
        };
        let e = read_bytes(b"a\n1\n", &options).unwrap_err().to_string();
        assert!(e.contains("option `columns` names column `nope`"), "{e}");
    }

    #[test]
    fn parts_give_the_same_table_as_one() {
        let mut text = String::from("id,x,label,when\n");
        for i in 0..500 {
            let x = if i == 400 {
                "2.5".to_string()
            } else {
                i.to_string()
            };
            let label = match i % 7 {
                0 => "\"multi\nline, quoted\"".to_string(),
                1 => "NA".to_string(),
                _ => format!("\"l{i}\""),
            };
            text.push_str(&format!("{i},{x},{label},2024-01-{:02}\n", 1 + i % 28));
        }
        let whole = read_bytes(text.as_bytes(), &options()).unwrap();
        let body = text.split_once('\n').unwrap().1.as_bytes();
        for rows in [1, 3, 64] {
            let options = ReadOptions {
                batch_rows: Some(rows),
                ..ReadOptions::default()
            };
            let (t, report) = read_bytes(text.as_bytes(), &options).unwrap();
            assert!(t.batches().len() > 1);
            assert_eq!(report, whole.1);
            assert_eq!(t.to_batch().unwrap(), whole.0.to_batch().unwrap());
            // Every cut is at a record start, never inside quotes.
            let dialect = csv::Dialect::new(b',', &[]);
            for cut in dialect.cuts(body, rows * 20).into_iter().skip(1) {
                assert!(matches!(body[cut - 1], b'\n' | b'\r'));
                let before = &body[..cut];
                assert_eq!(before.iter().filter(|&&b| b == b'"').count() % 2, 0);
            }
        }
        let (t, _) = whole;
        assert_eq!(t.schema().field(1).data_type(), &DataType::Float64);
        assert_eq!(t.schema().field(3).data_type(), &DataType::Date32);
    }

    #[test]
    fn parse_i64_is_std_parse() {
        let mut rng = Rng(42);
        let alphabet = b"0123456789+- a";
        for _ in 0..200_000 {
            let len = rng.below(22);
            let s: String = (0..len)
                .map(|_| {
                    let b = if rng.below(3) == 0 {
                        alphabet[rng.below(alphabet.len())]
                    } else {
                        alphabet[rng.below(10)]
                    };
                    b as char
                })
                .collect();
            assert_eq!(parse_i64(&s), s.parse::<i64>().ok(), "{s:?}");
        }
        for s in [
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "+0009223372036854775807",
        ] {
            assert_eq!(parse_i64(s), s.parse::<i64>().ok(), "{s:?}");
        }
    }

    #[test]
    fn parse_f64_is_std_parse() {
        let mut rng = Rng(4242);
        let alphabet = b"0123456789.+-eE";
        let bits = |v: Option<f64>| v.map(f64::to_bits);
        for _ in 0..300_000 {
            let len = rng.below(26);
            let s: String = (0..len)
                .map(|_| {
                    let b = if rng.below(6) == 0 {
                        alphabet[rng.below(alphabet.len())]
                    } else {
                        alphabet[rng.below(10)]
                    };
                    b as char
                })
                .collect();
            assert_eq!(bits(parse_f64(&s)), bits(s.parse().ok()), "{s:?}");
        }
        for s in [
            "9007199254740992.5",
            "9007199254740993",
            "0.1",
            "-0",
            "-0.000",
            "5.",
            ".5",
            "+.5",
            ".",
            "-",
            "",
            "1e22",
            "0.0000000000000000000001",
            "123456789012345678.9",
            "inf",
            "NaN",
            "1_0",
        ] {
            assert_eq!(bits(parse_f64(s)), bits(s.parse().ok()), "{s:?}");
        }
    }

    fn parquet_bytes(batch: &RecordBatch) -> Bytes {
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn parquet_round_trips_with_projection_and_casts() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("small", DataType::Int32, false),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("u", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow_array::Int32Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.0)])),
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])),
                Arc::new(arrow_array::UInt64Array::from(vec![1, 2, u64::MAX])),
            ],
        )
        .unwrap();
        let bytes = parquet_bytes(&batch);
        assert_eq!(sniff(&bytes), Format::Parquet);
        let options = ReadOptions {
            columns: Some(vec!["s".into(), "small".into(), "x".into()]),
            batch_rows: Some(2),
            ..ReadOptions::default()
        };
        let (t, report) = read("d.parquet", bytes.clone(), &options).unwrap();
        assert_eq!(t.column_names(), ["s", "small", "x"]);
        assert_eq!(t.batch_rows(), [2, 1]);
        assert_eq!(report.format, Format::Parquet);
        assert_eq!(report.rows, 3);
        let types: Vec<&str> = report
            .columns
            .iter()
            .map(|c| c.column_type.as_str())
            .collect();
        assert_eq!(types, ["utf8", "int64", "float64"]);
        assert_eq!(report.columns[0].missing, 1);
        assert_eq!(report.warnings.len(), 1);
        assert_eq!(report.warnings[0].column.as_deref(), Some("small"));
        assert_eq!(
            column(&t, "small").as_primitive::<Int64Type>().values(),
            &[1, 2, 3]
        );
        assert!(t.check_types().is_ok());
        // A u64 beyond int64 is refused, naming the column.
        let e = read("d.parquet", bytes.clone(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.parquet, column `u`:"), "{e}");
        let options = ReadOptions {
            columns: Some(vec!["nope".into()]),
            ..ReadOptions::default()
        };
        let e = read("d.parquet", bytes, &options).unwrap_err().to_string();
        assert!(e.contains("option `columns` names column `nope`"), "{e}");
        let e = read(
            "d.parquet",
            Bytes::from_static(b"PAR1 not really"),
            &ReadOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("d.parquet: not a readable Parquet file"),
            "{e}"
        );
    }

    #[test]
    fn json_lines_infer_types() {
        let text = b"{\"a\": 1, \"b\": \"x\", \"c\": 1.5, \"d\": true}\n\n{\"a\": 2, \"c\": 2, \"d\": null}\n";
        assert_eq!(sniff(text), Format::JsonLines);
        let (t, report) =
            read("d.jsonl", Bytes::from_static(text), &ReadOptions::default()).unwrap();
        assert_eq!(report.format, Format::JsonLines);
        assert_eq!(t.column_names(), ["a", "b", "c", "d"]);
        let types: Vec<&str> = report
            .columns
            .iter()
            .map(|c| c.column_type.as_str())
            .collect();
        assert_eq!(types, ["int64", "utf8", "float64", "boolean"]);
        assert_eq!(report.columns[1].missing, 1);
        assert!(!t.schema().field(0).is_nullable() && t.schema().field(1).is_nullable());
        let options = ReadOptions {
            columns: Some(vec!["c".into()]),
            types: [("c".to_string(), ReadType::Float32)].into(),
            ..ReadOptions::default()
        };
        let (t, _) = read("d.jsonl", Bytes::from_static(text), &options).unwrap();
        assert_eq!(t.schema().field(0).data_type(), &DataType::Float32);
        let e = read(
            "d.jsonl",
            Bytes::from_static(b"{\"a\": 1}\n{\"a\": 2,}\n"),
            &ReadOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("d.jsonl, line 2: not JSON"), "{e}");
        let e = read(
            "d.jsonl",
            Bytes::from_static(b"{\"a\": [1, 2]}\n"),
            &ReadOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("d.jsonl, column `a`: it has type List"),
            "{e}"
        );
    }

    #[test]
    fn options_parse_from_kebab_case_json_and_refuse_typos() {
        let o: ReadOptions = serde_json::from_str(
            r#"{"format": "csv", "columns": ["a"], "csv": {"delimiter": ";", "header": false, "missing": ["?"]}, "types": {"a": "categorical"}, "batch-rows": 10}"#,
        )
        .unwrap();
        assert_eq!(o.format, Some(Format::Csv));
        assert_eq!(o.csv.delimiter, ";");
        assert!(!o.csv.header);
        assert_eq!(o.types["a"], ReadType::Categorical);
        let o: ReadOptions = serde_json::from_str(r#"{"csv": {"header": false}}"#).unwrap();
        assert_eq!(o.csv.missing.len(), DEFAULT_MISSING.len());
        assert_eq!(o.csv.delimiter, ",");
        let o: ReadOptions = serde_json::from_str(r#"{"format": "jsonl"}"#).unwrap();
        assert_eq!(o.format, Some(Format::JsonLines));
        let e = serde_json::from_str::<ReadOptions>(r#"{"delimiter": ";"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `delimiter`"), "{e}");
        let report = ReadReport {
            format: Format::Csv,
            rows: 1,
            columns: vec![ColumnReport {
                name: "a".into(),
                column_type: "int64".into(),
                timezone: None,
                missing: 0,
            }],
            warnings: vec![],
        };
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({"format": "csv", "rows": 1, "warnings": [],
                "columns": [{"name": "a", "type": "int64", "missing": 0}]})
        );
    }

    use crate::engine::cpu_seconds;

    /// A numeric CSV shaped like the benchmark's (9 columns, about 53 bytes
    /// a row: 263 MB for 5M rows): six of floats, three of integers.
    fn numeric_csv(rows: usize) -> Vec<u8> {
        use std::fmt::Write;
        let mut rng = Rng(7);
        let mut text = String::with_capacity(rows * 56);
        text.push_str("a,b,c,d,e,f,g,h,i\n");
        for _ in 0..rows {
            for c in 0..9 {
                let v = rng.next();
                if c < 6 {
                    let _ = write!(text, "{:.3}", (v % 100_000) as f64 / 1000.0);
                } else {
                    let _ = write!(text, "{}", (v % 20_000) as i64 - 10_000);
                }
                text.push(if c == 8 { '\n' } else { ',' });
            }
        }
        text.into_bytes()
    }

    /// `cargo test --release -p sluice-tables --lib -- --ignored --nocapture read::tests::speed`
    #[test]
    #[ignore = "a benchmark: run in release"]
    fn speed_of_a_numeric_csv() {
        // SLUICE_BENCH_CSV names a file to read instead (its rows are not
        // checked); SLUICE_BENCH_ROWS sizes the generated one.
        let (bytes, rows) = match std::env::var("SLUICE_BENCH_CSV") {
            Ok(path) => (Bytes::from(std::fs::read(path).unwrap()), None),
            Err(_) => {
                let rows: usize = std::env::var("SLUICE_BENCH_ROWS")
                    .ok()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(5_000_000);
                (Bytes::from(numeric_csv(rows)), Some(rows))
            }
        };
        let mb = bytes.len() as f64 / 1e6;
        for _ in 0..3 {
            let (start, cpu) = (std::time::Instant::now(), cpu_seconds());
            let (t, _) = read("bench.csv", bytes.clone(), &ReadOptions::default()).unwrap();
            let s = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu;
            if let Some(rows) = rows {
                assert_eq!(t.num_rows(), rows);
            }
            println!(
                "sluice read: {mb:.0} MB, {} rows in {s:.3} s: {:.0} MB/s ({} batches, {} threads; {cpu:.2} s of CPU: {:.0} MB/s per core)",
                t.num_rows(),
                mb / s,
                t.batches().len(),
                parallelism(),
                mb / cpu
            );
        }
        if rows.is_none() {
            return;
        }
        let (start, cpu) = (std::time::Instant::now(), cpu_seconds());
        let schema = Arc::new(Schema::new(
            (0..9)
                .map(|i| {
                    let t = if i < 6 {
                        DataType::Float64
                    } else {
                        DataType::Int64
                    };
                    Field::new(format!("{}", (b'a' + i) as char), t, true)
                })
                .collect::<Vec<_>>(),
        ));
        let reader = arrow_csv::ReaderBuilder::new(schema)
            .with_header(true)
            .with_batch_size(1 << 16)
            .build(std::io::Cursor::new(&bytes[..]))
            .unwrap();
        let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        let s = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        println!(
            "arrow-csv (schema given, one thread): {n} rows in {s:.3} s: {:.0} MB/s ({cpu:.2} s of CPU)",
            mb / s
        );
    }
}
