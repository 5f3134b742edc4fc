//! Serving-path checks (contract 0.1.3): the host starts a model in the
//! real model server on loopback, sends it example rows and a bounded load,
//! and reports what it observed; the step decides what is good enough
//! (`std:infra-validate` does). A step that calls [`probe`] measured the
//! machine it ran on, so its result is never reused from the cache.

use serde_json::Value as Json;

use crate::bindings::sluice::pipeline::serving as raw;
use crate::ml::host_error;
use crate::{Model, StepError, Table};

/// What a [`probe`] observed.
#[derive(Debug)]
pub struct Probe {
    /// One row per example, in order: `status` (the HTTP status; 0 when no
    /// answer came), `error` (empty on 200) and the prediction columns the
    /// server answered (missing where the request failed).
    pub answers: Table,
    /// The measurements: `started`, `error`, `startup_ms`,
    /// `peak_rss_bytes` (null where it cannot be measured), `killed`,
    /// `load` (`requests`, `errors`, `duration_ms`, `qps`, `concurrency`,
    /// `rows_per_request`, `latency_ms` with `p50`, `p90`, `p99`, `max`)
    /// and `server` (`version`, `cpus`).
    pub report: Json,
}

/// Starts `model` in the real model server, sends each row of `examples`
/// (raw columns, as a client would send them) as its own request, then a
/// bounded load; `options` is a JSON object with any of `concurrency`,
/// `duration_ms`, `max_requests`, `rows_per_request` and
/// `memory_ceiling_bytes`. A host that cannot start a server (outside the
/// `sluice` binary) gives [`StepError::InvalidInput`].
pub fn probe(model: &Model, examples: &Table, options: &Json) -> Result<Probe, StepError> {
    let result = raw::probe(model.as_raw(), examples.as_raw(), &options.to_string())
        .map_err(|e| host_error("probing the model in the model server", e))?;
    let report = serde_json::from_str(&result.report).map_err(|e| {
        StepError::failed(format!(
            "the host returned a probe report that is not JSON ({e}): {}",
            crate::ml::truncate(&result.report, 300)
        ))
    })?;
    Ok(Probe {
        answers: Table::from_raw(result.answers),
        report,
    })
}
