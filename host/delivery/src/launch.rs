//! Starting a rollout: the checks `sluice rollout start` and `sluice
//! watch` make before a candidate takes its first share of an alias.

use crate::rollout::Plan;
use crate::{DeliveryError, Verdict};
use sluice_store::rollout::Rollout;
use sluice_store::{ModelRef, Store};
use std::time::SystemTime;

/// A rollout to start.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// The model.
    pub name: &'a str,
    /// The candidate version.
    pub version: i64,
    /// The alias it is rolled out on; the version the alias holds is the
    /// baseline.
    pub alias: &'a str,
    /// How it proceeds.
    pub plan: &'a Plan,
    /// Who starts it.
    pub who: &'a str,
    /// Why (kept with the rollout).
    pub reason: &'a str,
    /// Start it even though promotion gates are unmet.
    pub force: bool,
}

/// Why a rollout was not started, in terms the person or watcher that
/// asked can act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The plan cannot run.
    Plan(String),
    /// The alias holds no version to compare the candidate with.
    NoBaseline,
    /// The alias already holds the candidate.
    AlreadyThere,
    /// The policy's gates of a move into the alias are unmet.
    Gates(Verdict),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Plan(why) => write!(f, "{why}"),
            Refusal::NoBaseline => write!(
                f,
                "the alias points at no version, so there is nothing to compare a candidate with"
            ),
            Refusal::AlreadyThere => write!(f, "the alias already holds the version"),
            Refusal::Gates(v) => {
                let unmet: Vec<String> = v
                    .unmet()
                    .iter()
                    .map(|g| format!("{}: {}", g.gate, g.detail))
                    .collect();
                write!(f, "{} gate(s) unmet — {}", unmet.len(), unmet.join("; "))
            }
        }
    }
}

/// Starts rollout `l` at `now`: checks the plan, finds the baseline (the
/// version the alias holds), checks the policy's gates of a move into the
/// alias but `online` (unless `force`), and stores the rollout at its first share. Its
/// id is `NAME-VERSION-TIME`. A running rollout on the alias is a
/// [`sluice_store::MetadataError::Conflict`].
pub fn launch(
    store: &Store,
    l: &Launch<'_>,
    now: SystemTime,
) -> Result<Result<Rollout, Refusal>, DeliveryError> {
    if let Err(why) = l.plan.check() {
        return Ok(Err(Refusal::Plan(why)));
    }
    let Some(baseline) = store
        .metadata
        .resolve_model(&ModelRef::Alias(l.name.into(), l.alias.into()))?
    else {
        return Ok(Err(Refusal::NoBaseline));
    };
    if baseline.version == l.version {
        return Ok(Err(Refusal::AlreadyThere));
    }
    if let Some(policy) = crate::policy(store, l.name)? {
        // The rollout is how the `online` gate is passed, so it cannot
        // hold the rollout back.
        let mut verdict = crate::check(store, &policy, l.name, l.version, l.alias, now)?;
        verdict.gates.retain(|g| g.gate != crate::gates::ONLINE);
        if !verdict.passed() && !l.force {
            return Ok(Err(Refusal::Gates(verdict)));
        }
    }
    let id = format!(
        "{}-{}-{}",
        l.name,
        l.version,
        sluice_store::time::compact(now)
    );
    let plan = serde_json::to_value(l.plan).expect("a plan serialises");
    Ok(Ok(store.metadata.start_rollout(
        &id,
        l.name,
        l.alias,
        baseline.version,
        l.version,
        &plan,
        l.plan.steps[0],
        l.who,
        l.reason,
        &sluice_store::time::rfc3339(now),
    )?))
}
