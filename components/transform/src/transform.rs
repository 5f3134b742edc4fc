//! The feature transforms themselves, on in-memory columns: parsing the
//! spec ([`Spec`]), fitting ([`fit`]) and applying ([`apply`]) — plain
//! functions, tested natively.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sluice_sdk::{Column, DType};

/// Version of the state format ([`State::version`]).
pub const STATE_VERSION: u32 = 1;

/// What to do with each column: the `spec` param of the step, the `params`
/// of `fit`. Column names not listed get the default transforms of their
/// kind (numeric: `int64`, `float64`; categorical: `utf8`, `boolean`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    /// The label column: passed through unchanged, and optional at apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Transforms of numeric columns not listed in `columns`.
    #[serde(default = "default_numeric")]
    pub default_numeric: Vec<String>,
    /// Transforms of categorical columns not listed in `columns`.
    #[serde(default = "default_categorical")]
    pub default_categorical: Vec<String>,
    /// Transforms of particular columns, applied in order.
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
    /// Columns copied unchanged (e.g. an id).
    #[serde(default)]
    pub passthrough: Vec<String>,
    /// Columns left out of the output.
    #[serde(default)]
    pub drop: Vec<String>,
    /// New input columns computed from SQL expressions over the table's
    /// columns before anything is fitted, by name (e.g. `{"hour":
    /// "extract(hour from ts)"}`); they are then transformed like any
    /// other column. The host computes them natively, in the pipeline and
    /// in the model server alike.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub derive: BTreeMap<String, String>,
}

fn default_numeric() -> Vec<String> {
    vec!["impute:mean".into(), "standard".into()]
}

fn default_categorical() -> Vec<String> {
    vec!["impute:most-frequent".into(), "one-hot".into()]
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            label: None,
            default_numeric: default_numeric(),
            default_categorical: default_categorical(),
            columns: BTreeMap::new(),
            passthrough: Vec::new(),
            drop: Vec::new(),
            derive: BTreeMap::new(),
        }
    }
}

impl Spec {
    /// Reads a spec from JSON; unknown keys are an error.
    pub fn parse(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| {
            format!(
                "the transform spec is not valid: {e}; expected an object with keys label, \
                 default-numeric, default-categorical, columns, passthrough, drop, derive"
            )
        })
    }
}

/// One transform as the spec names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `standard`: (x − mean) / std.
    Standard,
    /// `min-max`: (x − min) / (max − min).
    MinMax,
    /// `one-hot`: one 0/1 column per category seen at fit.
    OneHot,
    /// `impute:<strategy>`: fills missing values.
    Impute(Strategy),
    /// `bucketize:<n>`: n buckets between quantiles of the fit data.
    Quantiles(usize),
    /// `bucketize:[b1, b2, …]`: buckets between explicit boundaries.
    Boundaries(Vec<f64>),
}

/// How `impute` picks its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// The mean (numeric).
    Mean,
    /// The median (numeric).
    Median,
    /// The most frequent value; the smallest one on ties.
    MostFrequent,
    /// A given value, as written after `impute:constant:`.
    Constant(String),
}

/// The transforms, for error messages.
const OPS: &str = "standard, min-max, one-hot, impute:mean, impute:median, \
                   impute:most-frequent, impute:constant:<value>, bucketize:<n>, \
                   bucketize:[<b1>, <b2>, ...]";

impl Op {
    /// Parses one transform name (see [`OPS`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("unknown transform `{text}`; the transforms are {OPS}");
        Ok(match text {
            "standard" => Self::Standard,
            "min-max" => Self::MinMax,
            "one-hot" => Self::OneHot,
            "impute:mean" => Self::Impute(Strategy::Mean),
            "impute:median" => Self::Impute(Strategy::Median),
            "impute:most-frequent" => Self::Impute(Strategy::MostFrequent),
            _ => {
                if let Some(v) = text.strip_prefix("impute:constant:") {
                    Self::Impute(Strategy::Constant(v.to_owned()))
                } else if let Some(arg) = text.strip_prefix("bucketize:") {
                    let arg = arg.trim();
                    if arg.starts_with('[') {
                        let b: Vec<f64> = serde_json::from_str(arg).map_err(|e| {
                            format!("`{text}`: the boundaries must be a list of numbers: {e}")
                        })?;
                        if b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|x| !x.is_finite()) {
                            return Err(format!(
                                "`{text}`: the boundaries must be finite and strictly ascending"
                            ));
                        }
                        Self::Boundaries(b)
                    } else {
                        match arg.parse::<usize>() {
                            Ok(n) if n >= 1 => Self::Quantiles(n),
                            _ => {
                                return Err(format!(
                                    "`{text}`: the number of buckets must be an integer ≥ 1"
                                ));
                            }
                        }
                    }
                } else {
                    return Err(bad());
                }
            }
        })
    }
}

/// A fitted transform: everything `apply` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fitted {
    /// (x − mean) / std; a std of 0 divides by 1.
    Standard {
        /// Mean of the fit data.
        mean: f64,
        /// Population standard deviation of the fit data.
        std: f64,
    },
    /// (x − min) / (max − min); a range of 0 divides by 1.
    MinMax {
        /// Smallest value of the fit data.
        min: f64,
        /// Largest value of the fit data.
        max: f64,
    },
    /// One `<column>=<category>` 0/1 column per category; an unknown or
    /// missing value is 0 in all of them.
    OneHot {
        /// The categories seen at fit, ascending.
        categories: Vec<String>,
    },
    /// Replaces missing values with `value`.
    Impute {
        /// How `value` was chosen (informational).
        strategy: String,
        /// The value: a number for numeric columns, text for categorical ones.
        value: Fill,
    },
    /// The index of the bucket: i where boundaries[i−1] ≤ x < boundaries[i].
    Bucketize {
        /// Ascending boundaries; n boundaries make n + 1 buckets.
        boundaries: Vec<f64>,
    },
}

/// An imputed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fill {
    /// For numeric columns.
    Number(f64),
    /// For categorical columns.
    Text(String),
}

/// What a column is to the transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Transformed by its steps.
    Feature,
    /// The label: copied unchanged when present.
    Label,
    /// Copied unchanged.
    Passthrough,
}

/// One input column of the fitted transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedColumn {
    /// The input column.
    pub name: String,
    /// Its type at fit.
    pub dtype: String,
    /// What it is.
    pub role: Role,
    /// The fitted transforms, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Fitted>,
    /// The output columns it becomes.
    pub outputs: Vec<String>,
}

/// The fitted state: the spec and every fitted parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// The spec it was fitted with (the label merged in).
    pub params: Spec,
    /// The input columns, in the fit table's order.
    pub columns: Vec<FittedColumn>,
}

impl State {
    /// Reads a state: either the state itself or the transform document
    /// `{"params": …, "state": …}` the step writes.
    pub fn parse(json: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("the transform state is not valid JSON: {e}"))?;
        let inner = match value.get("state") {
            Some(s) => s.clone(),
            None => value,
        };
        let state: State = serde_json::from_value(inner).map_err(|e| {
            format!("the transform state is not valid: {e}; pass the state `fit` returned")
        })?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "the transform state has version {}, but this transform reads version \
                 {STATE_VERSION}; fit it again with this transform",
                state.version
            ));
        }
        Ok(state)
    }

    /// The output columns, in order.
    pub fn outputs(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .flat_map(|c| c.outputs.iter().map(String::as_str))
    }
}

/// A column's values while transforms apply: numbers or text.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// int64 and float64 columns (NaN is missing).
    Numeric(Vec<Option<f64>>),
    /// utf8 and boolean (`"true"` / `"false"`) columns.
    Text(Vec<Option<String>>),
}

impl Values {
    /// The values of `column`.
    pub fn of(column: &Column) -> Self {
        match column {
            Column::Float64(v) => {
                Self::Numeric(v.iter().map(|x| x.filter(|f| !f.is_nan())).collect())
            }
            Column::Int64(v) => Self::Numeric(v.iter().map(|x| x.map(|i| i as f64)).collect()),
            Column::Utf8(v) => Self::Text(v.clone()),
            Column::Boolean(v) => Self::Text(v.iter().map(|x| x.map(|b| b.to_string())).collect()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Numeric(_) => "numeric",
            Self::Text(_) => "categorical",
        }
    }

    /// The values as text (numbers in their shortest form: `3`, `0.5`).
    fn texts(&self) -> Vec<Option<String>> {
        match self {
            Self::Numeric(v) => v.iter().map(|x| x.map(|f| f.to_string())).collect(),
            Self::Text(v) => v.clone(),
        }
    }
}

fn is_numeric(d: DType) -> bool {
    matches!(d, DType::Int64 | DType::Float64)
}

/// Fits `spec` to the columns of a table (all of them, in table order).
pub fn fit(columns: &[(String, Column)], spec: &Spec) -> Result<State, String> {
    let fields: Vec<(String, DType)> = columns
        .iter()
        .map(|(n, c)| (n.clone(), c.dtype()))
        .collect();
    fit_with(&fields, spec, |name| {
        columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| format!("no column `{name}`"))
    })
}

/// Fits `spec` to a table with columns `fields` (in table order), loading
/// each feature column with `load` only when it is fitted, so that one
/// column at a time is in memory.
pub fn fit_with(
    fields: &[(String, DType)],
    spec: &Spec,
    mut load: impl FnMut(&str) -> Result<Column, String>,
) -> Result<State, String> {
    let names: BTreeSet<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    let mut problems = Vec::new();
    let mut claimed: BTreeMap<&str, &str> = BTreeMap::new();
    let spec_names = spec
        .label
        .iter()
        .map(|l| (l.as_str(), "label"))
        .chain(spec.columns.keys().map(|c| (c.as_str(), "columns")))
        .chain(spec.passthrough.iter().map(|c| (c.as_str(), "passthrough")))
        .chain(spec.drop.iter().map(|c| (c.as_str(), "drop")));
    for (name, by) in spec_names {
        if !names.contains(name) {
            problems.push(format!(
                "`{by}` names column `{name}`, which the table does not have (columns: {})",
                names.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(other) = claimed.insert(name, by) {
            problems.push(format!(
                "column `{name}` is in both `{other}` and `{by}`; keep it in one"
            ));
        }
    }
    let mut fitted = Vec::new();
    for (name, dtype) in fields {
        let dtype = *dtype;
        let role = if spec.label.as_deref() == Some(name.as_str()) {
            Role::Label
        } else if spec.passthrough.contains(name) {
            Role::Passthrough
        } else if spec.drop.contains(name) {
            continue;
        } else {
            Role::Feature
        };
        let mut entry = FittedColumn {
            name: name.clone(),
            dtype: dtype.name().to_owned(),
            role,
            steps: Vec::new(),
            outputs: vec![name.clone()],
        };
        if role == Role::Feature {
            let ops = spec.columns.get(name).unwrap_or(if is_numeric(dtype) {
                &spec.default_numeric
            } else {
                &spec.default_categorical
            });
            let column = load(name)?;
            match fit_column(name, &column, ops) {
                Ok((steps, outputs)) => {
                    entry.steps = steps;
                    entry.outputs = outputs;
                }
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            }
        }
        fitted.push(entry);
    }
    let mut seen = BTreeMap::new();
    for c in &fitted {
        for o in &c.outputs {
            if let Some(first) = seen.insert(o.as_str(), c.name.as_str()) {
                problems.push(format!(
                    "output column `{o}` of column `{}` has the same name as an output of \
                     column `{first}`; rename or drop one of them",
                    c.name
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    Ok(State {
        version: STATE_VERSION,
        params: spec.clone(),
        columns: fitted,
    })
}

/// Fits the transforms `ops` of one column, each on the output of the ones
/// before it; returns them and the output column names.
fn fit_column(
    name: &str,
    column: &Column,
    ops: &[String],
) -> Result<(Vec<Fitted>, Vec<String>), String> {
    let at = |e: String| format!("column `{name}`: {e}");
    let mut values = Values::of(column);
    let mut steps = Vec::with_capacity(ops.len());
    for (i, text) in ops.iter().enumerate() {
        let op = Op::parse(text).map_err(at)?;
        if op == Op::OneHot && i + 1 != ops.len() {
            return Err(at(format!(
                "`one-hot` must be the last transform, but {} follow it",
                ops[i + 1..].join(", ")
            )));
        }
        let step = fit_op(&op, &values).map_err(at)?;
        if let Err(e) = check_finite(&step) {
            return Err(at(format!("`{text}` {e}")));
        }
        values = match apply_op(&step, values).map_err(at)? {
            Applied::Values(v) => v,
            Applied::OneHot(_) => Values::Numeric(Vec::new()),
        };
        steps.push(step);
    }
    let outputs = match steps.last() {
        Some(Fitted::OneHot { categories }) => {
            categories.iter().map(|c| format!("{name}={c}")).collect()
        }
        _ => vec![name.to_owned()],
    };
    Ok((steps, outputs))
}

fn check_finite(step: &Fitted) -> Result<(), String> {
    let numbers: Vec<f64> = match step {
        Fitted::Standard { mean, std } => vec![*mean, *std],
        Fitted::MinMax { min, max } => vec![*min, *max],
        Fitted::Impute {
            value: Fill::Number(v),
            ..
        } => vec![*v],
        Fitted::Bucketize { boundaries } => boundaries.clone(),
        _ => vec![],
    };
    if numbers.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(
            "fitted a value that is not finite (the column holds infinite or huge values); \
             clean the column upstream or choose another transform"
                .into(),
        )
    }
}

/// Fits one transform to `values`.
fn fit_op(op: &Op, values: &Values) -> Result<Fitted, String> {
    let numbers = |what: &str| -> Result<Vec<f64>, String> {
        match values {
            Values::Numeric(v) => {
                let present: Vec<f64> = v.iter().flatten().copied().collect();
                if present.is_empty() {
                    Err(format!(
                        "`{what}` needs at least one value to fit, but the column has none; \
                         impute a constant first, or drop the column"
                    ))
                } else {
                    Ok(present)
                }
            }
            Values::Text(_) => Err(format!(
                "`{what}` needs a numeric column, but this one is categorical; use `one-hot`, \
                 or list it in `passthrough` or `drop`"
            )),
        }
    };
    Ok(match op {
        Op::Standard => {
            let v = numbers("standard")?;
            let mean = mean(&v);
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
            Fitted::Standard {
                mean,
                std: var.sqrt(),
            }
        }
        Op::MinMax => {
            let v = numbers("min-max")?;
            Fitted::MinMax {
                min: v.iter().copied().fold(f64::INFINITY, f64::min),
                max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            }
        }
        Op::OneHot => {
            let categories: BTreeSet<String> = values.texts().into_iter().flatten().collect();
            Fitted::OneHot {
                categories: categories.into_iter().collect(),
            }
        }
        Op::Quantiles(n) => {
            let mut v = numbers("bucketize")?;
            v.sort_by(f64::total_cmp);
            let mut boundaries: Vec<f64> = (1..*n)
                .map(|k| quantile(&v, k as f64 / *n as f64))
                .collect();
            boundaries.dedup();
            Fitted::Bucketize { boundaries }
        }
        Op::Boundaries(b) => {
            if let Values::Text(_) = values {
                return Err(
                    "`bucketize` needs a numeric column, but this one is categorical".into(),
                );
            }
            Fitted::Bucketize {
                boundaries: b.clone(),
            }
        }
        Op::Impute(strategy) => {
            let (name, value) =
                match (strategy, values) {
                    (Strategy::Mean, _) => ("mean", Fill::Number(mean(&numbers("impute:mean")?))),
                    (Strategy::Median, _) => {
                        let mut v = numbers("impute:median")?;
                        v.sort_by(f64::total_cmp);
                        ("median", Fill::Number(quantile(&v, 0.5)))
                    }
                    (Strategy::MostFrequent, Values::Numeric(_)) => {
                        let v = numbers("impute:most-frequent")?;
                        let mut counts: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
                        for x in v {
                            // Key by bits, treating -0.0 as 0.0.
                            let x = if x == 0.0 { 0.0 } else { x };
                            counts.entry(x.to_bits()).or_insert((x, 0)).1 += 1;
                        }
                        let best = counts
                            .values()
                            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.total_cmp(&a.0)))
                            .map(|(x, _)| *x)
                            .unwrap_or(0.0);
                        ("most-frequent", Fill::Number(best))
                    }
                    (Strategy::MostFrequent, Values::Text(v)) => {
                        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                        for x in v.iter().flatten() {
                            *counts.entry(x).or_default() += 1;
                        }
                        // Ascending keys and a strict comparison: the smallest wins ties.
                        let mut best: Option<(&str, usize)> = None;
                        for (k, c) in counts {
                            if best.is_none_or(|(_, bc)| c > bc) {
                                best = Some((k, c));
                            }
                        }
                        let (value, _) = best.ok_or(
                            "`impute:most-frequent` needs at least one value to fit, but the \
                         column has none; use `impute:constant:<value>`, or drop the column",
                        )?;
                        ("most-frequent", Fill::Text(value.to_owned()))
                    }
                    (Strategy::Constant(c), Values::Numeric(_)) => {
                        let x: f64 = c.parse().ok().filter(|x: &f64| x.is_finite()).ok_or_else(
                            || {
                                format!(
                                    "`impute:constant:{c}`: the column is numeric, so the constant \
                             must be a finite number"
                                )
                            },
                        )?;
                        ("constant", Fill::Number(x))
                    }
                    (Strategy::Constant(c), Values::Text(_)) => ("constant", Fill::Text(c.clone())),
                };
            Fitted::Impute {
                strategy: name.to_owned(),
                value,
            }
        }
    })
}

fn mean(v: &[f64]) -> f64 {
    // Welford: stable with large offsets.
    let mut m = 0.0;
    for (i, x) in v.iter().enumerate() {
        m += (x - m) / (i + 1) as f64;
    }
    m
}

/// The `q` quantile of sorted, non-empty values: the shared one
/// (`sluice_std_common::quantile`, numpy's "linear", as `std:statistics`).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sluice_std_common::quantile(sorted, q).unwrap_or(f64::NAN)
}

/// The result of one transform.
enum Applied {
    Values(Values),
    OneHot(Vec<Vec<Option<f64>>>),
}

/// Applies one fitted transform.
fn apply_op(step: &Fitted, values: Values) -> Result<Applied, String> {
    let numeric = |values: Values, what: &str| match values {
        Values::Numeric(v) => Ok(v),
        Values::Text(_) => Err(format!(
            "`{what}` was fitted on numbers, but the column is categorical here"
        )),
    };
    let map = |v: Vec<Option<f64>>, f: &dyn Fn(f64) -> f64| {
        Applied::Values(Values::Numeric(v.into_iter().map(|x| x.map(f)).collect()))
    };
    Ok(match step {
        Fitted::Standard { mean, std } => {
            let scale = if *std > 0.0 { *std } else { 1.0 };
            map(numeric(values, "standard")?, &|x| (x - mean) / scale)
        }
        Fitted::MinMax { min, max } => {
            let range = if max > min { max - min } else { 1.0 };
            map(numeric(values, "min-max")?, &|x| (x - min) / range)
        }
        Fitted::Bucketize { boundaries } => map(numeric(values, "bucketize")?, &|x| {
            boundaries.partition_point(|b| *b <= x) as f64
        }),
        Fitted::OneHot { categories } => {
            let texts = values.texts();
            let index: BTreeMap<&str, usize> = categories
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i))
                .collect();
            let mut out = vec![vec![Some(0.0); texts.len()]; categories.len()];
            for (row, t) in texts.iter().enumerate() {
                if let Some(&i) = t.as_deref().and_then(|t| index.get(t)) {
                    out[i][row] = Some(1.0);
                }
            }
            Applied::OneHot(out)
        }
        Fitted::Impute { value, .. } => Applied::Values(match (values, value) {
            (Values::Numeric(v), Fill::Number(x)) => {
                Values::Numeric(v.into_iter().map(|o| o.or(Some(*x))).collect())
            }
            (Values::Text(v), Fill::Text(x)) => Values::Text(
                v.into_iter()
                    .map(|o| o.or_else(|| Some(x.clone())))
                    .collect(),
            ),
            (values, _) => {
                return Err(format!(
                    "`impute` was fitted on a column of another kind, but the column is {} here",
                    values.kind()
                ));
            }
        }),
    })
}

/// Checks a table has every input column of `state` (`has` says whether
/// it has one); only the label may be absent.
fn check_inputs(state: &State, has: impl Fn(&str) -> bool) -> Result<(), String> {
    let missing: Vec<String> = state
        .columns
        .iter()
        .filter(|c| c.role != Role::Label && !has(&c.name))
        .map(|c| format!("`{}` ({})", c.name, c.dtype))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the table lacks column{} {} that the transform was fitted with; add {} (only the \
         label may be left out)",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "them" }
    ))
}

/// Checks that a one-hot of `categories` columns makes as many outputs as
/// the state lists for `fc` (they differ only in an edited state).
fn check_one_hot(fc: &FittedColumn, categories: usize) -> Result<(), String> {
    if categories == fc.outputs.len() {
        return Ok(());
    }
    Err(format!(
        "the state lists {} outputs but its one-hot has {categories} categories; the state was \
         edited — fit it again",
        fc.outputs.len()
    ))
}

/// Applies a fitted state to the columns of a table. `columns` must hold
/// every input column of the state (the label may be absent; other columns
/// are ignored). Returns the output columns in order: numeric features as
/// float64, one-hot outputs as float64 0/1, categorical features without
/// one-hot as utf8, the label and passthrough columns unchanged.
pub fn apply(columns: &[(String, Column)], state: &State) -> Result<Vec<(String, Column)>, String> {
    let find = |name: &str| columns.iter().find(|(n, _)| n == name).map(|(_, c)| c);
    check_inputs(state, |name| find(name).is_some())?;
    let mut out = Vec::new();
    for fc in &state.columns {
        let Some(column) = find(&fc.name) else {
            continue; // the label, absent
        };
        if fc.role != Role::Feature {
            out.push((fc.name.clone(), column.clone()));
            continue;
        }
        let fit_numeric = matches!(fc.dtype.as_str(), "int64" | "float64");
        if fit_numeric != is_numeric(column.dtype()) {
            return Err(format!(
                "column `{}` is {} here but was {} at fit; convert it upstream",
                fc.name,
                column.dtype().name(),
                fc.dtype
            ));
        }
        let at = |e: String| format!("column `{}`: {e}", fc.name);
        let mut values = Values::of(column);
        let mut encoded = None;
        for step in &fc.steps {
            match apply_op(step, values).map_err(at)? {
                Applied::Values(v) => values = v,
                Applied::OneHot(cols) => {
                    encoded = Some(cols);
                    values = Values::Numeric(Vec::new());
                }
            }
        }
        match encoded {
            Some(cols) => {
                check_one_hot(fc, cols.len()).map_err(at)?;
                for (name, v) in fc.outputs.iter().zip(cols) {
                    out.push((name.clone(), Column::Float64(v)));
                }
            }
            None => {
                let name = fc
                    .outputs
                    .first()
                    .cloned()
                    .unwrap_or_else(|| fc.name.clone());
                out.push((
                    name,
                    match values {
                        Values::Numeric(v) => Column::Float64(v),
                        Values::Text(v) => Column::Utf8(v),
                    },
                ));
            }
        }
    }
    Ok(out)
}

/// The output columns of [`apply`] as SQL expressions over the input
/// table, for the host to compute natively (`table.compute`): the same
/// values, operation for operation (`(x − mean) / scale` is one
/// subtraction and one division in both), without copying the data into
/// the step. `fields` are the input table's columns and their types.
pub fn sql_columns(
    fields: &[(String, DType)],
    state: &State,
) -> Result<Vec<(String, String)>, String> {
    let find = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
    check_inputs(state, |name| find(name).is_some())?;
    let mut out = Vec::new();
    for fc in &state.columns {
        let Some(dtype) = find(&fc.name) else {
            continue; // the label, absent
        };
        let column = sql_ident(&fc.name);
        if fc.role != Role::Feature {
            out.push((fc.name.clone(), column));
            continue;
        }
        let fit_numeric = matches!(fc.dtype.as_str(), "int64" | "float64");
        if fit_numeric != is_numeric(dtype) {
            return Err(format!(
                "column `{}` is {} here but was {} at fit; convert it upstream",
                fc.name,
                dtype.name(),
                fc.dtype
            ));
        }
        let at = |e: String| format!("column `{}`: {e}", fc.name);
        // The column's values as `Values::of` sees them: numbers as float64
        // with NaN missing, booleans as the text `true` / `false`.
        let mut expr = match dtype {
            DType::Float64 => format!("CASE WHEN isnan({column}) THEN NULL ELSE {column} END"),
            DType::Int64 => format!("CAST({column} AS DOUBLE)"),
            DType::Boolean => {
                format!("CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' END")
            }
            DType::Utf8 => column.clone(),
        };
        let mut numeric = is_numeric(dtype);
        let mut encoded = None;
        for step in &fc.steps {
            let need_numeric = |what: &str| {
                if numeric {
                    Ok(())
                } else {
                    Err(at(format!(
                        "`{what}` was fitted on numbers, but the column is categorical here"
                    )))
                }
            };
            expr = match step {
                Fitted::Standard { mean, std } => {
                    need_numeric("standard")?;
                    let scale = if *std > 0.0 { *std } else { 1.0 };
                    format!("(({expr}) - {}) / {}", sql_f64(*mean), sql_f64(scale))
                }
                Fitted::MinMax { min, max } => {
                    need_numeric("min-max")?;
                    let range = if max > min { max - min } else { 1.0 };
                    format!("(({expr}) - {}) / {}", sql_f64(*min), sql_f64(range))
                }
                Fitted::Bucketize { boundaries } => {
                    need_numeric("bucketize")?;
                    // partition_point(b <= x): the number of boundaries ≤ x.
                    let mut case = format!("CASE WHEN ({expr}) IS NULL THEN NULL");
                    for (i, b) in boundaries.iter().enumerate() {
                        case.push_str(&format!(
                            " WHEN ({expr}) < {} THEN {}",
                            sql_f64(*b),
                            sql_f64(i as f64)
                        ));
                    }
                    case.push_str(&format!(" ELSE {} END", sql_f64(boundaries.len() as f64)));
                    case
                }
                Fitted::Impute { value, .. } => match (numeric, value) {
                    (true, Fill::Number(x)) => format!("coalesce({expr}, {})", sql_f64(*x)),
                    (false, Fill::Text(x)) => format!("coalesce({expr}, {})", sql_text(x)),
                    _ => {
                        return Err(at(format!(
                            "`impute` was fitted on a column of another kind, but the column is {} here",
                            if numeric { "numeric" } else { "categorical" }
                        )));
                    }
                },
                Fitted::OneHot { categories } => {
                    let columns: Vec<String> = categories
                        .iter()
                        .map(|c| {
                            // Numbers were compared as their text at fit
                            // (`3`, `0.5`), which parses back to the same
                            // number: compare numerically.
                            let test = match (numeric, c.parse::<f64>()) {
                                (true, Ok(v)) => format!("({expr}) = {}", sql_f64(v)),
                                (true, Err(_)) => "false".to_owned(),
                                (false, _) => format!("({expr}) = {}", sql_text(c)),
                            };
                            format!("CASE WHEN {test} THEN 1.0 ELSE 0.0 END")
                        })
                        .collect();
                    encoded = Some(columns);
                    numeric = true;
                    String::new()
                }
            };
        }
        match encoded {
            Some(columns) => {
                check_one_hot(fc, columns.len()).map_err(at)?;
                out.extend(fc.outputs.iter().cloned().zip(columns));
            }
            None => {
                let name = fc
                    .outputs
                    .first()
                    .cloned()
                    .unwrap_or_else(|| fc.name.clone());
                out.push((name, expr));
            }
        }
    }
    Ok(out)
}

/// The columns of a table with `fields` and `spec`'s derived columns
/// added, as SQL expressions for the host (`table.compute`); `None` when
/// the spec derives nothing. A derived name that repeats a column is an
/// error.
pub fn derive_columns(
    fields: &[(String, DType)],
    spec: &Spec,
) -> Result<Option<Vec<(String, String)>>, String> {
    if spec.derive.is_empty() {
        return Ok(None);
    }
    let mut out: Vec<(String, String)> = fields
        .iter()
        .map(|(name, _)| (name.clone(), sql_ident(name)))
        .collect();
    for (name, expr) in &spec.derive {
        if fields.iter().any(|(n, _)| n == name) {
            return Err(format!(
                "`derive` makes column `{name}`, which the table already has; choose another name"
            ));
        }
        out.push((name.clone(), expr.clone()));
    }
    Ok(Some(out))
}

/// A column name as a quoted SQL identifier.
fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Text as a SQL string literal.
fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A finite float as a SQL literal that parses back to the same bits
/// (Rust's shortest round-trip form, always with a `.` or an exponent,
/// cast so that the engine never reads it as a decimal).
fn sql_f64(x: f64) -> String {
    format!("CAST({x:?} AS DOUBLE)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[Option<f64>]) -> Column {
        Column::Float64(v.to_vec())
    }

    fn s(v: &[Option<&str>]) -> Column {
        Column::Utf8(v.iter().map(|x| x.map(str::to_owned)).collect())
    }

    fn fit_one(column: Column, ops: &[&str]) -> Vec<Fitted> {
        let ops: Vec<String> = ops.iter().map(|s| s.to_string()).collect();
        fit_column("c", &column, &ops).unwrap().0
    }

    /// Fits and applies `ops` to one column; the outputs.
    fn run(column: Column, ops: &[&str]) -> Vec<(String, Column)> {
        let spec = Spec {
            columns: [("c".to_owned(), ops.iter().map(|s| s.to_string()).collect())].into(),
            ..Spec::default()
        };
        let cols = vec![("c".to_owned(), column)];
        let state = fit(&cols, &spec).unwrap();
        apply(&cols, &state).unwrap()
    }

    fn close(a: &Column, b: &[Option<f64>]) -> bool {
        let Column::Float64(a) = a else { return false };
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => (x - y).abs() < 1e-12,
                (None, None) => true,
                _ => false,
            })
    }

    #[test]
    fn standard_scaling() {
        // [1, 2, 3, 6]: mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5.
        let steps = fit_one(
            f(&[Some(1.0), Some(2.0), Some(3.0), Some(6.0)]),
            &["standard"],
        );
        assert_eq!(
            steps,
            [Fitted::Standard {
                mean: 3.0,
                std: 3.5f64.sqrt()
            }]
        );
        let out = run(f(&[Some(1.0), Some(3.0), None, Some(6.0)]), &["standard"]);
        // Fit on [1, 3, 6]: mean 10/3, variance ((7/3)² + (1/3)² + (8/3)²) / 3 = 114/27.
        let (m, sd) = (10.0 / 3.0, (114.0f64 / 27.0).sqrt());
        assert!(close(
            &out[0].1,
            &[
                Some((1.0 - m) / sd),
                Some((3.0 - m) / sd),
                None,
                Some((6.0 - m) / sd)
            ]
        ));
        // A constant column: divided by 1, so all zeros.
        let out = run(Column::Int64(vec![Some(4), Some(4)]), &["standard"]);
        assert!(close(&out[0].1, &[Some(0.0), Some(0.0)]));
    }

    #[test]
    fn min_max_scaling() {
        let out = run(f(&[Some(2.0), Some(4.0), Some(10.0), None]), &["min-max"]);
        assert!(close(&out[0].1, &[Some(0.0), Some(0.25), Some(1.0), None]));
        let steps = fit_one(f(&[Some(2.0), Some(10.0)]), &["min-max"]);
        // Outside the fit range: not clipped.
        let Applied::Values(Values::Numeric(v)) =
            apply_op(&steps[0], Values::Numeric(vec![Some(12.0), Some(0.0)])).unwrap()
        else {
            panic!()
        };
        assert_eq!(v, [Some(1.25), Some(-0.25)]);
    }

    #[test]
    fn one_hot_encoding() {
        let out = run(s(&[Some("b"), Some("a"), None, Some("b")]), &["one-hot"]);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c=a", "c=b"]);
        assert!(close(
            &out[0].1,
            &[Some(0.0), Some(1.0), Some(0.0), Some(0.0)]
        ));
        assert!(close(
            &out[1].1,
            &[Some(1.0), Some(0.0), Some(0.0), Some(1.0)]
        ));
        // Unknown at apply: all zeros.
        let steps = fit_one(s(&[Some("a"), Some("b")]), &["one-hot"]);
        let Applied::OneHot(cols) =
            apply_op(&steps[0], Values::Text(vec![Some("z".into())])).unwrap()
        else {
            panic!()
        };
        assert_eq!(cols, [vec![Some(0.0)], vec![Some(0.0)]]);
        // Numbers and booleans are categories by their text.
        let out = run(Column::Int64(vec![Some(3), Some(10)]), &["one-hot"]);
        assert_eq!(out[0].0, "c=10");
        assert_eq!(out[1].0, "c=3");
        let out = run(Column::Boolean(vec![Some(true), Some(false)]), &["one-hot"]);
        assert_eq!(out[0].0, "c=false");
        assert!(close(&out[1].1, &[Some(1.0), Some(0.0)]));
    }

    #[test]
    fn imputation() {
        let col = f(&[
            Some(1.0),
            None,
            Some(2.0),
            Some(2.0),
            Some(7.0),
            Some(f64::NAN),
        ]);
        // mean of [1, 2, 2, 7] = 3; median 2; most frequent 2.
        let out = run(col.clone(), &["impute:mean"]);
        assert!(close(
            &out[0].1,
            &[
                Some(1.0),
                Some(3.0),
                Some(2.0),
                Some(2.0),
                Some(7.0),
                Some(3.0)
            ]
        ));
        assert_eq!(
            fit_one(col.clone(), &["impute:median"]),
            [Fitted::Impute {
                strategy: "median".into(),
                value: Fill::Number(2.0)
            }]
        );
        assert_eq!(
            fit_one(col.clone(), &["impute:most-frequent"]),
            [Fitted::Impute {
                strategy: "most-frequent".into(),
                value: Fill::Number(2.0)
            }]
        );
        // Median of an even count interpolates: [1, 2, 4, 10] → 3.
        let steps = fit_one(
            f(&[Some(10.0), Some(1.0), Some(4.0), Some(2.0)]),
            &["impute:median"],
        );
        assert_eq!(
            steps[0],
            Fitted::Impute {
                strategy: "median".into(),
                value: Fill::Number(3.0)
            }
        );
        let out = run(col, &["impute:constant:-1"]);
        assert!(close(
            &out[0].1,
            &[
                Some(1.0),
                Some(-1.0),
                Some(2.0),
                Some(2.0),
                Some(7.0),
                Some(-1.0)
            ]
        ));
        // Text: most frequent, the smallest on ties; constant.
        let text = s(&[Some("b"), Some("a"), None, Some("b"), Some("a")]);
        let out = run(text.clone(), &["impute:most-frequent"]);
        assert_eq!(
            out[0].1,
            s(&[Some("b"), Some("a"), Some("a"), Some("b"), Some("a")])
        );
        let out = run(text, &["impute:constant:unknown"]);
        assert_eq!(
            out[0].1,
            s(&[Some("b"), Some("a"), Some("unknown"), Some("b"), Some("a")])
        );
    }

    #[test]
    fn bucketizing() {
        // Explicit boundaries [0, 10]: x < 0 → 0, 0 ≤ x < 10 → 1, x ≥ 10 → 2.
        let out = run(
            f(&[Some(-5.0), Some(0.0), Some(9.9), Some(10.0), None]),
            &["bucketize:[0, 10]"],
        );
        assert!(close(
            &out[0].1,
            &[Some(0.0), Some(1.0), Some(1.0), Some(2.0), None]
        ));
        // 4 quantile buckets of 1..=9: boundaries at the 25/50/75% quantiles 3, 5, 7.
        let v: Vec<Option<f64>> = (1..=9).map(|i| Some(i as f64)).collect();
        assert_eq!(
            fit_one(f(&v), &["bucketize:4"]),
            [Fitted::Bucketize {
                boundaries: vec![3.0, 5.0, 7.0]
            }]
        );
        let out = run(f(&v), &["bucketize:4"]);
        assert!(close(
            &out[0].1,
            &[0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0].map(Some)
        ));
        // Repeated quantiles collapse.
        assert_eq!(
            fit_one(f(&[Some(1.0); 5]), &["bucketize:3"]),
            [Fitted::Bucketize {
                boundaries: vec![1.0]
            }]
        );
        // Then one-hot of the bucket index.
        let out = run(f(&v), &["bucketize:[5]", "one-hot"]);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["c=0", "c=1"]);
    }

    #[test]
    fn steps_chain_in_order() {
        // impute:mean then standard: [1, None, 3] → [1, 2, 3] → mean 2, std sqrt(2/3).
        let out = run(
            f(&[Some(1.0), None, Some(3.0)]),
            &["impute:mean", "standard"],
        );
        let sd = (2.0f64 / 3.0).sqrt();
        assert!(close(
            &out[0].1,
            &[Some(-1.0 / sd), Some(0.0), Some(1.0 / sd)]
        ));
    }

    #[test]
    fn op_parsing_errors() {
        assert!(Op::parse("scale").unwrap_err().contains("impute:mean"));
        assert!(Op::parse("bucketize:0").is_err());
        assert!(
            Op::parse("bucketize:[3, 1]")
                .unwrap_err()
                .contains("ascending")
        );
        assert_eq!(
            Op::parse("bucketize: [1, 2]"),
            Ok(Op::Boundaries(vec![1.0, 2.0]))
        );
        assert_eq!(
            Op::parse("impute:constant:a:b"),
            Ok(Op::Impute(Strategy::Constant("a:b".into())))
        );
        let cols = vec![("c".to_owned(), s(&[Some("a")]))];
        let bad = |ops: &[&str]| {
            let spec = Spec {
                columns: [("c".to_owned(), ops.iter().map(|s| s.to_string()).collect())].into(),
                ..Spec::default()
            };
            fit(&cols, &spec).unwrap_err()
        };
        assert!(bad(&["standard"]).contains("column `c`: `standard` needs a numeric column"));
        assert!(bad(&["one-hot", "impute:most-frequent"]).contains("must be the last"));
        assert!(bad(&["impute:mean"]).contains("numeric"));
        let empty = vec![("c".to_owned(), f(&[None, None]))];
        let e = fit(&empty, &Spec::default()).unwrap_err();
        assert!(
            e.contains("column `c`: `impute:mean` needs at least one value"),
            "{e}"
        );
    }

    #[test]
    fn spec_roles_and_references() {
        let cols = vec![
            ("id".to_owned(), Column::Int64(vec![Some(1), Some(2)])),
            ("x".to_owned(), f(&[Some(1.0), Some(3.0)])),
            ("kind".to_owned(), s(&[Some("p"), None])),
            ("y".to_owned(), s(&[Some("yes"), Some("no")])),
            ("junk".to_owned(), s(&[Some("?"), Some("?")])),
        ];
        let spec = Spec::parse(
            r#"{"label": "y", "passthrough": ["id"], "drop": ["junk"],
                "columns": {"x": ["min-max"]}}"#,
        )
        .unwrap();
        let state = fit(&cols, &spec).unwrap();
        let out = apply(&cols, &state).unwrap();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["id", "x", "kind=p", "y"]);
        assert_eq!(out[0].1, cols[0].1);
        assert_eq!(out[3].1, cols[3].1);
        // The imputed most frequent value fills the null before one-hot.
        assert!(close(&out[2].1, &[Some(1.0), Some(1.0)]));

        // Serving: no label, extra columns ignored.
        let serving: Vec<_> = cols.iter().filter(|(n, _)| n != "y").cloned().collect();
        let out = apply(&serving, &state).unwrap();
        assert_eq!(out.len(), 3);
        // A missing input column is named.
        let e = apply(&serving[2..], &state).unwrap_err();
        assert!(e.contains("`id` (int64), `x` (float64)"), "{e}");

        let e = fit(
            &cols,
            &Spec::parse(r#"{"label": "nope", "passthrough": ["x"], "columns": {"x": []}}"#)
                .unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("`label` names column `nope`"), "{e}");
        assert!(
            e.contains("column `x` is in both `columns` and `passthrough`"),
            "{e}"
        );
        assert!(
            Spec::parse(r#"{"defaults": []}"#)
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn output_name_collisions_are_errors() {
        let cols = vec![
            ("c".to_owned(), s(&[Some("a")])),
            ("c=a".to_owned(), f(&[Some(1.0)])),
        ];
        let e = fit(&cols, &Spec::default()).unwrap_err();
        assert!(e.contains("output column `c=a`"), "{e}");
    }

    #[test]
    fn state_round_trips_through_json() {
        let cols = vec![
            ("x".to_owned(), f(&[Some(0.1), Some(0.7), None, Some(1e-7)])),
            ("k".to_owned(), s(&[Some("u"), Some("v"), Some("u"), None])),
        ];
        let state = fit(&cols, &Spec::default()).unwrap();
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(State::parse(&json).unwrap(), state);
        let doc = serde_json::json!({"params": state.params, "state": state}).to_string();
        assert_eq!(State::parse(&doc).unwrap(), state);
        assert!(
            State::parse(r#"{"version": 2, "params": {}, "columns": []}"#)
                .unwrap_err()
                .contains("version 2")
        );
        // The documented shape.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["columns"][1]["steps"][1]["op"], "one-hot");
        assert_eq!(
            v["columns"][1]["outputs"],
            serde_json::json!(["k=u", "k=v"])
        );
        assert_eq!(v["columns"][0]["steps"][0]["op"], "impute");
        assert_eq!(
            v["params"]["default-numeric"],
            serde_json::json!(["impute:mean", "standard"])
        );
    }

    #[test]
    fn kind_mismatch_at_apply() {
        let cols = vec![("x".to_owned(), f(&[Some(1.0)]))];
        let state = fit(&cols, &Spec::default()).unwrap();
        let e = apply(&[("x".to_owned(), s(&[Some("1")]))], &state).unwrap_err();
        assert!(
            e.contains("column `x` is utf8 here but was float64 at fit"),
            "{e}"
        );
        // int64 where float64 was fitted is fine.
        assert!(apply(&[("x".to_owned(), Column::Int64(vec![Some(2)]))], &state).is_ok());
    }
}
