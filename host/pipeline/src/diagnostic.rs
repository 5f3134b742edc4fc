//! Errors that point into a pipeline spec.
//!
//! A [`Diagnostic`] carries a message, the file it concerns, a 1-based line
//! and column (the column counted in characters, not bytes), the byte span it
//! covers and an optional help line. [`Diagnostics`] is the error type of
//! parsing and validation: every problem found, in source order.
//!
//! Both render like rustc's errors through [`Display`](fmt::Display):
//!
//! ```text
//! error: unknown input port `dta` on step `stats` (component std:statistics)
//!   --> examples/quickstart/pipeline.toml:12:12
//!    |
//! 12 | inputs = { dta = "ingest.data" }
//!    |            ^^^
//!    = help: did you mean `data`? valid ports: data
//! ```
//!
//! and serialise with serde for machine-readable (`--json`) output.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A byte range `start..end` in a spec's source text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The span as a range, for slicing the source.
    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }
}

impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        Span::new(r.start, r.end)
    }
}

/// What kind of problem a [`Diagnostic`] reports; stable for scripts and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// The spec file could not be read.
    Io,
    /// The file is not valid TOML.
    Syntax,
    /// A key that the spec format does not define.
    UnknownKey,
    /// A key the spec format requires is absent.
    MissingKey,
    /// A value of the wrong TOML type or with an invalid form.
    InvalidValue,
    /// A pipeline, data or step name outside `[a-z0-9_-]+`, or reserved.
    InvalidName,
    /// Two things share a name.
    DuplicateName,
    /// A limit that cannot be parsed or is zero.
    InvalidLimit,
    /// The component resolver could not provide a manifest.
    UnknownComponent,
    /// A binding names an input port the component does not have.
    UnknownInputPort,
    /// A required input port has no binding.
    UnboundInput,
    /// A parameter the component does not declare.
    UnknownParam,
    /// A required parameter is not set.
    MissingParam,
    /// A parameter value of the wrong type.
    ParamType,
    /// A source produces a different artifact kind than its consumer takes.
    KindMismatch,
    /// A binding names a step that does not exist.
    UnknownStep,
    /// A binding names an output port the source step does not have.
    UnknownOutputPort,
    /// A binding names a data input that is not declared.
    UnknownData,
    /// A declared data input's file does not exist.
    MissingDataFile,
    /// Steps depend on each other in a cycle.
    Cycle,
}

/// One error, located in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// What kind of problem this is.
    pub code: Code,
    /// One line saying what is wrong.
    pub message: String,
    /// The file the problem is in (as given for messages, not canonicalised).
    pub file: PathBuf,
    /// 1-based line of the span's start; 0 when the diagnostic has no location.
    pub line: usize,
    /// 1-based column of the span's start, in characters; 0 when there is no location.
    pub column: usize,
    /// 1-based line of the span's end; 0 when there is no location.
    pub end_line: usize,
    /// 1-based column of the span's end (exclusive), in characters; 0 when there is no location.
    pub end_column: usize,
    /// The byte span in the source.
    pub span: Span,
    /// The text of line `line` (without its line break), shown under the message.
    pub source_line: String,
    /// An optional hint: a suggestion, the valid choices.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span` of `source`, the text of `file`.
    ///
    /// Spans past the end of `source` or inside a multi-byte character are
    /// clamped to the nearest character boundary at or before them.
    pub fn new(
        code: Code,
        file: &Path,
        source: &str,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        let start = floor_char_boundary(source, span.start);
        let end = floor_char_boundary(source, span.end.max(start));
        let (line, column) = line_column(source, start);
        let (end_line, end_column) = line_column(source, end);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let source_line = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_owned();
        Diagnostic {
            code,
            message: message.into(),
            file: file.to_owned(),
            line,
            column,
            end_line,
            end_column,
            span: Span::new(start, end),
            source_line,
            help: None,
        }
    }

    /// A diagnostic about `file` as a whole, with no position (e.g. it cannot be read).
    pub fn without_location(code: Code, file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            file: file.to_owned(),
            line: 0,
            column: 0,
            end_line: 0,
            end_column: 0,
            span: Span::default(),
            source_line: String::new(),
            help: None,
        }
    }

    /// This diagnostic with `help` as its help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// This diagnostic with `help` as its help line when it is `Some`.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if self.line == 0 {
            write!(f, " --> {}", self.file.display())?;
            if let Some(help) = &self.help {
                write!(f, "\n  = help: {help}")?;
            }
            return Ok(());
        }
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        writeln!(
            f,
            "{pad}--> {}:{}:{}",
            self.file.display(),
            self.line,
            self.column
        )?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{number} | {}", self.source_line)?;
        // Underline from the start column to the end of the span, or to the
        // end of the line when the span goes on; at least one caret.
        let line_chars = self.source_line.chars().count();
        let first = self.column - 1;
        let last = if self.end_line == self.line {
            (self.end_column - 1).min(line_chars)
        } else {
            line_chars
        };
        let carets = last.saturating_sub(first).max(1);
        // Keep tabs so that the carets line up with the text above.
        let indent: String = self
            .source_line
            .chars()
            .take(first)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{pad} | {indent}{}", "^".repeat(carets))?;
        if let Some(help) = &self.help {
            write!(f, "\n{pad} = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Every problem found in a spec, in source order; the error type of parsing
/// and validation. Never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The diagnostics, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts by position (file, then byte offset), keeping the order of
    /// diagnostics at the same position.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.span.start).cmp(&(&b.file, b.span.start)));
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(v: Vec<Diagnostic>) -> Self {
        Diagnostics(v)
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    /// Each diagnostic as rustc would show it, separated by blank lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The 1-based line and 1-based column (in characters) of byte `offset` in
/// `source`. An offset past the end, or inside a multi-byte character, is
/// moved back to the nearest character boundary.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset);
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The candidate closest to `name` by edit distance (insertions, deletions,
/// substitutions and swaps of adjacent characters), if it is close enough to
/// be a plausible typo — at most one edit per three characters, and at least
/// one — or else the first candidate that `name` (of three or more
/// characters) abbreviates.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let candidates: Vec<&'a str> = candidates.into_iter().collect();
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    candidates
        .iter()
        .map(|&c| (edit_distance(name, c), c))
        .filter(|&(d, c)| d <= limit && d < c.chars().count().max(len))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
        .or_else(|| {
            candidates
                .iter()
                .copied()
                .find(|c| len >= 3 && c.starts_with(name))
        })
}

/// Optimal-string-alignment distance between `a` and `b`, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// `did you mean `x`? ` when a close candidate exists, followed by `list`.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    list: String,
) -> String {
    match did_you_mean(name, candidates) {
        Some(c) => format!("did you mean `{c}`? {list}"),
        None => list,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_chars() {
        let src = "a = 1\nné = \"ü\" # x\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 6), (2, 1));
        // `=` on line 2 comes after "né " — 3 chars, 4 bytes.
        let eq = src.rfind('=').unwrap();
        assert_eq!(line_column(src, eq), (2, 4));
        // Inside the two-byte `ü`: moved back to its start.
        let u = src.find('ü').unwrap();
        assert_eq!(line_column(src, u + 1), line_column(src, u));
        assert_eq!(line_column(src, 10_000), (3, 1));
    }

    #[test]
    fn renders_like_rustc() {
        let src =
            "[steps.stats]\ncomponent = \"std:statistics\"\ninputs = { dta = \"ingest.data\" }\n";
        let start = src.find("dta").unwrap();
        let d = Diagnostic::new(
            Code::UnknownInputPort,
            Path::new("p.toml"),
            src,
            Span::new(start, start + 3),
            "unknown input port `dta`",
        )
        .with_help("did you mean `data`? valid ports: data");
        assert_eq!(
            d.to_string(),
            "error: unknown input port `dta`\n \
             --> p.toml:3:12\n  \
             |\n\
             3 | inputs = { dta = \"ingest.data\" }\n  \
             |            ^^^\n  \
             = help: did you mean `data`? valid ports: data"
        );
        assert_eq!((d.end_line, d.end_column), (3, 15));
    }

    #[test]
    fn renders_multibyte_and_wide_line_numbers() {
        let mut src = "\n".repeat(11);
        src.push_str("name = \"ünï\" # é\n");
        let start = src.find("\"ü").unwrap();
        let end = src.find(" #").unwrap();
        let d = Diagnostic::new(
            Code::InvalidName,
            Path::new("p.toml"),
            &src,
            Span::new(start, end),
            "bad",
        );
        assert_eq!((d.line, d.column, d.end_column), (12, 8, 13));
        let text = d.to_string();
        assert!(
            text.contains("  --> p.toml:12:8\n   |\n12 | name = \"ünï\" # é\n   |        ^^^^^")
        );
    }

    #[test]
    fn serialises_to_json() {
        let d = Diagnostic::new(Code::Cycle, Path::new("p.toml"), "ab", Span::new(1, 2), "m");
        let json = serde_json::to_value(Diagnostics::from(d)).unwrap();
        assert_eq!(json[0]["code"], "cycle");
        assert_eq!(json[0]["line"], 1);
        assert_eq!(json[0]["column"], 2);
        assert_eq!(json[0]["span"]["start"], 1);
        assert_eq!(json[0]["help"], serde_json::Value::Null);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("inptus", ["component", "inputs", "params"]),
            Some("inputs")
        );
        assert_eq!(did_you_mean("dta", ["data"]), Some("data"));
        assert_eq!(did_you_mean("zzz", ["data"]), None);
        assert_eq!(did_you_mean("a", ["b"]), None);
        assert_eq!(did_you_mean("mem", ["time", "memory"]), Some("memory"));
        assert_eq!(did_you_mean("me", ["memory"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
