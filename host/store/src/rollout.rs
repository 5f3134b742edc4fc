//! Rollouts: a candidate version taking a growing share of an alias's
//! traffic, stage by stage, until it is promoted (the alias moves to it)
//! or rolled back (its share goes to 0). The row is the truth every server
//! follows; each stage is decided once, by whoever decides it, in one
//! transaction with the row's change (and, for a promotion, the alias's
//! move), so two deciders racing cannot both apply a stage.

use crate::db::{Metadata, MetadataError, vals};
use crate::registry::{AliasRequest, Refusal, move_alias_in};
use serde::Serialize;

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    /// Its id.
    pub id: String,
    /// The model.
    pub name: String,
    /// The alias the candidate is rolled out on (e.g. `production`).
    pub alias: String,
    /// The version the alias held when the rollout started.
    pub baseline: i64,
    /// The version rolled out.
    pub candidate: i64,
    /// The plan, as JSON (stages, window, criteria); `sluice-delivery`
    /// reads it.
    pub plan: serde_json::Value,
    /// The stage now (0 for the first).
    pub stage: i64,
    /// The share of requests the candidate answers now, in percent.
    pub share: f64,
    /// `running`, `promoted`, `rolled-back` or `aborted`.
    pub state: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When the current stage started.
    pub stage_started_at: String,
    /// When the row last changed.
    pub updated_at: String,
    /// Who started it.
    pub who: String,
    /// Why it started, or how it ended.
    pub reason: String,
}

/// One decision of a rollout: a stage passed, or the rollout ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutDecision {
    /// The rollout.
    pub rollout_id: String,
    /// The stage decided.
    pub stage: i64,
    /// When (RFC 3339).
    pub at: String,
    /// `advance`, `promote`, `rollback` or `abort`.
    pub decision: String,
    /// What it was decided on, as JSON: both versions' requests, errors
    /// and latency over the stage, the tests and their thresholds.
    pub evidence: serde_json::Value,
    /// Who decided.
    pub holder: String,
}

/// What a decision changes (see [`Metadata::decide_rollout`]).
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// `advance`, `promote`, `rollback` or `abort`.
    pub decision: &'a str,
    /// The stage after it (for `advance`, the next).
    pub stage: i64,
    /// The candidate's share after it.
    pub share: f64,
    /// The state after it.
    pub state: &'a str,
    /// The evidence, as JSON.
    pub evidence: serde_json::Value,
    /// Who decides.
    pub holder: &'a str,
    /// The reason kept on the rollout (and, for a promotion, in the alias
    /// history).
    pub reason: &'a str,
    /// When (RFC 3339).
    pub now: &'a str,
}

const COLUMNS: &str = "id, name, alias, baseline, candidate, plan, stage, share, state, started_at, stage_started_at, updated_at, who, reason";

impl Metadata {
    /// Starts a rollout of `candidate` on `name@alias` (which holds
    /// `baseline`) at `share` percent; refused if one is running there.
    #[allow(clippy::too_many_arguments)]
    pub fn start_rollout(
        &self,
        id: &str,
        name: &str,
        alias: &str,
        baseline: i64,
        candidate: i64,
        plan: &serde_json::Value,
        share: f64,
        who: &str,
        reason: &str,
        now: &str,
    ) -> Result<Rollout, MetadataError> {
        if let Some(running) = self.running_rollout(name, alias)? {
            return Err(MetadataError::Conflict(format!(
                "rollout {} of {name}:{} on {name}@{alias} is still running; `sluice rollout abort {}` ends it",
                running.id, running.candidate, running.id
            )));
        }
        let plan_text = plan.to_string();
        self.write(|c| {
            c.execute(
                &format!(
                    "INSERT INTO rollouts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, 'running', ?8, ?8, ?8, ?9, ?10)"
                ),
                vals![id, name, alias, baseline, candidate, plan_text, share, now, who, reason],
            )?;
            Ok(())
        })?;
        self.rollout(id)?
            .ok_or_else(|| MetadataError::NotFound(format!("rollout {id} vanished")))
    }

    /// The rollout `id`, if it exists.
    pub fn rollout(&self, id: &str) -> Result<Option<Rollout>, MetadataError> {
        Ok(self.rollouts_where("id = ?1", id)?.into_iter().next())
    }

    /// The rollout running on `name@alias`, if any: what its servers follow.
    pub fn running_rollout(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<Option<Rollout>, MetadataError> {
        let key = format!("{name}@{alias}");
        Ok(self
            .rollouts_where("name || '@' || alias = ?1 AND state = 'running'", &key)?
            .into_iter()
            .next())
    }

    /// Every rollout of model `name`, oldest first.
    pub fn rollouts(&self, name: &str) -> Result<Vec<Rollout>, MetadataError> {
        self.rollouts_where("name = ?1", name)
    }

    fn rollouts_where(&self, condition: &str, value: &str) -> Result<Vec<Rollout>, MetadataError> {
        self.read(|c| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM rollouts WHERE {condition} ORDER BY started_at, id"
                ),
                vals![value],
            )?
            .iter()
            .map(|r| {
                let plan: String = r.get(5)?;
                Ok(Rollout {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    alias: r.get(2)?,
                    baseline: r.get(3)?,
                    candidate: r.get(4)?,
                    plan: serde_json::from_str(&plan).unwrap_or(serde_json::Value::Null),
                    stage: r.get(6)?,
                    share: r.get(7)?,
                    state: r.get(8)?,
                    started_at: r.get(9)?,
                    stage_started_at: r.get(10)?,
                    updated_at: r.get(11)?,
                    who: r.get(12)?,
                    reason: r.get(13)?,
                })
            })
            .collect()
        })
    }

    /// The decisions of rollout `id`, in order.
    pub fn rollout_decisions(&self, id: &str) -> Result<Vec<RolloutDecision>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT rollout_id, stage, at, decision, evidence, holder FROM rollout_decisions
                 WHERE rollout_id = ?1 ORDER BY id",
                vals![id],
            )?
            .iter()
            .map(|r| {
                let evidence: String = r.get(4)?;
                Ok(RolloutDecision {
                    rollout_id: r.get(0)?,
                    stage: r.get(1)?,
                    at: r.get(2)?,
                    decision: r.get(3)?,
                    evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::Null),
                    holder: r.get(5)?,
                })
            })
            .collect()
        })
    }

    /// Applies `decision` to stage `stage` of the running rollout `id`, in
    /// one transaction: records the decision, changes the row, and for
    /// `promote` moves the alias to the candidate — only if it still holds
    /// the baseline, else nothing is written and the error says who holds
    /// it. `Ok(false)` when the stage was decided already or the rollout is
    /// no longer running (another decider was first).
    pub fn decide_rollout(
        &self,
        id: &str,
        stage: i64,
        decision: &Decision<'_>,
    ) -> Result<bool, MetadataError> {
        let Some(rollout) = self.rollout(id)? else {
            return Err(MetadataError::NotFound(format!("no rollout {id}")));
        };
        let evidence = decision.evidence.to_string();
        let request = AliasRequest {
            name: &rollout.name,
            alias: &rollout.alias,
            version: rollout.candidate,
            expected: Some(Some(rollout.baseline)),
            who: decision.holder,
            reason: decision.reason,
            forced: false,
            gates: None,
            now: decision.now,
        };
        self.write(|c| {
            if decision.decision == "promote" {
                // Checked before anything is written: a refused promotion
                // leaves no decision behind.
                let holder: Option<i64> = match c.query_opt(
                    "SELECT version FROM model_aliases WHERE name = ?1 AND alias = ?2",
                    vals![rollout.name, rollout.alias],
                )? {
                    Some(row) => row.get(0)?,
                    None => None,
                };
                if holder != Some(rollout.baseline) {
                    return Ok(Err(Refusal::Moved(holder).error(&request)));
                }
            }
            let changed = c.execute(
                "UPDATE rollouts SET stage = ?1, share = ?2, state = ?3, updated_at = ?4,
                     stage_started_at = ?4, reason = ?5
                 WHERE id = ?6 AND stage = ?7 AND state = 'running'",
                vals![
                    decision.stage,
                    decision.share,
                    decision.state,
                    decision.now,
                    decision.reason,
                    id,
                    stage
                ],
            )?;
            if changed == 0 {
                return Ok(Ok(false));
            }
            c.execute(
                "INSERT INTO rollout_decisions (rollout_id, stage, at, decision, evidence, holder)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                vals![
                    id,
                    stage,
                    decision.now,
                    decision.decision,
                    evidence,
                    decision.holder
                ],
            )?;
            if decision.decision == "promote"
                && let Err(refusal) = move_alias_in(c, &request)?
            {
                return Ok(Err(refusal.error(&request)));
            }
            Ok(Ok(true))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;
    use crate::registry::tests::push;

    /// Every backend, each with model `churn` versions 1 and 2 and
    /// `production` on 1.
    fn stores_with_two_versions() -> Vec<(tempfile::TempDir, Metadata)> {
        let all = crate::db::tests::backends();
        for (_, m) in &all {
            m.start_run("r", "p", "p.toml", &Digest::of(b"s"), "manual", "t0", None)
                .unwrap();
            push(m, "r", "a", "churn", Digest::of(b"v1"));
            push(m, "r", "b", "churn", Digest::of(b"v2"));
            m.set_alias("churn", "production", 1, "ann", "", "t1")
                .unwrap();
        }
        all
    }

    fn decision<'a>(kind: &'a str, stage: i64, state: &'a str) -> Decision<'a> {
        Decision {
            decision: kind,
            stage,
            share: 50.0,
            state,
            evidence: serde_json::json!({"n": 1}),
            holder: "test",
            reason: "because",
            now: "t5",
        }
    }

    #[test]
    fn a_stage_is_decided_once_and_a_promotion_moves_the_alias_with_it() {
        for (_dir, m) in stores_with_two_versions() {
            let plan = serde_json::json!({"steps": [5, 50]});
            m.start_rollout(
                "r1",
                "churn",
                "production",
                1,
                2,
                &plan,
                5.0,
                "ann",
                "",
                "t2",
            )
            .unwrap();
            assert_eq!(
                m.running_rollout("churn", "production")
                    .unwrap()
                    .unwrap()
                    .share,
                5.0
            );
            assert!(
                m.decide_rollout("r1", 0, &decision("advance", 1, "running"))
                    .unwrap()
            );
            // The same stage again (a second controller): refused, nothing written.
            assert!(
                !m.decide_rollout("r1", 0, &decision("advance", 1, "running"))
                    .unwrap()
            );
            assert!(
                m.decide_rollout("r1", 1, &decision("promote", 1, "promoted"))
                    .unwrap()
            );
            assert_eq!(m.running_rollout("churn", "production").unwrap(), None);
            let history = m.alias_history("churn").unwrap();
            assert_eq!(
                (
                    history.last().unwrap().version,
                    history.last().unwrap().who.as_str()
                ),
                (2, "test")
            );
            let kinds: Vec<String> = m
                .rollout_decisions("r1")
                .unwrap()
                .into_iter()
                .map(|d| d.decision)
                .collect();
            assert_eq!(kinds, ["advance", "promote"]);
        }
    }

    #[test]
    fn a_promotion_after_someone_moved_the_alias_writes_nothing() {
        for (_dir, m) in stores_with_two_versions() {
            m.start_rollout(
                "r1",
                "churn",
                "production",
                1,
                2,
                &serde_json::json!({}),
                5.0,
                "ann",
                "",
                "t2",
            )
            .unwrap();
            m.set_alias("churn", "production", 2, "bob", "by hand", "t3")
                .unwrap();
            let err = m
                .decide_rollout("r1", 0, &decision("promote", 0, "promoted"))
                .unwrap_err();
            assert!(matches!(err, MetadataError::Conflict(_)), "{err}");
            assert!(m.rollout_decisions("r1").unwrap().is_empty());
            assert_eq!(m.rollout("r1").unwrap().unwrap().state, "running");
        }
    }
}
