//! Replaying a fitted transform outside a pipeline: the model server and
//! batch prediction call the `apply` export of the same component bytes,
//! with the same fitted state, that preprocessed the training data.
//!
//! Instances are pooled: an `apply` takes an idle instance (or makes one
//! from the pre-linked component in microseconds), runs under the sandbox's
//! memory and time limits, and gives the instance back unless it trapped.
//!
//! A runtime built without the query engine (the edge runtime: no
//! `operators` feature) gives `apply` batches of at most [`SLICE_ROWS`]
//! rows. std:transform computes a batch of 4096 rows or more with SQL
//! expressions in the host (`tables.compute`), which such a runtime
//! refuses, and smaller batches in the component, with the same values;
//! since `apply` is row-wise, a larger batch is applied slice by slice with
//! one instance and the results are joined.

use crate::engine::Component;
use crate::host::{StepIo, StepState};
use crate::sandbox::{Capture, Limits};
use crate::table::TableRes;
use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{Field, Schema};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Store;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "transform",
        exports: { default: async },
        with: {
            "sluice:pipeline/tables": crate::bindings::sluice::pipeline::tables,
        },
    });
}

/// Bytes of guest stdout and stderr kept per pooled instance.
const CAPTURE_BYTES: usize = 64 * 1024;
/// Most idle instances kept per transform.
const POOL_SIZE: usize = 16;

/// The most rows one `apply` is given by a runtime without the query
/// engine: one less than the 4096 rows from which std:transform asks the
/// host to compute with SQL expressions (`NATIVE_ROWS` in
/// components/transform/src/lib.rs), so that it computes in the component.
pub const SLICE_ROWS: usize = 4095;

/// Why a transform could not be replayed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    /// The component does not export the `transform` world (`fit`, `apply`).
    #[error(
        "component {component} is not a transform: it must export `fit` and `apply` \
         (the `transform` world of sluice:pipeline): {detail}"
    )]
    NotATransform {
        /// The component's name.
        component: String,
        /// What wasmtime said.
        detail: String,
    },
    /// `apply` returned an error: the data does not fit the transform.
    #[error("the transform refused the data: {0}")]
    Refused(String),
    /// `apply` failed because it asked the host for an operation this
    /// runtime has no engine for (the edge runtime: sort, group-by, join,
    /// SQL, SQL expressions such as std:transform's `derive`). The model
    /// cannot be served here whatever the request; the message says what
    /// to do.
    #[error(
        "the transform cannot run in this runtime: {0}. Serve this model with `sluice serve` \
         (or predict with `sluice predict`), or bundle a model whose transform needs no query \
         engine (std:transform without `derive`)"
    )]
    Unavailable(String),
    /// The instance trapped or ran out of time or memory.
    #[error("the transform failed: {0}")]
    Failed(String),
}

impl TransformError {
    /// Whether the request's data is at fault (rather than the component).
    pub fn blames_request(&self) -> bool {
        matches!(self, TransformError::Refused(_))
    }
}

struct Pooled {
    store: Store<StepState>,
    transform: bindings::Transform,
}

/// A fitted transform ready to apply: a transform component, its fitted
/// state, and a pool of live instances. Share it behind an `Arc`.
pub struct TransformRunner {
    component: Component,
    pre: bindings::TransformPre<StepState>,
    state: String,
    limits: Limits,
    pool: Mutex<Vec<Pooled>>,
}

impl std::fmt::Debug for TransformRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformRunner")
            .field("component", &self.component.name())
            .field("digest", &self.component.digest())
            .finish()
    }
}

impl TransformRunner {
    /// A runner of `component`'s `apply` with `state` (the fitted state,
    /// as `fit` returned it), each call bounded by `limits` (memory and
    /// time; the output limit does not apply).
    pub fn new(
        component: &Component,
        state: String,
        limits: Limits,
    ) -> Result<Self, TransformError> {
        let pre = bindings::TransformPre::new(component.instance_pre().clone()).map_err(|e| {
            TransformError::NotATransform {
                component: component.name().to_string(),
                detail: format!("{e:#}"),
            }
        })?;
        Ok(TransformRunner {
            component: component.clone(),
            pre,
            state,
            limits,
            pool: Mutex::new(Vec::new()),
        })
    }

    /// The runner of the transform a model card records (`{"component":
    /// "sha256:…", "state": …}`), its component found by `load`.
    pub fn recorded(
        doc: &serde_json::Value,
        load: &dyn Fn(&sluice_digest::Digest) -> Result<Component, String>,
        limits: Limits,
    ) -> Result<Self, String> {
        let digest: sluice_digest::Digest = doc
            .get("component")
            .and_then(serde_json::Value::as_str)
            .ok_or("the card's `transform` names no `component` digest")?
            .parse()
            .map_err(|e| format!("the card's `transform.component`: {e}"))?;
        let state = doc
            .get("state")
            .ok_or("the card's `transform` has no fitted `state`")?;
        let component = load(&digest)?;
        TransformRunner::new(&component, state.to_string(), limits).map_err(|e| e.to_string())
    }

    /// The transform component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// Makes an instance now, so that the first request does not pay for it.
    pub fn warm(&self) -> Result<(), TransformError> {
        let pooled = crate::engine::block_on(self.instantiate())?;
        self.give_back(pooled);
        Ok(())
    }

    /// Applies the transform to `batch`, blocking the calling thread. Must
    /// not be called from an async task; use [`TransformRunner::apply`].
    pub fn apply_blocking(&self, batch: RecordBatch) -> Result<RecordBatch, TransformError> {
        crate::engine::block_on(self.apply(batch))
    }

    /// Applies the transform to `batch` (in slices of at most
    /// [`SLICE_ROWS`] rows, all with one instance and within one time
    /// limit, in a runtime without the query engine).
    pub async fn apply(&self, batch: RecordBatch) -> Result<RecordBatch, TransformError> {
        let taken = self.pool.lock().unwrap().pop();
        let mut pooled = match taken {
            Some(p) => p,
            None => self.instantiate().await?,
        };
        let deadline = Instant::now() + self.limits.time;
        let result = if cfg!(feature = "operators") || batch.num_rows() <= SLICE_ROWS {
            self.call(&mut pooled, batch, deadline).await
        } else {
            let mut parts = Vec::new();
            let mut failed = None;
            for (offset, rows) in slices(batch.num_rows(), SLICE_ROWS) {
                match self
                    .call(&mut pooled, batch.slice(offset, rows), deadline)
                    .await
                {
                    Ok(part) => parts.push(part),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => join_slices(parts),
            }
        };
        // An instance that trapped may be in any state; it is dropped.
        if !matches!(result, Err(TransformError::Failed(_))) {
            self.give_back(pooled);
        }
        result
    }

    fn give_back(&self, pooled: Pooled) {
        let mut pool = self.pool.lock().unwrap();
        if pool.len() < POOL_SIZE {
            pool.push(pooled);
        }
    }

    async fn instantiate(&self) -> Result<Pooled, TransformError> {
        let mut store = self.component.store(
            StepIo::default(),
            &self.limits,
            [0; 32],
            Some(crate::clocks::ClockReads::default()),
            Capture::new(CAPTURE_BYTES),
            Capture::new(CAPTURE_BYTES),
        );
        let transform = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| TransformError::Failed(format!("instantiation failed: {e:#}")))?;
        Ok(Pooled { store, transform })
    }

    /// One call of `apply` on `batch`, to end by `deadline`.
    async fn call(
        &self,
        pooled: &mut Pooled,
        batch: RecordBatch,
        deadline: Instant,
    ) -> Result<RecordBatch, TransformError> {
        let Pooled { store, transform } = pooled;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransformError::Failed(format!(
                "it ran past its time limit of {:?}",
                self.limits.time
            )));
        }
        store.data_mut().io.unavailable = None;
        crate::engine::set_deadline(store, left);
        let input = store
            .data_mut()
            .push_table(
                "the request's table",
                sluice_tables::Table::from_batch(batch),
            )
            .map_err(|e| TransformError::Failed(format!("{e:#}")))?;
        let borrowed = wasmtime::component::Resource::<TableRes>::new_borrow(input.rep());
        let time = left + Duration::from_millis(100);
        let call = tokio::time::timeout(
            time,
            transform.call_apply(&mut *store, borrowed, &self.state),
        )
        .await
        .unwrap_or_else(|_| Err(wasmtime::Error::new(wasmtime::Trap::Interrupt)));
        let _ = store.data_mut().resources.delete(input);
        match call {
            Ok(Ok(output)) => {
                let out = store
                    .data_mut()
                    .resources
                    .delete(output)
                    .map_err(|e| TransformError::Failed(e.to_string()))?;
                out.table
                    .to_batch()
                    .map_err(|e| TransformError::Failed(e.to_string()))
            }
            Ok(Err(message)) => match store.data_mut().io.unavailable.take() {
                // Refused for lack of the query engine: the runtime's
                // limit, not the request's fault.
                Some(op) if message.contains(&op) => Err(TransformError::Unavailable(message)),
                Some(op) => Err(TransformError::Unavailable(format!("{message} ({op})"))),
                None => Err(TransformError::Refused(message)),
            },
            Err(e) => {
                let state = store.data();
                Err(TransformError::Failed(
                    if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
                        format!("it ran past its time limit of {:?}", self.limits.time)
                    } else if let Some((requested, _)) = state.limiter.refused {
                        format!(
                            "it asked for {requested} bytes of memory, past its limit of {}",
                            self.limits.memory
                        )
                    } else {
                        format!("{e:#}")
                    },
                ))
            }
        }
    }
}

/// `(offset, rows)` of the consecutive slices of at most `max` rows that
/// cover `rows` rows.
fn slices(rows: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..rows)
        .step_by(max.max(1))
        .map(move |offset| (offset, max.max(1).min(rows - offset)))
}

/// The outputs of `apply` on consecutive slices of one batch, joined in
/// order. A column is nullable if it is in any slice (a builder marks a
/// column nullable only when its own rows have nulls); the slices must
/// otherwise have the same columns, of the same types.
fn join_slices(parts: Vec<RecordBatch>) -> Result<RecordBatch, TransformError> {
    let Some(first) = parts.first() else {
        return Err(TransformError::Failed("no slice was applied".into()));
    };
    let first = first.schema();
    let mut fields: Vec<Field> = first.fields().iter().map(|f| f.as_ref().clone()).collect();
    let describe = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, part) in parts.iter().enumerate().skip(1) {
        let schema = part.schema();
        let same = schema.fields().len() == fields.len()
            && schema
                .fields()
                .iter()
                .zip(&fields)
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !same {
            return Err(TransformError::Failed(format!(
                "applied in slices of {SLICE_ROWS} rows, it gave different columns for \
                 slice 1 ({}) and slice {} ({})",
                describe(&first),
                i + 1,
                describe(&schema)
            )));
        }
        for (f, g) in fields.iter_mut().zip(schema.fields()) {
            if g.is_nullable() && !f.is_nullable() {
                f.set_nullable(true);
            }
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, first.metadata().clone()));
    let parts = parts
        .into_iter()
        .map(|p| {
            RecordBatch::try_new_with_options(
                schema.clone(),
                p.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(p.num_rows())),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransformError::Failed(format!("joining its slices: {e}")))?;
    arrow_select::concat::concat_batches(&schema, &parts)
        .map_err(|e| TransformError::Failed(format!("joining its slices: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use arrow_array::{ArrayRef, Float64Array, StringArray};
    use arrow_schema::DataType;

    #[test]
    fn slices_cover_the_rows_in_order_with_at_most_max_each() {
        let all: Vec<_> = slices(10_000, SLICE_ROWS).collect();
        assert_eq!(all, [(0, 4095), (4095, 4095), (8190, 1810)]);
        assert_eq!(slices(4095, 4095).collect::<Vec<_>>(), [(0, 4095)]);
        assert_eq!(
            slices(4096, 4095).collect::<Vec<_>>(),
            [(0, 4095), (4095, 1)]
        );
        assert_eq!(slices(0, 4095).count(), 0);
    }

    fn part(name: &str, values: Vec<Option<f64>>) -> RecordBatch {
        let nulls = values.iter().any(Option::is_none);
        let schema = Arc::new(Schema::new(vec![Field::new(
            name,
            DataType::Float64,
            nulls,
        )]));
        let column: ArrayRef = Arc::new(Float64Array::from(values));
        RecordBatch::try_new(schema, vec![column]).unwrap()
    }

    #[test]
    fn slices_are_joined_in_order_nullable_if_any_slice_is() {
        let joined = join_slices(vec![
            part("x", vec![Some(1.0), Some(2.0)]),
            part("x", vec![None]),
            part("x", vec![Some(4.0)]),
        ])
        .unwrap();
        assert!(joined.schema().field(0).is_nullable());
        let x = joined.column(0).as_primitive::<Float64Type>();
        assert_eq!(
            x.iter().collect::<Vec<_>>(),
            [Some(1.0), Some(2.0), None, Some(4.0)]
        );
        let one = join_slices(vec![part("x", vec![Some(1.0)])]).unwrap();
        assert!(!one.schema().field(0).is_nullable());
    }

    #[test]
    fn slices_with_different_columns_are_a_failure_that_names_them() {
        let text =
            RecordBatch::try_from_iter([("x", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)])
                .unwrap();
        let e = join_slices(vec![part("x", vec![Some(1.0)]), text]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the transform failed: applied in slices of 4095 rows, it gave different columns \
             for slice 1 (x Float64) and slice 2 (x Utf8)"
        );
        assert!(!e.blames_request());
    }

    #[test]
    fn a_transform_refused_for_lack_of_the_query_engine_does_not_blame_the_request() {
        let e = TransformError::Unavailable("compute: not available in sluice-edge".into());
        assert!(!e.blames_request());
        assert!(
            e.to_string()
                .contains("Serve this model with `sluice serve`")
        );
    }
}
