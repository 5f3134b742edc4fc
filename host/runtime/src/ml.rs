//! The host side of the `ml` interface: models as resources, native
//! training (on a blocking thread, so the step's time limit still holds),
//! inference and evaluation. The numeric work is `sluice-ml`'s; this module
//! only moves handles and tables across the boundary.

use crate::bindings::sluice::pipeline::ml;
use crate::dataplane::HostMemoryExceeded;
use crate::host::{StepState, parse_object};
use crate::model::{ModelArtifact, ModelError, ModelRes};
use crate::table::TableRes;
use crate::transform::TransformRunner;
use arrow_array::RecordBatch;
use sluice_tables::Hold;
use std::sync::Arc;
use wasmtime::component::Resource;

/// The contract's error for a host-side failure.
fn ml_error(e: ModelError) -> ml::MlError {
    if e.blames_request() {
        ml::MlError::InvalidInput(e.to_string())
    } else {
        ml::MlError::Failed(e.to_string())
    }
}

/// Raises a [`sluice_ml::Cancel`] flag when dropped.
struct CancelOnDrop(sluice_ml::Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Runs `work` on a blocking thread and waits for it. The thread is one
/// nothing can kill: when this future is dropped (the step's time limit
/// passed), the flag handed to `work` is raised, and `work` stops at its
/// next check (a training batch or iteration, an inference chunk).
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce(&sluice_ml::Cancel) -> T + Send + 'static,
) -> wasmtime::Result<T> {
    let cancel = sluice_ml::Cancel::new();
    let _stop = CancelOnDrop(cancel.clone());
    tokio::task::spawn_blocking(move || work(&cancel))
        .await
        .map_err(|e| wasmtime::Error::msg(format!("the host's worker thread failed: {e}")))
}

impl StepState {
    /// `batch` through the transform `model`'s card records (the rows as
    /// they are when it records none). The runner is made once per step
    /// and transform, and runs under the step's limits.
    async fn replay_transform(
        &mut self,
        model: &ModelArtifact,
        batch: RecordBatch,
    ) -> Result<RecordBatch, ml::MlError> {
        let Some(doc) = model.card().get("transform").filter(|d| !d.is_null()) else {
            return Ok(batch);
        };
        let key = doc.to_string();
        let runner = match self.io.transforms.get(&key) {
            Some(r) => r.clone(),
            None => {
                let Some(load) = self.io.components.clone() else {
                    return Err(ml::MlError::Failed(
                        "this host cannot load the model's recorded transform here (no \
                         component store is available to the step)"
                            .into(),
                    ));
                };
                let limits = self.io.limits.unwrap_or_default();
                let runner = TransformRunner::recorded(doc, &*load, limits).map_err(|e| {
                    ml::MlError::Failed(format!("loading the model's recorded transform: {e}"))
                })?;
                let runner = Arc::new(runner);
                self.io.transforms.insert(key, runner.clone());
                runner
            }
        };
        runner.apply(batch).await.map_err(|e| {
            let m = format!(
                "the model's recorded transform ({}): {e}",
                runner.component().name()
            );
            if e.blames_request() {
                ml::MlError::InvalidInput(m)
            } else {
                ml::MlError::Failed(m)
            }
        })
    }

    /// Reserves what running `model` on `rows` rows allocates.
    fn inference_hold(&self, model: &ModelArtifact, rows: usize) -> wasmtime::Result<Hold> {
        self.session
            .ledger()
            .hold_bytes(
                format_args!("running the model on {rows} rows"),
                model.inference_memory(rows),
            )
            .map_err(|e| wasmtime::Error::new(HostMemoryExceeded(e)))
    }

    /// Trains on `data` (validated on `validation`, if any) off the step's
    /// thread, with what training will allocate reserved before it starts
    /// and until its thread ends.
    async fn train_model(
        &mut self,
        algorithm: String,
        data: Resource<TableRes>,
        validation: Option<Resource<TableRes>>,
        features: Vec<String>,
        label: String,
        params: String,
    ) -> wasmtime::Result<Result<Resource<ModelRes>, ml::MlError>> {
        let table = self.table(&data)?;
        let validation = validation.map(|v| self.table(&v)).transpose()?;
        let held_out = validation.as_ref().map_or(0, |v| v.num_rows());
        let estimate = ModelArtifact::training_memory(
            &algorithm,
            &params,
            table.num_rows() + held_out,
            features.len(),
        );
        let hold = self
            .session
            .ledger()
            .hold_bytes(
                format_args!(
                    "training {algorithm} on {} rows × {} features{}",
                    table.num_rows(),
                    features.len(),
                    if validation.is_some() {
                        format!(", validated on {held_out}")
                    } else {
                        String::new()
                    }
                ),
                estimate,
            )
            .map_err(|e| wasmtime::Error::new(HostMemoryExceeded(e)))?;
        let trained = off_thread(move |cancel| {
            let trained = ModelArtifact::train_validated(
                &algorithm,
                &table,
                validation.as_ref(),
                &features,
                &label,
                &params,
                cancel,
            );
            drop(hold);
            trained
        })
        .await?;
        match trained {
            Ok(model) => Ok(Ok(self.resources.push(ModelRes(Arc::new(model)))?)),
            Err(e) => Ok(Err(ml_error(e))),
        }
    }

    /// Measures `model` off the step's thread: run on `features`, compared
    /// with `truth` (the same rows, holding the label and the slice column).
    async fn measure(
        &mut self,
        model: &Resource<ModelRes>,
        features: RecordBatch,
        truth: RecordBatch,
        slice_by: Option<String>,
    ) -> wasmtime::Result<Result<serde_json::Value, ml::MlError>> {
        let model = self.resources.get(model)?.0.clone();
        let hold = self.inference_hold(&model, truth.num_rows())?;
        let measured = off_thread(move |cancel| {
            let measured =
                model.evaluate_rows_until(&features, &truth, slice_by.as_deref(), cancel);
            drop(hold);
            measured
        })
        .await?;
        Ok(measured.map_err(ml_error))
    }
}

impl ml::Host for StepState {
    async fn train(
        &mut self,
        algorithm: String,
        data: Resource<TableRes>,
        features: Vec<String>,
        label: String,
        params: String,
    ) -> wasmtime::Result<Result<Resource<ModelRes>, ml::MlError>> {
        self.train_model(algorithm, data, None, features, label, params)
            .await
    }

    async fn train_validated(
        &mut self,
        algorithm: String,
        data: Resource<TableRes>,
        validation: Resource<TableRes>,
        features: Vec<String>,
        label: String,
        params: String,
    ) -> wasmtime::Result<Result<Resource<ModelRes>, ml::MlError>> {
        self.train_model(algorithm, data, Some(validation), features, label, params)
            .await
    }

    async fn evaluate_raw(
        &mut self,
        model: Resource<ModelRes>,
        data: Resource<TableRes>,
        slice_by: Option<String>,
    ) -> wasmtime::Result<Result<String, ml::MlError>> {
        let artifact = self.resources.get(&model)?.0.clone();
        let raw = self.table(&data)?.to_batch()?;
        let features = match self.replay_transform(&artifact, raw.clone()).await {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        // Marked, so that a later comparison knows its slices are by raw values.
        Ok(self
            .measure(&model, features, raw, slice_by)
            .await?
            .map(|mut v| {
                v["raw"] = true.into();
                v.to_string()
            }))
    }

    async fn evaluate(
        &mut self,
        model: Resource<ModelRes>,
        data: Resource<TableRes>,
        slice_by: Option<String>,
    ) -> wasmtime::Result<Result<String, ml::MlError>> {
        let batch = self.table(&data)?.to_batch()?;
        Ok(self
            .measure(&model, batch.clone(), batch, slice_by)
            .await?
            .map(|v| v.to_string()))
    }
}

impl ml::HostModel for StepState {
    fn from_onnx(
        &mut self,
        onnx: Vec<u8>,
        card: String,
    ) -> wasmtime::Result<Result<Resource<ModelRes>, ml::MlError>> {
        let card = match parse_object(&card, "the model card") {
            Ok(c) => c,
            Err(e) => return Ok(Err(ml::MlError::InvalidInput(e))),
        };
        let model = match ModelArtifact::new(bytes::Bytes::from(onnx), card) {
            Ok(m) => m,
            Err(e) => return Ok(Err(ml_error(e))),
        };
        if let Err(e) = model.runnable() {
            return Ok(Err(ml_error(e)));
        }
        Ok(Ok(self.resources.push(ModelRes(Arc::new(model)))?))
    }

    fn card(&mut self, this: Resource<ModelRes>) -> wasmtime::Result<String> {
        let model = &self.resources.get(&this)?.0;
        Ok(serde_json::to_string(model.card()).expect("a JSON map serialises"))
    }

    fn signature(&mut self, this: Resource<ModelRes>) -> wasmtime::Result<String> {
        let model = &self.resources.get(&this)?.0;
        Ok(match model.runnable() {
            Ok(r) => serde_json::to_string(&r.signature()).expect("a signature serialises"),
            Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
        })
    }

    async fn predict(
        &mut self,
        this: Resource<ModelRes>,
        data: Resource<TableRes>,
    ) -> wasmtime::Result<Result<Resource<TableRes>, ml::MlError>> {
        let model = self.resources.get(&this)?.0.clone();
        let batch = self.table(&data)?.to_batch()?;
        let hold = self.inference_hold(&model, batch.num_rows())?;
        let predicted = off_thread(move |cancel| {
            let predicted = model.predict_until(&batch, cancel);
            drop(hold);
            predicted
        })
        .await?;
        match predicted {
            Ok(out) => Ok(Ok(self.push_table(
                "the predictions",
                sluice_tables::Table::from_batch(out),
            )?)),
            Err(e) => Ok(Err(ml_error(e))),
        }
    }

    async fn transform(
        &mut self,
        this: Resource<ModelRes>,
        data: Resource<TableRes>,
    ) -> wasmtime::Result<Result<Resource<TableRes>, ml::MlError>> {
        let model = self.resources.get(&this)?.0.clone();
        let batch = self.table(&data)?.to_batch()?;
        match self.replay_transform(&model, batch).await {
            Ok(out) => Ok(Ok(self.push_table(
                "the transformed rows",
                sluice_tables::Table::from_batch(out),
            )?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn drop(&mut self, this: Resource<ModelRes>) -> wasmtime::Result<()> {
        self.resources.delete(this)?;
        Ok(())
    }
}
