//! `std:ingest-csv`: parses the CSV bytes of a `file` artifact into a table,
//! inferring each column's type.
//!
//! Each column is `boolean` if every non-missing value is `true` or `false`
//! (any case), else `int64` if every one parses as an integer, else `float64`
//! if every one parses as a number, else `utf8`. A column with no
//! non-missing values is `utf8`. Fields are trimmed before inference; values
//! listed in the `missing` param become nulls.

use sluice_sdk::{
    Column, Context, DType, Manifest, Param, Port, Step, StepError, TableBuilder, Value,
    export_step,
};

/// Values treated as missing unless the `missing` param says otherwise.
const DEFAULT_MISSING: &[&str] = &["", "NA", "N/A", "NaN", "null", "NULL", "None"];

/// Rows between two progress reports.
const PROGRESS_EVERY: usize = 4096;

struct IngestCsv;

impl Step for IngestCsv {
    fn describe() -> Manifest {
        let missing = format!(
            "[{}]",
            DEFAULT_MISSING
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Manifest::new("ingest-csv", "0.1.0")
            .doc("Parses a CSV file into a table, inferring column types (boolean, int64, float64, utf8).")
            .input(Port::file("file").doc("The CSV bytes (UTF-8)."))
            .output(Port::table("data").doc("The parsed rows."))
            .param(
                Param::text("delimiter")
                    .default(",")
                    .doc("The field delimiter: one ASCII character, or `\\t` / `tab`."),
            )
            .param(
                Param::boolean("header")
                    .default(true)
                    .doc("Whether the first line names the columns; if not they are named column_1 .. column_n."),
            )
            .param(
                Param::json("missing")
                    .default(Value::Json(missing))
                    .doc("Field values (after trimming) that mean a missing value."),
            )
    }

    fn run(ctx: &Context) -> Result<(), StepError> {
        let options = Options {
            delimiter: parse_delimiter(&ctx.param::<String>("delimiter")?)?,
            header: ctx.param("header")?,
            missing: ctx.param("missing")?,
        };
        let bytes = ctx.input_bytes("file")?;
        let total = bytes.len() as u64;
        let parsed = parse(&bytes, &options, &mut |done| {
            ctx.progress(done, total, "parsing");
        })?;
        ctx.progress(total, total, "parsed");

        let rows = parsed.num_rows();
        ctx.info(format!(
            "inferred schema ({rows} rows): {}",
            parsed.schema_summary()
        ));
        let columns = parsed.columns.len();
        let mut builder = TableBuilder::new();
        for (name, column) in parsed.columns {
            builder.add_column(&name, column)?;
        }
        let table = builder.finish()?;
        ctx.output_table("data", &table)?;
        ctx.metric("rows", rows as f64);
        ctx.metric("columns", columns as f64);
        Ok(())
    }
}

export_step!(IngestCsv);

/// How to read the file.
#[derive(Debug, Clone)]
struct Options {
    delimiter: u8,
    header: bool,
    missing: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            delimiter: b',',
            header: true,
            missing: DEFAULT_MISSING.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The parsed file: named, typed columns.
#[derive(Debug)]
struct Parsed {
    columns: Vec<(String, Column)>,
}

impl Parsed {
    fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// `name: dtype, …`, with `?` after the type of a column holding nulls.
    fn schema_summary(&self) -> String {
        self.columns
            .iter()
            .map(|(name, c)| {
                let nullable = if c.null_count() > 0 { "?" } else { "" };
                format!("{name}: {}{nullable}", c.dtype())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The delimiter param: one ASCII character, or `\t` / `tab`.
fn parse_delimiter(text: &str) -> Result<u8, StepError> {
    match text {
        "\\t" | "tab" => Ok(b'\t'),
        _ if text.len() == 1 && text.is_ascii() => Ok(text.as_bytes()[0]),
        _ => Err(StepError::invalid_input(format!(
            "parameter `delimiter` must be one ASCII character, found {text:?}"
        ))),
    }
}

fn invalid(line: u64, message: impl std::fmt::Display) -> StepError {
    StepError::invalid_input(format!("line {line}: {message}"))
}

/// Parses CSV bytes; `progress` is called with the bytes read so far every
/// [`PROGRESS_EVERY`] rows.
fn parse(
    bytes: &[u8],
    options: &Options,
    progress: &mut dyn FnMut(u64),
) -> Result<Parsed, StepError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StepError::invalid_input("the file is empty"));
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(options.delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);

    let mut names: Option<Vec<String>> = None;
    let mut cells: Vec<Vec<Option<String>>> = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut rows = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(bytes, p.byte()));
                return Err(invalid(line, e));
            }
        }
        // The csv crate's own line count misses blank lines; count from the offset.
        // Computed only for errors: it counts newlines from the start.
        let line = || record.position().map_or(0, |p| line_at(bytes, p.byte()));
        let fields = record
            .iter()
            .enumerate()
            .map(|(i, f)| {
                std::str::from_utf8(f)
                    .map(str::trim)
                    .map_err(|_| invalid(line(), format!("invalid UTF-8 in field {}", i + 1)))
            })
            .collect::<Result<Vec<&str>, _>>()?;

        let Some(expected) = names.as_ref().map(Vec::len) else {
            names = Some(if options.header {
                header_names(&fields, line())?
            } else {
                (1..=fields.len()).map(|i| format!("column_{i}")).collect()
            });
            cells = vec![Vec::new(); fields.len()];
            if options.header {
                continue;
            }
            push_row(&mut cells, &fields, &options.missing);
            rows += 1;
            continue;
        };
        if fields.len() != expected {
            return Err(invalid(
                line(),
                format!("expected {expected} fields but found {}", fields.len()),
            ));
        }
        push_row(&mut cells, &fields, &options.missing);
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            progress(record.position().map_or(0, |p| p.byte()));
        }
    }
    let names = names.ok_or_else(|| StepError::invalid_input("the file is empty"))?;
    Ok(Parsed {
        columns: names
            .into_iter()
            .zip(cells.into_iter().map(infer))
            .collect(),
    })
}

/// The 1-based line number of the record read from `offset`; the reader
/// skips blank lines before a record, and so does this.
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

/// Checks the header: no empty and no repeated names.
fn header_names(fields: &[&str], line: u64) -> Result<Vec<String>, StepError> {
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

/// The narrowest type that holds every non-missing value.
fn infer_dtype(values: &[Option<String>]) -> DType {
    let mut present = values.iter().flatten().peekable();
    if present.peek().is_none() {
        return DType::Utf8;
    }
    let all = |f: &dyn Fn(&str) -> bool| values.iter().flatten().all(|v| f(v));
    if all(&|v| parse_bool(v).is_some()) {
        DType::Boolean
    } else if all(&|v| v.parse::<i64>().is_ok()) {
        DType::Int64
    } else if all(&|v| v.parse::<f64>().is_ok()) {
        DType::Float64
    } else {
        DType::Utf8
    }
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

/// Converts a column of text cells to its inferred type.
fn infer(values: Vec<Option<String>>) -> Column {
    // Every present value parses: `infer_dtype` checked them all.
    match infer_dtype(&values) {
        DType::Boolean => Column::Boolean(
            values
                .iter()
                .map(|v| v.as_deref().and_then(parse_bool))
                .collect(),
        ),
        DType::Int64 => Column::Int64(
            values
                .iter()
                .map(|v| v.as_deref().and_then(|s| s.parse().ok()))
                .collect(),
        ),
        DType::Float64 => Column::Float64(
            values
                .iter()
                .map(|v| v.as_deref().and_then(|s| s.parse().ok()))
                .collect(),
        ),
        DType::Utf8 => Column::Utf8(values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(text: &[u8], options: &Options) -> Result<Parsed, StepError> {
        parse(text, options, &mut |_| {})
    }

    fn parse_ok(text: &str) -> Parsed {
        parse_with(text.as_bytes(), &Options::default()).unwrap()
    }

    fn error(text: &[u8]) -> String {
        match parse_with(text, &Options::default()) {
            Err(StepError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn column<'a>(p: &'a Parsed, name: &str) -> &'a Column {
        &p.columns.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn infers_each_type() {
        let p = parse_ok("b,i,f,s,mixed\nTrue,1,1.5,x,1\nfalse,-2,2,y,true\nTRUE,+3,1e3,z,2.5\n");
        assert_eq!(
            column(&p, "b"),
            &Column::Boolean(vec![Some(true), Some(false), Some(true)])
        );
        assert_eq!(
            column(&p, "i"),
            &Column::Int64(vec![Some(1), Some(-2), Some(3)])
        );
        assert_eq!(
            column(&p, "f"),
            &Column::Float64(vec![Some(1.5), Some(2.0), Some(1000.0)])
        );
        assert_eq!(column(&p, "s").dtype(), DType::Utf8);
        assert_eq!(column(&p, "mixed").dtype(), DType::Utf8);
        assert_eq!(p.num_rows(), 3);
        let names: Vec<_> = p.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "i", "f", "s", "mixed"]);
    }

    #[test]
    fn missing_values_become_nulls_and_fields_are_trimmed() {
        let p = parse_ok("a, b ,c\n 1 ,NA,\nNaN, x ,null\n3,,None\n");
        assert_eq!(
            column(&p, "a"),
            &Column::Int64(vec![Some(1), None, Some(3)])
        );
        assert_eq!(
            column(&p, "b"),
            &Column::Utf8(vec![None, Some("x".into()), None])
        );
        // Only missing values: utf8, all null.
        assert_eq!(column(&p, "c"), &Column::Utf8(vec![None, None, None]));
        assert_eq!(p.schema_summary(), "a: int64?, b: utf8?, c: utf8?");
    }

    #[test]
    fn custom_missing_delimiter_and_no_header() {
        let options = Options {
            delimiter: b';',
            header: false,
            missing: vec!["-".into()],
        };
        let p = parse_with(b"1;-\n2;NA\n", &options).unwrap();
        let names: Vec<_> = p.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["column_1", "column_2"]);
        assert_eq!(
            column(&p, "column_1"),
            &Column::Int64(vec![Some(1), Some(2)])
        );
        assert_eq!(
            column(&p, "column_2"),
            &Column::Utf8(vec![None, Some("NA".into())])
        );
    }

    #[test]
    fn quoted_fields_and_bom() {
        let p = parse_ok("\u{feff}name,n\n\"Smith, J\",1\n\"a \"\"q\"\"\",2\n");
        assert_eq!(
            column(&p, "name"),
            &Column::Utf8(vec![Some("Smith, J".into()), Some("a \"q\"".into())])
        );
    }

    #[test]
    fn header_only_gives_empty_columns() {
        let p = parse_ok("a,b\n");
        assert_eq!(p.num_rows(), 0);
        assert_eq!(column(&p, "a"), &Column::Utf8(vec![]));
    }

    #[test]
    fn ragged_row_names_its_line() {
        let m = error(b"a,b,c\n1,2,3\n4,5\n");
        assert_eq!(m, "line 3: expected 3 fields but found 2");
        let m = error(b"a,b\n1,2\n\n1,2,3\n");
        assert!(
            m.starts_with("line 4: expected 2 fields but found 3"),
            "{m}"
        );
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let m = error(b"a,b\n1,2\n3,\xff\xfe\n");
        assert_eq!(m, "line 3: invalid UTF-8 in field 2");
    }

    #[test]
    fn empty_file() {
        assert_eq!(error(b""), "the file is empty");
        assert_eq!(error(b"  \n\n"), "the file is empty");
    }

    #[test]
    fn bad_headers() {
        let m = error(b"a,,c\n1,2,3\n");
        assert_eq!(m, "line 1: the header's column 2 has an empty name");
        let m = error(b"a,b, a\n1,2,3\n");
        assert_eq!(
            m,
            "line 1: the header repeats column name `a` (columns 1 and 3)"
        );
    }

    #[test]
    fn delimiters() {
        assert_eq!(parse_delimiter(",").unwrap(), b',');
        assert_eq!(parse_delimiter("\\t").unwrap(), b'\t');
        assert_eq!(parse_delimiter("\t").unwrap(), b'\t');
        assert!(parse_delimiter(";;").is_err());
        assert!(parse_delimiter("é").is_err());
    }

    #[test]
    fn progress_is_reported() {
        let mut text = String::from("x\n");
        for i in 0..10_000 {
            text.push_str(&format!("{i}\n"));
        }
        let mut calls = Vec::new();
        parse(text.as_bytes(), &Options::default(), &mut |done| {
            calls.push(done)
        })
        .unwrap();
        assert_eq!(calls.len(), 2);
        assert!(calls[0] < calls[1] && calls[1] < text.len() as u64);
    }
}
