//! The watch configuration of a pipeline: its `[triggers]` and
//! `[promotion]` tables, as the pipeline spec parser typed and checked them
//! (see [`sluice_pipeline::spec::Triggers`] for the keys). This module only
//! adds what `sluice watch` needs beyond a valid spec: a `[triggers]` table
//! must be there.

use sluice_pipeline::spec::Spec;
use std::path::PathBuf;

pub use sluice_pipeline::spec::{DegradationTrigger, DriftTrigger, Promotion, Triggers};

/// Why a valid spec cannot be watched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The spec has no `[triggers]` table, so nothing would start a run.
    #[error(
        "{}: no [triggers] table: add one naming what starts a run, e.g. `[triggers]` with `new-data = true` or `schedule = \"0 3 * * *\"`",
        .0.display()
    )]
    NoTriggers(PathBuf),
}

/// The watch configuration of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// The triggers.
    pub triggers: Triggers,
    /// The promotion policy ([`Promotion::default`] when the spec has no
    /// `[promotion]` table).
    pub promotion: Promotion,
}

impl WatchConfig {
    /// The tables of `spec`, which the spec parser has already checked.
    pub fn from_spec(spec: &Spec) -> Result<WatchConfig, ConfigError> {
        let triggers = spec
            .triggers
            .clone()
            .ok_or_else(|| ConfigError::NoTriggers(spec.path.clone()))?;
        Ok(WatchConfig {
            triggers,
            promotion: spec.promotion.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn load(tables: &str) -> Result<WatchConfig, String> {
        let src = format!(
            "[pipeline]\nname = \"p\"\n[data]\nraw = \"a.csv\"\n[steps.s]\ncomponent = \"std:statistics\"\n{tables}"
        );
        let spec = Spec::parse(Path::new("dir/p.toml"), &src).map_err(|d| d.to_string())?;
        WatchConfig::from_spec(&spec).map_err(|e| e.to_string())
    }

    #[test]
    fn triggers_and_promotion_come_typed_from_the_spec() {
        let c = load(
            "[triggers]\nschedule = \"0 3 * * *\"\nnew-data = true\ndrift = { model = \"m@production\", min-rows = 5 }\npoll = \"200ms\"\n[promotion]\nproduction = true\n",
        )
        .unwrap();
        assert_eq!(
            c.triggers.schedule.as_ref().unwrap().to_string(),
            "0 3 * * *"
        );
        assert_eq!(c.triggers.new_data, Some(vec!["raw".to_string()]));
        assert_eq!(c.triggers.drift.as_ref().unwrap().min_rows, 5);
        assert_eq!(c.triggers.drift.as_ref().unwrap().threshold, 0.1);
        assert_eq!(c.triggers.poll, Duration::from_millis(200));
        assert_eq!(c.triggers.debounce, Duration::from_secs(2));
        assert!(c.promotion.staging && c.promotion.production);
        let c = load("[triggers]\nnew-data = [\"raw\"]\n").unwrap();
        assert_eq!(c.promotion, Promotion::default());
    }

    #[test]
    fn a_spec_without_triggers_cannot_be_watched() {
        let e = load("").unwrap_err();
        assert!(e.starts_with("dir/p.toml: no [triggers] table"), "{e}");
        // Mistakes in the tables are the spec parser's, with line and column.
        let e = load("[triggers]\nschedul = \"* * * * *\"\n").unwrap_err();
        assert!(e.contains("unknown key `schedul` in [triggers]"), "{e}");
        assert!(e.contains("dir/p.toml:8:1"), "{e}");
    }
}
