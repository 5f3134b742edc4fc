//! Evaluation metrics, with scikit-learn's definitions.
//!
//! Classes are indices `0..C`. Binary metrics (C = 2) take class 1 as the
//! positive class; with more classes precision, recall and F1 are
//! macro-averaged over the classes that occur in the truth or the
//! predictions, and ROC AUC is one-vs-rest, macro-averaged. A ratio whose
//! denominator is zero (no predicted positives, say) counts as 0, as
//! scikit-learn's `zero_division` default does.

use serde::Serialize;

use crate::data::Matrix;
use crate::error::{MlError, Result};

fn err(metric: &'static str, reason: impl Into<String>) -> MlError {
    MlError::Metric {
        metric,
        reason: reason.into(),
    }
}

fn same_len(metric: &'static str, a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(err(metric, format!("{a} true values but {b} predictions")));
    }
    if a == 0 {
        return Err(err(metric, "no samples"));
    }
    Ok(())
}

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    /// `counts[t][p]`: samples of true class `t` predicted as `p`.
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.counts.len()
    }

    /// True positives of class `c`.
    pub fn tp(&self, c: usize) -> u64 {
        self.counts[c][c]
    }

    /// Samples predicted as `c` that are not `c`.
    pub fn fp(&self, c: usize) -> u64 {
        (0..self.n_classes())
            .filter(|&t| t != c)
            .map(|t| self.counts[t][c])
            .sum()
    }

    /// Samples of class `c` predicted as something else.
    pub fn fn_(&self, c: usize) -> u64 {
        (0..self.n_classes())
            .filter(|&p| p != c)
            .map(|p| self.counts[c][p])
            .sum()
    }

    /// Whether class `c` occurs in the truth or the predictions.
    fn occurs(&self, c: usize) -> bool {
        self.tp(c) + self.fp(c) + self.fn_(c) > 0
    }

    /// The classes the scores are computed for: class 1 when binary, every
    /// class that occurs otherwise.
    fn scored(&self) -> Vec<usize> {
        if self.n_classes() == 2 {
            vec![1]
        } else {
            (0..self.n_classes()).filter(|&c| self.occurs(c)).collect()
        }
    }

    fn precision_of(&self, c: usize) -> f64 {
        ratio(self.tp(c), self.tp(c) + self.fp(c))
    }

    fn recall_of(&self, c: usize) -> f64 {
        ratio(self.tp(c), self.tp(c) + self.fn_(c))
    }

    fn f1_of(&self, c: usize) -> f64 {
        let (p, r) = (self.precision_of(c), self.recall_of(c));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    fn mean_over_scored(&self, f: impl Fn(usize) -> f64) -> f64 {
        let classes = self.scored();
        classes.iter().map(|&c| f(c)).sum::<f64>() / classes.len().max(1) as f64
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The confusion matrix of `n_classes` classes.
pub fn confusion_matrix(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<ConfusionMatrix> {
    same_len("confusion_matrix", y_true.len(), y_pred.len())?;
    let mut counts = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if t >= n_classes || p >= n_classes {
            return Err(err(
                "confusion_matrix",
                format!("class {} out of range 0..{n_classes}", t.max(p)),
            ));
        }
        counts[t][p] += 1;
    }
    Ok(ConfusionMatrix { counts })
}

/// Fraction of samples whose predicted class is the true one.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    same_len("accuracy", y_true.len(), y_pred.len())?;
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// Precision: TP / (TP + FP) of class 1 (binary), or its macro average.
pub fn precision(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<f64> {
    let cm = confusion_matrix(y_true, y_pred, n_classes)?;
    Ok(cm.mean_over_scored(|c| cm.precision_of(c)))
}

/// Recall: TP / (TP + FN) of class 1 (binary), or its macro average.
pub fn recall(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<f64> {
    let cm = confusion_matrix(y_true, y_pred, n_classes)?;
    Ok(cm.mean_over_scored(|c| cm.recall_of(c)))
}

/// F1, the harmonic mean of precision and recall, of class 1 (binary), or
/// the macro average of the per-class F1 scores.
pub fn f1(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<f64> {
    let cm = confusion_matrix(y_true, y_pred, n_classes)?;
    Ok(cm.mean_over_scored(|c| cm.f1_of(c)))
}

/// Area under the ROC curve of `scores` for `positive` labels, by the
/// Mann–Whitney rank sum (ties share their average rank).
fn auc(positive: &[bool], scores: &[f64]) -> Result<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(err(
            "roc_auc",
            "undefined when only one class is present in the truth",
        ));
    }
    if scores.iter().any(|s| s.is_nan()) {
        return Err(err("roc_auc", "a score is NaN"));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// ROC AUC from class probabilities (rows × classes): of column 1 against
/// class 1 when binary, one-vs-rest macro average otherwise. Undefined (an
/// error) when a scored class is absent from, or is all of, the truth.
pub fn roc_auc(y_true: &[usize], probabilities: &Matrix) -> Result<f64> {
    same_len("roc_auc", y_true.len(), probabilities.rows())?;
    let k = probabilities.cols();
    if k < 2 {
        return Err(err("roc_auc", "needs at least two probability columns"));
    }
    let column =
        |c: usize| -> Vec<f64> { (0..y_true.len()).map(|i| probabilities.get(i, c)).collect() };
    if k == 2 {
        let pos: Vec<bool> = y_true.iter().map(|&t| t == 1).collect();
        return auc(&pos, &column(1));
    }
    let mut total = 0.0;
    for c in 0..k {
        let pos: Vec<bool> = y_true.iter().map(|&t| t == c).collect();
        total += auc(&pos, &column(c))?;
    }
    Ok(total / k as f64)
}

/// Mean negative log-likelihood of the true classes:
/// `−(1/n)·Σᵢ ln pᵢ,yᵢ`, probabilities clipped to `[ε, 1 − ε]` with ε the
/// float64 machine epsilon (so a confident mistake costs about 36, not ∞).
pub fn log_loss(y_true: &[usize], probabilities: &Matrix) -> Result<f64> {
    same_len("log_loss", y_true.len(), probabilities.rows())?;
    let k = probabilities.cols();
    let mut total = 0.0;
    for (i, &t) in y_true.iter().enumerate() {
        if t >= k {
            return Err(err(
                "log_loss",
                format!("class {t} but only {k} probability columns"),
            ));
        }
        let p = probabilities
            .get(i, t)
            .clamp(f64::EPSILON, 1.0 - f64::EPSILON);
        total -= libm::log(p);
    }
    Ok(total / y_true.len() as f64)
}

/// Root mean squared error.
pub fn rmse(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    same_len("rmse", y_true.len(), y_pred.len())?;
    let sse: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p) * (t - p))
        .sum();
    Ok((sse / y_true.len() as f64).sqrt())
}

/// Mean absolute error.
pub fn mae(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    same_len("mae", y_true.len(), y_pred.len())?;
    let sae: f64 = y_true.iter().zip(y_pred).map(|(t, p)| (t - p).abs()).sum();
    Ok(sae / y_true.len() as f64)
}

/// Coefficient of determination, `1 − SS_res / SS_tot`. With a constant
/// truth it is 1 for a perfect prediction and 0 otherwise (scikit-learn's
/// `force_finite`).
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> Result<f64> {
    same_len("r2", y_true.len(), y_pred.len())?;
    let mean = y_true.iter().sum::<f64>() / y_true.len() as f64;
    let ss_tot: f64 = y_true.iter().map(|t| (t - mean) * (t - mean)).sum();
    let ss_res: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p) * (t - p))
        .sum();
    Ok(if ss_tot == 0.0 {
        if ss_res == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - ss_res / ss_tot
    })
}

/// Every classification metric at once, as an evaluation step records them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    /// See [`accuracy`].
    pub accuracy: f64,
    /// See [`precision`].
    pub precision: f64,
    /// See [`recall`].
    pub recall: f64,
    /// See [`f1`].
    pub f1: f64,
    /// See [`roc_auc`]; `None` where it is undefined (a class missing from
    /// the truth).
    pub roc_auc: Option<f64>,
    /// See [`log_loss`].
    pub log_loss: f64,
    /// See [`confusion_matrix`].
    pub confusion_matrix: ConfusionMatrix,
}

/// Computes [`ClassificationMetrics`] from true classes and predicted
/// probabilities (rows × classes); the predicted class of a row is its most
/// probable one (the first on ties).
pub fn classification_metrics(
    y_true: &[usize],
    probabilities: &Matrix,
) -> Result<ClassificationMetrics> {
    same_len("classification_metrics", y_true.len(), probabilities.rows())?;
    let k = probabilities.cols();
    let y_pred: Vec<usize> = probabilities
        .as_slice()
        .chunks_exact(k.max(1))
        .map(crate::prediction::argmax)
        .collect();
    let cm = confusion_matrix(y_true, &y_pred, k)?;
    Ok(ClassificationMetrics {
        accuracy: accuracy(y_true, &y_pred)?,
        precision: cm.mean_over_scored(|c| cm.precision_of(c)),
        recall: cm.mean_over_scored(|c| cm.recall_of(c)),
        f1: cm.mean_over_scored(|c| cm.f1_of(c)),
        roc_auc: roc_auc(y_true, probabilities).ok(),
        log_loss: log_loss(y_true, probabilities)?,
        confusion_matrix: cm,
    })
}

/// Every regression metric at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionMetrics {
    /// See [`rmse`].
    pub rmse: f64,
    /// See [`mae`].
    pub mae: f64,
    /// See [`r2`].
    pub r2: f64,
}

/// Computes [`RegressionMetrics`].
pub fn regression_metrics(y_true: &[f64], y_pred: &[f64]) -> Result<RegressionMetrics> {
    Ok(RegressionMetrics {
        rmse: rmse(y_true, y_pred)?,
        mae: mae(y_true, y_pred)?,
        r2: r2(y_true, y_pred)?,
    })
}
