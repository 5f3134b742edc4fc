//! Continuous delivery for sluice: what stands between "a model version is
//! registered" and "it serves an environment".
//!
//! A model's **promotion policy** ([`PromotionPolicy`], from a spec's
//! `[promotion]` table or `sluice models policy --set`, stored in the
//! registry) names its environments in order — `staging`, then
//! `production` by default — and the **gates** of a move into each:
//!
//! - `blessing`: the version was pushed with a blessing document (from
//!   `std:model-validate`) that says `"blessed": true`, found through the
//!   lineage of the execution that registered it;
//! - `infra`: it was pushed with an infra blessing (`std:infra-validate`'s:
//!   served by the real model server within its budgets) that says so;
//! - `soak`: it held the previous environment's alias this long;
//! - `min-requests`, `max-error-rate`, `max-p99-ms`: what servers of the
//!   previous environment recorded while it held that alias (the store's
//!   serving windows, summed over every server).
//!
//! [`gates::check`] evaluates them; `sluice models promote` refuses a move
//! whose gates are unmet (or records the override with `--force`), and
//! `sluice watch` moves an alias only when they pass. Every move keeps the
//! gates' verdicts in the alias history.
//!
//! A **rollout** ([`rollout`]) validates a version online: it answers a
//! growing share of an alias's requests, stage by stage, and after each
//! stage [`rollout::tick`] compares it with the version the alias holds —
//! error rate (a one-sided two-proportion test) and p99 latency — then
//! advances, promotes or rolls back by itself, each decision kept with its
//! evidence. [`launch()`] starts one (for `sluice rollout start`, and for
//! `sluice watch` when a spec has `[promotion.rollout]`).
//!
//! An **A/B report** ([`ab::report`]) compares the versions that answered
//! an alias's requests — its primary and its canary — over a window:
//! requests, errors and latency per variant, live accuracy from true
//! labels, and the differences with confidence intervals ([`stats`]:
//! Wilson and Newcombe intervals, the two-proportion z-test).
//!
//! Neighbours: `sluice-store` holds the policy, the registry, the lineage
//! and the serving windows; `sluice-pipeline` parses the policy; the CLI
//! and `sluice-watch` call this crate.

pub mod ab;
pub mod gates;
pub mod launch;
pub mod rollout;
pub mod stats;

pub use gates::{Gate, Verdict, check};
pub use launch::{Launch, Refusal, launch};
pub use sluice_pipeline::spec::{PromotionPolicy, Requirements};

/// What can stop the gates from being checked.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The store could not be read.
    #[error(transparent)]
    Metadata(#[from] sluice_store::MetadataError),
    /// The stored policy is not one this sluice reads.
    #[error(
        "the promotion policy of `{name}` in the store is not valid: {reason}; set it again with `sluice models policy {name} --set FILE`"
    )]
    Policy {
        /// The model.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The feedback labels could not be joined with the logged requests.
    #[error("feedback labels: {0}")]
    Feedback(String),
    /// The version to move does not exist.
    #[error(
        "model `{name}` has no version {version}; `sluice models show {name}` lists its versions"
    )]
    NoVersion {
        /// The model.
        name: String,
        /// The version asked for.
        version: i64,
    },
}

/// The promotion policy stored for model `name`, if any.
pub fn policy(
    store: &sluice_store::Store,
    name: &str,
) -> Result<Option<PromotionPolicy>, DeliveryError> {
    let Some(stored) = store.metadata.promotion_policy(name)? else {
        return Ok(None);
    };
    serde_json::from_str(&stored.policy)
        .map(Some)
        .map_err(|e| DeliveryError::Policy {
            name: name.into(),
            reason: e.to_string(),
        })
}

/// The label column the card of registered `version` names, if its card
/// can be read and names one: the column feedback labels are read from.
pub(crate) fn card_label(
    store: &sluice_store::Store,
    version: &sluice_store::registry::ModelVersion,
) -> Option<String> {
    let bytes = store.objects.get(&version.artifact).ok()?;
    let card: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    card.get("label")?.as_str().map(str::to_string)
}
