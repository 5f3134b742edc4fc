//! When two predictions of the same row are the same prediction: what the
//! edge runtime's self-test and `std:infra-validate` both check, so that a
//! model served anywhere is held to one rule.

/// The relative tolerance of [`numbers_agree`] unless a caller sets its
/// own: ONNX graphs run in different engines or batch shapes differ in the
/// last bits of float32 arithmetic, never by more.
pub const PREDICTION_TOLERANCE: f64 = 1e-6;

/// Whether `got` is `expected` within `tolerance`, relative to
/// `expected`'s magnitude (absolute below 1): `|got − expected| ≤
/// tolerance · max(|expected|, 1)`. NaN agrees with nothing.
pub fn numbers_agree(got: f64, expected: f64, tolerance: f64) -> bool {
    let abs = |x: f64| if x < 0.0 { -x } else { x };
    let scale = if abs(expected) > 1.0 {
        abs(expected)
    } else {
        1.0
    };
    abs(got - expected) <= tolerance * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_are_compared_absolutely_and_large_ones_relatively() {
        assert!(numbers_agree(0.5 + 9e-7, 0.5, PREDICTION_TOLERANCE));
        assert!(!numbers_agree(0.5 + 2e-6, 0.5, PREDICTION_TOLERANCE));
        assert!(numbers_agree(1000.0005, 1000.0, PREDICTION_TOLERANCE));
        assert!(!numbers_agree(1000.002, 1000.0, PREDICTION_TOLERANCE));
        assert!(numbers_agree(-3.0, -3.0, 0.0));
    }

    #[test]
    fn nan_agrees_with_nothing() {
        assert!(!numbers_agree(f64::NAN, 1.0, PREDICTION_TOLERANCE));
        assert!(!numbers_agree(1.0, f64::NAN, PREDICTION_TOLERANCE));
        assert!(!numbers_agree(f64::NAN, f64::NAN, PREDICTION_TOLERANCE));
    }
}
