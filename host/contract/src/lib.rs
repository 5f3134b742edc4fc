//! The plain types of the sluice step contract.
//!
//! A step (a WebAssembly component of the `sluice:pipeline` WIT package,
//! `wit/`) describes itself with a [`Manifest`]: its input and output
//! [`Port`]s, each carrying one [`ArtifactKind`], and its parameters
//! ([`ParamSpec`]), whose values are [`Value`]s of a [`ValueType`]. Tables
//! are made of columns of a [`DType`].
//!
//! These types exist once, here, and both sides of the contract use them:
//! the host (`sluice-runtime` re-exports them; spec validation, the CLI and
//! the model server read them) and the Rust SDK (`sdk/rust`, built for
//! `wasm32-wasip2`), which is why the crate is `no_std` with `alloc` and its
//! serde support is optional. The WIT bindings on each side convert to and
//! from these types; nothing else mirrors them.
//!
//! [`numbers_agree`] is the one rule for when a served prediction is the
//! prediction it is checked against.
//!
//! Features: `serde` derives (de)serialisation in the representation the
//! store records; `json` converts [`Value`] to and from `serde_json::Value`.
//!
//! ```
//! use sluice_contract::{Manifest, ParamSpec, Port};
//!
//! let manifest = Manifest::new("scale", "0.1.0")
//!     .doc("Scales numeric columns.")
//!     .input(Port::table("data"))
//!     .output(Port::table("scaled"))
//!     .param(ParamSpec::float("factor").default(2.0));
//! assert_eq!(manifest.find_param("factor").unwrap().default, Some(2.0.into()));
//! assert!(manifest.find_input("data").is_some());
//! ```

#![no_std]

extern crate alloc;

mod agreement;
mod dtype;
mod manifest;
mod value;

pub use agreement::{PREDICTION_TOLERANCE, numbers_agree};
pub use dtype::DType;
pub use manifest::{ArtifactKind, Manifest, ParamSpec, Port};
pub use value::{Value, ValueType};
