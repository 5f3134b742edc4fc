//! Canary analysis: a rollout moves a candidate version through growing
//! shares of an alias's traffic, and after each stage's window compares
//! it with the version the alias holds (the baseline) on what servers
//! recorded — error rate and latency — then advances, promotes (moves the
//! alias) or rolls back, without a person.
//!
//! The store's `rollouts` row is the truth: servers follow its share, and
//! [`tick`] — run by `sluice rollout run`, by anyone, any number of times —
//! decides a stage at most once (the store refuses a second decision of
//! the same stage), so a controller that dies is simply started again.

use crate::DeliveryError;
use crate::stats::{one_sided_z, z_quantile};
use serde::{Deserialize, Serialize};
use sluice_store::Store;
use sluice_store::rollout::{Decision, Rollout};
use sluice_store::serving_stats::{ServingRole, ServingTotals};
use std::time::{Duration, SystemTime};

/// How a rollout proceeds and what it checks at each stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The candidate's share at each stage, in percent, increasing, each
    /// below 100: after the last stage passes, the alias moves to it.
    pub steps: Vec<f64>,
    /// How long each stage lasts at least (milliseconds in JSON).
    pub window_ms: u64,
    /// Requests the candidate must have answered in a stage before it is
    /// judged; the stage waits for them.
    pub min_requests: u64,
    /// How much higher than the baseline's the candidate's error rate may
    /// be (absolute: 0.01 is one point) before it counts against it.
    pub max_error_rate_increase: f64,
    /// The significance of the error-rate test (one-sided).
    pub alpha: f64,
    /// How many times the baseline's p99 latency the candidate's may be.
    pub max_p99_ratio: f64,
    /// A file of true labels (CSV or Parquet: `request_id`, the model's
    /// label column, optionally `row`), read again at every decision and
    /// joined with both versions' logged requests: live quality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// Labelled requests each side needs in a stage before it is judged
    /// (with `feedback`).
    #[serde(default = "default_min_labels")]
    pub min_labels: u64,
    /// How far below the baseline's the candidate's live accuracy may be
    /// (absolute: 0.02 is two points) before it counts against it.
    #[serde(default = "default_max_accuracy_drop")]
    pub max_accuracy_drop: f64,
    /// The largest Jensen–Shannon divergence (base 2, 0 to 1) between the
    /// two versions' logged predictions in a stage: a candidate whose
    /// answers are distributed unlike the baseline's (one class for every
    /// request, a shifted regression) is rolled back even when no label
    /// has arrived.
    #[serde(default = "default_max_prediction_divergence")]
    pub max_prediction_divergence: f64,
}

fn default_min_labels() -> u64 {
    50
}

fn default_max_accuracy_drop() -> f64 {
    0.02
}

fn default_max_prediction_divergence() -> f64 {
    0.1
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            steps: vec![5.0, 25.0, 50.0],
            window_ms: 10 * 60 * 1000,
            min_requests: 200,
            max_error_rate_increase: 0.01,
            alpha: 0.05,
            max_p99_ratio: 1.5,
            feedback: None,
            min_labels: default_min_labels(),
            max_accuracy_drop: default_max_accuracy_drop(),
            max_prediction_divergence: default_max_prediction_divergence(),
        }
    }
}

impl Plan {
    /// Whether the plan can run; why not, in a sentence, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("a rollout needs at least one step".into());
        }
        let mut previous = 0.0;
        for &s in &self.steps {
            if !(s > previous && s < 100.0) {
                return Err(format!(
                    "steps must increase and stay between 0 and 100 (the last passing stage promotes): {s} after {previous}"
                ));
            }
            previous = s;
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(format!(
                "alpha {} is not a significance level between 0 and 0.5",
                self.alpha
            ));
        }
        if !(self.max_error_rate_increase >= 0.0 && self.max_error_rate_increase < 1.0) {
            return Err("the allowed error-rate increase is a share between 0 and 1".into());
        }
        if self.max_p99_ratio < 1.0 {
            return Err("the allowed p99 ratio is at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.max_prediction_divergence) {
            return Err(
                "the allowed prediction divergence is a Jensen–Shannon divergence between 0 and 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One criterion of a stage's judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Test {
    /// `error-rate` or `p99`.
    pub criterion: String,
    /// Whether the candidate passed it.
    pub passed: bool,
    /// What was compared, with the numbers.
    pub detail: String,
    /// The test statistic of a significance test (one-sided z), for
    /// reports to read without parsing `detail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
    /// Its one-sided p-value: the chance of a `z` this large or larger if
    /// the candidate were no worse than allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
}

impl Test {
    /// A test that is not a significance test (a ratio, a count).
    fn plain(criterion: &str, passed: bool, detail: String) -> Self {
        Test {
            criterion: criterion.into(),
            passed,
            detail,
            z: None,
            p_value: None,
        }
    }

    /// A one-sided significance test with statistic `z`.
    fn significance(criterion: &str, passed: bool, detail: String, z: f64) -> Self {
        Test {
            criterion: criterion.into(),
            passed,
            detail,
            z: z.is_finite().then_some(z),
            p_value: z.is_finite().then(|| crate::stats::normal_sf(z)),
        }
    }
}

/// What [`tick`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Tick {
    /// The stage is not over yet: its window has not passed, or the
    /// candidate has not answered enough requests.
    Wait(String),
    /// The stage was decided: `advance`, `promote` or `rollback`.
    Decided {
        /// The decision.
        decision: String,
        /// Why, in a sentence.
        reason: String,
    },
    /// Another decider decided this stage first, or the rollout ended.
    Ended(String),
}

/// Decides the current stage of rollout `id` if it is over: compares the
/// candidate's serving windows of the stage with the baseline's, then
/// advances to the next share, promotes, or rolls back.
pub fn tick(store: &Store, id: &str, now: SystemTime, holder: &str) -> Result<Tick, DeliveryError> {
    let Some(r) = store.metadata.rollout(id)? else {
        return Ok(Tick::Ended(format!("there is no rollout {id}")));
    };
    if r.state != "running" {
        return Ok(Tick::Ended(format!("rollout {id} is {}", r.state)));
    }
    let plan: Plan = serde_json::from_value(r.plan.clone()).map_err(|e| DeliveryError::Policy {
        name: r.name.clone(),
        reason: format!("rollout {id}'s plan: {e}"),
    })?;
    let started = sluice_store::time::parse_rfc3339(&r.stage_started_at).unwrap_or(now);
    let elapsed = now.duration_since(started).unwrap_or_default();
    let window = Duration::from_millis(plan.window_ms);
    if elapsed < window {
        return Ok(Tick::Wait(format!(
            "stage {} ({}%) has run {:.1}s of its {:.1}s",
            r.stage + 1,
            r.share,
            elapsed.as_secs_f64(),
            window.as_secs_f64()
        )));
    }
    let since = &r.stage_started_at;
    // The alias rolled out on: the route whose traffic both sides' windows
    // and logged requests must come from.
    let reference = format!("{}@{}", r.name, r.alias);
    let candidate = store.metadata.serving_totals_in_route(
        &r.name,
        r.candidate,
        &reference,
        ServingRole::Canary,
        since,
    )?;
    let baseline = store.metadata.serving_totals_in_role(
        &r.name,
        r.baseline,
        Some(&reference),
        ServingRole::Primary,
        since,
    )?;
    if candidate.requests < plan.min_requests {
        return Ok(Tick::Wait(format!(
            "stage {} ({}%): version {} has answered {} of the {} requests a stage needs",
            r.stage + 1,
            r.share,
            r.candidate,
            candidate.requests,
            plan.min_requests
        )));
    }
    let mut tests = judge(&plan, &candidate, &baseline);
    let mut quality = serde_json::Value::Null;
    if let Some(path) = &plan.feedback {
        match live_quality(store, &r, &reference, path, &plan)? {
            Quality::Wait(why) => {
                return Ok(Tick::Wait(format!(
                    "stage {} ({}%): {why}",
                    r.stage + 1,
                    r.share
                )));
            }
            Quality::Judged { test, evidence } => {
                tests.push(test);
                quality = evidence;
            }
        }
    }
    let (divergence, predictions) = divergence_test(store, &r, &reference, &plan, since)?;
    tests.push(divergence);
    let failed: Vec<&Test> = tests.iter().filter(|t| !t.passed).collect();
    let last = r.stage as usize + 1 >= plan.steps.len();
    let stage_name = format!("stage {} ({}%)", r.stage + 1, r.share);
    let (decision, stage, share, state, reason) = if !failed.is_empty() {
        let why: Vec<String> = failed
            .iter()
            .map(|t| format!("{}: {}", t.criterion, t.detail))
            .collect();
        (
            "rollback",
            r.stage,
            0.0,
            "rolled-back",
            format!("rolled back at {stage_name}: {}", why.join("; ")),
        )
    } else if last {
        (
            "promote",
            r.stage,
            100.0,
            "promoted",
            format!("promoted after {stage_name} passed (rollout {id})"),
        )
    } else {
        let next = plan.steps[r.stage as usize + 1];
        (
            "advance",
            r.stage + 1,
            next,
            "running",
            format!("{stage_name} passed; {next}% next"),
        )
    };
    let evidence = serde_json::json!({
        "window": {"from": since, "to": sluice_store::time::rfc3339(now)},
        "candidate": side(r.candidate, &candidate),
        "baseline": side(r.baseline, &baseline),
        "tests": tests,
        "quality": quality,
        "predictions": predictions,
        "plan": plan,
    });
    let applied = store.metadata.decide_rollout(
        id,
        r.stage,
        &Decision {
            decision,
            stage,
            share,
            state,
            evidence,
            holder,
            reason: &reason,
            now: &sluice_store::time::rfc3339(now),
        },
    )?;
    Ok(if applied {
        Tick::Decided {
            decision: decision.into(),
            reason,
        }
    } else {
        Tick::Ended(format!(
            "{stage_name} of rollout {id} was decided by another controller"
        ))
    })
}

fn side(version: i64, t: &ServingTotals) -> serde_json::Value {
    serde_json::json!({
        "version": version,
        "requests": t.requests,
        "errors_4xx": t.errors_4xx,
        "errors_5xx": t.errors_5xx,
        "error_rate": t.error_rate(),
        "p99_ms": t.p99_ms(),
    })
}

/// Predictions each side needs logged in a stage before their
/// distributions are compared: below it, sampling noise alone diverges.
const DIVERGENCE_MIN_ROWS: usize = 50;
/// Distinct numeric predictions beyond which they are a continuous value
/// (a regressor's) and compared on quantile cells, not as classes.
const MAX_CLASSES: usize = 20;

/// Whether the two versions' predictions logged in the stage, in the
/// traffic of `route`, are distributed alike (at most
/// `max_prediction_divergence` apart), and the evidence; not judged
/// (passed) while either side has fewer than [`DIVERGENCE_MIN_ROWS`]
/// logged.
fn divergence_test(
    store: &Store,
    r: &Rollout,
    route: &str,
    plan: &Plan,
    since: &str,
) -> Result<(Test, serde_json::Value), DeliveryError> {
    let logged = |version| {
        sluice_monitor::logged_predictions(store, &r.name, version, Some(route), since)
            .map_err(|e| DeliveryError::Feedback(e.to_string()))
    };
    let (candidate, baseline) = (logged(r.candidate)?, logged(r.baseline)?);
    let rows =
        serde_json::json!({"candidate_rows": candidate.len(), "baseline_rows": baseline.len()});
    if candidate.len() < DIVERGENCE_MIN_ROWS || baseline.len() < DIVERGENCE_MIN_ROWS {
        let detail = format!(
            "not judged: {} and {} logged predictions, fewer than the {DIVERGENCE_MIN_ROWS} each side needs (are requests logged? `sluice serve --log-sample`)",
            candidate.len(),
            baseline.len()
        );
        return Ok((Test::plain("prediction-divergence", true, detail), rows));
    }
    let js = prediction_divergence(&candidate, &baseline).unwrap_or(0.0);
    let test = Test::plain(
        "prediction-divergence",
        js <= plan.max_prediction_divergence,
        format!(
            "Jensen–Shannon divergence {js:.4} between {} candidate and {} baseline predictions (at most {})",
            candidate.len(),
            baseline.len(),
            plan.max_prediction_divergence
        ),
    );
    let mut evidence = rows;
    evidence["jensen_shannon"] = js.into();
    Ok((test, evidence))
}

/// Jensen–Shannon divergence (base 2: 0 the same, 1 disjoint) between two
/// sets of predictions: of the classes' shares, or, for numbers with more
/// than [`MAX_CLASSES`] distinct values, of both sides' shares over the
/// baseline's quantile cells (as `sluice monitor` measures drift). `None`
/// when a side is empty.
pub fn prediction_divergence(candidate: &[String], baseline: &[String]) -> Option<f64> {
    if candidate.is_empty() || baseline.is_empty() {
        return None;
    }
    let numbers = |v: &[String]| {
        v.iter()
            .map(|x| x.parse::<f64>().ok())
            .collect::<Option<Vec<f64>>>()
    };
    if let (Some(c), Some(b)) = (numbers(candidate), numbers(baseline)) {
        let distinct: std::collections::BTreeSet<u64> =
            b.iter().chain(&c).map(|x| x.to_bits()).collect();
        if distinct.len() > MAX_CLASSES {
            let hb = sluice_drift::quantile_histogram(&b, sluice_drift::SUMMARY_BINS)?;
            let hc = sluice_drift::quantile_histogram(&c, sluice_drift::SUMMARY_BINS)?;
            return sluice_drift::numeric_drift(&hb, &hc).map(|d| d.jensen_shannon);
        }
    }
    let mut counts: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
    for x in candidate {
        counts.entry(x).or_default().0 += 1.0;
    }
    for x in baseline {
        counts.entry(x).or_default().1 += 1.0;
    }
    let (p, q): (Vec<f64>, Vec<f64>) = counts
        .values()
        .map(|(c, b)| (c / candidate.len() as f64, b / baseline.len() as f64))
        .unzip();
    Some(sluice_drift::jensen_shannon(&p, &q))
}

/// Live quality of a stage: judged, or waiting for labels.
enum Quality {
    Wait(String),
    Judged {
        test: Test,
        evidence: serde_json::Value,
    },
}

/// Both versions' accuracy on the labelled requests they answered in the
/// stage, in the traffic of `route`, and whether the candidate's is
/// significantly more than `max_accuracy_drop` below the baseline's
/// (one-sided two-proportion z-test at `alpha`).
fn live_quality(
    store: &Store,
    r: &Rollout,
    route: &str,
    path: &str,
    plan: &Plan,
) -> Result<Quality, DeliveryError> {
    let feedback = match sluice_tables::read_table(std::path::Path::new(path)) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Quality::Wait(format!(
                "the feedback file {path} cannot be read yet: {e}"
            )));
        }
    };
    let label = store
        .metadata
        .resolve_model(&sluice_store::ModelRef::Version(
            r.name.clone(),
            r.candidate,
        ))?
        .and_then(|v| crate::card_label(store, &v))
        .filter(|l| feedback.column_by_name(l).is_some())
        .unwrap_or_else(|| "label".into());
    let answers = |version| {
        sluice_monitor::labelled_answers(
            store,
            &r.name,
            version,
            Some(route),
            &r.stage_started_at,
            &feedback,
            &label,
        )
        .map_err(|e| DeliveryError::Feedback(e.to_string()))
    };
    let (c_right, c_n, c_logged) = answers(r.candidate)?;
    let (b_right, b_n, b_logged) = answers(r.baseline)?;
    if c_n < plan.min_labels || b_n < plan.min_labels {
        return Ok(Quality::Wait(format!(
            "labelled requests: candidate {c_n} (of {c_logged} logged), baseline {b_n} (of {b_logged} logged); each side needs {}",
            plan.min_labels
        )));
    }
    let (p1, p2) = (c_right as f64 / c_n as f64, b_right as f64 / b_n as f64);
    let z = one_sided_z(
        p2 - p1 - plan.max_accuracy_drop,
        c_right + b_right,
        c_n + b_n,
        c_n,
        b_n,
    );
    let passed = z <= z_quantile(1.0 - plan.alpha);
    Ok(Quality::Judged {
        test: Test::significance(
            "accuracy",
            passed,
            format!(
                "candidate {:.2}% right of {c_n} labelled vs baseline {:.2}% of {b_n} (allowed {:.2} points lower; z = {z:.2}, one-sided alpha {})",
                p1 * 100.0,
                p2 * 100.0,
                plan.max_accuracy_drop * 100.0,
                plan.alpha
            ),
            z,
        ),
        evidence: serde_json::json!({
            "label": label,
            "candidate": {"right": c_right, "labelled": c_n, "accuracy": p1},
            "baseline": {"right": b_right, "labelled": b_n, "accuracy": p2},
        }),
    })
}

/// Requests each side needs for its p99 latency to be compared.
const P99_MIN_REQUESTS: u64 = 100;

/// The stage's criteria: the candidate's error rate is not significantly
/// more than `max_error_rate_increase` above the baseline's (a one-sided
/// two-proportion z-test at `alpha`), and its p99 latency is at most
/// `max_p99_ratio` times the baseline's.
pub fn judge(plan: &Plan, candidate: &ServingTotals, baseline: &ServingTotals) -> Vec<Test> {
    let mut tests = Vec::new();
    let (n1, x1) = (
        candidate.requests as f64,
        (candidate.errors_4xx + candidate.errors_5xx) as f64,
    );
    let (n2, x2) = (
        baseline.requests as f64,
        (baseline.errors_4xx + baseline.errors_5xx) as f64,
    );
    let p1 = if n1 > 0.0 { x1 / n1 } else { 0.0 };
    let p2 = if n2 > 0.0 { x2 / n2 } else { 0.0 };
    let excess = p1 - p2 - plan.max_error_rate_increase;
    let (z, passed) = if n2 == 0.0 {
        (f64::NAN, excess <= 0.0)
    } else {
        let z = one_sided_z(
            excess,
            (x1 + x2) as u64,
            (n1 + n2) as u64,
            n1 as u64,
            n2 as u64,
        );
        (z, z <= z_quantile(1.0 - plan.alpha))
    };
    tests.push(Test::significance(
        "error-rate",
        passed,
        format!(
            "candidate {:.2}% of {} vs baseline {:.2}% of {} (allowed {:+.2} points; z = {:.2}, one-sided alpha {})",
            p1 * 100.0,
            n1,
            p2 * 100.0,
            n2,
            plan.max_error_rate_increase * 100.0,
            z,
            plan.alpha
        ),
        z,
    ));
    // A p99 of fewer than 100 requests is their maximum: one slow request
    // (a compilation, a busy core) would decide. Below that it is not
    // judged.
    if candidate.requests < P99_MIN_REQUESTS || baseline.requests < P99_MIN_REQUESTS {
        tests.push(Test::plain(
            "p99",
            true,
            format!(
                "not judged: {} and {} requests, fewer than the {P99_MIN_REQUESTS} a p99 needs on each side",
                candidate.requests, baseline.requests
            ),
        ));
    } else if let (Some(c), Some(b)) = (candidate.p99_ms(), baseline.p99_ms()) {
        tests.push(Test::plain(
            "p99",
            c <= b * plan.max_p99_ratio,
            format!(
                "candidate p99 {c} ms vs baseline {b} ms (at most {}×)",
                plan.max_p99_ratio
            ),
        ));
    }
    tests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(requests: u64, errors: u64, ms: f64) -> ServingTotals {
        let mut counts = vec![0; sluice_store::serving_stats::LATENCY_COUNTS];
        counts[sluice_store::serving_stats::latency_bucket(ms)] = requests;
        ServingTotals {
            requests,
            errors_4xx: errors,
            latency_counts: counts,
            ..ServingTotals::default()
        }
    }

    fn labels(benign: usize, malignant: usize) -> Vec<String> {
        let mut v = vec!["benign".to_string(); benign];
        v.extend(vec!["malignant".to_string(); malignant]);
        v
    }

    #[test]
    fn class_predictions_diverge_by_their_shares() {
        // The same shares: nothing.
        let same = prediction_divergence(&labels(63, 37), &labels(630, 370)).unwrap();
        assert!(same.abs() < 1e-12, "{same}");
        // 63/37 against 50/50: 0.0125 (by hand: ½ KL(p‖m) + ½ KL(q‖m)).
        let near = prediction_divergence(&labels(50, 50), &labels(63, 37)).unwrap();
        assert!((near - 0.0125).abs() < 5e-4, "{near}");
        // One class for every request against a 63/37 mix: 0.2155.
        let one = prediction_divergence(&labels(100, 0), &labels(63, 37)).unwrap();
        assert!((one - 0.2155).abs() < 5e-4, "{one}");
        assert!(one > Plan::default().max_prediction_divergence);
        // Disjoint classes: 1.
        let disjoint = prediction_divergence(&labels(10, 0), &labels(0, 10)).unwrap();
        assert!((disjoint - 1.0).abs() < 1e-12, "{disjoint}");
        assert_eq!(prediction_divergence(&[], &labels(1, 1)), None);
    }

    #[test]
    fn continuous_predictions_diverge_when_shifted() {
        let values = |shift: f64| -> Vec<String> {
            (0..400)
                .map(|i| format!("{}", i as f64 * 0.25 + shift))
                .collect()
        };
        let same = prediction_divergence(&values(0.0), &values(0.0)).unwrap();
        assert!(same < 1e-9, "{same}");
        let shifted = prediction_divergence(&values(60.0), &values(0.0)).unwrap();
        assert!(shifted > 0.3, "{shifted}");
        // A few distinct numbers are classes (labels 0 and 1).
        let zero_one: Vec<String> = (0..100).map(|i| (i % 2).to_string()).collect();
        let ones: Vec<String> = vec!["1".into(); 100];
        let d = prediction_divergence(&ones, &zero_one).unwrap();
        assert!((d - 0.3113).abs() < 5e-4, "{d}");
    }

    #[test]
    fn a_candidate_failing_a_fifth_of_its_requests_fails_and_a_like_one_passes() {
        let plan = Plan::default();
        let bad = judge(&plan, &totals(100, 20, 2.0), &totals(400, 2, 2.0));
        assert!(!bad[0].passed, "{bad:?}");
        let like = judge(&plan, &totals(100, 1, 2.0), &totals(400, 3, 2.0));
        assert!(like.iter().all(|t| t.passed), "{like:?}");
        // A small excess within the allowed increase passes.
        let within = judge(&plan, &totals(1000, 15, 2.0), &totals(1000, 10, 2.0));
        assert!(within[0].passed, "{within:?}");
    }

    #[test]
    fn a_slower_candidate_fails_the_latency_criterion() {
        let plan = Plan::default();
        let slow = judge(&plan, &totals(100, 0, 40.0), &totals(400, 0, 2.0));
        assert_eq!(slow[1].criterion, "p99");
        assert!(!slow[1].passed, "{slow:?}");
        // Too few requests for a p99: not judged.
        let few = judge(&plan, &totals(30, 0, 40.0), &totals(400, 0, 2.0));
        assert!(
            few[1].passed && few[1].detail.starts_with("not judged"),
            "{few:?}"
        );
    }

    #[test]
    fn plans_must_step_up_below_100() {
        assert!(Plan::default().check().is_ok());
        let bad = Plan {
            steps: vec![10.0, 5.0],
            ..Plan::default()
        };
        assert!(bad.check().unwrap_err().contains("steps must increase"));
        let full = Plan {
            steps: vec![50.0, 100.0],
            ..Plan::default()
        };
        assert!(full.check().is_err());
    }
}
