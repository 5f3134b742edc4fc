//! The `[triggers]` and `[promotion]` tables: what starts a run under
//! `sluice watch`, and where the versions it blesses go. They are parsed
//! with the rest of the spec, so a mistake in them is reported like any
//! other — file, line, column, a did-you-mean — by `sluice validate`,
//! `sluice run` and `sluice watch` alike.
//!
//! ```toml
//! [triggers]
//! schedule = "0 3 * * *"          # cron, UTC (see `spec::cron`)
//! new-data = ["raw"]              # data inputs (or s3://bucket/prefix URLs) whose content starts a run (true: all file inputs)
//! drift = { model = "breast-cancer@production", threshold = 0.1, min-rows = 200 }
//! degradation = { model = "breast-cancer@production", feedback = "labels.csv", metric = "accuracy", below = 0.9 }
//! poll = "5s"                     # how often triggers are evaluated
//! debounce = "2s"                 # new data must be unchanged this long
//! check-every = "1m"              # how often drift and degradation are measured
//!
//! [promotion]
//! model = "breast-cancer"         # default: every model the run registered
//! staging = true                  # a blessed version goes to `staging` (default)
//! production = false              # …and to `production` only if this is true
//! environments = ["staging", "production"]   # the order versions move in (default)
//!
//! [promotion.require.production]  # the gates of a move into `production`
//! blessing = true                 # pushed with a blessing that says blessed
//! infra = true                    # pushed with an infra blessing that says blessed
//! online = true                   # enters only through a rollout that passed
//! soak = "1h"                     # held the previous environment this long
//! min-requests = 500              # …serving at least this many requests there
//! max-error-rate = 0.01           # …with at most this share answered 4xx/5xx
//! max-p99-ms = 50                 # …and a p99 latency at most this
//!
//! [promotion.rollout]             # production moves only through a rollout
//! steps = [5, 25, 50]             # `sluice watch` starts and decides
//! window = "10m"                  # (keys: `sluice rollout start`'s options)
//! ```
//!
//! The environments and their requirements are the model's promotion
//! policy ([`PromotionPolicy`]); a run stores it in the registry, where
//! `sluice models promote` and `sluice watch` check it.

use super::cron::Cron;
use super::{
    DURATION_HELP, DataInput, DataKind, LimitError, Parser, Val, get, parse_duration, span_of,
};
use crate::diagnostic::{Code, Span, suggest};
use serde::{Deserialize, Serialize};
use sluice_store::ModelRef;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};

/// The `[triggers]` table: what starts a run, and how often it is checked.
/// At least one of `schedule`, `new_data`, `drift` and `degradation` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggers {
    /// Where the table is (its header, or the inline table).
    pub span: Span,
    /// A cron schedule (UTC).
    pub schedule: Option<Cron>,
    /// Data inputs (by name) and object-store prefixes (`s3://…`) watched
    /// for new content; `None`: not watched. `new-data = true` names every
    /// file or table input (registry models have no content to watch).
    pub new_data: Option<Vec<String>>,
    /// Drift of a served model's inputs or predictions.
    pub drift: Option<DriftTrigger>,
    /// Live quality below a threshold.
    pub degradation: Option<DegradationTrigger>,
    /// How often triggers are evaluated (`poll`, default 5 s).
    pub poll: Duration,
    /// How long new data must stay unchanged before it triggers
    /// (`debounce`, default 2 s).
    pub debounce: Duration,
    /// How often drift and degradation are measured (`check-every`,
    /// default 1 min).
    pub check_every: Duration,
}

/// `drift = { model, threshold, min-rows }`: retrain when what a served
/// model sees drifts from what it was trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftTrigger {
    /// The served model.
    pub model: ModelRef,
    /// Jensen–Shannon (numeric) and L-infinity (categorical) threshold
    /// (default 0.1).
    pub threshold: f64,
    /// Fewest new served rows before drift is judged (default 100).
    pub min_rows: usize,
}

/// `degradation = { model, feedback, metric, below }`: retrain when a served
/// model's live quality, measured against labels, falls.
#[derive(Debug, Clone, PartialEq)]
pub struct DegradationTrigger {
    /// The served model.
    pub model: ModelRef,
    /// The labels file (CSV or Parquet: `request_id`, label, `row`),
    /// resolved against the spec's folder.
    pub feedback: PathBuf,
    /// The live metric watched (default `accuracy`).
    pub metric: String,
    /// The value it must stay at or above.
    pub below: f64,
}

/// The `[promotion]` table: which aliases a version blessed by a watched
/// run moves, and the gates of each environment. [`Default`] is the policy
/// when the table is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// Only this model (default: every model the run registered).
    pub model: Option<String>,
    /// Move `staging` to a new version (default `true`).
    pub staging: bool,
    /// Move `production` too (default `false`: a person promotes).
    pub production: bool,
    /// The environments and their gates; `None` when the table sets
    /// neither `environments` nor `require` (a policy set otherwise, with
    /// `sluice models policy`, is then left alone).
    pub policy: Option<PromotionPolicy>,
    /// `[promotion.rollout]`: a blessed version reaches the rollout's
    /// alias through a canary rollout that `sluice watch` starts and
    /// decides, never by a direct move.
    pub rollout: Option<RolloutSpec>,
}

impl Default for Promotion {
    fn default() -> Self {
        Promotion {
            model: None,
            staging: true,
            production: false,
            policy: None,
            rollout: None,
        }
    }
}

/// `[promotion.rollout]`: how `sluice watch` rolls a blessed version out
/// on an alias (see `sluice rollout start`, whose options these are); a
/// key left out takes `sluice rollout start`'s default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutSpec {
    /// The alias rolled out on (default `production`).
    pub alias: String,
    /// The candidate's share at each stage, in percent.
    pub steps: Option<Vec<f64>>,
    /// How long each stage lasts at least.
    pub window: Option<Duration>,
    /// Requests the candidate must answer in a stage before it is judged.
    pub min_requests: Option<u64>,
    /// How much higher the candidate's error rate may be (a share).
    pub max_error_rate_increase: Option<f64>,
    /// The significance of the error-rate and accuracy tests.
    pub alpha: Option<f64>,
    /// How many times the baseline's p99 latency the candidate's may be.
    pub max_p99_ratio: Option<f64>,
    /// A file of true labels joined with logged requests (relative to the
    /// spec's folder).
    pub feedback: Option<PathBuf>,
    /// Labelled requests each side needs in a stage.
    pub min_labels: Option<u64>,
    /// How far below the baseline's the candidate's accuracy may be.
    pub max_accuracy_drop: Option<f64>,
    /// The largest Jensen–Shannon divergence between the two versions'
    /// logged predictions in a stage.
    pub max_prediction_divergence: Option<f64>,
}

/// A model's promotion policy: the environments (aliases) its versions
/// move through, in order, and what a move into each requires. Stored in
/// the registry as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionPolicy {
    /// The environments, in order: a version reaches one after the one
    /// before it.
    pub environments: Vec<String>,
    /// The gates of a move into an environment; one not listed has none.
    #[serde(default)]
    pub require: BTreeMap<String, Requirements>,
}

impl Default for PromotionPolicy {
    fn default() -> Self {
        PromotionPolicy {
            environments: vec!["staging".into(), "production".into()],
            require: BTreeMap::new(),
        }
    }
}

impl PromotionPolicy {
    /// The environment before `alias`, if `alias` is one and not the first.
    pub fn previous(&self, alias: &str) -> Option<&str> {
        let i = self.environments.iter().position(|e| e == alias)?;
        i.checked_sub(1).map(|p| self.environments[p].as_str())
    }
}

/// What a move into one environment requires. Live gates (soak, requests,
/// error rate, latency) are measured while the version held the previous
/// environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Requirements {
    /// The version was pushed with a blessing document that says
    /// `"blessed": true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blessing: bool,
    /// The version was pushed with an infra blessing
    /// (`std:infra-validate`'s) that says `"blessed": true`: it was served
    /// by the real model server within its budgets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infra: bool,
    /// The version enters this environment only through a rollout on it
    /// that passed every stage (`sluice rollout start`, or
    /// `[promotion.rollout]` under `sluice watch`): validated online
    /// against the version it replaces.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub online: bool,
    /// It held the previous environment at least this long (milliseconds
    /// in JSON).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "soak-ms",
        with = "millis"
    )]
    pub soak: Option<Duration>,
    /// It answered at least this many requests there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    /// At most this share of those requests were answered 4xx or 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Their 99th-percentile latency was at most this, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_ms: Option<f64>,
}

impl Requirements {
    /// Whether any gate needs the version to have held the previous
    /// environment.
    pub fn needs_previous(&self) -> bool {
        self.soak.is_some()
            || self.min_requests.is_some()
            || self.max_error_rate.is_some()
            || self.max_p99_ms.is_some()
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

const TRIGGER_KEYS: &[&str] = &[
    "schedule",
    "new-data",
    "drift",
    "degradation",
    "poll",
    "debounce",
    "check-every",
];
const DRIFT_KEYS: &[&str] = &["model", "threshold", "min-rows"];
const DEGRADATION_KEYS: &[&str] = &["model", "feedback", "metric", "below"];
const PROMOTION_KEYS: &[&str] = &[
    "model",
    "staging",
    "production",
    "environments",
    "require",
    "rollout",
];
const ROLLOUT_KEYS: &[&str] = &[
    "alias",
    "steps",
    "window",
    "min-requests",
    "max-error-rate-increase",
    "alpha",
    "max-p99-ratio",
    "feedback",
    "min-labels",
    "max-accuracy-drop",
    "max-prediction-divergence",
];
/// The keys of a promotion policy file (`sluice models policy --set`).
const POLICY_KEYS: &[&str] = &["environments", "require"];

/// Parses a promotion policy file: the `environments` and `require` keys
/// of `[promotion]` at its top level, reported like a spec's problems.
pub fn parse_policy(
    path: &std::path::Path,
    source: &str,
) -> Result<PromotionPolicy, crate::diagnostic::Diagnostics> {
    super::parse_table_with(path, source, |p, root| {
        p.check_keys(root, POLICY_KEYS, "the policy file");
        p.policy(root, "the policy file")
    })
}
const REQUIRE_KEYS: &[&str] = &[
    "blessing",
    "infra",
    "online",
    "soak",
    "min-requests",
    "max-error-rate",
    "max-p99-ms",
];

impl Parser<'_> {
    /// The `[triggers]` table; `data` are the spec's data inputs, which
    /// `new-data` may name.
    pub(super) fn triggers(&mut self, value: &Val<'_>, data: &[DataInput]) -> Option<Triggers> {
        let t = self.table(value, "`triggers`")?;
        self.check_keys(t, TRIGGER_KEYS, "[triggers]");
        let mut ok = true;

        let mut schedule = None;
        if let Some((_, v)) = get(t, "schedule") {
            match self
                .string(v, "`schedule` in [triggers]")
                .map(str::parse::<Cron>)
            {
                Some(Ok(c)) => schedule = Some(c),
                Some(Err(e)) => {
                    self.error(
                        Code::InvalidValue,
                        span_of(v),
                        e.to_string(),
                        Some(e.help()),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }

        let new_data = match get(t, "new-data") {
            None => None,
            Some((_, v)) => {
                let names = self.new_data(v, data);
                ok &= names.is_some();
                names.flatten()
            }
        };

        let drift = match get(t, "drift") {
            None => None,
            Some((_, v)) => {
                let d = self.drift(v);
                ok &= d.is_some();
                d
            }
        };

        let degradation = match get(t, "degradation") {
            None => None,
            Some((_, v)) => {
                let d = self.degradation(v);
                ok &= d.is_some();
                d
            }
        };

        let mut duration = |key: &str, default: Duration| match get(t, key) {
            None => Some(default),
            Some((_, v)) => self.trigger_duration(v, key, "[triggers]"),
        };
        let poll = duration("poll", Duration::from_secs(5));
        let debounce = duration("debounce", Duration::from_secs(2));
        let check_every = duration("check-every", Duration::from_secs(60));

        if ok
            && schedule.is_none()
            && new_data.is_none()
            && drift.is_none()
            && degradation.is_none()
        {
            self.error(
                Code::MissingKey,
                span_of(value),
                "[triggers] names no trigger".into(),
                Some("add `schedule`, `new-data`, `drift` or `degradation`, e.g. `new-data = true` or `schedule = \"0 3 * * *\"`".into()),
            );
            return None;
        }
        let triggers = Triggers {
            span: span_of(value),
            schedule,
            new_data,
            drift,
            degradation,
            poll: poll?,
            debounce: debounce?,
            check_every: check_every?,
        };
        ok.then_some(triggers)
    }

    /// `new-data`: `true`, `false` or a list of data input names and
    /// `s3://` prefixes. `Some(None)`: valid but nothing watched.
    fn new_data(&mut self, v: &Val<'_>, data: &[DataInput]) -> Option<Option<Vec<String>>> {
        let items = match v.get_ref() {
            DeValue::Boolean(false) => return Some(None),
            DeValue::Boolean(true) => {
                let files: Vec<String> = data
                    .iter()
                    .filter(|d| d.kind != DataKind::Model)
                    .map(|d| d.name.clone())
                    .collect();
                if files.is_empty() {
                    self.error(
                        Code::InvalidValue,
                        span_of(v),
                        "`new-data = true` watches every file input, and the spec has none".into(),
                        Some("declare the data under [data], or list s3://bucket/prefix URLs: `new-data = [\"s3://bucket/incoming\"]`".into()),
                    );
                    return None;
                }
                return Some(Some(files));
            }
            DeValue::Array(items) => items,
            _ => {
                self.type_error(
                    v,
                    "a boolean or a list of data input names",
                    "`new-data` in [triggers]",
                );
                return None;
            }
        };
        let mut names = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            let Some(name) = self.string(item, "an entry of `new-data` in [triggers]") else {
                ok = false;
                continue;
            };
            if name.starts_with("s3://") {
                names.push(name.to_owned());
                continue;
            }
            match data.iter().find(|d| d.name == name) {
                Some(d) if d.kind == DataKind::Model => {
                    self.error(
                        Code::InvalidValue,
                        span_of(item),
                        format!(
                            "`new-data` names data input `{name}`, a model from the registry, which has no content to watch"
                        ),
                        Some("name file or table inputs, or an s3://bucket/prefix URL".into()),
                    );
                    ok = false;
                }
                Some(_) => names.push(name.to_owned()),
                None => {
                    let list = if data.is_empty() {
                        "the spec has no [data] inputs".to_owned()
                    } else {
                        let all: Vec<&str> = data.iter().map(|d| d.name.as_str()).collect();
                        format!("declared data inputs: {}", all.join(", "))
                    };
                    let help = suggest(name, data.iter().map(|d| d.name.as_str()), list);
                    self.error(
                        Code::UnknownData,
                        span_of(item),
                        format!(
                            "`new-data` names `{name}`, which is neither a data input nor an s3://bucket/prefix URL"
                        ),
                        Some(help),
                    );
                    ok = false;
                }
            }
        }
        ok.then(|| (!names.is_empty()).then_some(names))
    }

    fn drift(&mut self, v: &Val<'_>) -> Option<DriftTrigger> {
        let location = "[triggers.drift]";
        let t = self.table(v, "`drift` in [triggers]")?;
        self.check_keys(t, DRIFT_KEYS, location);
        let model = self.model_ref(t, v, location);
        let threshold = match get(t, "threshold") {
            None => Some(sluice_drift::DEFAULT_NUMERIC_THRESHOLD),
            Some((_, x)) => self.number(x, "threshold", location),
        };
        let min_rows = match get(t, "min-rows") {
            None => Some(100),
            Some((_, x)) => match x.get_ref() {
                DeValue::Integer(i) => match usize::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        self.error(
                            Code::InvalidValue,
                            span_of(x),
                            format!("invalid `min-rows` in {location}: `{i}` is not a row count"),
                            Some("write a whole number of served rows, such as 100".into()),
                        );
                        None
                    }
                },
                _ => {
                    self.type_error(x, "an integer", &format!("`min-rows` in {location}"));
                    None
                }
            },
        };
        Some(DriftTrigger {
            model: model?,
            threshold: threshold?,
            min_rows: min_rows?,
        })
    }

    fn degradation(&mut self, v: &Val<'_>) -> Option<DegradationTrigger> {
        let location = "[triggers.degradation]";
        let t = self.table(v, "`degradation` in [triggers]")?;
        self.check_keys(t, DEGRADATION_KEYS, location);
        let model = self.model_ref(t, v, location);
        let feedback = match get(t, "feedback") {
            None => {
                self.missing(
                    v,
                    "feedback",
                    location,
                    "give the labels file, e.g. `feedback = \"labels.csv\"`",
                );
                None
            }
            Some((_, x)) => self
                .string(x, &format!("`feedback` in {location}"))
                .map(|s| self.base.join(s)),
        };
        let metric = match get(t, "metric") {
            None => Some("accuracy".to_owned()),
            Some((_, x)) => self
                .string(x, &format!("`metric` in {location}"))
                .map(str::to_owned),
        };
        let below = match get(t, "below") {
            None => {
                self.missing(
                    v,
                    "below",
                    location,
                    "give the lowest acceptable value, e.g. `below = 0.9`",
                );
                None
            }
            Some((_, x)) => self.number(x, "below", location),
        };
        Some(DegradationTrigger {
            model: model?,
            feedback: feedback?,
            metric: metric?,
            below: below?,
        })
    }

    /// The `[promotion]` table.
    pub(super) fn promotion(&mut self, value: &Val<'_>, base: &Path) -> Option<Promotion> {
        let location = "[promotion]";
        let t = self.table(value, "`promotion`")?;
        self.check_keys(t, PROMOTION_KEYS, location);
        let mut p = Promotion::default();
        let mut ok = true;
        if let Some((_, v)) = get(t, "model") {
            match self.string(v, &format!("`model` in {location}")) {
                Some(s) => match s.parse::<ModelRef>() {
                    Ok(ModelRef::Latest(name)) => p.model = Some(name),
                    _ => {
                        self.error(
                            Code::InvalidValue,
                            span_of(v),
                            format!("invalid `model` in {location}: `{s}` is not a model name"),
                            Some("name the model alone, e.g. `model = \"churn\"`: promotion moves its aliases, so no version or alias goes here".into()),
                        );
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        for (key, slot) in [
            ("staging", &mut p.staging),
            ("production", &mut p.production),
        ] {
            if let Some((_, v)) = get(t, key) {
                match v.get_ref() {
                    DeValue::Boolean(b) => *slot = *b,
                    _ => {
                        self.type_error(v, "a boolean", &format!("`{key}` in {location}"));
                        ok = false;
                    }
                }
            }
        }
        if get(t, "environments").is_some() || get(t, "require").is_some() {
            match self.policy(t, location) {
                Some(policy) => p.policy = Some(policy),
                None => ok = false,
            }
        }
        if let Some((_, v)) = get(t, "rollout") {
            match self.rollout(v, base) {
                Some(r) => p.rollout = Some(r),
                None => ok = false,
            }
        }
        ok.then_some(p)
    }

    /// The `[promotion.rollout]` table; relative paths are from `base`.
    fn rollout(&mut self, value: &Val<'_>, base: &Path) -> Option<RolloutSpec> {
        let location = "[promotion.rollout]";
        let t = self.table(value, location)?;
        self.check_keys(t, ROLLOUT_KEYS, location);
        let mut r = RolloutSpec {
            alias: "production".into(),
            ..RolloutSpec::default()
        };
        let mut ok = true;
        if let Some((_, v)) = get(t, "alias") {
            match self.string(v, &format!("`alias` in {location}")) {
                Some(a) if super::is_valid_name(a) => r.alias = a.to_string(),
                Some(a) => {
                    self.error(
                        Code::InvalidValue,
                        span_of(v),
                        format!("invalid `alias` in {location}: `{a}` is not an alias name"),
                        Some("an alias is letters, digits, `.`, `_` and `-`".into()),
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        if let Some((_, v)) = get(t, "steps") {
            let steps = match v.get_ref() {
                DeValue::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|item| self.number(item, "steps", location))
                    .collect::<Option<Vec<f64>>>(),
                _ => {
                    self.type_error(
                        v,
                        "a non-empty array of percentages",
                        &format!("`steps` in {location}"),
                    );
                    None
                }
            };
            let increasing = steps.as_ref().is_some_and(|s| {
                s.iter()
                    .try_fold(0.0, |prev, &x| (x > prev && x < 100.0).then_some(x))
                    .is_some()
            });
            if steps.is_some() && !increasing {
                self.error(
                    Code::InvalidValue,
                    span_of(v),
                    format!("invalid `steps` in {location}: shares must increase and stay between 0 and 100"),
                    Some("e.g. `steps = [5, 25, 50]`: after the last stage passes, the alias moves to the candidate".into()),
                );
            }
            ok &= increasing;
            r.steps = steps.filter(|_| increasing);
        }
        if let Some((_, v)) = get(t, "window") {
            r.window = self.trigger_duration(v, "window", location);
            ok &= r.window.is_some();
        }
        for (key, slot) in [
            ("min-requests", &mut r.min_requests),
            ("min-labels", &mut r.min_labels),
        ] {
            if let Some((_, v)) = get(t, key) {
                *slot = self.number(v, key, location).map(|x| x as u64);
                ok &= slot.is_some();
            }
        }
        for (key, slot, range) in [
            (
                "max-error-rate-increase",
                &mut r.max_error_rate_increase,
                0.0..1.0,
            ),
            ("alpha", &mut r.alpha, 0.0..0.5),
            ("max-accuracy-drop", &mut r.max_accuracy_drop, 0.0..1.0),
            ("max-p99-ratio", &mut r.max_p99_ratio, 1.0..f64::INFINITY),
            (
                "max-prediction-divergence",
                &mut r.max_prediction_divergence,
                0.0..1.0,
            ),
        ] {
            if let Some((_, v)) = get(t, key) {
                let x = self.number(v, key, location);
                if x.is_some_and(|x| !(range.contains(&x) || (key != "alpha" && x == range.start)))
                {
                    self.error(
                        Code::InvalidValue,
                        span_of(v),
                        format!(
                            "invalid `{key}` in {location}: {} is outside {}..{}",
                            x.unwrap(),
                            range.start,
                            range.end
                        ),
                        None,
                    );
                    ok = false;
                }
                *slot = x;
                ok &= slot.is_some();
            }
        }
        if let Some((_, v)) = get(t, "feedback") {
            match self.string(v, &format!("`feedback` in {location}")) {
                Some(f) => r.feedback = Some(base.join(f)),
                None => ok = false,
            }
        }
        ok.then_some(r)
    }

    /// The `environments` and `require` keys of `t` (the `[promotion]`
    /// table, or a policy file's top level).
    fn policy(&mut self, t: &DeTable<'_>, location: &str) -> Option<PromotionPolicy> {
        let mut policy = PromotionPolicy::default();
        let mut ok = true;
        if let Some((_, v)) = get(t, "environments") {
            let names = match v.get_ref() {
                DeValue::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|item| self.string(item, &format!("an environment in {location}")))
                    .map(|n| n.map(str::to_string))
                    .collect::<Option<Vec<String>>>(),
                _ => {
                    self.type_error(
                        v,
                        "a non-empty array of alias names",
                        &format!("`environments` in {location}"),
                    );
                    None
                }
            };
            match names {
                Some(names) => {
                    let mut seen = Vec::new();
                    for name in &names {
                        if !super::is_valid_name(name) || seen.contains(&name) {
                            self.error(
                                Code::InvalidValue,
                                span_of(v),
                                format!(
                                    "invalid `environments` in {location}: `{name}` is {}",
                                    if seen.contains(&name) { "listed twice" } else { "not an alias name (lower-case letters, digits, `-` and `_`)" }
                                ),
                                None,
                            );
                            ok = false;
                        }
                        seen.push(name);
                    }
                    policy.environments = names;
                }
                None => ok = false,
            }
        }
        if let Some((_, v)) = get(t, "require") {
            let require_location = format!("{location} `require`");
            if let Some(req) = self.table(v, &format!("`require` in {location}")) {
                for (key, value) in super::entries(req) {
                    let env: &str = key.get_ref();
                    let env_location = if location == "[promotion]" {
                        format!("[promotion.require.{env}]")
                    } else {
                        format!("[require.{env}] of {location}")
                    };
                    if !policy.environments.iter().any(|e| e == env) {
                        let help = suggest(
                            env,
                            policy.environments.iter().map(String::as_str),
                            "add it to `environments`, in the order versions reach it".into(),
                        );
                        self.error(
                            Code::InvalidValue,
                            span_of(key),
                            format!(
                                "`{env}` in {require_location} is not one of the environments ({})",
                                policy.environments.join(", ")
                            ),
                            Some(help),
                        );
                        ok = false;
                        continue;
                    }
                    match self.requirements(value, &env_location) {
                        Some(r) => {
                            if r.needs_previous() && policy.previous(env).is_none() {
                                self.error(
                                    Code::InvalidValue,
                                    span_of(key),
                                    format!(
                                        "`{env}` is the first environment, so {env_location} cannot ask for soak, requests, error rate or latency: they are measured in the environment before"
                                    ),
                                    Some("put those gates on a later environment, or list one before it".into()),
                                );
                                ok = false;
                            }
                            policy.require.insert(env.to_string(), r);
                        }
                        None => ok = false,
                    }
                }
            } else {
                ok = false;
            }
        }
        ok.then_some(policy)
    }

    /// One `[promotion.require.ENV]` table.
    fn requirements(&mut self, value: &Val<'_>, location: &str) -> Option<Requirements> {
        let t = self.table(value, location)?;
        self.check_keys(t, REQUIRE_KEYS, location);
        let mut r = Requirements::default();
        let mut ok = true;
        for (key, field) in [
            ("blessing", &mut r.blessing),
            ("infra", &mut r.infra),
            ("online", &mut r.online),
        ] {
            if let Some((_, v)) = get(t, key) {
                match v.get_ref() {
                    DeValue::Boolean(b) => *field = *b,
                    _ => {
                        self.type_error(v, "a boolean", &format!("`{key}` in {location}"));
                        ok = false;
                    }
                }
            }
        }
        if let Some((_, v)) = get(t, "soak") {
            r.soak = self.trigger_duration(v, "soak", location);
            ok &= r.soak.is_some();
        }
        if let Some((_, v)) = get(t, "min-requests") {
            r.min_requests = self.number(v, "min-requests", location).map(|x| x as u64);
            ok &= r.min_requests.is_some();
        }
        if let Some((_, v)) = get(t, "max-error-rate") {
            r.max_error_rate = self.number(v, "max-error-rate", location);
            if r.max_error_rate.is_some_and(|x| x > 1.0) {
                self.error(
                    Code::InvalidValue,
                    span_of(v),
                    format!("invalid `max-error-rate` in {location}: a share is between 0 and 1"),
                    Some("write 0.01 for 1%".into()),
                );
                ok = false;
            }
            ok &= r.max_error_rate.is_some();
        }
        if let Some((_, v)) = get(t, "max-p99-ms") {
            r.max_p99_ms = self.number(v, "max-p99-ms", location);
            ok &= r.max_p99_ms.is_some();
        }
        ok.then_some(r)
    }

    /// The required `model` reference of a drift or degradation trigger.
    fn model_ref(&mut self, t: &DeTable<'_>, table: &Val<'_>, location: &str) -> Option<ModelRef> {
        let Some((_, v)) = get(t, "model") else {
            self.missing(
                table,
                "model",
                location,
                "name the served model, e.g. `model = \"churn@production\"`",
            );
            return None;
        };
        let s = self.string(v, &format!("`model` in {location}"))?;
        match s.parse::<ModelRef>() {
            Ok(m) => Some(m),
            Err(e) => {
                self.error(
                    Code::InvalidValue,
                    span_of(v),
                    format!("invalid `model` in {location}: {e}"),
                    None,
                );
                None
            }
        }
    }

    fn missing(&mut self, table: &Val<'_>, key: &str, location: &str, help: &str) {
        self.error(
            Code::MissingKey,
            span_of(table),
            format!("missing `{key}` in {location}"),
            Some(help.to_owned()),
        );
    }

    /// A finite, non-negative number (a float or an integer).
    fn number(&mut self, v: &Val<'_>, key: &str, location: &str) -> Option<f64> {
        let x = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.type_error(v, "a number", &format!("`{key}` in {location}"));
                return None;
            }
        };
        match x {
            Some(x) if x.is_finite() && x >= 0.0 => Some(x),
            _ => {
                self.error(
                    Code::InvalidValue,
                    span_of(v),
                    format!(
                        "invalid `{key}` in {location}: `{}` is not a finite, non-negative number",
                        source_text(self.source, span_of(v))
                    ),
                    None,
                );
                None
            }
        }
    }

    fn trigger_duration(&mut self, v: &Val<'_>, key: &str, location: &str) -> Option<Duration> {
        let result = match v.get_ref() {
            DeValue::String(s) => parse_duration(s),
            DeValue::Integer(i) => Err(LimitError::BadDuration(i.to_string())),
            _ => {
                self.type_error(v, "a duration string", &format!("`{key}` in {location}"));
                return None;
            }
        };
        match result {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    Code::InvalidValue,
                    span_of(v),
                    match e {
                        LimitError::Zero => {
                            format!("invalid `{key}` in {location}: a duration must be greater than zero")
                        }
                        e => format!("invalid `{key}` in {location}: {e}"),
                    },
                    Some(DURATION_HELP.to_owned()),
                );
                None
            }
        }
    }
}

/// The text at `span`, for messages about a value as written.
fn source_text(source: &str, span: Span) -> &str {
    source.get(span.range()).unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::{Diagnostic, Diagnostics};
    use crate::spec::Spec;
    use std::path::Path;

    const HEAD: &str = "[pipeline]\nname = \"p\"\n[data]\nraw = \"a.csv\"\nbase = { model = \"m@production\" }\n[steps.s]\ncomponent = \"std:statistics\"\n";

    /// Parses HEAD (7 lines) followed by `tables`.
    fn parse(tables: &str) -> Result<Spec, Diagnostics> {
        Spec::parse(Path::new("dir/p.toml"), &format!("{HEAD}{tables}"))
    }

    /// The diagnostics of a failed parse: (code, line, column, message, help).
    fn errors(tables: &str) -> Vec<(Code, usize, usize, String, Option<String>)> {
        parse(tables)
            .expect_err("should fail")
            .into_iter()
            .map(|d: Diagnostic| (d.code, d.line, d.column, d.message, d.help))
            .collect()
    }

    #[test]
    fn parses_every_key_with_defaults() {
        let spec = parse(
            "[triggers]\nschedule = \"0 3 * * 1\"\nnew-data = [\"raw\", \"s3://b/in\"]\ndrift = { model = \"m@production\", threshold = 0.2, min-rows = 300 }\ndegradation = { model = \"m:3\", feedback = \"labels.csv\", below = 1 }\ncheck-every = \"5m\"\n[promotion]\nmodel = \"m\"\nproduction = true\n",
        )
        .unwrap();
        let t = spec.triggers.unwrap();
        assert_eq!(t.schedule.unwrap().to_string(), "0 3 * * 1");
        assert_eq!(t.new_data, Some(vec!["raw".into(), "s3://b/in".into()]));
        assert_eq!(
            t.drift,
            Some(DriftTrigger {
                model: ModelRef::Alias("m".into(), "production".into()),
                threshold: 0.2,
                min_rows: 300,
            })
        );
        assert_eq!(
            t.degradation,
            Some(DegradationTrigger {
                model: ModelRef::Version("m".into(), 3),
                feedback: PathBuf::from("dir/labels.csv"),
                metric: "accuracy".into(),
                below: 1.0,
            })
        );
        assert_eq!(
            (t.poll, t.debounce, t.check_every),
            (
                Duration::from_secs(5),
                Duration::from_secs(2),
                Duration::from_secs(300)
            )
        );
        assert_eq!(
            spec.promotion,
            Some(Promotion {
                model: Some("m".into()),
                policy: None,
                staging: true,
                production: true,
                rollout: None,
            })
        );
    }

    #[test]
    fn the_continuous_training_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/continuous-training/pipeline.toml");
        let spec = Spec::load(&path).unwrap_or_else(|d| panic!("{d}"));
        let t = spec.triggers.unwrap();
        assert_eq!(t.schedule.unwrap().to_string(), "0 3 * * 1");
        assert_eq!(t.drift.unwrap().min_rows, 300);
        assert_eq!(
            (t.poll, t.check_every),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
        assert_eq!(spec.promotion, Some(Promotion::default()));
    }

    #[test]
    fn optional_tables_and_new_data_true() {
        let spec = parse("").unwrap();
        assert_eq!((spec.triggers, spec.promotion), (None, None));
        // `true`: every file input; the registry model `base` has no content.
        let spec = parse("[triggers]\nnew-data = true\n").unwrap();
        assert_eq!(spec.triggers.unwrap().new_data, Some(vec!["raw".into()]));
        let spec = parse("[promotion]\nstaging = false\n").unwrap();
        assert_eq!(
            spec.promotion,
            Some(Promotion {
                staging: false,
                ..Promotion::default()
            })
        );
    }

    #[test]
    fn unknown_keys_suggest_the_closest() {
        let got = errors(
            "[triggers]\nschedul = \"0 3 * * *\"\ndrift = { model = \"m\", min-row = 3 }\n[promotion]\nprodution = true\n[trigers]\n",
        );
        let help = |s: &str| Some(format!("did you mean `{s}`?"));
        assert_eq!(
            got,
            [
                (
                    Code::UnknownKey,
                    9,
                    1,
                    "unknown key `schedul` in [triggers]; expected one of schedule, new-data, drift, degradation, poll, debounce, check-every".into(),
                    help("schedule")
                ),
                (
                    Code::UnknownKey,
                    10,
                    24,
                    "unknown key `min-row` in [triggers.drift]; expected one of model, threshold, min-rows".into(),
                    help("min-rows")
                ),
                (
                    Code::UnknownKey,
                    12,
                    1,
                    "unknown key `prodution` in [promotion]; expected one of model, staging, production, environments, require, rollout".into(),
                    help("production")
                ),
                (
                    Code::UnknownKey,
                    13,
                    2,
                    "unknown key `trigers` in the top-level table; expected one of pipeline, data, steps, triggers, promotion".into(),
                    help("triggers")
                ),
            ]
        );
    }

    #[test]
    fn bad_schedule_is_located_with_a_hint() {
        let got = errors("[triggers]\nschedule = \"61 3 * * *\"\n");
        assert_eq!(got.len(), 1, "{got:?}");
        let (code, line, col, message, help) = &got[0];
        assert_eq!((*code, *line, *col), (Code::InvalidValue, 9, 12));
        assert_eq!(
            message,
            "schedule `61 3 * * *`: minute `61`: number out of bounds (minute takes 0-59)"
        );
        assert!(help.as_deref().unwrap().contains("five fields"), "{help:?}");
        let got = errors("[triggers]\nschedule = \"0 0 3 * * *\"\n");
        assert_eq!(
            got[0].4.as_deref(),
            Some(
                "seconds and years are not supported (the watcher works to the minute); write five fields such as \"0 3 * * *\" (daily at 03:00 UTC)"
            )
        );
        let got = errors("[triggers]\nschedule = 3\n");
        assert_eq!(
            got[0].3,
            "expected a string for `schedule` in [triggers], found integer"
        );
    }

    #[test]
    fn bad_durations_and_numbers() {
        let got = errors(
            "[triggers]\nnew-data = true\npoll = \"5\"\ndebounce = \"0s\"\ncheck-every = 60\ndrift = { model = \"m\", threshold = -1.0, min-rows = -3 }\n",
        );
        let got: Vec<_> = got
            .iter()
            .map(|(c, l, col, m, _)| (*c, *l, *col, m.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::InvalidValue,
                    10,
                    8,
                    "invalid `poll` in [triggers]: `5` is not a duration"
                ),
                (
                    Code::InvalidValue,
                    11,
                    12,
                    "invalid `debounce` in [triggers]: a duration must be greater than zero"
                ),
                (
                    Code::InvalidValue,
                    12,
                    15,
                    "invalid `check-every` in [triggers]: `60` is not a duration"
                ),
                (
                    Code::InvalidValue,
                    13,
                    36,
                    "invalid `threshold` in [triggers.drift]: `-1.0` is not a finite, non-negative number"
                ),
                (
                    Code::InvalidValue,
                    13,
                    53,
                    "invalid `min-rows` in [triggers.drift]: `-3` is not a row count"
                ),
            ]
        );
        let d = parse("[triggers]\nnew-data = true\npoll = \"5\"\n").unwrap_err();
        assert_eq!(d.0[0].help.as_deref(), Some(crate::spec::DURATION_HELP));
    }

    #[test]
    fn new_data_must_name_file_inputs_or_urls() {
        let got = errors("[triggers]\nnew-data = [\"rwa\", \"base\", 3]\n");
        let got: Vec<_> = got
            .iter()
            .map(|(c, l, col, m, h)| (*c, *l, *col, m.as_str(), h.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::UnknownData,
                    9,
                    13,
                    "`new-data` names `rwa`, which is neither a data input nor an s3://bucket/prefix URL",
                    Some("did you mean `raw`? declared data inputs: raw, base")
                ),
                (
                    Code::InvalidValue,
                    9,
                    20,
                    "`new-data` names data input `base`, a model from the registry, which has no content to watch",
                    Some("name file or table inputs, or an s3://bucket/prefix URL")
                ),
                (
                    Code::InvalidValue,
                    9,
                    28,
                    "expected a string for an entry of `new-data` in [triggers], found integer",
                    None
                ),
            ]
        );
        let got = errors("[triggers]\nnew-data = \"raw\"\n");
        assert_eq!(
            got[0].3,
            "expected a boolean or a list of data input names for `new-data` in [triggers], found string"
        );
    }

    #[test]
    fn a_rollout_table_takes_the_rollout_options_and_refuses_bad_ones() {
        let spec = parse(
            "[promotion]\n[promotion.rollout]\nsteps = [10, 50]\nwindow = \"5m\"\nmin-requests = 300\nalpha = 0.01\nmax-p99-ratio = 1.2\nfeedback = \"labels.csv\"\n[promotion.require.production]\nonline = true\n",
        )
        .unwrap();
        let p = spec.promotion.unwrap();
        let r = p.rollout.unwrap();
        assert_eq!(r.alias, "production");
        assert_eq!(r.steps, Some(vec![10.0, 50.0]));
        assert_eq!(r.window, Some(Duration::from_secs(300)));
        assert_eq!(r.min_requests, Some(300));
        assert_eq!(r.alpha, Some(0.01));
        assert_eq!(r.max_p99_ratio, Some(1.2));
        assert_eq!(r.max_error_rate_increase, None, "left to the default");
        assert!(r.feedback.unwrap().ends_with("labels.csv"));
        assert!(p.policy.unwrap().require["production"].online);

        let got = errors(
            "[promotion]\n[promotion.rollout]\nsteps = [50, 10]\nalpha = 0.7\nalias = \"prod uction\"\nwindwo = \"1m\"\n",
        );
        let messages: Vec<&str> = got.iter().map(|g| g.3.as_str()).collect();
        assert!(
            messages.contains(&"invalid `steps` in [promotion.rollout]: shares must increase and stay between 0 and 100"),
            "{messages:?}"
        );
        assert!(
            messages.contains(&"invalid `alpha` in [promotion.rollout]: 0.7 is outside 0..0.5"),
            "{messages:?}"
        );
        assert!(
            messages.contains(
                &"invalid `alias` in [promotion.rollout]: `prod uction` is not an alias name"
            ),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("unknown key `windwo` in [promotion.rollout]")),
            "{messages:?}"
        );
    }

    #[test]
    fn missing_and_mistyped_values() {
        let got = errors(
            "[triggers]\ndegradation = { metric = 1 }\n[promotion]\nmodel = \"m@production\"\nstaging = \"yes\"\n",
        );
        let got: Vec<_> = got
            .iter()
            .map(|(c, l, col, m, _)| (*c, *l, *col, m.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Code::MissingKey,
                    9,
                    15,
                    "missing `model` in [triggers.degradation]"
                ),
                (
                    Code::MissingKey,
                    9,
                    15,
                    "missing `feedback` in [triggers.degradation]"
                ),
                (
                    Code::MissingKey,
                    9,
                    15,
                    "missing `below` in [triggers.degradation]"
                ),
                (
                    Code::InvalidValue,
                    9,
                    26,
                    "expected a string for `metric` in [triggers.degradation], found integer"
                ),
                (
                    Code::InvalidValue,
                    11,
                    9,
                    "invalid `model` in [promotion]: `m@production` is not a model name"
                ),
                (
                    Code::InvalidValue,
                    12,
                    11,
                    "expected a boolean for `staging` in [promotion], found string"
                ),
            ]
        );
        let got = errors("[triggers]\ndrift = { model = \"not a model\" }\n");
        assert!(
            got[0].3.starts_with(
                "invalid `model` in [triggers.drift]: `not a model` is not a model reference"
            ),
            "{got:?}"
        );
    }

    #[test]
    fn a_triggers_table_must_name_a_trigger() {
        for tables in [
            "[triggers]\npoll = \"1s\"\n",
            "[triggers]\nnew-data = false\n",
        ] {
            let got = errors(tables);
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(
                (got[0].0, got[0].1, got[0].3.as_str()),
                (Code::MissingKey, 8, "[triggers] names no trigger")
            );
        }
        let d = Spec::parse(Path::new("p.toml"), &format!("triggers = 3\n{HEAD}")).unwrap_err();
        assert_eq!(
            (d.0[0].line, d.0[0].message.as_str()),
            (1, "expected a table for `triggers`, found integer")
        );
    }

    #[test]
    fn a_promotion_policy_lists_environments_and_their_gates() {
        let spec = parse(
            "[promotion]\nenvironments = [\"staging\", \"canary\", \"production\"]\n[promotion.require.staging]\nblessing = true\n[promotion.require.production]\nsoak = \"90s\"\nmin-requests = 500\nmax-error-rate = 0.01\nmax-p99-ms = 12.5\n",
        )
        .unwrap();
        let policy = spec.promotion.unwrap().policy.unwrap();
        assert_eq!(policy.environments, ["staging", "canary", "production"]);
        assert_eq!(policy.previous("production"), Some("canary"));
        assert_eq!(policy.previous("staging"), None);
        assert!(policy.require["staging"].blessing);
        let prod = &policy.require["production"];
        assert_eq!(
            (
                prod.soak,
                prod.min_requests,
                prod.max_error_rate,
                prod.max_p99_ms,
                prod.blessing
            ),
            (
                Some(Duration::from_secs(90)),
                Some(500),
                Some(0.01),
                Some(12.5),
                false
            )
        );
        // Stored as JSON and read back unchanged.
        let json = serde_json::to_string(&policy).unwrap();
        assert!(json.contains("\"soak-ms\":90000"), "{json}");
        assert_eq!(
            serde_json::from_str::<PromotionPolicy>(&json).unwrap(),
            policy
        );
    }

    #[test]
    fn policy_mistakes_are_reported_where_they_are() {
        let e = errors(
            "[promotion]\n[promotion.require.prodution]\nblessing = true\n[promotion.require.staging]\nsoak = \"1h\"\nmax-eror-rate = 0.1\n[promotion.require.production]\nmax-error-rate = 5\n",
        );
        let messages: Vec<&str> = e.iter().map(|d| d.3.as_str()).collect();
        assert_eq!(e.len(), 4, "{messages:#?}");
        assert_eq!(e[0].1, 9);
        assert!(messages[0].starts_with("`prodution` in [promotion] `require` is not one of the environments (staging, production)"));
        assert_eq!(
            e[0].4
                .as_deref()
                .map(|h| h.starts_with("did you mean `production`?")),
            Some(true)
        );
        assert!(
            messages[1].starts_with("`staging` is the first environment"),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].starts_with("unknown key `max-eror-rate` in [promotion.require.staging]")
        );
        assert!(messages[3].starts_with(
            "invalid `max-error-rate` in [promotion.require.production]: a share is between 0 and 1"
        ));
    }

    #[test]
    fn a_policy_file_holds_the_policy_keys_alone() {
        let p = parse_policy(
            Path::new("policy.toml"),
            "environments = [\"qa\", \"production\"]\n[require.production]\nsoak = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(p.environments, ["qa", "production"]);
        assert_eq!(p.require["production"].soak, Some(Duration::from_secs(300)));
        let e = parse_policy(Path::new("policy.toml"), "model = \"x\"\n").unwrap_err();
        assert!(
            e.0[0]
                .message
                .starts_with("unknown key `model` in the policy file"),
            "{}",
            e.0[0].message
        );
    }
}
