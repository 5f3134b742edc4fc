//! The gates of one move: what a [`PromotionPolicy`] requires of a version
//! entering an environment, each checked against the store.

use crate::{DeliveryError, PromotionPolicy, Requirements};
use serde::Serialize;
use sluice_store::registry::AliasMove;
use sluice_store::{ModelRef, Store};
use std::time::{Duration, SystemTime};

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    /// Its name, as in the policy: `blessing`, `infra`, `online`, `soak`,
    /// `min-requests`, `max-error-rate`, `max-p99-ms`.
    pub gate: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, in a sentence with the numbers.
    pub detail: String,
}

/// The verdicts of every gate of a move; empty when the policy sets none
/// for the environment (or the alias is not one of its environments).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    /// The gates, in the order of [`Requirements`]' fields.
    pub gates: Vec<Gate>,
}

impl Verdict {
    /// The gates that did not pass.
    pub fn unmet(&self) -> Vec<&Gate> {
        self.gates.iter().filter(|g| !g.passed).collect()
    }

    /// Whether every gate passed.
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.passed)
    }

    /// The verdicts as the JSON kept with the move in the alias history;
    /// `None` when there were no gates.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        (!self.gates.is_empty())
            .then(|| serde_json::to_value(&self.gates).expect("gates serialise"))
    }
}

/// Checks the gates of moving alias `alias` of model `name` to `version`
/// under `policy`, at `now`.
pub fn check(
    store: &Store,
    policy: &PromotionPolicy,
    name: &str,
    version: i64,
    alias: &str,
    now: SystemTime,
) -> Result<Verdict, DeliveryError> {
    let Some(req) = policy.require.get(alias) else {
        return Ok(Verdict::default());
    };
    let record = store
        .metadata
        .resolve_model(&ModelRef::Version(name.into(), version))?
        .ok_or_else(|| DeliveryError::NoVersion {
            name: name.into(),
            version,
        })?;
    let mut gates = Vec::new();
    if req.blessing {
        gates.push(blessing(
            store,
            version,
            record.execution_id,
            Blessing::Offline,
        )?);
    }
    if req.infra {
        gates.push(blessing(
            store,
            version,
            record.execution_id,
            Blessing::Infra,
        )?);
    }
    if req.online {
        gates.push(online(store, name, version, alias)?);
    }
    if req.needs_previous() {
        let previous = policy
            .previous(alias)
            .expect("the policy parser refuses live gates on the first environment");
        let history = store.metadata.alias_history(name)?;
        live_gates(
            store, req, name, version, previous, &history, now, &mut gates,
        )?;
    }
    Ok(Verdict { gates })
}

/// Which blessing a gate looks for among the documents the registering
/// execution took.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Blessing {
    /// The offline one (`std:model-validate`'s): every blessing document
    /// that is not an infra blessing.
    Offline,
    /// The serving one (`std:infra-validate`'s, `"kind": "infra-blessing"`).
    Infra,
}

impl Blessing {
    fn gate(self) -> &'static str {
        match self {
            Blessing::Offline => "blessing",
            Blessing::Infra => "infra",
        }
    }

    /// What it is called in messages.
    fn what(self) -> &'static str {
        match self {
            Blessing::Offline => "blessing",
            Blessing::Infra => "infra blessing",
        }
    }

    /// [`Blessing::what`] with its article.
    fn noun(self) -> &'static str {
        match self {
            Blessing::Offline => "a blessing",
            Blessing::Infra => "an infra blessing",
        }
    }

    /// Whether `doc` is a blessing of this kind.
    fn matches(self, doc: &serde_json::Value) -> bool {
        let infra = doc.get("kind").and_then(|k| k.as_str()) == Some("infra-blessing");
        doc.get("blessed").is_some() && infra == (self == Blessing::Infra)
    }

    fn how_to_bind(self) -> &'static str {
        match self {
            Blessing::Offline => "bind std:model-validate's `blessing` to std:push",
            Blessing::Infra => {
                "bind std:infra-validate's `blessing` to std:push's `infra-blessing`"
            }
        }
    }
}

/// Whether the execution that registered the version took a blessing of
/// the kind `which` that says blessed.
fn blessing(
    store: &Store,
    version: i64,
    execution: Option<i64>,
    which: Blessing,
) -> Result<Gate, DeliveryError> {
    let gate = |passed: bool, detail: String| Gate {
        gate: which.gate().into(),
        passed,
        detail,
    };
    let noun = which.noun();
    let Some(id) = execution else {
        return Ok(gate(
            false,
            format!(
                "version {version} was registered outside a pipeline, so no {} is recorded for it",
                which.what()
            ),
        ));
    };
    let e = sluice_store::upstream::original(store, store.metadata.execution(id)?)?;
    let mut found = Vec::new();
    for event in e.events.iter().filter(|ev| ev.direction == "input") {
        let Ok(bytes) = store.objects.get(&event.artifact) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if which.matches(&doc) {
            let blessed = doc.get("blessed").and_then(|b| b.as_bool()) == Some(true);
            found.push((event.port.clone(), blessed));
        }
    }
    let at = format!("step `{}` of run {}", e.step, e.run_id);
    Ok(match found.as_slice() {
        [] => gate(
            false,
            format!(
                "version {version} was pushed without {noun} ({at} took none): {}",
                which.how_to_bind()
            ),
        ),
        docs if docs.iter().all(|(_, b)| *b) => gate(
            true,
            format!(
                "version {version} was pushed with {noun} (`{}` of {at})",
                docs[0].0
            ),
        ),
        docs => gate(
            false,
            format!(
                "the {} `{}` that version {version} was pushed with does not say blessed",
                which.what(),
                docs.iter().find(|(_, b)| !b).expect("one is not").0
            ),
        ),
    })
}

/// The name of the gate a rollout passes by promoting: checked on every
/// other move into the environment, never when a rollout starts.
pub const ONLINE: &str = "online";

/// Whether a rollout of `version` on `alias` passed every stage.
fn online(store: &Store, name: &str, version: i64, alias: &str) -> Result<Gate, DeliveryError> {
    let gate = |passed: bool, detail: String| Gate {
        gate: ONLINE.into(),
        passed,
        detail,
    };
    let mine: Vec<_> = store
        .metadata
        .rollouts(name)?
        .into_iter()
        .filter(|r| r.candidate == version && r.alias == alias)
        .collect();
    if let Some(r) = mine.iter().find(|r| r.state == "promoted") {
        return Ok(gate(
            true,
            format!(
                "rollout {} of version {version} on {alias} passed every stage",
                r.id
            ),
        ));
    }
    Ok(gate(
        false,
        match mine.last() {
            Some(r) if r.state == "running" => format!(
                "rollout {} of version {version} on {alias} is still running; it moves the alias itself when it passes",
                r.id
            ),
            Some(r) => format!(
                "rollout {} of version {version} on {alias} ended {}: {}",
                r.id, r.state, r.reason
            ),
            None => format!(
                "version {version} has not passed a rollout on {alias}; `sluice rollout start {name} {version} --alias {alias}` validates it online"
            ),
        },
    ))
}

/// The gates measured while the version held `previous`: soak, then what
/// its servers recorded.
#[allow(clippy::too_many_arguments)]
fn live_gates(
    store: &Store,
    req: &Requirements,
    name: &str,
    version: i64,
    previous: &str,
    history: &[AliasMove],
    now: SystemTime,
    gates: &mut Vec<Gate>,
) -> Result<(), DeliveryError> {
    let stint = stint(history, previous, version, now);
    let gate = |gate: &str, passed: bool, detail: String| Gate {
        gate: gate.into(),
        passed,
        detail,
    };
    let Some((since, held)) = stint else {
        let never = format!("version {version} has never held `{name}@{previous}`");
        for (key, set) in [
            ("soak", req.soak.is_some()),
            ("min-requests", req.min_requests.is_some()),
            ("max-error-rate", req.max_error_rate.is_some()),
            ("max-p99-ms", req.max_p99_ms.is_some()),
        ] {
            if set {
                gates.push(gate(
                    key,
                    false,
                    format!("{never}, where this gate is measured"),
                ));
            }
        }
        return Ok(());
    };
    if let Some(soak) = req.soak {
        gates.push(gate(
            "soak",
            held >= soak,
            format!("held {previous} for {} of {}", human(held), human(soak)),
        ));
    }
    if req.min_requests.is_none() && req.max_error_rate.is_none() && req.max_p99_ms.is_none() {
        return Ok(());
    }
    let reference = format!("{name}@{previous}");
    let totals = store
        .metadata
        .serving_totals(name, version, Some(&reference), &since)?;
    let served = format!(
        "{} request(s) answered by version {version} as {reference} since {since}",
        totals.requests
    );
    if let Some(min) = req.min_requests {
        gates.push(gate(
            "min-requests",
            totals.requests >= min,
            format!("{served}; at least {min} required"),
        ));
    }
    if let Some(max) = req.max_error_rate {
        gates.push(match totals.error_rate() {
            Some(rate) => gate(
                "max-error-rate",
                rate <= max,
                format!(
                    "{:.2}% of {} answered 4xx/5xx ({} + {}); at most {:.2}% allowed",
                    rate * 100.0,
                    totals.requests,
                    totals.errors_4xx,
                    totals.errors_5xx,
                    max * 100.0
                ),
            ),
            None => gate(
                "max-error-rate",
                false,
                format!("{served}: no error rate to judge"),
            ),
        });
    }
    if let Some(max) = req.max_p99_ms {
        gates.push(match totals.p99_ms() {
            Some(p99) => gate(
                "max-p99-ms",
                p99 <= max,
                format!(
                    "p99 latency {p99} ms over {} request(s); at most {max} ms allowed",
                    totals.requests
                ),
            ),
            None => gate(
                "max-p99-ms",
                false,
                format!("{served}: no latency to judge"),
            ),
        });
    }
    Ok(())
}

/// When version `version` last started holding `alias` (RFC 3339) and how
/// long it held it: until the alias next moved, or until `now`.
fn stint(
    history: &[AliasMove],
    alias: &str,
    version: i64,
    now: SystemTime,
) -> Option<(String, Duration)> {
    let moves: Vec<&AliasMove> = history.iter().filter(|m| m.alias == alias).collect();
    let i = moves.iter().rposition(|m| m.version == version)?;
    let start = sluice_store::time::parse_rfc3339(&moves[i].at)?;
    let end = match moves.get(i + 1) {
        Some(next) => sluice_store::time::parse_rfc3339(&next.at)?,
        None => now,
    };
    Some((
        moves[i].at.clone(),
        end.duration_since(start).unwrap_or_default(),
    ))
}

/// `1h02m`, `4m12s`, `3.5s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(alias: &str, version: i64, at: &str) -> AliasMove {
        AliasMove {
            name: "m".into(),
            alias: alias.into(),
            version,
            previous: None,
            at: at.into(),
            who: "ann".into(),
            reason: String::new(),
            forced: false,
            gates: None,
        }
    }

    #[test]
    fn a_stint_runs_from_the_latest_move_to_the_version_until_the_next_move_or_now() {
        let history = [
            moved("staging", 1, "2026-12-01T10:00:00Z"),
            moved("staging", 2, "2026-12-01T11:00:00Z"),
            moved("production", 2, "2026-12-01T11:30:00Z"),
            moved("staging", 3, "2026-12-01T12:15:00Z"),
        ];
        let now = sluice_store::time::parse_rfc3339("2026-12-01T13:00:00Z").unwrap();
        assert_eq!(
            stint(&history, "staging", 2, now),
            Some(("2026-12-01T11:00:00Z".into(), Duration::from_secs(75 * 60)))
        );
        assert_eq!(
            stint(&history, "staging", 3, now),
            Some(("2026-12-01T12:15:00Z".into(), Duration::from_secs(45 * 60)))
        );
        assert_eq!(stint(&history, "staging", 4, now), None);
        assert_eq!(stint(&history, "canary", 2, now), None);
    }

    #[test]
    fn durations_read_in_the_largest_unit() {
        assert_eq!(human(Duration::from_secs(3720)), "1h02m");
        assert_eq!(human(Duration::from_secs(252)), "4m12s");
        assert_eq!(human(Duration::from_millis(3500)), "3.5s");
    }
}
