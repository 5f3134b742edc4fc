//! Shadow traffic and sticky variants: the parts of `sluice serve
//! --shadow` and `--canary` that do not need the server around them.
//!
//! A shadow version predicts a copy of the requests its route's primary
//! answered, after the answer is made and off the request's path; the
//! client only ever sees the primary's answer. [`compare`] says whether
//! the two answers agree: for a classifier, the labels; for a regressor,
//! the values within [`TOLERANCE`] (relative). Probabilities of a
//! classifier are expected to move between versions, so they only feed the
//! largest difference seen, not the disagreement count.
//!
//! A canary split with a key (a header or an input column naming the user,
//! say) is sticky: [`sticky_draw`] places a key at the same point of
//! `[0, 1)` on every server and after every restart, so a user sees one
//! variant for as long as the split lasts.

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_schema::DataType;
use sluice_runtime::Digest;

/// The relative tolerance within which a regressor's values are the same
/// answer (that of the edge's self-test: float32 computation, rounded).
pub(crate) const TOLERANCE: f64 = 1e-6;

/// How a shadow's answer to one request compares with the primary's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Comparison {
    /// A row's label differed (classifier), a value differed by more than
    /// [`TOLERANCE`] relative (regressor), or the answers do not have the
    /// same rows or `prediction` column.
    pub(crate) disagreed: bool,
    /// The largest absolute difference of a numeric output present in
    /// both (probabilities, values); 0 when none is.
    pub(crate) max_abs_diff: f64,
}

/// The column holding each row's answer (a label or a value).
const PREDICTION: &str = "prediction";

/// Compares `shadow`'s predictions with `primary`'s for the same request;
/// `classifier` is whether the primary predicts labels.
pub(crate) fn compare(primary: &RecordBatch, shadow: &RecordBatch, classifier: bool) -> Comparison {
    let mut disagreed = primary.num_rows() != shadow.num_rows();
    let mut max_abs_diff = 0.0f64;
    for (field, p) in primary.schema().fields().iter().zip(primary.columns()) {
        let name = field.name();
        let Some(s) = shadow.column_by_name(name) else {
            disagreed |= name == PREDICTION;
            continue;
        };
        let numeric = numbers(p).zip(numbers(s));
        if name == PREDICTION && (classifier || numeric.is_none()) {
            disagreed |= !same_labels(p, s);
            continue;
        }
        let Some((p, s)) = numeric else {
            continue;
        };
        for (a, b) in p.iter().zip(s.iter()) {
            match (a, b) {
                (Some(a), Some(b)) => {
                    let d = (a - b).abs();
                    if d.is_nan() {
                        disagreed |= name == PREDICTION && !(a.is_nan() && b.is_nan());
                        continue;
                    }
                    max_abs_diff = max_abs_diff.max(d);
                    if name == PREDICTION && d > TOLERANCE * a.abs().max(1.0) {
                        disagreed = true;
                    }
                }
                (None, None) => {}
                _ => disagreed |= name == PREDICTION,
            }
        }
    }
    Comparison {
        disagreed,
        max_abs_diff,
    }
}

/// A numeric column as float64 values; `None` for other types.
fn numbers(a: &ArrayRef) -> Option<Float64Array> {
    if !a.data_type().is_numeric() {
        return None;
    }
    let cast = arrow_cast::cast(a, &DataType::Float64).ok()?;
    cast.as_any().downcast_ref::<Float64Array>().cloned()
}

/// Whether two columns hold the same values row by row, compared as text
/// (a label is a label whatever its type).
fn same_labels(a: &ArrayRef, b: &ArrayRef) -> bool {
    if a.len() != b.len() {
        return false;
    }
    (0..a.len()).all(|i| label(a, i) == label(b, i))
}

fn label(a: &ArrayRef, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    arrow_cast::display::array_value_to_string(a, i).ok()
}

/// The first row's value of `column` in `table`, as text: a request's
/// variant key when it is read from an input column (`--variant-key
/// field:COLUMN`). `None` when the column is absent, empty or null there.
pub(crate) fn field_key(table: &RecordBatch, column: &str) -> Option<String> {
    let c = table.column_by_name(column)?;
    if c.is_empty() {
        return None;
    }
    label(c, 0).filter(|k| !k.is_empty())
}

/// Where `key` falls in `[0, 1)` for a split salted with `salt`: the first
/// eight bytes of the SHA-256 of the two (each length-prefixed, as
/// [`Digest::of_parts`] hashes them) as a big-endian integer over 2^64.
/// The same on every server, across restarts and versions; a key goes to
/// the canary when this is below its share. The salt (the canary's
/// reference, `NAME@ALIAS`) keeps two splits from putting the same users
/// first.
pub(crate) fn sticky_draw(salt: &str, key: &str) -> f64 {
    let digest = Digest::of_parts([salt.as_bytes(), key.as_bytes()]);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_be_bytes(first) as f64 / 2f64.powi(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn classifier(labels: &[&str], p: &[f64]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("prediction", DataType::Utf8, false),
                Field::new("probability_b", DataType::Float64, false),
            ])),
            vec![
                Arc::new(StringArray::from(labels.to_vec())),
                Arc::new(Float64Array::from(p.to_vec())),
            ],
        )
        .unwrap()
    }

    fn regressor(v: &[f64]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "prediction",
                DataType::Float64,
                false,
            )])),
            vec![Arc::new(Float64Array::from(v.to_vec()))],
        )
        .unwrap()
    }

    #[test]
    fn a_classifier_disagrees_on_labels_and_reports_probability_moves() {
        let a = classifier(&["a", "b"], &[0.2, 0.9]);
        let same = compare(&a, &classifier(&["a", "b"], &[0.3, 0.8]), true);
        assert!(!same.disagreed);
        assert!((same.max_abs_diff - 0.1).abs() < 1e-12);
        let other = compare(&a, &classifier(&["a", "a"], &[0.2, 0.4]), true);
        assert!(other.disagreed);
        assert!((other.max_abs_diff - 0.5).abs() < 1e-12);
        assert!(compare(&a, &classifier(&["a"], &[0.2]), true).disagreed);
    }

    #[test]
    fn a_regressor_disagrees_beyond_the_relative_tolerance() {
        let a = regressor(&[1000.0, 0.5]);
        assert!(!compare(&a, &regressor(&[1000.0005, 0.5000005]), false).disagreed);
        let c = compare(&a, &regressor(&[1000.01, 0.5]), false);
        assert!(c.disagreed);
        assert!((c.max_abs_diff - 0.01).abs() < 1e-9);
    }

    #[test]
    fn a_key_draws_the_same_point_every_time_and_keys_spread_evenly() {
        assert_eq!(
            sticky_draw("m@staging", "user-1"),
            sticky_draw("m@staging", "user-1")
        );
        assert_ne!(
            sticky_draw("m@staging", "user-1"),
            sticky_draw("m@other", "user-1")
        );
        let n = 10_000;
        let below = (0..n)
            .filter(|i| sticky_draw("m@staging", &format!("user-{i}")) < 0.3)
            .count();
        // 30% ± 1.5 points: over three standard deviations of 10 000 keys.
        assert!((2850..=3150).contains(&below), "{below}");
    }

    #[test]
    fn a_field_key_is_the_first_rows_value_as_text() {
        let t = classifier(&["x", "y"], &[0.5, 1.5]);
        assert_eq!(field_key(&t, "prediction").as_deref(), Some("x"));
        assert_eq!(field_key(&t, "probability_b").as_deref(), Some("0.5"));
        assert_eq!(field_key(&t, "nope"), None);
    }
}
