//! Running sluice pipelines on a cluster's workflow engine.
//!
//! sluice does not schedule pods: a team that outgrows one machine runs
//! the engine it already operates, and each pod runs `sluice step exec`
//! against the team store (metadata on PostgreSQL, objects on S3). Who
//! holds what:
//!
//! - **the engine** (Kubeflow Pipelines, Vertex AI Pipelines, Argo through
//!   KFP): pods, nodes, GPUs, ordering, retries of lost pods, its UI;
//! - **sluice**: the run's plan (`sluice run --plan-only`), each step's
//!   cache check, sandbox, outputs and lineage (`sluice step exec`), the
//!   registry, and the run's end (`sluice runs finish`).
//!
//! [`kfp`] writes a pipeline as Kubeflow Pipelines v2 IR, checked
//! ([`kfp::check`]) before it is written; [`yaml`] is the small YAML
//! writer it uses.

pub mod kfp;
pub mod yaml;
