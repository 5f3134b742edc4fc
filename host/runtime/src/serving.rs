//! The host side of the `serving` interface (0.1.3): a step asks for its
//! model to be started in the real model server and measured. The host
//! only measures — the [`ServingProbe`] the caller injected starts the
//! server — and the step decides what is good enough (`std:infra-validate`).

use crate::bindings::sluice::pipeline::{ml, serving};
use crate::host::StepState;
use crate::model::ModelRes;
use crate::outcome::ProbeOptions;
use crate::table::TableRes;
use wasmtime::component::Resource;

/// Most example rows one probe sends one by one: examples are a sample of
/// test rows, not a dataset, and each is its own request.
pub const MAX_PROBE_EXAMPLES: usize = 1_000;

impl serving::Host for StepState {
    async fn probe(
        &mut self,
        model: Resource<ModelRes>,
        examples: Resource<TableRes>,
        options: String,
    ) -> wasmtime::Result<Result<serving::ProbeResult, ml::MlError>> {
        let invalid = |m: String| Ok(Err(ml::MlError::InvalidInput(m)));
        let Some(prober) = self.io.serving.clone() else {
            return invalid(
                "this host cannot start a model server: serving.probe needs the `sluice` \
                 binary (sluice run, watch or test)"
                    .into(),
            );
        };
        let options: ProbeOptions = if options.trim().is_empty() {
            ProbeOptions::default()
        } else {
            match serde_json::from_str(&options) {
                Ok(o) => o,
                Err(e) => return invalid(format!("probe options: {e}")),
            }
        };
        if options.concurrency == 0 || options.rows_per_request == 0 {
            return invalid(
                "probe options: concurrency and rows_per_request must be at least 1".into(),
            );
        }
        let model = self.resources.get(&model)?.0.clone();
        let batch = self.table(&examples)?.to_batch()?;
        if batch.num_rows() == 0 {
            return invalid("probe: the examples table has no rows".into());
        }
        if batch.num_rows() > MAX_PROBE_EXAMPLES {
            return invalid(format!(
                "probe: {} example rows; each is its own request, so at most {MAX_PROBE_EXAMPLES} \
                 are sent (sample the examples first)",
                batch.num_rows()
            ));
        }
        // Whatever happens next, this step's result measured the machine.
        self.io.probed = true;
        match prober.probe(model, batch, options).await {
            Ok(answer) => {
                let answers = self.push_table(
                    "the served answers",
                    sluice_tables::Table::from_batch(answer.answers),
                )?;
                Ok(Ok(serving::ProbeResult {
                    answers,
                    report: answer.report.to_string(),
                }))
            }
            Err(e) => Ok(Err(ml::MlError::Failed(format!(
                "could not start a model server: {e}"
            )))),
        }
    }
}
