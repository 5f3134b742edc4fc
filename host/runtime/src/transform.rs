//! Replaying a fitted transform outside a pipeline: the model server and
//! batch prediction call the `apply` export of the same component bytes,
//! with the same fitted state, that preprocessed the training data.
//!
//! Instances are pooled: an `apply` takes an idle instance (or makes one
//! from the pre-linked component in microseconds), runs under the sandbox's
//! memory and time limits, and gives the instance back unless it trapped.

use crate::engine::Component;
use crate::host::{StepIo, StepState};
use crate::sandbox::{Capture, Limits};
use crate::table::TableRes;
use arrow_array::RecordBatch;
use std::sync::Mutex;
use std::time::Duration;
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

    /// Applies the transform to `batch`.
    pub async fn apply(&self, batch: RecordBatch) -> Result<RecordBatch, TransformError> {
        let taken = self.pool.lock().unwrap().pop();
        let mut pooled = match taken {
            Some(p) => p,
            None => self.instantiate().await?,
        };
        let result = self.call(&mut pooled, batch).await;
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

    async fn call(
        &self,
        pooled: &mut Pooled,
        batch: RecordBatch,
    ) -> Result<RecordBatch, TransformError> {
        let Pooled { store, transform } = pooled;
        crate::engine::set_deadline(store, self.limits.time);
        let input = store
            .data_mut()
            .push_table(
                "the request's table",
                sluice_tables::Table::from_batch(batch),
            )
            .map_err(|e| TransformError::Failed(format!("{e:#}")))?;
        let borrowed = wasmtime::component::Resource::<TableRes>::new_borrow(input.rep());
        let time = self.limits.time + Duration::from_millis(100);
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
            Ok(Err(message)) => Err(TransformError::Refused(message)),
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
