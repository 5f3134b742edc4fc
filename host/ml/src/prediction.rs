//! What a native model's prediction is, and the maths every model family
//! shares to make one: a leaf module that `linear`, `mlp` and `native` use
//! and that uses none of them.

use crate::data::Matrix;

/// A model's predictions, computed natively in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Classifier output.
    Classes {
        /// The most probable class of each row (the first one on ties, like
        /// ONNX `ArgMax`).
        labels: Vec<usize>,
        /// Rows × classes.
        probabilities: Matrix,
    },
    /// Regressor output: one value per row.
    Values(Vec<f64>),
}

impl Prediction {
    pub(crate) fn from_probabilities(probabilities: Matrix) -> Prediction {
        let labels = probabilities
            .as_slice()
            .chunks_exact(probabilities.cols().max(1))
            .map(argmax)
            .collect();
        Prediction::Classes {
            labels,
            probabilities,
        }
    }
}

/// Index of the largest value, the first one on ties.
pub(crate) fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The logistic function, without overflow.
pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + libm::exp(-z))
    } else {
        let e = libm::exp(z);
        e / (1.0 + e)
    }
}

/// Replaces scores by their softmax; returns `ln Σ exp(scores)`.
pub(crate) fn softmax_in_place(row: &mut [f64]) -> f64 {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = libm::exp(*v - max);
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
    max + libm::log(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.2, 0.5, 0.5, 0.1]), 1);
        assert_eq!(argmax(&[3.0]), 0);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_scores() {
        let mut row = [1000.0, 1000.0, 998.0];
        let lse = softmax_in_place(&mut row);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((row[0] - row[1]).abs() < 1e-15 && row[2] < row[0]);
        assert!(lse.is_finite() && lse > 1000.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
    }
}
