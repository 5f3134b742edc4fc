//! `std:transform`: per-column feature transforms — standard scaling,
//! min-max scaling, one-hot encoding, imputation, bucketizing — fitted on
//! the training split and applied to any table.
//!
//! It is a *transform component*: it exports the `transform-step` world of
//! `wit/pipeline.wit`, so it is both a step (`describe` / `run`, which fits
//! on `train` and writes the transform artifact and the three transformed
//! splits) and a transform (`fit` / `apply`, which the model server calls
//! with the same bytes and the fitted state, so serving preprocesses exactly
//! as training did).
//!
//! The spec (the step's `spec` param, `fit`'s `params`):
//!
//! ```json
//! {"label": "diagnosis",
//!  "default-numeric": ["impute:mean", "standard"],
//!  "default-categorical": ["impute:most-frequent", "one-hot"],
//!  "columns": {"age": ["bucketize:5"], "income": ["impute:median", "min-max"]},
//!  "passthrough": ["id"],
//!  "drop": ["comment"]}
//! ```
//!
//! Transforms: `standard`, `min-max`, `one-hot`, `impute:mean`,
//! `impute:median`, `impute:most-frequent`, `impute:constant:<value>`,
//! `bucketize:<n>` (n quantile buckets of the fit data) and
//! `bucketize:[b1, b2, …]`. The fitted state format is described in
//! [`transform::State`] and in `docs/steps/transform.md`.

mod step;
pub mod transform;

use sluice_sdk::Column;
use sluice_sdk::bindings::sluice::pipeline::tables as raw;
use std::cell::RefCell;
use std::rc::Rc;
use step::TransformStep;
use transform::{Spec, State};

thread_local! {
    /// The last state `apply` parsed, with its text. A model server calls
    /// `apply` on a pooled instance with the same state for every request;
    /// parsing it each time was most of the component's work on a
    /// one-row request.
    static PARSED: RefCell<Option<(String, Rc<State>)>> = const { RefCell::new(None) };
}

/// `text` parsed, from the cache when it is the text parsed last.
fn parsed(text: &str) -> Result<Rc<State>, String> {
    if let Some(state) = PARSED.with_borrow(|p| {
        p.as_ref()
            .filter(|(t, _)| same_text(t, text))
            .map(|(_, s)| s.clone())
    }) {
        return Ok(state);
    }
    let state = Rc::new(State::parse(text)?);
    PARSED.set(Some((text.to_string(), state.clone())));
    Ok(state)
}

/// Whether `a` and `b` are the same text, compared eight bytes at a time.
/// A server's state is kilobytes long and compared on every call; `==`
/// compares through wasi-libc's `memcmp`, a byte at a time, which was the
/// most expensive single part of a one-row `apply`.
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("chunks of eight"));
    (&mut wa).zip(&mut wb).all(|(x, y)| word(x) == word(y)) && wa.remainder() == wb.remainder()
}

/// Bindings of the `transform-step` world. The imported interfaces are the
/// SDK's (so tables, context and manifests are the SDK's types); only the
/// exports are generated here.
#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transform-step",
        with: {
            "sluice:pipeline/types@0.1.4": sluice_sdk::bindings::sluice::pipeline::types,
            "sluice:pipeline/tables@0.1.4": sluice_sdk::bindings::sluice::pipeline::tables,
            "sluice:pipeline/ml@0.1.4": sluice_sdk::bindings::sluice::pipeline::ml,
            "sluice:pipeline/context@0.1.4": sluice_sdk::bindings::sluice::pipeline::context,
            "sluice:pipeline/serving@0.1.4": sluice_sdk::bindings::sluice::pipeline::serving,
        },
    });
}

/// The columns of a host table (whose columns are `names`) that `state`
/// reads (those it has), or all of them when `state` is `None`.
fn read_raw(
    table: &raw::Table,
    names: Vec<String>,
    state: Option<&State>,
) -> Result<Vec<(String, Column)>, String> {
    let wanted: Vec<String> = match state {
        Some(s) => s
            .columns
            .iter()
            .enumerate()
            // A request's columns mostly come in the state's order.
            .filter(|(i, c)| names.get(*i) == Some(&c.name) || names.contains(&c.name))
            .map(|(_, c)| c.name.clone())
            .collect(),
        None => names,
    };
    if table.num_rows() >= NATIVE_ROWS {
        // A column at a time, so the host holds one copy at a time.
        return wanted
            .into_iter()
            .map(|name| {
                let c = table
                    .column(&name)
                    .map_err(|e| format!("column `{name}`: {e}"))?;
                Ok((name, Column::from_raw(c)))
            })
            .collect();
    }
    // One host call for every column: a server calls `apply` per batch of
    // requests, and a call per column was most of a small batch's cost.
    let columns = table.columns(&wanted)?;
    Ok(wanted
        .into_iter()
        .zip(columns.into_iter().map(Column::from_raw))
        .collect())
}

/// From this many rows on, `apply` asks the host to compute the transform
/// natively; below, it computes in the component (the values are the same:
/// `tests/e2e` checks both paths against each other).
const NATIVE_ROWS: u64 = 4096;

struct Component;

impl bindings::Guest for Component {
    fn describe() -> sluice_sdk::bindings::sluice::pipeline::types::Manifest {
        sluice_sdk::__private::describe::<TransformStep>()
    }

    fn run() -> Result<(), sluice_sdk::bindings::sluice::pipeline::types::StepError> {
        sluice_sdk::__private::run::<TransformStep>()
    }

    fn fit(data: &raw::Table, params: String) -> Result<String, String> {
        let spec = Spec::parse(&params)?;
        if !spec.derive.is_empty() {
            return Err(
                "`fit` does not take a spec with `derive`; fit through the std:transform step"
                    .into(),
            );
        }
        let names = data.fields().into_iter().map(|f| f.name).collect();
        let columns = read_raw(data, names, None)?;
        let state = transform::fit(&columns, &spec)?;
        serde_json::to_string(&state).map_err(|e| format!("serializing the state: {e}"))
    }

    fn apply(data: &raw::Table, state: String) -> Result<raw::Table, String> {
        let state = parsed(&state)?;
        let fields = |t: &raw::Table| -> Vec<(String, sluice_sdk::DType)> {
            t.fields()
                .into_iter()
                .map(|f| (f.name, f.dtype.into()))
                .collect()
        };
        // Asked once: on a server every request pays for each host call.
        let data_fields = fields(data);
        if let Some(exprs) = transform::derive_columns(&data_fields, &state.params)? {
            // Derived columns are SQL: the host computes everything.
            let derived = data
                .compute(&exprs)
                .map_err(|e| format!("computing the derived columns: {e}"))?;
            return derived.compute(&transform::sql_columns(&fields(&derived), &state)?);
        }
        if data.num_rows() >= NATIVE_ROWS {
            // Many rows: the host computes the same values natively.
            return data.compute(&transform::sql_columns(&data_fields, &state)?);
        }
        // A few rows (a server's request): computing here avoids planning a
        // query per request.
        let names = data_fields.into_iter().map(|(name, _)| name).collect();
        let columns = read_raw(data, names, Some(&state))?;
        let out = transform::apply(&columns, &state)?;
        let builder = raw::TableBuilder::new();
        let out: Vec<(String, raw::Column)> = out
            .into_iter()
            .map(|(name, column)| (name, column.into_raw()))
            .collect();
        builder
            .add_columns(&out)
            .map_err(|e| format!("building the output columns: {e}"))?;
        builder.finish()
    }
}

bindings::export!(Component with_types_in bindings);

#[cfg(test)]
mod tests {
    use super::same_text;

    #[test]
    fn same_text_tells_apart_texts_that_differ_in_any_byte_or_length() {
        let state = r#"{"columns": [{"name": "mean_radius", "mean": 14.185}]}"#;
        // Equal text in another allocation.
        let copy: String = state.chars().collect();
        assert!(same_text(state, &copy));
        assert!(same_text("", ""));
        for i in 0..state.len() {
            // One byte changed: in a whole word or in the tail.
            let mut other = state.as_bytes().to_vec();
            other[i] ^= 1;
            let other = String::from_utf8(other).unwrap();
            assert!(!same_text(state, &other), "byte {i} changed");
        }
        assert!(!same_text(state, &state[..state.len() - 1]));
        assert!(!same_text("abcdefgh", "abcdefghi"));
    }
}
