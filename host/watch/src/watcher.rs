//! The watch loop: evaluate triggers, run the pipeline (one run at a time),
//! apply the promotion policy — with every decision recorded in the store
//! before it is acted on.
//!
//! A trigger that fires is written as the pipeline's `pending` trigger in
//! the same transaction as what it consumed (the new data digest, the
//! schedule slot, the drift window). The run carries the trigger's tag, so
//! after a crash a restarted watcher finds the pending trigger and either
//! starts its run (none yet), resumes it (interrupted), or only finishes the
//! promotion (it completed): a trigger is neither lost nor acted on twice.

use crate::config::{Promotion, WatchConfig};
use serde::{Deserialize, Serialize};
use sluice_monitor::{MonitorError, MonitorOptions, Thresholds};
use sluice_pipeline::execute::{self, Observer, RunOptions};
use sluice_pipeline::spec::RolloutSpec;
use sluice_runtime::Runtime;
use sluice_store::metadata::RunState;
use sluice_store::{Digest, ModelRef, Store};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why watching stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The spec (its `[triggers]` and `[promotion]` included) is invalid:
    /// the diagnostics, with file, line and column.
    #[error("{0}")]
    Spec(sluice_pipeline::diagnostic::Diagnostics),
    /// The triggers cannot be acted on (no `[triggers]` table, a data file
    /// that cannot be read).
    #[error("{0}")]
    Config(String),
    /// Another watcher holds the pipeline.
    #[error(
        "another `sluice watch` is watching pipeline `{0}` on this store; one watcher per pipeline runs at a time"
    )]
    Busy(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
}

fn store_err(e: impl std::fmt::Display) -> WatchError {
    WatchError::Store(e.to_string())
}

/// A trigger that fired and is being acted on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    /// `KIND:ID`, recorded as the run's trigger.
    pub tag: String,
    /// `schedule`, `new-data`, `drift` or `degradation`.
    pub kind: String,
    /// Why it fired.
    pub detail: String,
    /// When.
    pub at: String,
}

const PENDING: &str = "pending";

struct Quiet;
impl Observer for Quiet {}

/// Watches one pipeline.
pub struct Watcher {
    spec: PathBuf,
    pipeline: String,
    /// Watched for new content: (name, location — a path or an s3:// URL).
    data: Vec<(String, String)>,
    once: bool,
    config: WatchConfig,
    store: Arc<Store>,
    runtime: Arc<Runtime>,
    /// New data digests seen but not yet stable: (digest, first seen).
    settling: HashMap<String, (Digest, Instant)>,
    last_check: Option<Instant>,
    _lock: File,
    /// On a store machines share: the pipeline's watch lease, renewed
    /// while this watcher lives, so that a watcher on another machine
    /// does not act on the same triggers.
    lease: Option<sluice_store::lease::Heartbeat>,
    /// What starts a model server for steps that probe the serving path.
    serving: Option<Arc<dyn sluice_runtime::ServingProbe>>,
}

impl Watcher {
    /// Reads the spec and its `[triggers]`, and takes the pipeline's watch
    /// lock in the store.
    pub fn new(spec: &Path, store: Arc<Store>, runtime: Arc<Runtime>) -> Result<Self, WatchError> {
        let parsed = sluice_pipeline::spec::Spec::load(spec).map_err(WatchError::Spec)?;
        let config =
            WatchConfig::from_spec(&parsed).map_err(|e| WatchError::Config(e.to_string()))?;
        let data = config
            .triggers
            .new_data
            .iter()
            .flatten()
            .map(|n| match parsed.data.iter().find(|d| d.name == *n) {
                Some(d) => (n.clone(), d.path.display().to_string()),
                None => (n.clone(), n.clone()),
            })
            .collect();
        let lock_path = store
            .root()
            .join("locks")
            .join(format!("watch-{}.lock", parsed.name));
        std::fs::create_dir_all(lock_path.parent().unwrap()).map_err(store_err)?;
        let lock = File::create(&lock_path).map_err(store_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(WatchError::Busy(parsed.name)),
            Err(std::fs::TryLockError::Error(e)) => return Err(store_err(e)),
        }
        let lease = if store.metadata.is_shared() {
            use sluice_store::lease::{Heartbeat, lease_ttl};
            let name = format!("watch:{}", parsed.name);
            let holder = format!(
                "{} (pid {})",
                sluice_store::identity::user(),
                std::process::id()
            );
            let ttl = lease_ttl();
            if !store
                .metadata
                .try_lease(&name, &holder, ttl)
                .map_err(|e| WatchError::Store(e.to_string()))?
            {
                return Err(WatchError::Busy(parsed.name));
            }
            Some(Heartbeat::start(store.metadata.clone(), holder, ttl))
        } else {
            None
        };
        Ok(Watcher {
            spec: spec.to_path_buf(),
            pipeline: parsed.name,
            data,
            once: false,
            config,
            store,
            runtime,
            settling: HashMap::new(),
            last_check: None,
            _lock: lock,
            lease,
            serving: None,
        })
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// A one-line description of what is watched.
    pub fn describe(&self) -> String {
        let t = &self.config.triggers;
        let mut parts = Vec::new();
        if let Some(s) = &t.schedule {
            parts.push(format!("schedule `{s}` (UTC)"));
        }
        if !self.data.is_empty() {
            parts.push(format!(
                "new content in {}",
                self.data
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(d) = &t.drift {
            parts.push(format!(
                "drift of {} over {} (≥ {} new requests)",
                d.model, d.threshold, d.min_rows
            ));
        }
        if let Some(d) = &t.degradation {
            parts.push(format!(
                "live {} of {} below {}",
                d.metric, d.model, d.below
            ));
        }
        let p = &self.config.promotion;
        let to = match (&p.rollout, p.staging, p.production) {
            (Some(r), staging, _) => format!(
                "{}{} through a rollout",
                if staging && r.alias != "staging" {
                    "staging, and "
                } else {
                    ""
                },
                r.alias
            ),
            (None, _, true) => "staging and production".into(),
            (None, true, false) => "staging (production waits for `sluice models promote`)".into(),
            (None, false, false) => "no alias".into(),
        };
        format!("{}; blessed versions go to {to}", parts.join(", "))
    }

    /// Watches until `stop` is set (or, with `once`, after one evaluation
    /// and the run it starts, if any).
    pub fn run(&mut self, stop: &AtomicBool, once: bool) -> Result<(), WatchError> {
        // A single evaluation has no earlier sight of the data to wait on.
        self.once = once;
        self.initialise()?;
        loop {
            if self.lease.as_ref().is_some_and(|l| l.lost()) {
                return Err(WatchError::Busy(self.pipeline.clone()));
            }
            if let Some(p) = self.pending()? {
                self.act(&p)?;
            }
            if let Some(p) = self.evaluate()? {
                log(&format!("{}: {}; starting a run", p.kind, p.detail));
                crash_point("after-trigger");
                self.act(&p)?;
            }
            self.drive_rollouts()?;
            if once {
                return Ok(());
            }
            let until = Instant::now() + self.config.triggers.poll;
            while Instant::now() < until {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50).min(self.config.triggers.poll));
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }

    fn state(&self) -> Result<HashMap<String, String>, WatchError> {
        Ok(self
            .store
            .metadata
            .watch_state(&self.pipeline)
            .map_err(store_err)?
            .into_iter()
            .collect())
    }

    fn update(&self, changes: &[(&str, Option<&str>)]) -> Result<(), WatchError> {
        self.store
            .metadata
            .update_watch_state(&self.pipeline, changes, &now())
            .map_err(store_err)
    }

    /// Lets the pipeline's steps start their model in the real model
    /// server (`std:infra-validate`) with `probe`.
    pub fn with_serving(mut self, probe: Option<Arc<dyn sluice_runtime::ServingProbe>>) -> Self {
        self.serving = probe;
        self
    }

    /// Takes the first look: records what the data inputs hold now (so
    /// that only later changes start runs) and when the schedule and the
    /// monitors start counting, unless an earlier watcher of this store
    /// did. Idempotent; [`Watcher::run`] does it too. Call it before
    /// saying that the pipeline is watched, so that data written right
    /// after is a change, not the first sight.
    pub fn initialise(&mut self) -> Result<(), WatchError> {
        let state = self.state()?;
        let mut changes: Vec<(String, String)> = Vec::new();
        for (name, path) in &self.data {
            let key = format!("data:{name}");
            if !state.contains_key(&key) {
                let digest =
                    fingerprint(path).map_err(|e| WatchError::Config(format!("`{name}`: {e}")))?;
                changes.push((key, digest.to_string()));
            }
        }
        for key in ["schedule:last", "drift:since", "degradation:since"] {
            if !state.contains_key(key) {
                changes.push((key.to_string(), now()));
            }
        }
        let refs: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        self.update(&refs)
    }

    fn pending(&self) -> Result<Option<Pending>, WatchError> {
        Ok(self
            .state()?
            .get(PENDING)
            .and_then(|p| serde_json::from_str(p).ok()))
    }

    /// Evaluates the triggers in order; the first that fires is recorded as
    /// pending (with what it consumed) and returned.
    fn evaluate(&mut self) -> Result<Option<Pending>, WatchError> {
        let state = self.state()?;
        // New data, once its digest has been stable for `debounce`.
        for (name, path) in &self.data {
            let key = format!("data:{name}");
            let digest = match fingerprint(path) {
                Ok(d) => d,
                Err(e) => {
                    log(&format!(
                        "new-data: cannot read `{name}` ({path}): {e}; trying again"
                    ));
                    continue;
                }
            };
            if state.get(&key).map(String::as_str) == Some(digest.to_string().as_str()) {
                self.settling.remove(name);
                continue;
            }
            let seen = self
                .settling
                .entry(name.clone())
                .or_insert((digest, Instant::now()));
            if seen.0 != digest {
                *seen = (digest, Instant::now());
            }
            if !self.once && seen.1.elapsed() < self.config.triggers.debounce {
                continue;
            }
            self.settling.remove(name);
            let p = pending(
                "new-data",
                format!(
                    "`{name}` changed ({} → {})",
                    state.get(&key).map(|d| short(d)).unwrap_or_default(),
                    short(&digest.to_string())
                ),
            );
            let json = serde_json::to_string(&p).unwrap();
            let value = digest.to_string();
            self.update(&[
                (key.as_str(), Some(value.as_str())),
                (PENDING, Some(json.as_str())),
            ])?;
            return Ok(Some(p));
        }
        // The schedule: a slot passed since the last one acted on.
        if let Some(cron) = &self.config.triggers.schedule {
            let last = state
                .get("schedule:last")
                .and_then(|t| parse_time(t))
                .unwrap_or_else(unix_now);
            if let Some(next) = cron.next_after(last)
                && next <= unix_now()
            {
                let p = pending(
                    "schedule",
                    format!("schedule `{cron}` reached {}", rfc3339(next)),
                );
                let json = serde_json::to_string(&p).unwrap();
                let at = now();
                self.update(&[
                    ("schedule:last", Some(at.as_str())),
                    (PENDING, Some(json.as_str())),
                ])?;
                return Ok(Some(p));
            }
        }
        // Drift and degradation, measured every `check-every`.
        if self.config.triggers.drift.is_none() && self.config.triggers.degradation.is_none() {
            return Ok(None);
        }
        if self
            .last_check
            .is_some_and(|t| t.elapsed() < self.config.triggers.check_every)
        {
            return Ok(None);
        }
        self.last_check = Some(Instant::now());
        if let Some(d) = self.config.triggers.drift.clone() {
            let since = state.get("drift:since").cloned();
            let checked_at = now();
            let options = MonitorOptions {
                since: since.clone(),
                thresholds: Thresholds {
                    numeric: d.threshold,
                    categorical: d.threshold,
                },
                ..MonitorOptions::default()
            };
            match sluice_monitor::monitor(&self.store, &self.runtime, &d.model, &options) {
                Ok(report) if report.serving.rows >= d.min_rows && !report.drifted.is_empty() => {
                    let p = pending(
                        "drift",
                        format!(
                            "{} ({}): {} drifted over {} requests since {}",
                            d.model,
                            report.version,
                            report.drifted.join(", "),
                            report.serving.rows,
                            since.as_deref().unwrap_or("the start")
                        ),
                    );
                    let json = serde_json::to_string(&p).unwrap();
                    self.update(&[
                        ("drift:since", Some(checked_at.as_str())),
                        (PENDING, Some(json.as_str())),
                    ])?;
                    return Ok(Some(p));
                }
                Ok(report) if report.serving.rows >= d.min_rows => {
                    log(&format!(
                        "drift: {} ({}): no drift over {} requests",
                        d.model, report.version, report.serving.rows
                    ));
                    self.update(&[("drift:since", Some(checked_at.as_str()))])?;
                }
                Ok(_) | Err(MonitorError::NoData(_)) => {}
                Err(e) => log(&format!("drift: cannot measure {}: {e}", d.model)),
            }
        }
        if let Some(d) = self.config.triggers.degradation.clone() {
            let since = state.get("degradation:since").cloned();
            let checked_at = now();
            let feedback = match read_feedback(&d.feedback) {
                Ok(f) => f,
                Err(e) => {
                    log(&format!("degradation: {e}"));
                    return Ok(None);
                }
            };
            let options = MonitorOptions {
                since: since.clone(),
                feedback: Some(feedback),
                ..MonitorOptions::default()
            };
            match sluice_monitor::monitor(&self.store, &self.runtime, &d.model, &options) {
                Ok(report) => {
                    let live = report
                        .live
                        .as_ref()
                        .and_then(|l| l.metrics.get(&d.metric))
                        .and_then(|v| v.as_f64());
                    if let Some(v) = live
                        && v < d.below
                    {
                        let p = pending(
                            "degradation",
                            format!(
                                "{} ({}): live {} {v:.4} < {}",
                                d.model, report.version, d.metric, d.below
                            ),
                        );
                        let json = serde_json::to_string(&p).unwrap();
                        self.update(&[
                            ("degradation:since", Some(checked_at.as_str())),
                            (PENDING, Some(json.as_str())),
                        ])?;
                        return Ok(Some(p));
                    }
                }
                Err(MonitorError::NoData(_)) | Err(MonitorError::Feedback(_)) => {}
                Err(e) => log(&format!("degradation: cannot measure {}: {e}", d.model)),
            }
        }
        Ok(None)
    }

    /// Runs (or resumes, or only finishes) what `p` started, applies the
    /// promotion policy, and clears it.
    fn act(&self, p: &Pending) -> Result<(), WatchError> {
        let previous = self
            .store
            .metadata
            .run_with_trigger(&self.pipeline, &p.tag)
            .map_err(store_err)?;
        let run_id = match previous {
            Some(r) if r.state == RunState::Running && self.store.run_is_alive(&r.id) => {
                log(&format!(
                    "{}: run {} is still running in another process; waiting",
                    p.tag, r.id
                ));
                return Ok(());
            }
            Some(r) if matches!(r.state, RunState::Running | RunState::Interrupted) => {
                log(&format!("{}: resuming interrupted run {}", p.tag, r.id));
                self.execute(p, Some(r))?
            }
            Some(r) => {
                log(&format!(
                    "{}: run {} already finished ({:?})",
                    p.tag, r.id, r.state
                ));
                r.id
            }
            None => self.execute(p, None)?,
        };
        crash_point("after-run");
        let run = self.store.metadata.run(&run_id).map_err(store_err)?;
        if run.state == RunState::Succeeded {
            self.promote(&run_id, p)?;
        } else {
            log(&format!(
                "run {run_id} {:?}; nothing to promote (`sluice runs show {run_id}` says why)",
                run.state
            ));
        }
        self.update(&[(PENDING, None)])
    }

    fn execute(
        &self,
        p: &Pending,
        resume: Option<sluice_store::metadata::RunRecord>,
    ) -> Result<String, WatchError> {
        let prepared = execute::prepare(&self.spec, &self.runtime, Some(&self.store.objects))
            .map_err(WatchError::Spec)?;
        let options = RunOptions {
            trigger: p.tag.clone(),
            resume,
            serving: self.serving.clone(),
            ..RunOptions::default()
        };
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.jobs + 1)
            .enable_time()
            .build()
            .map_err(store_err)?;
        let report = tokio
            .block_on(execute::execute(
                &prepared,
                self.store.clone(),
                &options,
                Arc::new(Quiet),
            ))
            .map_err(|e| WatchError::Store(format!("the run could not start: {e}")))?;
        log(&format!(
            "run {} {} in {:.1} s (trigger {})",
            report.run_id,
            match report.state {
                execute::RunState::Succeeded => "succeeded",
                execute::RunState::Failed => "failed",
            },
            report.duration.as_secs_f64(),
            p.tag
        ));
        Ok(report.run_id)
    }

    /// Points the policy's aliases at the versions `run_id` registered.
    fn promote(&self, run_id: &str, p: &Pending) -> Result<(), WatchError> {
        let Promotion {
            staging,
            production,
            policy,
            rollout,
            ..
        } = &self.config.promotion;
        let names = self.promoted_models()?;
        let mut promoted = false;
        for name in names {
            let versions = self
                .store
                .metadata
                .model_versions(&name)
                .map_err(store_err)?;
            let Some(v) = versions
                .iter()
                .find(|v| v.run_id.as_deref() == Some(run_id))
            else {
                continue;
            };
            promoted = true;
            // The spec's policy travels with the runs that register the
            // model, so that `sluice models promote` anywhere applies it.
            if let Some(policy) = policy {
                self.store
                    .metadata
                    .set_promotion_policy(
                        &name,
                        &serde_json::to_string(policy).expect("a policy serialises"),
                        &format!("sluice watch ({})", sluice_store::identity::user()),
                        &now(),
                    )
                    .map_err(store_err)?;
            }
            let gates = sluice_delivery::policy(&self.store, &name).map_err(store_err)?;
            // The rollout's alias moves only through a rollout, which its
            // table asks for even when `production` is false.
            let rollout_alias = rollout.as_ref().map(|r| r.alias.as_str());
            let mut aliases: Vec<(&str, bool)> = vec![
                ("staging", *staging || rollout_alias == Some("staging")),
                (
                    "production",
                    *production || rollout_alias == Some("production"),
                ),
            ];
            if let Some(a) = rollout_alias.filter(|a| !["staging", "production"].contains(a)) {
                aliases.push((a, true));
            }
            for (alias, allowed) in aliases {
                if !allowed {
                    if alias == "production" {
                        log(&format!(
                            "{name}:{} waits for `sluice models promote {name} {} --alias production` (the policy does not promote to production)",
                            v.version, v.version
                        ));
                    }
                    continue;
                }
                let current = self
                    .store
                    .metadata
                    .resolve_model(&ModelRef::Alias(name.clone(), alias.into()))
                    .map_err(store_err)?;
                let current = current.map(|c| c.version);
                if current == Some(v.version) {
                    continue;
                }
                if let (Some(spec), Some(_)) = (rollout.as_ref(), current)
                    && spec.alias == alias
                {
                    self.start_rollout(&name, v.version, spec, run_id, p)?;
                    continue;
                }
                let verdict = match &gates {
                    Some(policy) => sluice_delivery::check(
                        &self.store,
                        policy,
                        &name,
                        v.version,
                        alias,
                        SystemTime::now(),
                    )
                    .map_err(store_err)?,
                    None => sluice_delivery::Verdict::default(),
                };
                let unmet = verdict.unmet();
                if !unmet.is_empty() {
                    let why: Vec<String> = unmet
                        .iter()
                        .map(|g| format!("{}: {}", g.gate, g.detail))
                        .collect();
                    log(&format!(
                        "{name}:{} stays out of {alias}: {} gate(s) unmet — {}",
                        v.version,
                        unmet.len(),
                        why.join("; ")
                    ));
                    continue;
                }
                self.store
                    .metadata
                    .move_alias(&sluice_store::AliasRequest {
                        name: &name,
                        alias,
                        version: v.version,
                        expected: Some(current),
                        who: &format!("sluice watch ({})", sluice_store::identity::user()),
                        reason: &format!(
                            "blessed by run {run_id} (trigger {}: {})",
                            p.kind, p.detail
                        ),
                        forced: false,
                        gates: verdict.to_json(),
                        now: &now(),
                    })
                    .map_err(store_err)?;
                log(&format!("{name}:{} → {alias}", v.version));
            }
        }
        if !promoted {
            log(&format!(
                "run {run_id} registered no new model version (not blessed, or the same model as before)"
            ));
        }
        Ok(())
    }
}

impl Watcher {
    /// The models the promotion policy moves: its `model`, else every
    /// model in the store.
    fn promoted_models(&self) -> Result<Vec<String>, WatchError> {
        Ok(match &self.config.promotion.model {
            Some(m) => vec![m.clone()],
            None => self
                .store
                .metadata
                .models()
                .map_err(store_err)?
                .into_iter()
                .map(|m| m.name)
                .collect(),
        })
    }

    /// Starts the rollout `[promotion.rollout]` describes of `name:version`
    /// (blessed by run `run_id`) on its alias; a refusal is logged, not
    /// an error: the watcher goes on watching.
    fn start_rollout(
        &self,
        name: &str,
        version: i64,
        spec: &RolloutSpec,
        run_id: &str,
        p: &Pending,
    ) -> Result<(), WatchError> {
        let plan = rollout_plan(spec);
        let who = format!("sluice watch ({})", sluice_store::identity::user());
        let reason = format!("blessed by run {run_id} (trigger {}: {})", p.kind, p.detail);
        let launched = sluice_delivery::launch(
            &self.store,
            &sluice_delivery::Launch {
                name,
                version,
                alias: &spec.alias,
                plan: &plan,
                who: &who,
                reason: &reason,
                force: false,
            },
            SystemTime::now(),
        );
        match launched {
            Ok(Ok(r)) => log(&format!(
                "{name}:{version} rolls out on {name}@{}: rollout {} gives it {}% (baseline version {})",
                spec.alias, r.id, r.share, r.baseline
            )),
            Ok(Err(refusal)) => log(&format!(
                "{name}:{version} is not rolled out on {}: {refusal}",
                spec.alias
            )),
            Err(sluice_delivery::DeliveryError::Metadata(
                sluice_store::MetadataError::Conflict(why),
            )) => log(&format!("{name}:{version} is not rolled out: {why}")),
            Err(e) => return Err(store_err(e)),
        }
        Ok(())
    }

    /// Decides the stage of each running rollout on `[promotion.rollout]`'s
    /// alias whose time has come (every model the policy moves), whoever
    /// started it; logs each decision.
    fn drive_rollouts(&self) -> Result<(), WatchError> {
        let Some(spec) = &self.config.promotion.rollout else {
            return Ok(());
        };
        let holder = format!(
            "sluice watch ({} pid {})",
            sluice_store::identity::user(),
            std::process::id()
        );
        for name in self.promoted_models()? {
            let Some(r) = self
                .store
                .metadata
                .running_rollout(&name, &spec.alias)
                .map_err(store_err)?
            else {
                continue;
            };
            match sluice_delivery::rollout::tick(&self.store, &r.id, SystemTime::now(), &holder)
                .map_err(store_err)?
            {
                sluice_delivery::rollout::Tick::Decided { decision, reason } => log(&format!(
                    "rollout {} of {name}:{}: {decision} — {reason}",
                    r.id, r.candidate
                )),
                sluice_delivery::rollout::Tick::Wait(_)
                | sluice_delivery::rollout::Tick::Ended(_) => {}
            }
        }
        Ok(())
    }
}

/// The rollout plan of `[promotion.rollout]`: its keys over `sluice
/// rollout start`'s defaults.
fn rollout_plan(spec: &RolloutSpec) -> sluice_delivery::rollout::Plan {
    let d = sluice_delivery::rollout::Plan::default();
    sluice_delivery::rollout::Plan {
        steps: spec.steps.clone().unwrap_or(d.steps),
        window_ms: spec.window.map_or(d.window_ms, |w| w.as_millis() as u64),
        min_requests: spec.min_requests.unwrap_or(d.min_requests),
        max_error_rate_increase: spec
            .max_error_rate_increase
            .unwrap_or(d.max_error_rate_increase),
        alpha: spec.alpha.unwrap_or(d.alpha),
        max_p99_ratio: spec.max_p99_ratio.unwrap_or(d.max_p99_ratio),
        feedback: spec
            .feedback
            .as_ref()
            .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()))
            .map(|f| f.display().to_string())
            .or(d.feedback),
        min_labels: spec.min_labels.unwrap_or(d.min_labels),
        max_accuracy_drop: spec.max_accuracy_drop.unwrap_or(d.max_accuracy_drop),
        max_prediction_divergence: spec
            .max_prediction_divergence
            .unwrap_or(d.max_prediction_divergence),
    }
}

fn pending(kind: &str, detail: String) -> Pending {
    Pending {
        tag: format!("{kind}:{:08x}", rand::random::<u32>()),
        kind: kind.into(),
        detail,
        at: now(),
    }
}

/// What a watched location holds, as a digest: an `s3://` prefix's object
/// listing, else a file's or folder's content.
fn fingerprint(location: &str) -> Result<Digest, String> {
    if sluice_store::ObjectStore::is_remote_url(location) {
        sluice_store::prefix_digest(location).map_err(|e| e.to_string())
    } else {
        digest_of(Path::new(location)).map_err(|e| e.to_string())
    }
}

/// A data input's content digest: a file's bytes, or a folder's files
/// (names and contents, sorted).
pub fn digest_of(path: &Path) -> std::io::Result<Digest> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    entries.push(p);
                }
            }
        }
        entries.sort();
        let mut parts = Vec::new();
        for e in &entries {
            let rel = e
                .strip_prefix(path)
                .unwrap_or(e)
                .to_string_lossy()
                .into_owned();
            parts.push(rel.into_bytes());
            parts.push(Digest::of(&std::fs::read(e)?).as_bytes().to_vec());
        }
        Ok(Digest::of_parts(parts.iter().map(Vec::as_slice)))
    } else {
        Ok(Digest::of(&std::fs::read(path)?))
    }
}

/// The feedback labels file (CSV with a header, or Parquet) as one table,
/// read by `sluice-tables` as `sluice monitor --feedback` reads it (quoted
/// fields, inferred column types). The error says why, with its causes.
fn read_feedback(path: &Path) -> Result<arrow_array::RecordBatch, String> {
    sluice_tables::read_table(path).map_err(|e| {
        let mut message = format!("feedback: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        message
    })
}

fn short(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    hex.chars().take(12).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn rfc3339(secs: u64) -> String {
    sluice_store::time::rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

fn now() -> String {
    sluice_store::time::now()
}

/// Unix seconds of an RFC 3339 time.
fn parse_time(t: &str) -> Option<u64> {
    sluice_store::time::parse_rfc3339(t)?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Lines of the watch log: UTC time, then the message.
pub fn log(message: &str) {
    eprintln!("{} {message}", now());
}

/// Test hook: `SLUICE_WATCH_CRASH=POINT` aborts the process there, the way
/// a kill would, so that tests can prove a restart loses and repeats
/// nothing.
fn crash_point(point: &str) {
    if std::env::var("SLUICE_WATCH_CRASH").as_deref() == Ok(point) {
        log(&format!("crashing at `{point}` (SLUICE_WATCH_CRASH)"));
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for secs in [0u64, 1_764_080_157, 951_782_400] {
            assert_eq!(parse_time(&rfc3339(secs)), Some(secs));
        }
    }

    #[test]
    fn a_folder_digest_changes_with_any_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "1").unwrap();
        let before = digest_of(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.csv"), "2").unwrap();
        let after = digest_of(dir.path()).unwrap();
        assert_ne!(before, after);
        assert_eq!(after, digest_of(dir.path()).unwrap());
    }

    #[test]
    fn feedback_fields_may_hold_quoted_commas() {
        use arrow_array::Array as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(
            &path,
            "request_id,label,row\n\"req-1,a\",\"benign, mostly\",0\nreq-2,malignant,1\n",
        )
        .unwrap();
        let feedback = read_feedback(&path).unwrap();
        assert_eq!((feedback.num_rows(), feedback.num_columns()), (2, 3));
        let text = |name: &str, i: usize| {
            feedback
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .value(i)
                .to_string()
        };
        assert_eq!(text("request_id", 0), "req-1,a");
        assert_eq!(text("label", 0), "benign, mostly");
        assert_eq!(text("label", 1), "malignant");
        assert!(
            feedback
                .column_by_name("row")
                .unwrap()
                .data_type()
                .is_integer()
        );

        let missing = read_feedback(&dir.path().join("none.csv")).unwrap_err();
        assert!(missing.starts_with("feedback: opening "), "{missing}");
    }
}
