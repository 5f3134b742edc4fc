//! The `[triggers]` and `[promotion]` tables of a pipeline spec:
//!
//! ```toml
//! [triggers]
//! schedule = "0 3 * * *"          # cron, UTC
//! new-data = ["raw"]              # data inputs (or s3://bucket/prefix URLs) whose content starts a run (true: all inputs)
//! drift = { model = "breast-cancer@production", min-rows = 200 }
//! degradation = { model = "breast-cancer@production", feedback = "labels.csv", metric = "accuracy", below = 0.9 }
//! poll = "5s"                     # how often triggers are evaluated
//! debounce = "2s"                 # new data must be unchanged this long
//! check-every = "1m"              # how often drift and degradation are measured
//!
//! [promotion]
//! model = "breast-cancer"         # default: every model the run registered
//! staging = true                  # a blessed version goes to `staging` (default)
//! production = false              # …and to `production` only if this is true
//! ```

use crate::cron::Cron;
use serde::Deserialize;
use sluice_store::ModelRef;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the tables are invalid.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    path: PathBuf,
    message: String,
}

/// What starts a run.
#[derive(Debug, Clone)]
pub struct Triggers {
    /// A cron schedule.
    pub schedule: Option<Cron>,
    /// Data inputs (by name) and object-store prefixes (`s3://…`) watched
    /// for new content (`None`: not watched).
    pub new_data: Option<Vec<String>>,
    /// Drift of a served model's inputs or predictions.
    pub drift: Option<DriftTrigger>,
    /// Live quality below a threshold.
    pub degradation: Option<DegradationTrigger>,
    /// How often triggers are evaluated.
    pub poll: Duration,
    /// How long new data must stay unchanged before it triggers.
    pub debounce: Duration,
    /// How often drift and degradation are measured.
    pub check_every: Duration,
}

/// `drift = { model = …, threshold = …, min-rows = … }`.
#[derive(Debug, Clone)]
pub struct DriftTrigger {
    /// The served model.
    pub model: ModelRef,
    /// Jensen–Shannon (numeric) and L-infinity (categorical) threshold.
    pub threshold: f64,
    /// Fewest new served rows before drift is judged.
    pub min_rows: usize,
}

/// `degradation = { model, feedback, metric, below }`.
#[derive(Debug, Clone)]
pub struct DegradationTrigger {
    /// The served model.
    pub model: ModelRef,
    /// The labels file (CSV or Parquet: `request_id`, label, `row`).
    pub feedback: PathBuf,
    /// The live metric watched.
    pub metric: String,
    /// The value it must stay at or above.
    pub below: f64,
}

/// Where blessed versions go.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// Only this model (default: every model the run registered).
    pub model: Option<String>,
    /// Move `staging` to a new version.
    pub staging: bool,
    /// Move `production` too.
    pub production: bool,
}

/// The watch configuration of a spec.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The triggers.
    pub triggers: Triggers,
    /// The promotion policy.
    pub promotion: Promotion,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    triggers: Option<RawTriggers>,
    #[serde(default)]
    promotion: Option<RawPromotion>,
    #[serde(flatten)]
    _rest: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTriggers {
    schedule: Option<String>,
    new_data: Option<NewData>,
    drift: Option<RawDrift>,
    degradation: Option<RawDegradation>,
    poll: Option<String>,
    debounce: Option<String>,
    check_every: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NewData {
    All(bool),
    Some(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDrift {
    model: String,
    threshold: Option<f64>,
    min_rows: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDegradation {
    model: String,
    feedback: String,
    metric: Option<String>,
    below: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPromotion {
    model: Option<String>,
    staging: Option<bool>,
    production: Option<bool>,
}

impl WatchConfig {
    /// Reads the tables from the spec at `path`; `data` names its data
    /// inputs (to check `new-data`).
    pub fn load(path: &Path, data: &[String]) -> Result<WatchConfig, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: File = toml::from_str(&text).map_err(|e| err(format!("{e}")))?;
        let Some(raw) = file.triggers else {
            return Err(err(
                "no [triggers] table: add one naming what starts a run, e.g. `[triggers]` with `new-data = true` or `schedule = \"0 3 * * *\"`".into(),
            ));
        };
        let duration =
            |v: Option<String>, key: &str, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(s) => sluice_pipeline::spec::parse_duration(&s)
                        .map_err(|e| err(format!("[triggers] {key} = {s:?}: {e}"))),
                }
            };
        let model = |s: &str, key: &str| -> Result<ModelRef, ConfigError> {
            s.parse()
                .map_err(|e| err(format!("[triggers] {key}.model = {s:?}: {e}")))
        };
        let new_data = match raw.new_data {
            None | Some(NewData::All(false)) => None,
            Some(NewData::All(true)) => Some(data.to_vec()),
            Some(NewData::Some(names)) => {
                if let Some(bad) = names
                    .iter()
                    .find(|n| !data.contains(n) && !n.starts_with("s3://"))
                {
                    return Err(err(format!(
                        "[triggers] new-data names `{bad}`, which is neither a data input nor an s3://bucket/prefix URL; the spec's [data] has: {}",
                        data.join(", ")
                    )));
                }
                Some(names)
            }
        };
        let triggers = Triggers {
            schedule: raw
                .schedule
                .map(|s| {
                    s.parse::<Cron>()
                        .map_err(|e| err(format!("[triggers] {e}")))
                })
                .transpose()?,
            new_data,
            drift: raw
                .drift
                .map(|d| {
                    Ok::<_, ConfigError>(DriftTrigger {
                        model: model(&d.model, "drift")?,
                        threshold: d.threshold.unwrap_or(0.1),
                        min_rows: d.min_rows.unwrap_or(100),
                    })
                })
                .transpose()?,
            degradation: raw
                .degradation
                .map(|d| {
                    Ok::<_, ConfigError>(DegradationTrigger {
                        model: model(&d.model, "degradation")?,
                        feedback: path.parent().unwrap_or(Path::new(".")).join(&d.feedback),
                        metric: d.metric.unwrap_or_else(|| "accuracy".into()),
                        below: d.below,
                    })
                })
                .transpose()?,
            poll: duration(raw.poll, "poll", Duration::from_secs(5))?,
            debounce: duration(raw.debounce, "debounce", Duration::from_secs(2))?,
            check_every: duration(raw.check_every, "check-every", Duration::from_secs(60))?,
        };
        if triggers.schedule.is_none()
            && triggers.new_data.is_none()
            && triggers.drift.is_none()
            && triggers.degradation.is_none()
        {
            return Err(err(
                "[triggers] names no trigger: add `schedule`, `new-data`, `drift` or `degradation`"
                    .into(),
            ));
        }
        let p = file.promotion;
        Ok(WatchConfig {
            triggers,
            promotion: Promotion {
                model: p.as_ref().and_then(|p| p.model.clone()),
                staging: p.as_ref().and_then(|p| p.staging).unwrap_or(true),
                production: p.as_ref().and_then(|p| p.production).unwrap_or(false),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(tables: &str) -> Result<WatchConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            format!("[pipeline]\nname = \"p\"\n[data]\nraw = \"a.csv\"\n{tables}"),
        )
        .unwrap();
        WatchConfig::load(&path, &["raw".to_string()]).map_err(|e| e.to_string())
    }

    #[test]
    fn triggers_and_promotion_parse_with_defaults() {
        let c = load(
            "[triggers]\nschedule = \"0 3 * * *\"\nnew-data = true\ndrift = { model = \"m@production\", min-rows = 5 }\npoll = \"200ms\"\n[promotion]\nproduction = true\n",
        )
        .unwrap();
        assert_eq!(c.triggers.new_data, Some(vec!["raw".to_string()]));
        assert_eq!(c.triggers.drift.as_ref().unwrap().min_rows, 5);
        assert_eq!(c.triggers.drift.as_ref().unwrap().threshold, 0.1);
        assert_eq!(c.triggers.poll, Duration::from_millis(200));
        assert_eq!(c.triggers.debounce, Duration::from_secs(2));
        assert!(c.promotion.staging && c.promotion.production);
    }

    #[test]
    fn mistakes_are_named() {
        let e = load("").unwrap_err();
        assert!(e.contains("no [triggers] table"), "{e}");
        let e = load("[triggers]\nnew-data = [\"raww\"]\n").unwrap_err();
        assert!(e.contains("`raww`, which is neither a data input"), "{e}");
        let c = load("[triggers]\nnew-data = [\"raw\", \"s3://bucket/incoming\"]\n").unwrap();
        assert_eq!(c.triggers.new_data.unwrap().len(), 2);
        let e = load("[triggers]\nschedul = \"* * * * *\"\n").unwrap_err();
        assert!(e.contains("unknown field `schedul`"), "{e}");
        let e = load("[triggers]\nschedule = \"* * *\"\n").unwrap_err();
        assert!(e.contains("five"), "{e}");
        let e = load("[triggers]\npoll = \"5s\"\n").unwrap_err();
        assert!(e.contains("names no trigger"), "{e}");
    }
}
