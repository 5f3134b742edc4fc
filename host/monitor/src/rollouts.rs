//! A model's rollouts as reports show them: each rollout with every
//! decision and the evidence it was taken on. `sluice rollout show`,
//! `sluice models show` and the monitoring report (JSON and HTML) all use
//! these functions, so they say the same thing in the same words.
//!
//! The evidence is read as `sluice-delivery` stores it (see
//! `sluice_delivery::rollout::tick`): `window`, `candidate` and `baseline`
//! (requests, errors, error rate, p99), `tests` (criterion, passed,
//! detail), `quality` (live accuracy, with feedback) and `plan`; an abort
//! stores its `reason`. Keys that are missing are left out of the line.

use serde::Serialize;
use serde_json::Value;
use sluice_store::rollout::{Rollout, RolloutDecision};
use sluice_store::{MetadataError, Store};

/// A rollout with its decisions in order: what `sluice rollout show ID
/// --json` prints, and one entry of the `rollouts` arrays of `sluice
/// models show --json` and the monitoring report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutHistory {
    /// The rollout as stored.
    pub rollout: Rollout,
    /// Its decisions, oldest first, with their evidence as stored.
    pub decisions: Vec<RolloutDecision>,
}

/// Every rollout of model `name`, oldest first, each with its decisions.
pub fn history(store: &Store, name: &str) -> Result<Vec<RolloutHistory>, MetadataError> {
    store
        .metadata
        .rollouts(name)?
        .into_iter()
        .map(|rollout| {
            let decisions = store.metadata.rollout_decisions(&rollout.id)?;
            Ok(RolloutHistory { rollout, decisions })
        })
        .collect()
}

/// The rollouts of `all` that ran at some time since `since` (RFC 3339;
/// `None` keeps all): those still running and those that ended at or after
/// it. What a report over a window shows: a rollout that ended before the
/// window opened had no say in the traffic it reports on.
pub fn in_window(all: Vec<RolloutHistory>, since: Option<&str>) -> Vec<RolloutHistory> {
    let Some(since) = since else {
        return all;
    };
    all.into_iter()
        .filter(|h| h.rollout.state == "running" || h.rollout.updated_at.as_str() >= since)
        .collect()
}

/// Rollout `id` with its decisions, if it exists.
pub fn one(store: &Store, id: &str) -> Result<Option<RolloutHistory>, MetadataError> {
    let Some(rollout) = store.metadata.rollout(id)? else {
        return Ok(None);
    };
    let decisions = store.metadata.rollout_decisions(id)?;
    Ok(Some(RolloutHistory { rollout, decisions }))
}

/// The rollout in one line: `rollout ID: NAME:CANDIDATE on NAME@ALIAS
/// (baseline B), STATE — stage N, S%`.
pub fn headline(r: &Rollout) -> String {
    format!(
        "rollout {}: {}:{} on {}@{} (baseline {}), {} — stage {}, {}%",
        r.id,
        r.name,
        r.candidate,
        r.name,
        r.alias,
        r.baseline,
        r.state,
        r.stage + 1,
        r.share
    )
}

/// When it started and by whom, and when it ended if it did.
pub fn timeline(r: &Rollout) -> String {
    let mut s = format!("started {} by {}", r.started_at, r.who);
    if r.state != "running" {
        s.push_str(&format!(", ended {} ({})", r.updated_at, r.state));
    }
    s
}

/// The plan in one line: its stages, window and criteria.
pub fn plan_summary(plan: &Value) -> String {
    let steps: Vec<String> = plan["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .map(|s| format!("{s}%"))
        .collect();
    let mut parts = vec![format!(
        "stages {}{}",
        if steps.is_empty() {
            "?".to_string()
        } else {
            steps.join(" → ")
        },
        plan["window_ms"]
            .as_u64()
            .map(|ms| format!(" of {} each", millis(ms)))
            .unwrap_or_default()
    )];
    if let Some(n) = plan["min_requests"].as_u64() {
        parts.push(format!("at least {n} candidate requests a stage"));
    }
    if let (Some(x), Some(a)) = (
        plan["max_error_rate_increase"].as_f64(),
        plan["alpha"].as_f64(),
    ) {
        parts.push(format!(
            "error rate at most {:+.2} points (one-sided alpha {a})",
            x * 100.0
        ));
    }
    if let Some(x) = plan["max_p99_ratio"].as_f64() {
        parts.push(format!("p99 at most {x}× the baseline's"));
    }
    if let Some(x) = plan["max_prediction_divergence"].as_f64() {
        parts.push(format!(
            "predictions distributed alike (Jensen–Shannon at most {x})"
        ));
    }
    if let Some(f) = plan["feedback"].as_str() {
        parts.push(format!(
            "accuracy at most {:.2} points lower on at least {} labels a side ({f})",
            plan["max_accuracy_drop"].as_f64().unwrap_or(0.0) * 100.0,
            plan["min_labels"].as_u64().unwrap_or(0)
        ));
    }
    parts.join("; ")
}

fn millis(ms: u64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 && ms > 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 && ms > 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// The candidate's share, in percent, during stage `stage` of `plan`.
pub fn stage_share(plan: &Value, stage: i64) -> Option<f64> {
    plan["steps"]
        .as_array()?
        .get(usize::try_from(stage).ok()?)?
        .as_f64()
}

/// A decision in one line: `AT  stage N (S%): DECISION by HOLDER`.
pub fn decision_headline(plan: &Value, d: &RolloutDecision) -> String {
    format!(
        "{}  stage {}{}: {} by {}",
        d.at,
        d.stage + 1,
        stage_share(plan, d.stage)
            .map(|s| format!(" ({s}%)"))
            .unwrap_or_default(),
        d.decision,
        d.holder
    )
}

/// The evidence of a decision in one readable line: the window, each
/// side's requests, errors, error rate and p99, the p99 ratio, the
/// error-rate test's z and one-sided p-value, live accuracy when judged,
/// and each test's verdict. `None` when the evidence holds nothing to say.
pub fn evidence_line(evidence: &Value) -> Option<String> {
    let mut parts = Vec::new();
    if let (Some(from), Some(to)) = (
        evidence["window"]["from"].as_str(),
        evidence["window"]["to"].as_str(),
    ) {
        parts.push(format!("window {from} → {to}"));
    }
    for side in ["candidate", "baseline"] {
        if let Some(s) = side_summary(&evidence[side]) {
            parts.push(format!("{side} {s}"));
        }
    }
    if let (Some(c), Some(b)) = (
        evidence["candidate"]["p99_ms"].as_f64(),
        evidence["baseline"]["p99_ms"].as_f64(),
    ) && b > 0.0
    {
        parts.push(format!("p99 ratio {:.2}×", c / b));
    }
    let tests: Vec<&Value> = evidence["tests"].as_array().into_iter().flatten().collect();
    if let Some(t) = tests.iter().find(|t| t["criterion"] == "error-rate")
        && let Some(z) = t["z"].as_f64()
    {
        // Decisions recorded before the statistic was kept as a number
        // show none.
        match t["p_value"].as_f64() {
            Some(p) => parts.push(format!("error-rate z = {z:.2}, {}", p_value(p))),
            None => parts.push(format!("error-rate z = {z:.2}")),
        }
    }
    let quality = &evidence["quality"];
    if let (Some(c), Some(b)) = (
        quality["candidate"]["accuracy"].as_f64(),
        quality["baseline"]["accuracy"].as_f64(),
    ) {
        parts.push(format!(
            "accuracy candidate {:.2}% of {} labelled vs baseline {:.2}% of {}",
            c * 100.0,
            quality["candidate"]["labelled"].as_u64().unwrap_or(0),
            b * 100.0,
            quality["baseline"]["labelled"].as_u64().unwrap_or(0)
        ));
    }
    if !tests.is_empty() {
        let verdicts: Vec<String> = tests
            .iter()
            .map(|t| format!("{} {}", t["criterion"].as_str().unwrap_or("?"), verdict(t)))
            .collect();
        parts.push(format!("tests: {}", verdicts.join(", ")));
    }
    if let Some(reason) = evidence["reason"].as_str() {
        parts.push(format!("reason: {reason}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// One side of the evidence: `vN: R requests, E errors (X.XX%), p99 P ms`.
fn side_summary(side: &Value) -> Option<String> {
    let requests = side["requests"].as_u64()?;
    let errors =
        side["errors_4xx"].as_u64().unwrap_or(0) + side["errors_5xx"].as_u64().unwrap_or(0);
    let mut s = format!(
        "v{}: {requests} requests, {errors} errors",
        side["version"].as_i64().unwrap_or(0)
    );
    if let Some(rate) = side["error_rate"].as_f64() {
        s.push_str(&format!(" ({:.2}%)", rate * 100.0));
    }
    if let Some(p99) = side["p99_ms"].as_f64() {
        s.push_str(&format!(", p99 {p99} ms"));
    }
    Some(s)
}

fn verdict(test: &Value) -> &'static str {
    if test["passed"] == true {
        "passed"
    } else {
        "FAILED"
    }
}

/// Each test of the evidence: `CRITERION passed|FAILED: DETAIL`.
pub fn test_lines(evidence: &Value) -> Vec<String> {
    evidence["tests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{} {}: {}",
                t["criterion"].as_str().unwrap_or(""),
                verdict(t),
                t["detail"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// A rollout as lines of text: its headline, then — indented — when it
/// ran, its plan, its reason, and each decision with its evidence and
/// tests. What `sluice rollout show` prints, and `sluice models show`
/// under "rollouts:".
pub fn describe(h: &RolloutHistory) -> Vec<String> {
    let r = &h.rollout;
    let mut lines = vec![
        headline(r),
        format!("  {}", timeline(r)),
        format!("  plan: {}", plan_summary(&r.plan)),
    ];
    if !r.reason.is_empty() {
        lines.push(format!("  {}", r.reason));
    }
    if h.decisions.is_empty() {
        lines.push("  no decision yet".into());
    }
    for d in &h.decisions {
        lines.push(format!("  {}", decision_headline(&r.plan, d)));
        if let Some(e) = evidence_line(&d.evidence) {
            lines.push(format!("    {e}"));
        }
        for t in test_lines(&d.evidence) {
            lines.push(format!("    {t}"));
        }
    }
    lines
}

/// `p = 0.1234`, or `p < 0.0001`.
fn p_value(p: f64) -> String {
    if p < 0.0001 {
        "p < 0.0001".into()
    } else {
        format!("p = {p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn evidence() -> Value {
        json!({
            "window": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:01Z"},
            "candidate": {"version": 3, "requests": 40, "errors_4xx": 40, "errors_5xx": 0, "error_rate": 1.0, "p99_ms": 2.0},
            "baseline": {"version": 2, "requests": 160, "errors_4xx": 0, "errors_5xx": 0, "error_rate": 0.0, "p99_ms": 4.0},
            "tests": [
                {"criterion": "error-rate", "passed": false, "detail": "candidate 100.00% of 40 vs baseline 0.00% of 160 (allowed +1.00 points; z = 13.93, one-sided alpha 0.05)", "z": 13.93, "p_value": 2.1e-44},
                {"criterion": "p99", "passed": true, "detail": "not judged: 40 and 160 requests, fewer than the 100 a p99 needs on each side"}
            ],
            "quality": null,
            "plan": {"steps": [20.0, 50.0]}
        })
    }

    #[test]
    fn a_window_keeps_the_rollouts_running_in_it_or_ended_in_it() {
        let rollout = |id: &str, state: &str, updated_at: &str| RolloutHistory {
            rollout: Rollout {
                id: id.into(),
                name: "m".into(),
                alias: "production".into(),
                baseline: 1,
                candidate: 2,
                plan: json!({}),
                stage: 0,
                share: 10.0,
                state: state.into(),
                started_at: "2026-01-01T00:00:00.000Z".into(),
                stage_started_at: "2026-01-01T00:00:00.000Z".into(),
                updated_at: updated_at.into(),
                who: "ann".into(),
                reason: String::new(),
            },
            decisions: Vec::new(),
        };
        let all = vec![
            rollout("ended-before", "promoted", "2026-01-01T00:10:00.000Z"),
            rollout("ended-in", "rolled-back", "2026-01-02T00:10:00.000Z"),
            // Last touched before the window, but still splitting traffic.
            rollout("running", "running", "2026-01-01T00:20:00.000Z"),
        ];
        let ids = |kept: Vec<RolloutHistory>| -> Vec<String> {
            kept.into_iter().map(|h| h.rollout.id).collect()
        };
        assert_eq!(
            ids(in_window(all.clone(), Some("2026-01-02T00:00:00.000Z"))),
            ["ended-in", "running"]
        );
        assert_eq!(ids(in_window(all, None)).len(), 3);
    }

    #[test]
    fn the_evidence_line_holds_both_sides_the_test_and_the_verdicts() {
        let line = evidence_line(&evidence()).unwrap();
        assert_eq!(
            line,
            "window 2026-01-01T00:00:00Z → 2026-01-01T00:00:01Z; \
             candidate v3: 40 requests, 40 errors (100.00%), p99 2 ms; \
             baseline v2: 160 requests, 0 errors (0.00%), p99 4 ms; \
             p99 ratio 0.50×; error-rate z = 13.93, p < 0.0001; \
             tests: error-rate FAILED, p99 passed"
        );
        // An abort's evidence is its reason.
        assert_eq!(
            evidence_line(&json!({"reason": "wrong day"})).unwrap(),
            "reason: wrong day"
        );
        assert_eq!(evidence_line(&Value::Null), None);
    }

    #[test]
    fn live_accuracy_shows_when_judged() {
        let mut e = evidence();
        e["quality"] = json!({
            "label": "diagnosis",
            "candidate": {"right": 20, "labelled": 40, "accuracy": 0.5},
            "baseline": {"right": 38, "labelled": 40, "accuracy": 0.95}
        });
        assert!(
            evidence_line(&e)
                .unwrap()
                .contains("accuracy candidate 50.00% of 40 labelled vs baseline 95.00% of 40")
        );
    }

    #[test]
    fn p_values_read_as_the_decider_recorded_them() {
        assert_eq!(p_value(0.0312), "p = 0.0312");
        assert_eq!(p_value(2e-9), "p < 0.0001");
        // A decision recorded before p-values were kept shows its z alone.
        let mut e = evidence();
        e["tests"][0].as_object_mut().unwrap().remove("p_value");
        assert!(
            evidence_line(&e)
                .unwrap()
                .contains("error-rate z = 13.93; tests:"),
            "{:?}",
            evidence_line(&e)
        );
    }

    #[test]
    fn plans_read_as_a_sentence() {
        let plan = json!({
            "steps": [20.0, 50.0], "window_ms": 1000, "min_requests": 15,
            "max_error_rate_increase": 0.01, "alpha": 0.05, "max_p99_ratio": 1.5,
            "min_labels": 50, "max_accuracy_drop": 0.02
        });
        assert_eq!(
            plan_summary(&plan),
            "stages 20% → 50% of 1s each; at least 15 candidate requests a stage; \
             error rate at most +1.00 points (one-sided alpha 0.05); p99 at most 1.5× the baseline's"
        );
        assert_eq!(stage_share(&plan, 1), Some(50.0));
        assert_eq!(stage_share(&plan, 2), None);
    }
}
