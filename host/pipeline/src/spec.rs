//! Parsing a pipeline spec (TOML) into typed values.
//!
//! ```toml
//! [pipeline]
//! name = "quickstart"              # required; [a-z0-9_-]+
//! description = "..."              # optional
//! store = ".sluice" | "s3://bucket/prefix" | "team.toml"  # optional; --store / SLUICE_STORE win
//! metadata = "postgres://user@host/db"  # optional; --metadata / SLUICE_METADATA_URL win
//!
//! [data]
//! iris = "data/iris.csv"           # or { path = "...", kind = "file" | "table" }
//!
//! [steps.ingest]
//! component = "std:ingest-csv"     # "std:NAME", "./x.wasm" or "sha256:<64 hex>"
//! inputs = { file = "data.iris" }  # port -> "data.NAME" | "STEP.PORT"
//! params = { header = true }
//! limits = { memory = "512MiB", time = "30s", output = "256MiB" }
//! retries = 0
//! cache = true
//! clock = "virtual"                # or "real": the host's clocks, never cached
//!
//! [triggers]                       # optional: what starts a run under `sluice watch`
//! schedule = "0 3 * * 1"           # cron, UTC ([`cron`]); also new-data, drift, degradation
//! [promotion]                      # optional: where blessed versions go
//! production = false
//! ```
//!
//! (See [`Triggers`] and [`Promotion`] for every key of the last two.)
//!
//! [`Spec::parse`] checks the shape of the file (known keys, value types,
//! names, component references, limits) and reports every problem it finds;
//! [`crate::validate`] then checks the spec against the components' manifests.
//! Every element keeps the byte [`Span`] it came from, and the lists keep the
//! order of the file.

pub mod cron;
mod triggers;

pub use triggers::{
    DegradationTrigger, DriftTrigger, Promotion, PromotionPolicy, Requirements, RolloutSpec,
    Triggers, parse_policy,
};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Span, did_you_mean};
use sluice_runtime::ClockMode;
use sluice_runtime::manifest::{ArtifactKind, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

/// A parsed pipeline spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The spec's path, as given; used in diagnostics and to resolve relative paths.
    pub path: PathBuf,
    /// The spec's text, kept to locate diagnostics.
    pub source: String,
    /// `pipeline.name`.
    pub name: String,
    /// Where `pipeline.name`'s value is.
    pub name_span: Span,
    /// `pipeline.description`, if given.
    pub description: Option<String>,
    /// `pipeline.store`, if given: a folder (resolved against the spec's
    /// folder) or an `s3://bucket/prefix` URL. `--store` and `SLUICE_STORE`
    /// take precedence.
    pub store: Option<String>,
    /// `pipeline.metadata`, if given: where the store's metadata is — a
    /// `postgres://` URL (without a password: the spec is shared; the
    /// password comes from `PGPASSWORD` or `~/.pgpass`) or a SQLite file
    /// (resolved against the spec's folder). `--metadata` and
    /// `SLUICE_METADATA_URL` take precedence.
    pub metadata: Option<String>,
    /// `pipeline.limits`: the limits of every step that does not set its
    /// own (each unset one is the host's default).
    pub limits: Limits,
    /// The `[data]` inputs, in file order.
    pub data: Vec<DataInput>,
    /// The `[steps.*]` tables, in file order.
    pub steps: Vec<StepSpec>,
    /// The `[triggers]` table, if given: what starts a run under `sluice
    /// watch` (ignored by `sluice run`, but checked all the same).
    pub triggers: Option<Triggers>,
    /// The `[promotion]` table, if given: where `sluice watch` moves the
    /// aliases of the versions a run blesses ([`Promotion::default`] if
    /// absent).
    pub promotion: Option<Promotion>,
}

/// How a data input is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// Raw bytes (the default).
    File,
    /// A Parquet file, imported as a table.
    Table,
    /// A model from the store's registry (`NAME`, `NAME:VERSION` or
    /// `NAME@ALIAS`), resolved when the run starts; absent if the registry
    /// has none yet, so it binds optional ports (e.g. a baseline).
    Model,
}

impl DataKind {
    /// The artifact kind a step receives for this input.
    pub fn artifact_kind(self) -> ArtifactKind {
        match self {
            DataKind::File => ArtifactKind::File,
            DataKind::Table => ArtifactKind::Table,
            DataKind::Model => ArtifactKind::Model,
        }
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.artifact_kind().fmt(f)
    }
}

/// One entry of `[data]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataInput {
    /// The key, referenced as `data.NAME`.
    pub name: String,
    /// Where the key is.
    pub name_span: Span,
    /// The path as written in the spec.
    pub raw_path: String,
    /// The path resolved against the spec's directory.
    pub path: PathBuf,
    /// How it is imported.
    pub kind: DataKind,
    /// Where the path is (the string, or the whole table form).
    pub span: Span,
}

/// Which component a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentRef {
    /// A standard component, `std:NAME`.
    Std(String),
    /// A `.wasm` file, resolved against the spec's directory.
    Path(PathBuf),
    /// A component already in the store, by lower-case hex SHA-256 digest.
    Digest(String),
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentRef::Std(name) => write!(f, "std:{name}"),
            ComponentRef::Path(path) => write!(f, "{}", path.display()),
            ComponentRef::Digest(hex) => write!(f, "sha256:{hex}"),
        }
    }
}

/// Where a bound input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A `[data]` input: `data.NAME`.
    Data(String),
    /// An output of another step: `STEP.PORT`.
    Step {
        /// The producing step.
        step: String,
        /// Its output port.
        port: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Data(name) => write!(f, "data.{name}"),
            Source::Step { step, port } => write!(f, "{step}.{port}"),
        }
    }
}

/// One entry of a step's `inputs`: an input port and what feeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The step's input port.
    pub port: String,
    /// Where the port name is.
    pub port_span: Span,
    /// What feeds it.
    pub source: Source,
    /// Where the source string is.
    pub span: Span,
}

/// One entry of a step's `params`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The parameter's name.
    pub name: String,
    /// Where the name is.
    pub name_span: Span,
    /// The value as given (arrays and tables become [`Value::Json`]).
    pub value: Value,
    /// Where the value is.
    pub span: Span,
}

/// A step's resource limits; `None` means the host's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Linear-memory limit in bytes.
    pub memory: Option<u64>,
    /// Wall-clock limit.
    pub time: Option<Duration>,
    /// Limit on the total size of the step's outputs, in bytes.
    pub output: Option<u64>,
    /// The CPU the step needs, in thousandths of a core (`cpu = 2`,
    /// `cpu = 0.5`, `cpu = "500m"`): what an engine reserves for the
    /// step's pod (`sluice export kfp`). A local run schedules by `--jobs`
    /// and does not reserve cores.
    pub cpu: Option<u32>,
}

/// One `[steps.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// The key, `[a-z0-9_-]+`.
    pub name: String,
    /// Where the name is (in the table header, or the key of an inline table).
    pub name_span: Span,
    /// Where the step's table is (the header, or the inline table).
    pub span: Span,
    /// The component it runs.
    pub component: ComponentRef,
    /// Where the `component` value is.
    pub component_span: Span,
    /// Its input bindings, in file order.
    pub inputs: Vec<Binding>,
    /// Where the `inputs` table is, if present.
    pub inputs_span: Option<Span>,
    /// Its parameters, in file order.
    pub params: Vec<Param>,
    /// Where the `params` table is, if present.
    pub params_span: Option<Span>,
    /// Its resource limits.
    pub limits: Limits,
    /// How often a failed run is retried (default 0).
    pub retries: u32,
    /// Whether a cached result may be reused (default `true`).
    pub cache: bool,
    /// The clocks the step sees: virtual (deterministic, the default) or
    /// the host's real ones, which make its results never reused.
    pub clock: ClockMode,
    /// The accelerator the step asks for (`accelerator = "nvidia.com/gpu"`,
    /// or `{ type = "nvidia.com/gpu", count = 2 }`): an engine schedules
    /// the step's pod on a node that has it (`sluice export kfp`).
    pub accelerator: Option<Accelerator>,
}

/// An accelerator a step asks an engine for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accelerator {
    /// The resource's name, as Kubernetes' device plugins call it
    /// (`nvidia.com/gpu`, `amd.com/gpu`, `google.com/tpu`).
    pub kind: String,
    /// How many.
    pub count: u32,
}

impl StepSpec {
    /// The binding of input port `port`.
    pub fn input(&self, port: &str) -> Option<&Binding> {
        self.inputs.iter().find(|b| b.port == port)
    }

    /// The parameter called `name`, as given in the spec.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// Why a limit could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Not a whole number followed by an optional size unit.
    #[error("`{0}` is not a size")]
    BadSize(String),
    /// Not a whole number followed by a duration unit.
    #[error("`{0}` is not a duration")]
    BadDuration(String),
    /// Does not fit in 64 bits.
    #[error("`{0}` is too large")]
    Overflow(String),
    /// Zero, which would forbid any work.
    #[error("a limit must be greater than zero")]
    Zero,
}

/// Parses a size: a whole number with an optional unit — `B`, `KB`, `MB`,
/// `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of
/// 1024) — such as `512MiB`; a bare number is bytes. Zero is rejected.
pub fn parse_size(text: &str) -> Result<u64, LimitError> {
    let (number, unit) = split_number(text).ok_or_else(|| LimitError::BadSize(text.into()))?;
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(LimitError::BadSize(text.into())),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| LimitError::Overflow(text.into()))?;
    match n.checked_mul(factor) {
        Some(0) => Err(LimitError::Zero),
        Some(bytes) => Ok(bytes),
        None => Err(LimitError::Overflow(text.into())),
    }
}

/// Parses a duration: a whole number with a unit `ms`, `s`, `m` or `h`,
/// such as `30s`. Zero is rejected.
pub fn parse_duration(text: &str) -> Result<Duration, LimitError> {
    let (number, unit) = split_number(text).ok_or_else(|| LimitError::BadDuration(text.into()))?;
    let millis_per: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(LimitError::BadDuration(text.into())),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| LimitError::Overflow(text.into()))?;
    match n.checked_mul(millis_per) {
        Some(0) => Err(LimitError::Zero),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(LimitError::Overflow(text.into())),
    }
}

/// `"512 MiB"` → `("512", "MiB")`; `None` when there are no leading digits.
fn split_number(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return None;
    }
    Some((&text[..digits], text[digits..].trim_start()))
}

/// Whether `name` is a valid pipeline, data or step name: `[a-z0-9_-]+`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

const TOP_KEYS: &[&str] = &["pipeline", "data", "steps", "triggers", "promotion"];
const PIPELINE_KEYS: &[&str] = &["name", "description", "store", "metadata", "limits"];
const DATA_KEYS: &[&str] = &["path", "kind", "model"];
const STEP_KEYS: &[&str] = &[
    "component",
    "inputs",
    "params",
    "limits",
    "retries",
    "cache",
    "clock",
    "accelerator",
];
const LIMIT_KEYS: &[&str] = &["memory", "time", "output", "cpu"];
const ACCELERATOR_KEYS: &[&str] = &["type", "count"];
const CPU_HELP: &str = "write a number of cores such as 2 or 0.5, or millicores such as \"500m\"";
const SIZE_HELP: &str = "write a size such as \"512MiB\": a whole number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, or a plain integer for bytes";
const DURATION_HELP: &str = "write a duration such as \"30s\": a whole number with ms, s, m or h";

impl Spec {
    /// Reads and parses the spec at `path`.
    ///
    /// A file that cannot be read gives one [`Code::Io`] diagnostic naming it.
    pub fn load(path: impl AsRef<Path>) -> Result<Spec, Diagnostics> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|e| {
            Diagnostic::without_location(
                Code::Io,
                path,
                format!("cannot read pipeline spec `{}`: {e}", path.display()),
            )
        })?;
        Spec::parse(path, &source)
    }

    /// Parses `source`, the text of the spec at `path`.
    ///
    /// `path` names the file in diagnostics, and its directory is the base
    /// for the relative paths of data inputs and components. All problems
    /// found are reported, in source order.
    pub fn parse(path: &Path, source: &str) -> Result<Spec, Diagnostics> {
        parse_table_with(path, source, |p, root| p.spec(root))
    }

    /// The directory relative paths in the spec are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The data input called `name`.
    pub fn data_input(&self, name: &str) -> Option<&DataInput> {
        self.data.iter().find(|d| d.name == name)
    }

    /// A diagnostic located at `span` of this spec.
    pub fn diagnostic(&self, code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, &self.path, &self.source, span, message)
    }
}

/// Parses `source` (the TOML file at `path`) with `parse`, which reads
/// its top-level table; every problem found, in source order.
fn parse_table_with<T>(
    path: &Path,
    source: &str,
    parse: impl FnOnce(&mut Parser<'_>, &DeTable<'_>) -> Option<T>,
) -> Result<T, Diagnostics> {
    let root =
        DeTable::parse(source).map_err(|e| Diagnostics::from(syntax_error(path, source, &e)))?;
    let mut p = Parser {
        file: path,
        source,
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        diags: Vec::new(),
    };
    let parsed = parse(&mut p, root.get_ref());
    match parsed {
        Some(t) if p.diags.is_empty() => Ok(t),
        _ => {
            let mut diags = Diagnostics(p.diags);
            diags.sort();
            Err(diags)
        }
    }
}

fn syntax_error(path: &Path, source: &str, e: &toml::de::Error) -> Diagnostic {
    let span = e.span().map(Span::from).unwrap_or_default();
    let message = e.message().trim_end_matches('\n');
    if message.starts_with("duplicate key") {
        let key = source
            .get(span.range())
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\'']);
        return Diagnostic::new(
            Code::DuplicateName,
            path,
            source,
            span,
            format!("duplicate key `{key}`"),
        )
        .with_help("each key, step and data input may be defined only once");
    }
    Diagnostic::new(
        Code::Syntax,
        path,
        source,
        span,
        format!("invalid TOML: {message}"),
    )
}

type Key<'i> = Spanned<DeString<'i>>;
type Val<'i> = Spanned<DeValue<'i>>;

/// A table's entries in file order (the parser's map is sorted by key).
fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Val<'i>)> {
    let mut v: Vec<_> = table.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

fn get<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<(&'a Key<'i>, &'a Val<'i>)> {
    table.iter().find(|(k, _)| k.get_ref() == key)
}

fn span_of<T>(s: &Spanned<T>) -> Span {
    s.span().into()
}

struct Parser<'a> {
    file: &'a Path,
    source: &'a str,
    base: PathBuf,
    diags: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn error(&mut self, code: Code, span: Span, message: String, help: Option<String>) {
        let d = Diagnostic::new(code, self.file, self.source, span, message).with_help_opt(help);
        self.diags.push(d);
    }

    fn check_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], location: &str) {
        for (key, _) in entries(table) {
            let key_str: &str = key.get_ref();
            if !allowed.contains(&key_str) {
                let help = did_you_mean(key_str, allowed.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"));
                self.error(
                    Code::UnknownKey,
                    span_of(key),
                    format!(
                        "unknown key `{key_str}` in {location}; expected one of {}",
                        allowed.join(", ")
                    ),
                    help,
                );
            }
        }
    }

    fn type_error(&mut self, value: &Val<'_>, expected: &str, what: &str) {
        self.error(
            Code::InvalidValue,
            span_of(value),
            format!(
                "expected {expected} for {what}, found {}",
                value.get_ref().type_str()
            ),
            None,
        );
    }

    fn table<'a, 'i>(&mut self, value: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_error(value, "a table", what);
                None
            }
        }
    }

    fn string<'a>(&mut self, value: &'a Val<'_>, what: &str) -> Option<&'a str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s),
            _ => {
                self.type_error(value, "a string", what);
                None
            }
        }
    }

    fn name(&mut self, name: &str, span: Span, what: &str) -> bool {
        if is_valid_name(name) {
            return true;
        }
        self.error(
            Code::InvalidName,
            span,
            format!("invalid {what} name `{name}`"),
            Some("names may contain only lower-case letters, digits, `_` and `-`".into()),
        );
        false
    }

    /// `metadata` in [pipeline]: a `postgres://` URL without a password,
    /// or a SQLite file relative to the spec.
    fn metadata_location(&mut self, v: &Val<'_>) -> Option<String> {
        let s = self.string(v, "`metadata` in [pipeline]")?;
        if sluice_store::MetadataLocation::is_postgres_url(s) {
            if sluice_store::MetadataLocation::parse(s).display() != s {
                self.error(
                    Code::InvalidValue,
                    span_of(v),
                    "`metadata` in [pipeline] holds a password, and a spec is shared".into(),
                    Some("remove it from the URL; put it in PGPASSWORD or ~/.pgpass".into()),
                );
                return None;
            }
            return Some(s.to_owned());
        }
        Some(
            self.file
                .parent()
                .unwrap_or(Path::new("."))
                .join(s)
                .display()
                .to_string(),
        )
    }

    fn spec(&mut self, root: &DeTable<'_>) -> Option<Spec> {
        self.check_keys(root, TOP_KEYS, "the top-level table");

        let mut name = None;
        let mut description = None;
        let mut store = None;
        let mut metadata = None;
        let mut limits = Limits::default();
        let mut pipeline_span = Span::default();
        match get(root, "pipeline") {
            None => self.error(
                Code::MissingKey,
                Span::default(),
                "missing [pipeline] table".into(),
                Some("start the spec with `[pipeline]` and `name = \"...\"`".into()),
            ),
            Some((_, value)) => {
                pipeline_span = span_of(value);
                if let Some(t) = self.table(value, "`pipeline`") {
                    self.check_keys(t, PIPELINE_KEYS, "[pipeline]");
                    match get(t, "name") {
                        None => self.error(
                            Code::MissingKey,
                            pipeline_span,
                            "missing `name` in [pipeline]".into(),
                            Some("add `name = \"...\"`".into()),
                        ),
                        Some((_, v)) => {
                            if let Some(s) = self.string(v, "`name` in [pipeline]")
                                && self.name(s, span_of(v), "pipeline")
                            {
                                name = Some((s.to_owned(), span_of(v)));
                            }
                        }
                    }
                    if let Some((_, v)) = get(t, "description") {
                        description = self
                            .string(v, "`description` in [pipeline]")
                            .map(str::to_owned);
                    }
                    if let Some((_, v)) = get(t, "limits") {
                        limits = self.limits(
                            v,
                            "`limits` in [pipeline]",
                            "[pipeline.limits]",
                            "every step ([pipeline] limits)",
                        );
                    }
                    if let Some((_, v)) = get(t, "store") {
                        store = self.string(v, "`store` in [pipeline]").map(|s| {
                            if s.starts_with("s3://") {
                                s.to_owned()
                            } else {
                                self.file
                                    .parent()
                                    .unwrap_or(Path::new("."))
                                    .join(s)
                                    .display()
                                    .to_string()
                            }
                        });
                    }
                    if let Some((_, v)) = get(t, "metadata") {
                        metadata = self.metadata_location(v);
                    }
                }
            }
        }

        let mut data = Vec::new();
        if let Some((_, value)) = get(root, "data")
            && let Some(t) = self.table(value, "`data`")
        {
            for (key, value) in entries(t) {
                if let Some(d) = self.data_input(key, value) {
                    data.push(d);
                }
            }
        }

        let mut steps = Vec::new();
        match get(root, "steps") {
            None => self.error(
                Code::MissingKey,
                pipeline_span,
                "the pipeline has no steps".into(),
                Some("add a step with `[steps.NAME]` and `component = \"...\"`".into()),
            ),
            Some((_, value)) => {
                if let Some(t) = self.table(value, "`steps`") {
                    if t.is_empty() {
                        self.error(
                            Code::MissingKey,
                            span_of(value),
                            "the pipeline has no steps".into(),
                            None,
                        );
                    }
                    for (key, value) in entries(t) {
                        if let Some(s) = self.step(key, value) {
                            steps.push(s);
                        }
                    }
                }
            }
        }

        let mut triggers = None;
        let mut promotion = None;
        let mut tables_ok = true;
        if let Some((_, value)) = get(root, "triggers") {
            triggers = self.triggers(value, &data);
            tables_ok &= triggers.is_some();
        }
        if let Some((_, value)) = get(root, "promotion") {
            promotion = self.promotion(value, &self.base.clone());
            tables_ok &= promotion.is_some();
        }

        let (name, name_span) = name?;
        if !tables_ok {
            return None;
        }
        Some(Spec {
            path: self.file.to_owned(),
            source: self.source.to_owned(),
            name,
            name_span,
            description,
            store,
            metadata,
            limits,
            data,
            steps,
            triggers,
            promotion,
        })
    }

    fn data_input(&mut self, key: &Key<'_>, value: &Val<'_>) -> Option<DataInput> {
        let name: &str = key.get_ref();
        let name_ok = self.name(name, span_of(key), "data input");
        let what = format!("data input `{name}`");
        let (raw_path, kind) = match value.get_ref() {
            DeValue::String(s) => (s.to_string(), DataKind::File),
            DeValue::Table(t) => {
                self.check_keys(t, DATA_KEYS, &format!("[data.{name}]"));
                if let Some((_, v)) = get(t, "model") {
                    let reference = self.string(v, &format!("`model` of {what}"))?;
                    if let Err(e) = reference.parse::<sluice_store::ModelRef>() {
                        self.error(Code::InvalidValue, span_of(v), e.to_string(), None);
                        return None;
                    }
                    if get(t, "path").is_some() || get(t, "kind").is_some() {
                        self.error(
                            Code::InvalidValue,
                            span_of(value),
                            format!(
                                "{what} names a registry `model`, so it takes no `path` or `kind`"
                            ),
                            None,
                        );
                        return None;
                    }
                    return name_ok.then(|| DataInput {
                        name: name.to_owned(),
                        name_span: span_of(key),
                        path: PathBuf::from(reference),
                        raw_path: reference.to_owned(),
                        kind: DataKind::Model,
                        span: span_of(value),
                    });
                }
                let path = match get(t, "path") {
                    Some((_, v)) => self.string(v, &format!("`path` of {what}")),
                    None => {
                        self.error(
                            Code::MissingKey,
                            span_of(value),
                            format!("missing `path` for {what}"),
                            Some("give a file `path`, or `model = \"NAME@ALIAS\"` for a model from the registry".into()),
                        );
                        None
                    }
                };
                let kind = match get(t, "kind") {
                    None => Some(DataKind::File),
                    Some((_, v)) => match self.string(v, &format!("`kind` of {what}"))? {
                        "file" => Some(DataKind::File),
                        "table" => Some(DataKind::Table),
                        other => {
                            self.error(
                                Code::InvalidValue,
                                span_of(v),
                                format!("unknown kind `{other}` for {what}"),
                                Some("expected `file` or `table` (a Parquet file)".into()),
                            );
                            None
                        }
                    },
                };
                (path?.to_owned(), kind?)
            }
            _ => {
                self.type_error(value, "a path string or a table", &what);
                return None;
            }
        };
        if kind == DataKind::Table && !raw_path.ends_with(".parquet") {
            self.error(
                Code::InvalidValue,
                span_of(value),
                format!("{what} has kind `table` but `{raw_path}` is not a .parquet file"),
                Some("table inputs are read from Parquet; use `kind = \"file\"` for other files and ingest them with a step".into()),
            );
        }
        if raw_path.is_empty() {
            self.error(
                Code::InvalidValue,
                span_of(value),
                format!("empty path for {what}"),
                None,
            );
        }
        name_ok.then(|| DataInput {
            name: name.to_owned(),
            name_span: span_of(key),
            path: self.base.join(&raw_path),
            raw_path,
            kind,
            span: span_of(value),
        })
    }

    fn step(&mut self, key: &Key<'_>, value: &Val<'_>) -> Option<StepSpec> {
        let name: &str = key.get_ref();
        let mut ok = self.name(name, span_of(key), "step");
        if name == "data" {
            self.error(
                Code::InvalidName,
                span_of(key),
                "`data` cannot be a step name".into(),
                Some(
                    "`data.NAME` refers to a [data] input, so no step may be called `data`".into(),
                ),
            );
            ok = false;
        }
        let location = format!("[steps.{name}]");
        let t = self.table(value, &format!("step `{name}`"))?;
        self.check_keys(t, STEP_KEYS, &location);

        let component = match get(t, "component") {
            None => {
                self.error(
                    Code::MissingKey,
                    span_of(value),
                    format!("missing `component` in {location}"),
                    Some("add e.g. `component = \"std:statistics\"`".into()),
                );
                None
            }
            Some((_, v)) => self
                .string(v, &format!("`component` in {location}"))
                .and_then(|s| self.component(s, span_of(v)).map(|c| (c, span_of(v)))),
        };

        let mut inputs = Vec::new();
        let mut inputs_span = None;
        if let Some((_, v)) = get(t, "inputs") {
            inputs_span = Some(span_of(v));
            if let Some(it) = self.table(v, &format!("`inputs` in {location}")) {
                for (port, src) in entries(it) {
                    let Some(text) =
                        self.string(src, &format!("input `{}` of step `{name}`", port.get_ref()))
                    else {
                        continue;
                    };
                    if let Some(source) = self.source_ref(text, span_of(src)) {
                        inputs.push(Binding {
                            port: port.get_ref().to_string(),
                            port_span: span_of(port),
                            source,
                            span: span_of(src),
                        });
                    }
                }
            }
        }

        let mut params = Vec::new();
        let mut params_span = None;
        if let Some((_, v)) = get(t, "params") {
            params_span = Some(span_of(v));
            if let Some(pt) = self.table(v, &format!("`params` in {location}")) {
                for (pname, pval) in entries(pt) {
                    if let Some(value) = self.value(pval) {
                        params.push(Param {
                            name: pname.get_ref().to_string(),
                            name_span: span_of(pname),
                            value,
                            span: span_of(pval),
                        });
                    }
                }
            }
        }

        let limits = match get(t, "limits") {
            Some((_, v)) => self.limits(
                v,
                &format!("`limits` in {location}"),
                &format!("[steps.{name}.limits]"),
                &format!("step `{name}`"),
            ),
            None => Limits::default(),
        };

        let mut retries = 0;
        if let Some((_, v)) = get(t, "retries") {
            match v.get_ref() {
                DeValue::Integer(i) => match u32::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) => retries = n,
                    Err(_) => self.error(
                        Code::InvalidValue,
                        span_of(v),
                        format!(
                            "invalid `retries` in {location}: `{i}` is not between 0 and {}",
                            u32::MAX
                        ),
                        None,
                    ),
                },
                _ => self.type_error(v, "an integer", &format!("`retries` in {location}")),
            }
        }

        let mut cache = true;
        if let Some((_, v)) = get(t, "cache") {
            match v.get_ref() {
                DeValue::Boolean(b) => cache = *b,
                _ => self.type_error(v, "a boolean", &format!("`cache` in {location}")),
            }
        }

        let mut clock = ClockMode::Virtual;
        if let Some((_, v)) = get(t, "clock") {
            match v.get_ref() {
                DeValue::String(c) if c == "virtual" => {}
                DeValue::String(c) if c == "real" => clock = ClockMode::Real,
                DeValue::String(c) => self.error(
                    Code::InvalidValue,
                    span_of(v),
                    format!("invalid `clock` in {location}: `{c}` is neither \"virtual\" nor \"real\""),
                    Some("steps see virtual, deterministic clocks unless `clock = \"real\"`; a step with real clocks is never served from the cache".into()),
                ),
                _ => self.type_error(v, "a string", &format!("`clock` in {location}")),
            }
        }

        let accelerator = get(t, "accelerator").and_then(|(_, v)| self.accelerator(v, &location));

        let (component, component_span) = component?;
        ok.then(|| StepSpec {
            name: name.to_owned(),
            name_span: span_of(key),
            span: span_of(value),
            component,
            component_span,
            inputs,
            inputs_span,
            params,
            params_span,
            limits,
            retries,
            cache,
            clock,
            accelerator,
        })
    }

    fn component(&mut self, text: &str, span: Span) -> Option<ComponentRef> {
        if let Some(name) = text.strip_prefix("std:") {
            if is_valid_name(name) {
                return Some(ComponentRef::Std(name.to_owned()));
            }
        } else if let Some(hex) = text.strip_prefix("sha256:") {
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(ComponentRef::Digest(hex.to_ascii_lowercase()));
            }
        } else if text.ends_with(".wasm")
            || text.starts_with("./")
            || text.starts_with("../")
            || text.starts_with('/')
        {
            return Some(ComponentRef::Path(self.base.join(text)));
        }
        self.error(
            Code::InvalidValue,
            span,
            format!("invalid component reference `{text}`"),
            Some("expected `std:NAME`, a path to a `.wasm` file such as `./step.wasm`, or `sha256:` and 64 hex digits".into()),
        );
        None
    }

    fn source_ref(&mut self, text: &str, span: Span) -> Option<Source> {
        match text.split_once('.') {
            Some(("data", name)) if !name.is_empty() => Some(Source::Data(name.to_owned())),
            Some((step, port)) if !step.is_empty() && !port.is_empty() => Some(Source::Step {
                step: step.to_owned(),
                port: port.to_owned(),
            }),
            _ => {
                self.error(
                    Code::InvalidValue,
                    span,
                    format!("invalid input source `{text}`"),
                    Some("expected `data.NAME` for a [data] input or `STEP.PORT` for another step's output".into()),
                );
                None
            }
        }
    }

    fn value(&mut self, v: &Val<'_>) -> Option<Value> {
        let result = match v.get_ref() {
            DeValue::String(s) => Ok(Value::Text(s.to_string())),
            DeValue::Boolean(b) => Ok(Value::Boolean(*b)),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map(Value::Integer)
                .map_err(|_| format!("integer `{i}` does not fit in 64 bits")),
            DeValue::Float(f) => parse_float(f.as_str()).map(Value::Float),
            DeValue::Datetime(_) => Err(
                "dates and times are not supported as parameter values; quote them as a string"
                    .to_owned(),
            ),
            DeValue::Array(_) | DeValue::Table(_) => {
                to_json(v.get_ref()).map(|j| Value::Json(j.to_string()))
            }
        };
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(Code::InvalidValue, span_of(v), message, None);
                None
            }
        }
    }

    /// A `limits` table (of a step, or `[pipeline]`'s defaults for every
    /// step); `whose` names the owner in messages (`step `train``).
    fn limits(&mut self, v: &Val<'_>, what: &str, location: &str, whose: &str) -> Limits {
        let mut limits = Limits::default();
        if let Some(lt) = self.table(v, what) {
            self.check_keys(lt, LIMIT_KEYS, location);
            if let Some((_, v)) = get(lt, "memory") {
                limits.memory = self.size(v, "memory", whose);
            }
            if let Some((_, v)) = get(lt, "output") {
                limits.output = self.size(v, "output", whose);
            }
            if let Some((_, v)) = get(lt, "time") {
                limits.time = self.duration(v, whose);
            }
            if let Some((_, v)) = get(lt, "cpu") {
                limits.cpu = self.cpu(v, whose);
            }
        }
        limits
    }

    /// A `cpu` limit, in millicores.
    fn cpu(&mut self, v: &Val<'_>, whose: &str) -> Option<u32> {
        let result = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64 * 1000.0),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok().map(|f| f * 1000.0),
            DeValue::String(s) => match s.strip_suffix('m') {
                Some(milli) => milli.parse::<u32>().ok().map(f64::from),
                None => s.parse::<f64>().ok().map(|f| f * 1000.0),
            },
            _ => {
                self.type_error(
                    v,
                    "a number of cores or a millicores string",
                    &format!("the `cpu` limit of {whose}"),
                );
                return None;
            }
        };
        match result {
            Some(m) if m.is_finite() && m >= 1.0 && m <= f64::from(u32::MAX) => {
                Some(m.round() as u32)
            }
            _ => {
                self.error(
                    Code::InvalidLimit,
                    span_of(v),
                    format!(
                        "invalid `cpu` limit for {whose}: `{}` is not a positive number of cores",
                        match v.get_ref() {
                            DeValue::String(s) => s.to_string(),
                            _ => self.source[span_of(v).range()].trim().to_string(),
                        }
                    ),
                    Some(CPU_HELP.into()),
                );
                None
            }
        }
    }

    /// A step's `accelerator`: a resource name, or `{ type, count }`.
    fn accelerator(&mut self, v: &Val<'_>, location: &str) -> Option<Accelerator> {
        let bad_kind = |kind: &str| {
            kind.is_empty()
                || !kind
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"./-_".contains(&b))
        };
        let help = "name a Kubernetes extended resource such as \"nvidia.com/gpu\"";
        match v.get_ref() {
            DeValue::String(kind) if !bad_kind(kind) => Some(Accelerator {
                kind: kind.to_string(),
                count: 1,
            }),
            DeValue::Table(_) => {
                let t = self.table(v, &format!("`accelerator` in {location}"))?;
                self.check_keys(t, ACCELERATOR_KEYS, &format!("`accelerator` in {location}"));
                let kind = match get(t, "type") {
                    Some((_, k)) => match k.get_ref() {
                        DeValue::String(kind) if !bad_kind(kind) => kind.to_string(),
                        _ => {
                            self.error(
                                Code::InvalidValue,
                                span_of(k),
                                format!("invalid accelerator `type` in {location}"),
                                Some(help.into()),
                            );
                            return None;
                        }
                    },
                    None => {
                        self.error(
                            Code::MissingKey,
                            span_of(v),
                            format!("missing `type` in the `accelerator` of {location}"),
                            Some(help.into()),
                        );
                        return None;
                    }
                };
                let count = match get(t, "count") {
                    None => 1,
                    Some((_, c)) => match c.get_ref() {
                        DeValue::Integer(i) => match u32::from_str_radix(i.as_str(), i.radix()) {
                            Ok(n) if n > 0 => n,
                            _ => {
                                self.error(
                                    Code::InvalidValue,
                                    span_of(c),
                                    format!("invalid accelerator `count` in {location}: `{i}` is not a whole number above 0"),
                                    None,
                                );
                                return None;
                            }
                        },
                        _ => {
                            self.type_error(
                                c,
                                "an integer",
                                &format!("the accelerator `count` in {location}"),
                            );
                            return None;
                        }
                    },
                };
                Some(Accelerator { kind, count })
            }
            DeValue::String(kind) => {
                self.error(
                    Code::InvalidValue,
                    span_of(v),
                    format!("invalid `accelerator` in {location}: `{kind}` is not a resource name"),
                    Some(help.into()),
                );
                None
            }
            _ => {
                self.type_error(
                    v,
                    "a resource name or a table { type, count }",
                    &format!("`accelerator` in {location}"),
                );
                None
            }
        }
    }

    fn size(&mut self, v: &Val<'_>, which: &str, whose: &str) -> Option<u64> {
        let result = match v.get_ref() {
            DeValue::String(s) => parse_size(s),
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(0) => Err(LimitError::Zero),
                Ok(n) => Ok(n),
                Err(_) => Err(LimitError::BadSize(i.to_string())),
            },
            _ => {
                self.type_error(
                    v,
                    "a size string or an integer",
                    &format!("the `{which}` limit of {whose}"),
                );
                return None;
            }
        };
        self.limit(result, v, which, whose, SIZE_HELP)
    }

    fn duration(&mut self, v: &Val<'_>, whose: &str) -> Option<Duration> {
        let result = match v.get_ref() {
            DeValue::String(s) => parse_duration(s),
            DeValue::Integer(i) => Err(LimitError::BadDuration(i.to_string())),
            _ => {
                self.type_error(
                    v,
                    "a duration string",
                    &format!("the `time` limit of {whose}"),
                );
                return None;
            }
        };
        self.limit(result, v, "time", whose, DURATION_HELP)
    }

    fn limit<T>(
        &mut self,
        result: Result<T, LimitError>,
        v: &Val<'_>,
        which: &str,
        whose: &str,
        help: &str,
    ) -> Option<T> {
        match result {
            Ok(x) => Some(x),
            Err(e) => {
                self.error(
                    Code::InvalidLimit,
                    span_of(v),
                    format!("invalid `{which}` limit for {whose}: {e}"),
                    Some(help.to_owned()),
                );
                None
            }
        }
    }
}

fn parse_float(text: &str) -> Result<f64, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a valid float"))
}

/// A TOML value as JSON.
fn to_json(v: &DeValue<'_>) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => J::from(n),
            Err(_) => return Err(format!("integer `{i}` does not fit in 64 bits")),
        },
        DeValue::Float(f) => {
            let x = parse_float(f.as_str())?;
            serde_json::Number::from_f64(x)
                .map(J::Number)
                .ok_or_else(|| format!("`{f}` cannot be represented in JSON"))?
        }
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(
            a.iter()
                .map(|x| to_json(x.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => J::Object(
            t.iter()
                .map(|(k, x)| Ok((k.get_ref().to_string(), to_json(x.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Spec, Diagnostics> {
        Spec::parse(Path::new("examples/q/pipeline.toml"), src)
    }

    /// The only diagnostic of a failed parse.
    fn one(src: &str) -> Diagnostic {
        let diags = parse(src).expect_err("should fail");
        assert_eq!(diags.len(), 1, "{diags}");
        diags.0.into_iter().next().unwrap()
    }

    fn at(d: &Diagnostic) -> (usize, usize) {
        (d.line, d.column)
    }

    const OK: &str = r#"[pipeline]
name = "quickstart"
description = "Iris stats"

[data]
iris = "data/iris.csv"
extra = { path = "t.parquet", kind = "table" }

[steps.ingest]
component = "std:ingest-csv"
inputs = { file = "data.iris" }
params = { header = true, delimiter = ";", cols = ["a", 1], ratio = 0.5, n = 3 }
limits = { memory = "512MiB", time = "30s", output = 1000, cpu = 0.5 }
retries = 2
cache = false
accelerator = "nvidia.com/gpu"

[steps.stats]
component = "./steps/stats.wasm"
inputs = { data = "ingest.data" }

[steps.after]
component = "sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
"#;

    #[test]
    fn parses_a_valid_spec_in_file_order() {
        let spec = parse(OK).unwrap();
        assert_eq!(spec.name, "quickstart");
        assert_eq!(&OK[spec.name_span.range()], "\"quickstart\"");
        assert_eq!(spec.description.as_deref(), Some("Iris stats"));

        let data: Vec<_> = spec
            .data
            .iter()
            .map(|d| (d.name.as_str(), d.kind))
            .collect();
        assert_eq!(data, [("iris", DataKind::File), ("extra", DataKind::Table)]);
        assert_eq!(spec.data[0].path, Path::new("examples/q/data/iris.csv"));
        assert_eq!(&OK[spec.data[0].span.range()], "\"data/iris.csv\"");

        let names: Vec<_> = spec.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ingest", "stats", "after"]);
        let ingest = &spec.steps[0];
        assert_eq!(ingest.component, ComponentRef::Std("ingest-csv".into()));
        assert_eq!(&OK[ingest.name_span.range()], "ingest");
        assert_eq!(
            ingest.inputs,
            [Binding {
                port: "file".into(),
                port_span: ingest.inputs[0].port_span,
                source: Source::Data("iris".into()),
                span: ingest.inputs[0].span,
            }]
        );
        assert_eq!(&OK[ingest.inputs[0].port_span.range()], "file");
        assert_eq!(&OK[ingest.inputs[0].span.range()], "\"data.iris\"");
        let params: Vec<_> = ingest
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.value.clone()))
            .collect();
        assert_eq!(
            params,
            [
                ("header", Value::Boolean(true)),
                ("delimiter", Value::Text(";".into())),
                ("cols", Value::Json(r#"["a",1]"#.into())),
                ("ratio", Value::Float(0.5)),
                ("n", Value::Integer(3)),
            ]
        );
        assert_eq!(
            ingest.limits,
            Limits {
                memory: Some(512 << 20),
                time: Some(Duration::from_secs(30)),
                output: Some(1000),
                cpu: Some(500),
            }
        );
        assert_eq!((ingest.retries, ingest.cache), (2, false));
        assert_eq!(
            ingest.accelerator,
            Some(Accelerator {
                kind: "nvidia.com/gpu".into(),
                count: 1
            })
        );

        let stats = &spec.steps[1];
        assert_eq!(
            stats.component,
            ComponentRef::Path("examples/q/./steps/stats.wasm".into())
        );
        assert_eq!(
            stats.inputs[0].source,
            Source::Step {
                step: "ingest".into(),
                port: "data".into()
            }
        );
        assert_eq!((stats.retries, stats.cache), (0, true));
        assert_eq!(stats.limits, Limits::default());
        assert_eq!(
            spec.steps[2].component.to_string(),
            "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
        );
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let src = "[pipeline]\nname = \"q\"\n\n[steps.stats]\ncomponent = \"std:statistics\"\ninptus = { data = \"ingest.data\" }\n";
        let d = one(src);
        assert_eq!(d.code, Code::UnknownKey);
        assert_eq!(
            d.message,
            "unknown key `inptus` in [steps.stats]; expected one of component, inputs, params, limits, retries, cache, clock, accelerator"
        );
        assert_eq!(d.help.as_deref(), Some("did you mean `inputs`?"));
        assert_eq!(at(&d), (6, 1));
    }

    #[test]
    fn metadata_is_a_server_without_a_password_or_a_file_beside_the_spec() {
        let spec = |m: &str| {
            format!(
                "[pipeline]\nname = \"q\"\nmetadata = \"{m}\"\n[steps.s]\ncomponent = \"std:statistics\"\n"
            )
        };
        let ok = parse(&spec("postgres://ann@db.internal/sluice")).unwrap();
        assert_eq!(
            ok.metadata.as_deref(),
            Some("postgres://ann@db.internal/sluice")
        );
        let file = parse(&spec("team.sqlite")).unwrap();
        assert_eq!(file.metadata.as_deref(), Some("examples/q/team.sqlite"));
        let d = one(&spec("postgres://ann:hunter2@db.internal/sluice"));
        assert_eq!(d.code, Code::InvalidValue);
        assert!(d.message.contains("holds a password"), "{}", d.message);
        assert!(!d.message.contains("hunter2"), "{}", d.message);
        assert_eq!(at(&d), (3, 12));
    }

    #[test]
    fn unknown_keys_everywhere() {
        let src = "[pipeline]\nnmae = \"q\"\n[data.x]\npath = \"a\"\nknd = \"file\"\n[steps.s]\ncomponent = \"std:s\"\nlimits = { mem = \"1B\" }\n[stpes]\n";
        let diags = parse(src).unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.code, d.line, d.column, d.help.clone()))
            .collect();
        let help = |s: &str| Some(format!("did you mean `{s}`?"));
        assert_eq!(
            got,
            [
                (Code::MissingKey, 1, 1, Some("add `name = \"...\"`".into())),
                (Code::UnknownKey, 2, 1, help("name")),
                (Code::UnknownKey, 5, 1, help("kind")),
                (Code::UnknownKey, 8, 12, help("memory")),
                (Code::UnknownKey, 9, 2, help("steps")),
            ]
        );
        assert_eq!(
            diags.0[3].message,
            "unknown key `mem` in [steps.s.limits]; expected one of memory, time, output, cpu"
        );
        assert_eq!(
            diags.0[4].message,
            "unknown key `stpes` in the top-level table; expected one of pipeline, data, steps, triggers, promotion"
        );
    }

    #[test]
    fn toml_syntax_error() {
        let d = one("[pipeline]\nname = \"q\n[x]\n");
        assert_eq!(d.code, Code::Syntax);
        assert!(
            d.message.starts_with("invalid TOML: invalid basic string"),
            "{}",
            d.message
        );
        assert_eq!(at(&d), (2, 10));
    }

    #[test]
    fn duplicate_keys() {
        let d = one("[pipeline]\nname = \"q\"\nname = \"r\"\n");
        assert_eq!(d.code, Code::DuplicateName);
        assert_eq!(d.message, "duplicate key `name`");
        assert_eq!(at(&d), (3, 1));

        let d = one(
            "[pipeline]\nname = \"q\"\n[steps.a]\ncomponent = \"std:x\"\n[steps.a]\ncomponent = \"std:y\"\n",
        );
        assert_eq!(d.code, Code::DuplicateName);
        assert_eq!(d.message, "duplicate key `a`");
        assert_eq!(at(&d), (5, 8));

        let d = one("[pipeline]\nname = \"q\"\n[data]\n\"x\" = \"a\"\n\"x\" = \"b\"\n");
        assert_eq!(d.message, "duplicate key `x`");
        assert_eq!(at(&d), (5, 1));
    }

    #[test]
    fn invalid_names() {
        let src = "[pipeline]\nname = \"Quick Start\"\n[data]\n\"my data\" = \"x\"\n[steps.Stats]\ncomponent = \"std:s\"\n[steps.data]\ncomponent = \"std:s\"\n";
        let diags = parse(src).unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.code, d.message.as_str(), d.line, d.column))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::InvalidName,
                    "invalid pipeline name `Quick Start`",
                    2,
                    8
                ),
                (Code::InvalidName, "invalid data input name `my data`", 4, 1),
                (Code::InvalidName, "invalid step name `Stats`", 5, 8),
                (Code::InvalidName, "`data` cannot be a step name", 7, 8),
            ]
        );
    }

    #[test]
    fn invalid_component_reference() {
        let src = "[pipeline]\nname = \"q\"\n[steps.a]\ncomponent = \"statistics\"\n";
        let d = one(src);
        assert_eq!(d.code, Code::InvalidValue);
        assert_eq!(d.message, "invalid component reference `statistics`");
        assert_eq!(at(&d), (4, 13));
        let d = one("[pipeline]\nname = \"q\"\n[steps.a]\ncomponent = \"sha256:abc\"\n");
        assert_eq!(d.message, "invalid component reference `sha256:abc`");
    }

    #[test]
    fn invalid_input_source() {
        let src = "[pipeline]\nname = \"q\"\n[steps.a]\ncomponent = \"std:s\"\ninputs = { data = \"ingest\" }\n";
        let d = one(src);
        assert_eq!(d.code, Code::InvalidValue);
        assert_eq!(d.message, "invalid input source `ingest`");
        assert_eq!(at(&d), (5, 19));
    }

    #[test]
    fn invalid_limits() {
        let src = "[pipeline]\nname = \"q\"\n[steps.a]\ncomponent = \"std:s\"\nlimits = { memory = \"12 parsecs\", time = \"0s\", output = 0 }\n[steps.b]\ncomponent = \"std:s\"\nlimits.time = 30\n";
        let diags = parse(src).unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.code, d.message.as_str(), d.line, d.column))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::InvalidLimit,
                    "invalid `memory` limit for step `a`: `12 parsecs` is not a size",
                    5,
                    21
                ),
                (
                    Code::InvalidLimit,
                    "invalid `time` limit for step `a`: a limit must be greater than zero",
                    5,
                    42
                ),
                (
                    Code::InvalidLimit,
                    "invalid `output` limit for step `a`: a limit must be greater than zero",
                    5,
                    57
                ),
                (
                    Code::InvalidLimit,
                    "invalid `time` limit for step `b`: `30` is not a duration",
                    8,
                    15
                ),
            ]
        );
        assert_eq!(diags.0[0].help.as_deref(), Some(SIZE_HELP));
        assert_eq!(diags.0[3].help.as_deref(), Some(DURATION_HELP));
    }

    #[test]
    fn cpu_and_accelerators_are_what_an_engine_reserves() {
        let src = "[pipeline]\nname = \"q\"\n[steps.a]\ncomponent = \"std:s\"\nlimits = { cpu = 2 }\naccelerator = { type = \"amd.com/gpu\", count = 2 }\n[steps.b]\ncomponent = \"std:s\"\nlimits = { cpu = \"250m\" }\n";
        let spec = parse(src).unwrap();
        assert_eq!(spec.steps[0].limits.cpu, Some(2000));
        assert_eq!(
            spec.steps[0].accelerator,
            Some(Accelerator {
                kind: "amd.com/gpu".into(),
                count: 2
            })
        );
        assert_eq!(spec.steps[1].limits.cpu, Some(250));
        assert_eq!(spec.steps[1].accelerator, None);

        let src = "[pipeline]\nname = \"q\"\n[steps.a]\ncomponent = \"std:s\"\nlimits = { cpu = -1 }\naccelerator = \"a gpu\"\n[steps.b]\ncomponent = \"std:s\"\nlimits = { cpu = \"lots\" }\naccelerator = { count = 0, kind = \"x\" }\n";
        let diags = parse(src).unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.code, d.message.as_str(), d.line))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::InvalidLimit,
                    "invalid `cpu` limit for step `a`: `-1` is not a positive number of cores",
                    5
                ),
                (
                    Code::InvalidValue,
                    "invalid `accelerator` in [steps.a]: `a gpu` is not a resource name",
                    6
                ),
                (
                    Code::InvalidLimit,
                    "invalid `cpu` limit for step `b`: `lots` is not a positive number of cores",
                    9
                ),
                (
                    Code::MissingKey,
                    "missing `type` in the `accelerator` of [steps.b]",
                    10
                ),
                (
                    Code::UnknownKey,
                    "unknown key `kind` in `accelerator` in [steps.b]; expected one of type, count",
                    10
                ),
            ]
        );
        assert_eq!(diags.0[0].help.as_deref(), Some(CPU_HELP));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("7"), Ok(7));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("MiB"), Err(LimitError::BadSize("MiB".into())));
        assert_eq!(
            parse_size("1.5GiB"),
            Err(LimitError::BadSize("1.5GiB".into()))
        );
        assert_eq!(parse_size("0KiB"), Err(LimitError::Zero));
        assert_eq!(
            parse_size("99999999999TiB"),
            Err(LimitError::Overflow("99999999999TiB".into()))
        );
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("30"),
            Err(LimitError::BadDuration("30".into()))
        );
        assert_eq!(parse_duration("0h"), Err(LimitError::Zero));
    }

    #[test]
    fn missing_keys() {
        let d = one("[steps.a]\ncomponent = \"std:s\"\n");
        assert_eq!(
            (d.code, d.message.as_str()),
            (Code::MissingKey, "missing [pipeline] table")
        );
        assert_eq!(at(&d), (1, 1));

        let d = one("[pipeline]\nname = \"q\"\n");
        assert_eq!(d.message, "the pipeline has no steps");
        assert_eq!(at(&d), (1, 1));

        let d = one("[pipeline]\nname = \"q\"\n\n[steps.a]\ninputs = {}\n");
        assert_eq!(d.message, "missing `component` in [steps.a]");
        assert_eq!(at(&d), (4, 1));

        let d = one(
            "[pipeline]\nname = \"q\"\n[data]\nx = { kind = \"file\" }\n[steps.a]\ncomponent = \"std:s\"\n",
        );
        assert_eq!(d.message, "missing `path` for data input `x`");
        assert_eq!(at(&d), (4, 5));
    }

    #[test]
    fn wrong_value_types() {
        let src = "[pipeline]\nname = \"q\"\n[data]\nx = { path = \"a.csv\", kind = \"parquet\" }\ny = 3\n[steps.a]\ncomponent = \"std:s\"\ninputs = \"x\"\nretries = -1\ncache = \"yes\"\nparams = { when = 1979-05-27 }\n";
        let diags = parse(src).unwrap_err();
        let got: Vec<_> = diags
            .iter()
            .map(|d| (d.message.as_str(), d.line, d.column))
            .collect();
        assert_eq!(
            got,
            [
                ("unknown kind `parquet` for data input `x`", 4, 30),
                (
                    "expected a path string or a table for data input `y`, found integer",
                    5,
                    5
                ),
                (
                    "expected a table for `inputs` in [steps.a], found string",
                    8,
                    10
                ),
                (
                    "invalid `retries` in [steps.a]: `-1` is not between 0 and 4294967295",
                    9,
                    11
                ),
                (
                    "expected a boolean for `cache` in [steps.a], found string",
                    10,
                    9
                ),
                (
                    "dates and times are not supported as parameter values; quote them as a string",
                    11,
                    19
                ),
            ]
        );
        assert!(diags.iter().all(|d| d.code == Code::InvalidValue));
    }

    #[test]
    fn table_data_must_be_parquet() {
        let d = one(
            "[pipeline]\nname = \"q\"\n[data]\nx = { path = \"a.csv\", kind = \"table\" }\n[steps.a]\ncomponent = \"std:s\"\n",
        );
        assert_eq!(
            d.message,
            "data input `x` has kind `table` but `a.csv` is not a .parquet file"
        );
        assert_eq!(at(&d), (4, 5));
    }

    #[test]
    fn columns_count_characters() {
        let src = "[pipeline]\nname = \"q\"\ndescription = \"ünïcødé\"\n[steps.a]\ncomponent = \"std:s\"\nparams = { \"ü\" = 1, d = 1979-05-27 }\n";
        let d = one(src);
        assert_eq!(at(&d), (6, 25));
        assert!(
            d.to_string().contains(
                "6 | params = { \"ü\" = 1, d = 1979-05-27 }\n  |                         ^^^^^^^^^^"
            ),
            "{d}"
        );
    }

    #[test]
    fn load_reports_unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.toml");
        let d = Spec::load(&path).unwrap_err().0.remove(0);
        assert_eq!(d.code, Code::Io);
        assert!(
            d.message
                .starts_with(&format!("cannot read pipeline spec `{}`: ", path.display()))
        );
        assert_eq!(at(&d), (0, 0));

        std::fs::write(&path, OK).unwrap();
        let spec = Spec::load(&path).unwrap();
        assert_eq!(spec.data[0].path, dir.path().join("data/iris.csv"));
    }
}
