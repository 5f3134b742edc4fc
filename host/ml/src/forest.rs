//! Tree trainers: gradient-boosted trees and random forests, on histograms
//! of binned features.
//!
//! Every feature is cut into at most `max_bins` bins once, at `f32`
//! thresholds, and every split is "bin ≤ b", which is exactly the exported
//! ONNX comparison `x ≤ threshold` on the `f32` input: the trees make the
//! same decisions natively and in ONNX. A node's split is found from
//! per-bin sums of the rows' gradients and hessians; a child's histogram is
//! its parent's minus its sibling's, so only the smaller child is summed.
//!
//! - **Gradient boosting** fits each round's trees to the gradient of the
//!   loss (logistic for two classes, softmax with one tree per class per
//!   round for more, squared error for regression), with leaf values
//!   `−G / (H + l2)` scaled by the learning rate, leaf-wise growth up to
//!   `max_leaves`, optional row and column subsampling and early stopping
//!   on a held-out fraction.
//! - **Random forests** grow each tree on a bootstrap sample, choosing
//!   among a random subset of the features at every split by the decrease
//!   of squared error on the one-hot classes (for classes, the same
//!   criterion as Gini impurity) or on the values; leaves hold class
//!   proportions or means, averaged over the trees.
//!
//! Where the time goes, and how it is kept short (the layouts LightGBM and
//! scikit-learn's `HistGradientBoosting` use): bins are column-major, so
//! a feature's histogram stays in the first-level cache while a node's
//! rows stream by; a node's rows are partitioned stably (branch-free), so
//! they stay increasing and every pass reads memory front to back; a
//! boosting row's gradient and hessian sit side by side and are gathered
//! once per node; histograms are reused from node to node and tree to
//! tree; and both cores share large nodes (narrow tables by rows, wide ones
//! by features), the split search over wide tables, and the gradients.
//!
//! Deterministic for a seed: the random numbers come from the crate's
//! SplitMix64, and sums run in a fixed order (the same on any number of
//! cores: work is split the same way, and partial sums are added in order).

use std::borrow::Cow;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cancel::Cancel;
use crate::data::{Matrix, Validation};
use crate::error::{MlError, Result};
use crate::prediction::{Prediction, sigmoid, softmax_in_place};
use crate::rng::SplitMix64;

/// Parameters of gradient-boosted trees (classifier and regressor).
/// Defaults follow LightGBM and scikit-learn's `HistGradientBoosting*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoostingParams {
    /// Boosting rounds (each adds one tree, or one per class). Default 100.
    pub n_estimators: usize,
    /// Shrinkage of every tree's leaves. Default 0.1.
    pub learning_rate: f64,
    /// Most leaves per tree (grown best split first). Default 31.
    pub max_leaves: usize,
    /// Deepest a tree may grow; `null` for no limit. Default `null`.
    pub max_depth: Option<usize>,
    /// Fewest training rows in a leaf. Default 20.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values (the `λ` of `−G / (H + λ)`). Default 0.
    pub l2: f64,
    /// Most bins per feature, 2–256. Default 255.
    pub max_bins: usize,
    /// Fraction of the rows each round trains on (drawn without
    /// replacement). Default 1.
    pub subsample: f64,
    /// Fraction of the features each tree may split on. Default 1.
    pub colsample: f64,
    /// Hold out `validation_fraction` of the rows and stop when their loss
    /// has not improved by `tol` for `n_iter_no_change` rounds, keeping the
    /// best round. Default false.
    pub early_stopping: bool,
    /// Fraction held out for `early_stopping`. Default 0.1.
    pub validation_fraction: f64,
    /// Rounds without improvement before stopping. Default 10.
    pub n_iter_no_change: usize,
    /// Smallest improvement of the held-out loss that counts. Default 1e-7.
    pub tol: f64,
    /// Seed of the subsampling and the held-out rows. Default 0.
    pub seed: u64,
}

impl BoostingParams {
    pub(crate) const NAMES: &'static [&'static str] = &[
        "n_estimators",
        "learning_rate",
        "max_leaves",
        "max_depth",
        "min_samples_leaf",
        "l2",
        "max_bins",
        "subsample",
        "colsample",
        "early_stopping",
        "validation_fraction",
        "n_iter_no_change",
        "tol",
        "seed",
    ];
}

impl Default for BoostingParams {
    fn default() -> Self {
        BoostingParams {
            n_estimators: 100,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2: 0.0,
            max_bins: 255,
            subsample: 1.0,
            colsample: 1.0,
            early_stopping: false,
            validation_fraction: 0.1,
            n_iter_no_change: 10,
            tol: 1e-7,
            seed: 0,
        }
    }
}

/// Parameters of random forests (classifier and regressor). Defaults
/// follow scikit-learn's `RandomForest*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForestParams {
    /// Trees. Default 100.
    pub n_estimators: usize,
    /// Deepest a tree may grow; `null` for no limit. Default `null`.
    pub max_depth: Option<usize>,
    /// Fewest training rows in a leaf. Default 1.
    pub min_samples_leaf: usize,
    /// Fraction of the features tried at each split; `null` for √F / F
    /// for classifiers and all features for regressors. Default `null`.
    pub max_features: Option<f64>,
    /// Whether each tree trains on a bootstrap sample (else on all rows).
    /// Default true.
    pub bootstrap: bool,
    /// Most bins per feature, 2–256. Default 255.
    pub max_bins: usize,
    /// Seed of the bootstrap samples and the feature choices. Default 0.
    pub seed: u64,
}

impl ForestParams {
    pub(crate) const NAMES: &'static [&'static str] = &[
        "n_estimators",
        "max_depth",
        "min_samples_leaf",
        "max_features",
        "bootstrap",
        "max_bins",
        "seed",
    ];
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_estimators: 100,
            max_depth: None,
            min_samples_leaf: 1,
            max_features: None,
            bootstrap: true,
            max_bins: 255,
            seed: 0,
        }
    }
}

/// A trained tree: `nodes[0]` is the root.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// The nodes; children are indices into this vector.
    pub nodes: Vec<TreeNode>,
}

/// A node of a [`Tree`].
#[derive(Debug, Clone, PartialEq)]
pub enum TreeNode {
    /// `x[feature] ≤ threshold` (compared in `f32`) goes left.
    Split {
        /// The feature's column.
        feature: usize,
        /// The threshold, an `f32` as ONNX stores it.
        threshold: f32,
        /// The child for `x ≤ threshold`.
        left: usize,
        /// The other child.
        right: usize,
    },
    /// A leaf's values, one per output.
    Leaf(Vec<f64>),
}

impl Tree {
    fn leaf(&self, row: &[f64]) -> &[f64] {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                TreeNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if (row[*feature] as f32) <= *threshold {
                        *left
                    } else {
                        *right
                    }
                }
                TreeNode::Leaf(v) => return v,
            }
        }
    }
}

/// What a tree ensemble's summed (or averaged) outputs mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnsembleHead {
    /// One log-odds score for class 1.
    Binary,
    /// One score per class, through softmax.
    Softmax,
    /// Class probabilities, averaged over the trees.
    Probabilities,
    /// One value.
    Value,
}

/// A trained tree ensemble: what the ONNX file holds, in `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsembleModel {
    /// The trees, round by round (for softmax boosting, one per class in
    /// class order within a round).
    pub trees: Vec<Tree>,
    /// Which output each tree adds to (`None`: all of them, from a leaf
    /// holding one value per output).
    pub tree_output: Vec<Option<usize>>,
    /// Outputs per row (scores, classes or 1).
    pub n_outputs: usize,
    /// Added to the outputs (boosting's initial scores).
    pub base: Vec<f64>,
    /// Whether the outputs are the trees' mean (forests) or sum (boosting).
    pub average: bool,
    /// What the outputs mean.
    pub head: EnsembleHead,
    /// Input features.
    pub n_features: usize,
    /// Total split gain per feature, normalised to sum to 1.
    pub feature_importances: Vec<f64>,
}

impl TreeEnsembleModel {
    /// The raw outputs of one row: the sum or mean of the trees plus `base`.
    fn raw(&self, row: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_outputs];
        for (tree, target) in self.trees.iter().zip(&self.tree_output) {
            let leaf = tree.leaf(row);
            match target {
                Some(t) => out[*t] += leaf[0],
                None => out.iter_mut().zip(leaf).for_each(|(o, v)| *o += v),
            }
        }
        if self.average {
            let n = self.trees.len().max(1) as f64;
            out.iter_mut().for_each(|o| *o /= n);
        }
        out.iter_mut().zip(&self.base).for_each(|(o, b)| *o += b);
        out
    }

    /// Predicts the rows of `x` natively.
    pub fn predict(&self, x: &Matrix) -> Result<Prediction> {
        if x.cols() != self.n_features {
            return Err(MlError::InvalidData(format!(
                "the model takes {} features, got {}",
                self.n_features,
                x.cols()
            )));
        }
        let rows = x.rows();
        match self.head {
            EnsembleHead::Value => Ok(Prediction::Values(
                (0..rows).map(|i| self.raw(x.row(i))[0]).collect(),
            )),
            EnsembleHead::Binary => {
                let mut p = Vec::with_capacity(rows * 2);
                for i in 0..rows {
                    let p1 = sigmoid(self.raw(x.row(i))[0]);
                    p.extend([1.0 - p1, p1]);
                }
                Ok(Prediction::from_probabilities(Matrix::new(rows, 2, p)?))
            }
            EnsembleHead::Softmax | EnsembleHead::Probabilities => {
                let k = self.n_outputs;
                let mut p = Vec::with_capacity(rows * k);
                for i in 0..rows {
                    let mut s = self.raw(x.row(i));
                    if self.head == EnsembleHead::Softmax {
                        softmax_in_place(&mut s);
                    }
                    p.extend(s);
                }
                Ok(Prediction::from_probabilities(Matrix::new(rows, k, p)?))
            }
        }
    }
}

/// What a tree ensemble learns: class indices or values.
#[derive(Clone, Copy)]
pub(crate) enum EnsembleTarget<'a> {
    Classes(&'a [usize], usize),
    Values(&'a [f64]),
}

impl EnsembleTarget<'_> {
    /// Scores per row: one for two classes (the log-odds) and for values,
    /// one per class for more.
    fn scores(self) -> usize {
        match self {
            EnsembleTarget::Classes(_, c) if c > 2 => c,
            _ => 1,
        }
    }

    /// The mean loss of the rows `rows` whose raw scores (`scores()` per
    /// row, row-major) are `raw`: log loss for classes, half the squared
    /// error for values.
    fn loss(self, raw: &[f64], rows: impl ExactSizeIterator<Item = usize>) -> f64 {
        let k = self.scores();
        let count = rows.len().max(1);
        let mut total = 0.0;
        for r in rows {
            total += match self {
                EnsembleTarget::Classes(y, 2) => {
                    let p1 = sigmoid(raw[r]).clamp(1e-15, 1.0 - 1e-15);
                    if y[r] == 1 {
                        -libm::log(p1)
                    } else {
                        -libm::log(1.0 - p1)
                    }
                }
                EnsembleTarget::Classes(y, _) => {
                    let mut s = raw[r * k..][..k].to_vec();
                    softmax_in_place(&mut s);
                    -libm::log(s[y[r]].max(1e-15))
                }
                EnsembleTarget::Values(y) => (raw[r] - y[r]).powi(2) / 2.0,
            };
        }
        total / count as f64
    }
}

// ---- binning ----------------------------------------------------------------

/// The features cut into bins: bin indices, column-major, and per feature
/// the `f32` threshold that ends each bin but the last, and where its bins
/// start in a histogram.
///
/// Column-major because a node's histograms are summed a feature at a
/// time: the feature's histogram, a few kilobytes, stays in the
/// first-level cache while the node's rows stream by. (Row-major bins, one
/// pass over the rows for all features, touch every feature's histogram —
/// a megabyte or more on a wide table — for every row; they were measured
/// slower on 8 features and on 200.)
struct Binned {
    bins: Vec<u8>,
    rows: usize,
    cols: usize,
    thresholds: Vec<Vec<f32>>,
    /// Per feature, its first bin's index in a histogram; then the total.
    offsets: Vec<usize>,
}

impl Binned {
    fn new(x: &Matrix, max_bins: usize) -> Binned {
        let (rows, cols) = (x.rows(), x.cols());
        let mut bins = vec![0u8; rows * cols];
        // Each feature on its own (sorting its values is most of the work),
        // the features shared out among the cores.
        let per_core = cols.div_ceil(cores()).max(1);
        let sample = Binned::sample(rows);
        let sample = sample.as_deref();
        let thresholds: Vec<Vec<f32>> = if rows == 0 {
            vec![Vec::new(); cols]
        } else {
            on_cores(
                bins.chunks_mut(rows * per_core)
                    .enumerate()
                    .map(|(part, columns)| {
                        move || {
                            columns
                                .chunks_mut(rows)
                                .enumerate()
                                .map(|(i, column)| {
                                    Binned::cut(x, part * per_core + i, max_bins, sample, column)
                                })
                                .collect::<Vec<_>>()
                        }
                    })
                    .collect(),
            )
            .into_iter()
            .flatten()
            .collect()
        };
        let mut offsets = Vec::with_capacity(cols + 1);
        let mut total = 0;
        for t in &thresholds {
            offsets.push(total);
            total += t.len() + 1;
        }
        offsets.push(total);
        Binned {
            bins,
            rows,
            cols,
            thresholds,
            offsets,
        }
    }

    /// The rows whose values place the bins' thresholds when there are
    /// more than [`BIN_SAMPLE`] (as scikit-learn does: sorting a million
    /// values per feature cost more than growing several trees): that
    /// many, drawn without replacement by a fixed seed, in order.
    fn sample(rows: usize) -> Option<Vec<u32>> {
        if rows <= BIN_SAMPLE {
            return None;
        }
        let mut all: Vec<u32> = (0..rows as u32).collect();
        let mut rng = SplitMix64::new(0x5eed_b1a5);
        for i in 0..BIN_SAMPLE {
            let j = i + rng.below(rows - i);
            all.swap(i, j);
        }
        all.truncate(BIN_SAMPLE);
        all.sort_unstable();
        Some(all)
    }

    /// Cuts feature `f` into at most `max_bins` bins, placed by the values
    /// of the rows `sample` (all, if `None`), writing each row's bin into
    /// `column`; returns the thresholds that end each bin but the last.
    fn cut(
        x: &Matrix,
        f: usize,
        max_bins: usize,
        sample: Option<&[u32]>,
        column: &mut [u8],
    ) -> Vec<f32> {
        let values_of_rows: Vec<f32> = (0..x.rows()).map(|i| x.get(i, f) as f32).collect();
        let mut values = match sample {
            Some(rows) => rows.iter().map(|&r| values_of_rows[r as usize]).collect(),
            None => values_of_rows.clone(),
        };
        values.sort_unstable_by(f32::total_cmp);
        values.dedup();
        let cuts: Vec<f32> = if values.len() <= max_bins {
            values
                .windows(2)
                .map(|w| {
                    let mid = ((f64::from(w[0]) + f64::from(w[1])) / 2.0) as f32;
                    if w[0] < mid && mid < w[1] { mid } else { w[0] }
                })
                .collect()
        } else {
            let mut cuts: Vec<f32> = (1..max_bins)
                .map(|b| values[b * values.len() / max_bins - 1])
                .collect();
            cuts.dedup();
            cuts
        };
        for (bin, v) in column.iter_mut().zip(&values_of_rows) {
            *bin = cuts.partition_point(|t| t < v) as u8;
        }
        cuts
    }

    /// Feature `f`'s bins, one per row.
    fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.rows..][..self.rows]
    }
}

// ---- one tree ---------------------------------------------------------------

/// Per-bin sums of one node, every feature's bins one after another
/// (`Binned::offsets`): per bin `[g_0 … g_{dims−1}, h, count]`.
#[derive(Clone)]
struct Histogram(Vec<f64>);

/// What a tree is grown on: each row's gradients and hessian.
#[derive(Clone, Copy)]
enum Gradients<'a> {
    /// Boosting: one gradient per row, side by side with its hessian (one
    /// cache line to gather a row's).
    Pairs(&'a [[f64; 2]]),
    /// Forests: row-major `rows × dims` values (minus the targets), and one
    /// hessian per row (1).
    Rows { grad: &'a [f64], hess: &'a [f64] },
}

struct Grower<'a> {
    binned: &'a Binned,
    gradients: Gradients<'a>,
    /// Gradients per row: 1 for `Gradients::Pairs`.
    dims: usize,
    l2: f64,
    min_leaf: usize,
    max_depth: usize,
    max_leaves: usize,
    /// The features this tree may use (all, for per-split sampling).
    features: Vec<usize>,
    /// Per split, how many of `features` to try (forests), or all.
    per_split: Option<usize>,
    /// Histograms no longer needed, kept for the next nodes and trees: a
    /// wide table's histogram is a megabyte or more.
    spare: &'a Mutex<Vec<Vec<f64>>>,
}

struct Candidate {
    start: usize,
    end: usize,
    depth: usize,
    hist: Histogram,
    split: Option<(f64, usize, usize)>,
    node: usize,
}

impl Grower<'_> {
    fn stride(&self) -> usize {
        self.dims + 2
    }

    /// The histogram of a node's rows.
    fn histogram(&self, rows: &[u32]) -> Histogram {
        let s = self.stride();
        let cols = self.binned.cols;
        let len = self.binned.offsets[cols] * s;
        let mut h = self.take_histogram(len);
        let threads = cores();
        // Whether a node's sums are split into shares depends on its size
        // alone, never on the number of threads: the same trees on a
        // machine of one core as of many.
        let cells = rows.len() * cols;
        let shared = if cols < BY_FEATURES_FROM {
            cells >= PARALLEL_CELLS
        } else {
            cells >= PARALLEL_FEATURE_CELLS
        };
        if !shared {
            self.fill(rows, &self.gather(rows), 0..cols, &mut h);
        } else if cols < BY_FEATURES_FROM {
            // Narrow tables: the rows are cut into a fixed number of
            // shares, each summed into a histogram of its own (gathering
            // only its rows' gradients) by whichever core takes it, then
            // added up in order: the same sums on any number of cores.
            let shares: Vec<&[u32]> = rows.chunks(rows.len().div_ceil(ROW_SHARES)).collect();
            let shares = &shares;
            let per_core = on_cores(
                (0..threads.min(shares.len()))
                    .map(|t| {
                        move || {
                            (t..shares.len())
                                .step_by(threads)
                                .map(|i| {
                                    let mut h = self.take_histogram(len);
                                    self.fill(shares[i], &self.gather(shares[i]), 0..cols, &mut h);
                                    (i, h)
                                })
                                .collect::<Vec<_>>()
                        }
                    })
                    .collect(),
            );
            let mut parts: Vec<(usize, Vec<f64>)> = per_core.into_iter().flatten().collect();
            parts.sort_by_key(|(i, _)| *i);
            h.fill(0.0);
            for (_, part) in parts {
                h.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
                self.spare.lock().expect("the spare histograms").push(part);
            }
        } else {
            // Wide tables: the cores fill disjoint ranges of features (as
            // scikit-learn and LightGBM do), with no histograms to add up.
            let gh = self.gather(rows);
            let gh = &gh;
            let mut rest = h.as_mut_slice();
            let mut at = 0;
            let mut parts = Vec::with_capacity(threads);
            for range in feature_ranges(&self.binned.offsets, threads) {
                let end = self.binned.offsets[range.end] * s;
                let (mine, tail) = rest.split_at_mut(end - at);
                (rest, at) = (tail, end);
                parts.push(move || self.fill(rows, gh, range, mine));
            }
            on_cores(parts);
        }
        Histogram(h)
    }

    /// A histogram of `len` values, reusing a spare one if any; not zeroed
    /// (see [`Grower::fill`]).
    fn take_histogram(&self, len: usize) -> Vec<f64> {
        let mut h = self
            .spare
            .lock()
            .expect("the spare histograms")
            .pop()
            .unwrap_or_default();
        // Not zeroed: `fill` zeroes each feature's part as it comes to it.
        h.resize(len, 0.0);
        h
    }

    /// In boosting, the rows' gradients and hessians in the rows' order
    /// (read once per feature, front to back); otherwise nothing.
    /// A run of consecutive rows (the root, when every row is used, and
    /// its shares) reads them where they are.
    fn gather<'g>(&'g self, rows: &[u32]) -> Cow<'g, [[f64; 2]]> {
        match self.gradients {
            Gradients::Pairs(pairs) => match (rows.first(), rows.last()) {
                (Some(&first), Some(&last)) if (last - first) as usize + 1 == rows.len() => {
                    Cow::Borrowed(&pairs[first as usize..=last as usize])
                }
                _ => Cow::Owned(rows.iter().map(|&r| pairs[r as usize]).collect()),
            },
            Gradients::Rows { .. } => Cow::Borrowed(&[]),
        }
    }

    /// Sums `rows` into the histograms of the features `features`, which
    /// `h` holds from the first of them on (whatever it held before); a
    /// feature at a time, each zeroed just before, while it is in cache.
    ///
    /// In boosting (`Gradients::Pairs`), `gh` holds the rows' gradients and
    /// hessians in the rows' order (read once per feature, front to back).
    fn fill(&self, rows: &[u32], gh: &[[f64; 2]], features: std::ops::Range<usize>, h: &mut [f64]) {
        let base = self.binned.offsets[features.start];
        let Gradients::Rows { grad, hess } = self.gradients else {
            let (cells, _) = h.as_chunks_mut::<3>();
            // Rows in pairs, the second of each into a histogram of its
            // own: consecutive rows often fall in the same bin, and each
            // would wait for the other's sum to be stored.
            let mut odd = [[0.0f64; 3]; 256];
            for f in features {
                let column = self.binned.column(f);
                let hist =
                    &mut cells[self.binned.offsets[f] - base..self.binned.offsets[f + 1] - base];
                hist.fill([0.0; 3]);
                if rows.len() < PAIRED_ROWS {
                    for (&r, &[g, hess]) in rows.iter().zip(gh) {
                        let cell = &mut hist[usize::from(column[r as usize])];
                        cell[0] += g;
                        cell[1] += hess;
                        cell[2] += 1.0;
                    }
                    continue;
                }
                odd[..hist.len()].fill([0.0; 3]);
                let (pairs, last) = rows.as_chunks::<2>();
                let (gh_pairs, gh_last) = gh.as_chunks::<2>();
                for (&[r0, r1], &[[g0, h0], [g1, h1]]) in pairs.iter().zip(gh_pairs) {
                    let cell = &mut hist[usize::from(column[r0 as usize])];
                    cell[0] += g0;
                    cell[1] += h0;
                    cell[2] += 1.0;
                    let cell = &mut odd[usize::from(column[r1 as usize])];
                    cell[0] += g1;
                    cell[1] += h1;
                    cell[2] += 1.0;
                }
                for (&r, &[g, hess]) in last.iter().zip(gh_last) {
                    let cell = &mut hist[usize::from(column[r as usize])];
                    cell[0] += g;
                    cell[1] += hess;
                    cell[2] += 1.0;
                }
                for (cell, o) in hist.iter_mut().zip(&odd) {
                    cell[0] += o[0];
                    cell[1] += o[1];
                    cell[2] += o[2];
                }
            }
            return;
        };
        let s = self.stride();
        for f in features {
            let column = self.binned.column(f);
            let hist = &mut h
                [(self.binned.offsets[f] - base) * s..(self.binned.offsets[f + 1] - base) * s];
            hist.fill(0.0);
            for &r in rows {
                let r = r as usize;
                let cell = &mut hist[usize::from(column[r]) * s..][..s];
                for (acc, v) in cell.iter_mut().zip(&grad[r * self.dims..][..self.dims]) {
                    *acc += v;
                }
                cell[self.dims] += hess[r];
                cell[self.dims + 1] += 1.0;
            }
        }
    }

    /// The parent's sums minus one child's: the other child's, in the
    /// parent's buffer.
    fn subtract(&self, mut parent: Histogram, child: &Histogram) -> Histogram {
        let minus = |a: &mut [f64], b: &[f64]| a.iter_mut().zip(b).for_each(|(a, b)| *a -= b);
        let threads = cores();
        if threads <= 1 || parent.0.len() < PARALLEL_BINS * 3 {
            minus(&mut parent.0, &child.0);
        } else {
            let run = parent.0.len().div_ceil(threads);
            let minus = &minus;
            on_cores(
                parent
                    .0
                    .chunks_mut(run)
                    .zip(child.0.chunks(run))
                    .map(|(a, b)| move || minus(a, b))
                    .collect(),
            );
        }
        parent
    }

    /// `Σ_d G_d² / (H + λ)`.
    fn score(&self, sums: &[f64]) -> f64 {
        let h = sums[self.dims] + self.l2;
        if h <= 0.0 {
            return 0.0;
        }
        sums[..self.dims].iter().map(|g| g * g).sum::<f64>() / h
    }

    /// The best split of a node: (gain, feature, last bin on the left).
    /// Ties go to the first feature and bin, however the search is split
    /// across the cores.
    fn best_split(&self, hist: &Histogram, rng: &mut SplitMix64) -> Option<(f64, usize, usize)> {
        let sampled;
        let tried = match self.per_split {
            Some(k) => {
                let mut t = self.features.clone();
                rng.shuffle(&mut t);
                t.truncate(k);
                t.sort_unstable();
                sampled = t;
                &sampled
            }
            None => &self.features,
        };
        // Every feature's bins hold the node's rows: one total for all.
        let total = self.totals(hist);
        // Too few rows for two leaves: no split to look for.
        if total[self.dims + 1] < 2.0 * self.min_leaf as f64 {
            return None;
        }
        let threads = cores();
        let bins = self.binned.offsets[self.binned.cols];
        if threads > 1 && bins >= PARALLEL_BINS && tried.len() >= threads {
            let total = &total;
            let found = on_cores(
                tried
                    .chunks(tried.len().div_ceil(threads))
                    .map(|part| move || self.best_among(hist, part, total))
                    .collect(),
            );
            return found
                .into_iter()
                .flatten()
                .fold(None, |best, c| match best {
                    Some((g, _, _)) if c.0 <= g => best,
                    _ => Some(c),
                });
        }
        self.best_among(hist, tried, &total)
    }

    /// The best split on one of `features` (in order; the first best wins).
    fn best_among(
        &self,
        hist: &Histogram,
        features: &[usize],
        total: &[f64],
    ) -> Option<(f64, usize, usize)> {
        let s = self.stride();
        let parent = self.score(total);
        let min_leaf = self.min_leaf as f64;
        let (dims, l2) = (self.dims, self.l2);
        let mut best: Option<(f64, usize, usize)> = None;
        let mut consider = |gain: f64, f: usize, b: usize| {
            if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, f, b));
            }
        };
        if dims == 1 {
            let (g_all, h_all, n_all) = (total[0], total[1], total[2]);
            for &f in features {
                let h = &hist.0[self.binned.offsets[f] * 3..self.binned.offsets[f + 1] * 3];
                let (cells, _) = h.as_chunks::<3>();
                let (mut g_left, mut h_left, mut n_left) = (0.0, 0.0, 0.0);
                for (b, cell) in cells[..cells.len().saturating_sub(1)].iter().enumerate() {
                    // An empty bin moves nothing: its split is the one
                    // before it, which won already if it could (ties go
                    // to the first). Small nodes leave most bins empty.
                    if cell[2] == 0.0 {
                        continue;
                    }
                    g_left += cell[0];
                    h_left += cell[1];
                    n_left += cell[2];
                    if n_left < min_leaf {
                        continue;
                    }
                    if n_all - n_left < min_leaf {
                        break;
                    }
                    let (hl, hr) = (h_left + l2, h_all - h_left + l2);
                    if hl <= 0.0 || hr <= 0.0 {
                        continue;
                    }
                    let g_right = g_all - g_left;
                    consider(g_left * g_left / hl + g_right * g_right / hr - parent, f, b);
                }
            }
            return best;
        }
        let mut left = vec![0.0; s];
        for &f in features {
            let h = &hist.0[self.binned.offsets[f] * s..self.binned.offsets[f + 1] * s];
            let n_bins = h.len() / s;
            left.iter_mut().for_each(|l| *l = 0.0);
            for b in 0..n_bins.saturating_sub(1) {
                // Empty: the same split as the bin before (see above).
                if h[b * s + dims + 1] == 0.0 {
                    continue;
                }
                for (l, v) in left.iter_mut().zip(&h[b * s..][..s]) {
                    *l += v;
                }
                let n_left = left[dims + 1];
                if n_left < min_leaf {
                    continue;
                }
                if total[dims + 1] - n_left < min_leaf {
                    break;
                }
                let (h_left, h_right) = (left[dims] + l2, total[dims] - left[dims] + l2);
                if h_left <= 0.0 || h_right <= 0.0 {
                    continue;
                }
                let (mut g_left, mut g_right) = (0.0, 0.0);
                for d in 0..dims {
                    g_left += left[d] * left[d];
                    g_right += (total[d] - left[d]) * (total[d] - left[d]);
                }
                consider(g_left / h_left + g_right / h_right - parent, f, b);
            }
        }
        best
    }

    /// A node's sums over all its rows, from its first feature's bins.
    fn totals(&self, hist: &Histogram) -> Vec<f64> {
        let s = self.stride();
        let f = self.features[0];
        let mut total = vec![0.0; s];
        for chunk in
            hist.0[self.binned.offsets[f] * s..self.binned.offsets[f + 1] * s].chunks_exact(s)
        {
            for (t, v) in total.iter_mut().zip(chunk) {
                *t += v;
            }
        }
        total
    }

    fn leaf_values(&self, hist: &Histogram) -> Vec<f64> {
        let total = self.totals(hist);
        let h = total[self.dims] + self.l2;
        total[..self.dims]
            .iter()
            .map(|g| if h > 0.0 { -g / h } else { 0.0 })
            .collect()
    }

    /// Grows one tree on `rows` (which it reorders); the leaves' values
    /// are `−G / (H + λ)`. Adds each split's gain to `importances`. Also
    /// returns where each leaf's rows ended up: `(start, end, node)` into
    /// `rows`.
    fn grow(
        &self,
        rows: &mut [u32],
        rng: &mut SplitMix64,
        importances: &mut [f64],
    ) -> (Tree, Vec<(usize, usize, usize)>) {
        let mut leaf_rows = Vec::new();
        let mut right_rows = vec![0u32; rows.len()];
        let mut nodes = vec![TreeNode::Leaf(Vec::new())];
        let root_hist = self.histogram(rows);
        let split = self.best_split(&root_hist, rng);
        let mut open = vec![Candidate {
            start: 0,
            end: rows.len(),
            depth: 0,
            hist: root_hist,
            split,
            node: 0,
        }];
        let mut leaves = 1;
        // Best-first when leaves are limited; otherwise depth-first (the
        // last candidate), which keeps few histograms alive.
        let best_first = self.max_leaves != usize::MAX;
        while !open.is_empty() {
            let pick = if best_first {
                let mut best = 0;
                for (i, c) in open.iter().enumerate() {
                    let gain = |c: &Candidate| c.split.map_or(f64::NEG_INFINITY, |s| s.0);
                    if gain(c) > gain(&open[best]) {
                        best = i;
                    }
                }
                best
            } else {
                open.len() - 1
            };
            let c = open.swap_remove(pick);
            let can_split = leaves < self.max_leaves && c.depth < self.max_depth;
            let Some((gain, feature, bin)) = c.split.filter(|_| can_split) else {
                nodes[c.node] = TreeNode::Leaf(self.leaf_values(&c.hist));
                leaf_rows.push((c.start, c.end, c.node));
                self.spare
                    .lock()
                    .expect("the spare histograms")
                    .push(c.hist.0);
                continue;
            };
            // The node's rows, bins ≤ `bin` first, each side in order.
            let part = &mut rows[c.start..c.end];
            let spare = &mut right_rows[..part.len()];
            let mid = c.start + partition(part, spare, self.binned.column(feature), bin);
            importances[feature] += gain;
            let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
            nodes.push(TreeNode::Leaf(Vec::new()));
            nodes.push(TreeNode::Leaf(Vec::new()));
            nodes[c.node] = TreeNode::Split {
                feature,
                threshold: self.binned.thresholds[feature][bin],
                left: left_node,
                right: right_node,
            };
            leaves += 1;
            // Sum the smaller child; the other is the parent minus it.
            let left_small = mid - c.start <= c.end - mid;
            let small = if left_small {
                self.histogram(&rows[c.start..mid])
            } else {
                self.histogram(&rows[mid..c.end])
            };
            let large = self.subtract(c.hist, &small);
            let (left_hist, right_hist) = if left_small {
                (small, large)
            } else {
                (large, small)
            };
            for (start, end, hist, node) in [
                (c.start, mid, left_hist, left_node),
                (mid, c.end, right_hist, right_node),
            ] {
                let split = if c.depth + 1 < self.max_depth {
                    self.best_split(&hist, rng)
                } else {
                    None
                };
                open.push(Candidate {
                    start,
                    end,
                    depth: c.depth + 1,
                    hist,
                    split,
                    node,
                });
            }
        }
        (Tree { nodes }, leaf_rows)
    }
}

/// Reorders `rows`, those whose bin in `column` is at most `bin` first,
/// each side keeping its order (rows stay increasing, so every later pass
/// over a node's rows reads bins and gradients front to back); returns how
/// many went first. `spare` (as long as `rows`) is scratch. A large node's
/// rows are cut into runs, one per core, each split on its own and the
/// sides then put together in order.
fn partition(rows: &mut [u32], spare: &mut [u32], column: &[u8], bin: usize) -> usize {
    let threads = cores();
    if threads <= 1 || rows.len() < PARALLEL_PARTITION {
        let left = split_run(rows, spare, column, bin);
        let right = rows.len() - left;
        rows[left..].copy_from_slice(&spare[..right]);
        return left;
    }
    let run = rows.len().div_ceil(threads);
    let lefts = on_cores(
        rows.chunks_mut(run)
            .zip(spare.chunks_mut(run))
            .map(|(rows, spare)| move || split_run(rows, spare, column, bin))
            .collect(),
    );
    // Each run's first side moves down behind the runs before it (never
    // past its own start), then every run's second side follows.
    let mut at = 0;
    for (i, &left) in lefts.iter().enumerate() {
        rows.copy_within(i * run..i * run + left, at);
        at += left;
    }
    let first = at;
    for (i, &left) in lefts.iter().enumerate() {
        let len = run.min(rows.len() - i * run) - left;
        rows[at..at + len].copy_from_slice(&spare[i * run..i * run + len]);
        at += len;
    }
    first
}

/// Splits one run: its first side stays at the front of `rows`, in order,
/// its second goes to the front of `spare`; returns the first side's
/// length. Branch-free: every row is written to both sides and only the
/// side it belongs to moves on (the branch would be a coin flip per row).
fn split_run(rows: &mut [u32], spare: &mut [u32], column: &[u8], bin: usize) -> usize {
    let (mut left, mut right) = (0, 0);
    for i in 0..rows.len() {
        let r = rows[i];
        let first = usize::from(usize::from(column[r as usize]) <= bin);
        rows[left] = r;
        spare[right] = r;
        left += first;
        right += 1 - first;
    }
    left
}

/// Rows from which the bins' thresholds are placed by a sample of this
/// many (see [`Binned::sample`]).
const BIN_SAMPLE: usize = 200_000;

/// Node rows from which a node's rows are partitioned on every core.
const PARALLEL_PARTITION: usize = 65_536;

/// Node rows from which a column's histogram is summed in two halves
/// (see [`Grower::fill`]).
const PAIRED_ROWS: usize = 2_048;

/// Rows from which the gradients are computed on every core.
const PARALLEL_ROWS: usize = 50_000;

/// Node rows × features from which a histogram is filled on every core (a
/// thread costs tens of microseconds; this many cells take a few hundred).
const PARALLEL_CELLS: usize = 200_000;

/// Shares of a narrow table's large node, summed separately and added up
/// in order (see [`Grower::histogram`]): fixed, so that the sums do not
/// depend on the number of cores.
const ROW_SHARES: usize = 4;

/// Cells (rows × features) from which a wide table's node is summed on
/// every core, each core taking a range of features. Lower than
/// [`PARALLEL_CELLS`]: the shares need no adding up (so this changes no
/// sum, on any number of cores) and most of a wide table's nodes are small
/// (on 40,000 × 200, from 200,000 to 20,000 cells took 10–30 % off the
/// training time on two cores).
const PARALLEL_FEATURE_CELLS: usize = 20_000;

/// Features from which the cores share a histogram's work by features
/// rather than by rows (see [`Grower::histogram`]).
const BY_FEATURES_FROM: usize = 32;

/// Histogram bins (over all features) from which a node's split search
/// runs on every core.
const PARALLEL_BINS: usize = 8_192;

/// The logistic function for boosting's gradients, with [`exp_fast`]:
/// 80 million of them train a hundred rounds on a million rows. One form
/// for both signs (no branch to mispredict): where `e^−z` overflows, the
/// result is 0, as it should be.
fn sigmoid_fast(z: f64) -> f64 {
    1.0 / (1.0 + exp_fast(-z))
}

/// 11! down to 0!: the terms of [`exp_fast`]'s Taylor series, highest
/// first.
const FACTORIALS: [f64; 12] = [
    39_916_800.0,
    3_628_800.0,
    362_880.0,
    40_320.0,
    5_040.0,
    720.0,
    120.0,
    24.0,
    6.0,
    2.0,
    1.0,
    1.0,
];

/// `e^x` to within 2e-16 (relative) on `[-708, 709]` (0 below, infinity
/// above): `2^k · e^r` with `r = x − k·ln 2` in `[−ln 2 / 2, ln 2 / 2]` and
/// `e^r` by its Taylor series to the 13th term. Only IEEE additions and
/// multiplications (which Rust never fuses), so the same bits on every
/// machine — what determinism needs — at about twice `libm::exp`'s speed.
fn exp_fast(x: f64) -> f64 {
    // ln 2 in two parts (the first with trailing zero bits, so that k times
    // it is exact), as in fdlibm.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const LOG2_E: f64 = std::f64::consts::LOG2_E;
    // Adding and subtracting 1.5 · 2^52 rounds to the nearest integer.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    // No branches (the ends are chosen at the end), so that a loop of
    // them runs in vector registers.
    let xc = x.clamp(-708.0, 709.0);
    let kr = xc * LOG2_E + ROUND;
    let k = kr - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 479_001_600.0;
    for d in FACTORIALS {
        p = p * r + 1.0 / d;
    }
    // 2^k: `kr`'s low mantissa bits hold 2^51 + k, so adding the exponent
    // bias and shifting leaves k + 1023 (in 1 ..= 2046) in the exponent.
    let y = p * f64::from_bits(kr.to_bits().wrapping_add(1023) << 52);
    let y = if x > 709.0 { f64::INFINITY } else { y };
    let y = if x < -708.0 { 0.0 } else { y };
    if x.is_nan() { x } else { y }
}

/// Sets `out[r] = f(r)` for every row `r` of `rows` (increasing), on
/// every core for many rows: each core takes a run of rows, and so a range
/// of `out` no other core writes.
fn per_row(rows: &[u32], out: &mut [[f64; 2]], f: impl Fn(usize) -> (f64, f64) + Sync) {
    let threads = cores();
    let run = |rows: &[u32], out: &mut [[f64; 2]], base: usize| {
        for &r in rows {
            let r = r as usize;
            let (a, b) = f(r);
            out[r - base] = [a, b];
        }
    };
    if threads <= 1 || rows.len() < PARALLEL_ROWS {
        run(rows, out, 0);
        return;
    }
    let chunks: Vec<&[u32]> = rows.chunks(rows.len().div_ceil(threads)).collect();
    let (mut out, mut base) = (out, 0);
    let mut parts = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        // This run's rows are below the next run's first row.
        let end = chunks
            .get(i + 1)
            .map_or(base + out.len(), |next| next[0] as usize);
        let (mine, rest) = std::mem::take(&mut out).split_at_mut(end - base);
        let run = &run;
        parts.push(move || run(chunk, mine, base));
        (out, base) = (rest, end);
    }
    on_cores(parts);
}

/// Runs `f` on matching runs of `out`, `a` and `b` (of equal lengths), on
/// every core for many rows.
fn on_slices<T: Send, A: Sync, B: Sync>(
    out: &mut [T],
    a: &[A],
    b: &[B],
    f: impl Fn(&mut [T], &[A], &[B]) + Sync,
) {
    let threads = cores();
    if threads <= 1 || out.len() < PARALLEL_ROWS {
        f(out, a, b);
        return;
    }
    let run = out.len().div_ceil(threads);
    let f = &f;
    on_cores(
        out.chunks_mut(run)
            .zip(a.chunks(run).zip(b.chunks(run)))
            .map(|(out, (a, b))| move || f(out, a, b))
            .collect(),
    );
}

/// The threads training may use: those of the pool it runs in (rayon's
/// global pool: one per core, or `RAYON_NUM_THREADS`). Never
/// `available_parallelism`, which on Linux reads the cgroup's files each
/// time, and growing one tree asks a hundred times.
fn cores() -> usize {
    rayon_core::current_num_threads()
}

/// Runs `work`, the first on this thread and the rest on the pool's other
/// threads; returns their results in order. Training asks for this
/// thousands of times (a few times per split), so the threads are kept
/// between calls: starting one costs tens of microseconds, and more where
/// the machine is virtual.
fn on_cores<T: Send>(work: Vec<impl FnOnce() -> T + Send>) -> Vec<T> {
    let mut results: Vec<Option<T>> = work.iter().map(|_| None).collect();
    let mut work = work.into_iter();
    let Some(first) = work.next() else {
        return Vec::new();
    };
    let (head, rest) = results.split_first_mut().expect("one result per share");
    rayon_core::scope(|scope| {
        for (w, slot) in work.zip(rest) {
            scope.spawn(move |_| *slot = Some(w()));
        }
        *head = Some(first());
    });
    results
        .into_iter()
        .map(|r| r.expect("every share ran"))
        .collect()
}

/// Runs `f` on one of the pool's threads, so that the shares it hands out
/// go to threads that are already running.
fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon_core::scope(|_| f())
}

/// `threads` contiguous ranges of features with about as many bins each.
fn feature_ranges(offsets: &[usize], threads: usize) -> Vec<std::ops::Range<usize>> {
    let cols = offsets.len() - 1;
    let per = offsets[cols].div_ceil(threads);
    let mut ranges = Vec::with_capacity(threads);
    let mut start = 0;
    for t in 1..=threads {
        let end = if t == threads {
            cols
        } else {
            offsets.partition_point(|&o| o < per * t).clamp(start, cols)
        };
        if end > start {
            ranges.push(start..end);
        }
        start = end;
    }
    ranges
}

fn normalised(mut v: Vec<f64>) -> Vec<f64> {
    let total: f64 = v.iter().sum();
    if total > 0.0 {
        v.iter_mut().for_each(|x| *x /= total);
    }
    v
}

// ---- gradient boosting ------------------------------------------------------

/// Trains gradient-boosted trees; returns the model and the training loss
/// after each round. With `early_stopping`, the loss watched is that of
/// `validation` when given, else of `validation_fraction` of the rows held
/// out of training.
pub(crate) fn fit_boosting(
    x: &Matrix,
    target: EnsembleTarget<'_>,
    validation: Option<Validation<'_, EnsembleTarget<'_>>>,
    p: &BoostingParams,
    cancel: &Cancel,
) -> Result<(TreeEnsembleModel, Vec<f64>)> {
    in_pool(|| fit_boosting_in_pool(x, target, validation, p, cancel))
}

/// [`fit_boosting`], on a thread of the pool.
fn fit_boosting_in_pool(
    x: &Matrix,
    target: EnsembleTarget<'_>,
    validation: Option<Validation<'_, EnsembleTarget<'_>>>,
    p: &BoostingParams,
    cancel: &Cancel,
) -> Result<(TreeEnsembleModel, Vec<f64>)> {
    let (n, f) = (x.rows(), x.cols());
    let binned = Binned::new(x, p.max_bins);
    let mut rng = SplitMix64::new(p.seed);
    let k = target.scores();
    let validation = validation.filter(|v| p.early_stopping && v.x.rows() > 0);
    // Held-out rows for early stopping, when no validation rows are given.
    let mut order: Vec<u32> = (0..n as u32).collect();
    let held = if p.early_stopping && validation.is_none() {
        rng.shuffle(&mut order);
        ((n as f64 * p.validation_fraction).ceil() as usize).clamp(1, n.saturating_sub(1))
    } else {
        0
    };
    let (valid, train): (Vec<u32>, Vec<u32>) = (order[..held].to_vec(), order[held..].to_vec());
    let mut train = train;
    train.sort_unstable();
    if train.is_empty() {
        return Err(MlError::InvalidData("no rows to train on".into()));
    }

    // Initial scores: the log-odds, log-priors or mean of the training rows.
    let base: Vec<f64> = match target {
        EnsembleTarget::Classes(y, c) => {
            let mut counts = vec![0.0; c];
            for &r in &train {
                counts[y[r as usize]] += 1.0;
            }
            let t = train.len() as f64;
            let prior = |c: f64| (c / t).clamp(1e-15, 1.0 - 1e-15);
            if c == 2 {
                let p1 = prior(counts[1]);
                vec![libm::log(p1 / (1.0 - p1))]
            } else {
                counts.iter().map(|&c| libm::log(prior(c))).collect()
            }
        }
        EnsembleTarget::Values(y) => {
            vec![train.iter().map(|&r| y[r as usize]).sum::<f64>() / train.len() as f64]
        }
    };
    let mut raw: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
    let validation_rows = validation.as_ref().map_or(0, |v| v.x.rows());
    let mut validation_raw: Vec<f64> = (0..validation_rows)
        .flat_map(|_| base.iter().copied())
        .collect();
    // The training loss recorded per round is measured on at most 10,000
    // evenly spaced training rows: a log per row of a million-row table
    // every round would cost more than growing the tree.
    let loss_rows: Vec<u32> = train
        .iter()
        .step_by(train.len().div_ceil(10_000).max(1))
        .copied()
        .collect();
    let mut probs = vec![0.0; if k > 1 { n * k } else { 0 }];
    // A binary target as the numbers 0 and 1, for the gradients' loop.
    let positive: Vec<f64> = match target {
        EnsembleTarget::Classes(y, 2) => y.iter().map(|&c| f64::from(u8::from(c == 1))).collect(),
        _ => Vec::new(),
    };
    let spare = Mutex::new(Vec::new());
    let mut pairs = vec![[0.0; 2]; n];
    let mut trees = Vec::new();
    let mut tree_output = Vec::new();
    let mut importances = vec![0.0; f];
    let mut history = Vec::new();
    let (mut best_loss, mut best_round, mut stale) = (f64::INFINITY, 0usize, 0usize);
    let max_depth = p.max_depth.unwrap_or(usize::MAX);
    let n_cols = ((f as f64 * p.colsample).ceil() as usize).clamp(1, f);
    let n_rows = ((train.len() as f64 * p.subsample).ceil() as usize).clamp(1, train.len());

    for _round in 0..p.n_estimators {
        if cancel.is_cancelled() {
            return Err(MlError::Cancelled);
        }
        // Rows and features of this round.
        let mut rows = train.clone();
        if n_rows < rows.len() {
            rng.shuffle(&mut rows);
            rows.truncate(n_rows);
            rows.sort_unstable();
        }
        let mut features: Vec<usize> = (0..f).collect();
        if n_cols < f {
            rng.shuffle(&mut features);
            features.truncate(n_cols);
            features.sort_unstable();
        }
        // A multiclass round fits its k trees to the gradients of the same
        // scores (those before the round), as LightGBM and scikit-learn do:
        // the class probabilities are computed once, before any of them.
        if k > 1 {
            for &r in &rows {
                let r = r as usize;
                probs[r * k..][..k].copy_from_slice(&raw[r * k..][..k]);
                softmax_in_place(&mut probs[r * k..][..k]);
            }
        }
        for class in 0..k {
            let gradient = |r: usize| match target {
                EnsembleTarget::Classes(y, 2) => {
                    let p1 = sigmoid_fast(raw[r]);
                    (
                        p1 - f64::from(u8::from(y[r] == 1)),
                        (p1 * (1.0 - p1)).max(1e-16),
                    )
                }
                EnsembleTarget::Classes(y, _) => {
                    let pc = probs[r * k + class];
                    (
                        pc - f64::from(u8::from(y[r] == class)),
                        (pc * (1.0 - pc)).max(1e-16),
                    )
                }
                EnsembleTarget::Values(y) => (raw[r] - y[r], 1.0),
            };
            // Every row (no subsampling, nothing held out): over whole
            // slices, in vector registers; otherwise row by row.
            match target {
                EnsembleTarget::Classes(_, 2) if rows.len() == n => {
                    on_slices(&mut pairs, &raw, &positive, |out, raw, y| {
                        for ((o, &z), &y) in out.iter_mut().zip(raw).zip(y) {
                            let p1 = sigmoid_fast(z);
                            *o = [p1 - y, (p1 * (1.0 - p1)).max(1e-16)];
                        }
                    });
                }
                EnsembleTarget::Values(y) if rows.len() == n => {
                    on_slices(&mut pairs, &raw, y, |out, raw, y| {
                        for ((o, &z), &y) in out.iter_mut().zip(raw).zip(y) {
                            *o = [z - y, 1.0];
                        }
                    });
                }
                _ => per_row(&rows, &mut pairs, gradient),
            }
            let grower = Grower {
                binned: &binned,
                gradients: Gradients::Pairs(&pairs),
                dims: 1,
                l2: p.l2,
                min_leaf: p.min_samples_leaf.max(1),
                max_depth,
                max_leaves: p.max_leaves.max(2),
                features: features.clone(),
                per_split: None,
                spare: &spare,
            };
            let mut tree_rows = rows.clone();
            let (mut tree, leaf_rows) = grower.grow(&mut tree_rows, &mut rng, &mut importances);
            for node in &mut tree.nodes {
                if let TreeNode::Leaf(v) = node {
                    v.iter_mut().for_each(|w| *w *= p.learning_rate);
                }
            }
            // Update every row's score: the tree's rows from where growing
            // left them, the others (held out, not drawn) by a walk. When
            // the tree had every row and one score per row, each core takes
            // a run of rows and finds its part of each leaf's (increasing)
            // rows; a row gets one addition either way, so the same sums.
            if k == 1 && tree_rows.len() == n {
                let leaves: Vec<(&[u32], f64)> = leaf_rows
                    .iter()
                    .map(|&(start, end, node)| match &tree.nodes[node] {
                        TreeNode::Leaf(v) => (&tree_rows[start..end], v[0]),
                        TreeNode::Split { .. } => unreachable!("leaf ranges name leaves"),
                    })
                    .collect();
                let leaves = &leaves;
                let run = n.div_ceil(if n < PARALLEL_ROWS { 1 } else { cores() });
                on_cores(
                    raw.chunks_mut(run)
                        .enumerate()
                        .map(|(i, scores)| {
                            move || {
                                let (base, end) =
                                    ((i * run) as u32, (i * run + scores.len()) as u32);
                                for &(rows, v) in leaves {
                                    let from = rows.partition_point(|&r| r < base);
                                    let to = rows.partition_point(|&r| r < end);
                                    for &r in &rows[from..to] {
                                        scores[(r - base) as usize] += v;
                                    }
                                }
                            }
                        })
                        .collect(),
                );
            } else {
                let mut walked = vec![true; if tree_rows.len() < n { n } else { 0 }];
                for (start, end, node) in leaf_rows {
                    let TreeNode::Leaf(v) = &tree.nodes[node] else {
                        unreachable!("leaf ranges name leaves")
                    };
                    for &r in &tree_rows[start..end] {
                        raw[r as usize * k + class] += v[0];
                        if let Some(w) = walked.get_mut(r as usize) {
                            *w = false;
                        }
                    }
                }
                for (r, _) in walked.iter().enumerate().filter(|(_, w)| **w) {
                    raw[r * k + class] += tree.leaf(x.row(r))[0];
                }
            }
            if let Some(v) = &validation {
                for r in 0..validation_rows {
                    validation_raw[r * k + class] += tree.leaf(v.x.row(r))[0];
                }
            }
            trees.push(tree);
            tree_output.push(Some(class));
        }
        history.push(target.loss(&raw, loss_rows.iter().map(|&r| r as usize)));
        if p.early_stopping {
            let l = match &validation {
                Some(v) => v.target.loss(&validation_raw, 0..validation_rows),
                None => target.loss(&raw, valid.iter().map(|&r| r as usize)),
            };
            if l < best_loss - p.tol {
                (best_loss, best_round, stale) = (l, trees.len(), 0);
            } else {
                stale += 1;
                if stale >= p.n_iter_no_change {
                    trees.truncate(best_round);
                    tree_output.truncate(best_round);
                    break;
                }
            }
        }
    }
    let (head, n_outputs) = match target {
        EnsembleTarget::Classes(_, 2) => (EnsembleHead::Binary, 1),
        EnsembleTarget::Classes(_, c) => (EnsembleHead::Softmax, c),
        EnsembleTarget::Values(_) => (EnsembleHead::Value, 1),
    };
    Ok((
        TreeEnsembleModel {
            trees,
            tree_output,
            n_outputs,
            base,
            average: false,
            head,
            n_features: f,
            feature_importances: normalised(importances),
        },
        history,
    ))
}

// ---- random forests ---------------------------------------------------------

/// Trains a random forest; returns the model and, per tree, the training
/// error of the forest so far (misclassification rate or mean squared
/// error).
pub(crate) fn fit_forest(
    x: &Matrix,
    target: EnsembleTarget<'_>,
    p: &ForestParams,
    cancel: &Cancel,
) -> Result<(TreeEnsembleModel, Vec<f64>)> {
    in_pool(|| fit_forest_in_pool(x, target, p, cancel))
}

/// [`fit_forest`], on a thread of the pool.
fn fit_forest_in_pool(
    x: &Matrix,
    target: EnsembleTarget<'_>,
    p: &ForestParams,
    cancel: &Cancel,
) -> Result<(TreeEnsembleModel, Vec<f64>)> {
    let (n, f) = (x.rows(), x.cols());
    let binned = Binned::new(x, p.max_bins);
    let mut rng = SplitMix64::new(p.seed);
    let dims = match target {
        EnsembleTarget::Classes(_, c) => c,
        EnsembleTarget::Values(_) => 1,
    };
    // Gradients of squared error from 0: minus the one-hot classes or the
    // values; with unit hessians the leaf value −G/H is their mean.
    let mut grad = vec![0.0; n * dims];
    match target {
        EnsembleTarget::Classes(y, _) => {
            for (r, &c) in y.iter().enumerate() {
                grad[r * dims + c] = -1.0;
            }
        }
        EnsembleTarget::Values(y) => grad.iter_mut().zip(y).for_each(|(g, v)| *g = -v),
    }
    let hess = vec![1.0; n];
    let per_split = match (p.max_features, &target) {
        (Some(frac), _) => (f as f64 * frac).ceil() as usize,
        (None, EnsembleTarget::Classes(..)) => (f as f64).sqrt().ceil() as usize,
        (None, EnsembleTarget::Values(_)) => f,
    }
    .clamp(1, f);
    let spare = Mutex::new(Vec::new());
    let grower = Grower {
        binned: &binned,
        gradients: Gradients::Rows {
            grad: &grad,
            hess: &hess,
        },
        dims,
        l2: 0.0,
        min_leaf: p.min_samples_leaf.max(1),
        max_depth: p.max_depth.unwrap_or(usize::MAX),
        max_leaves: usize::MAX,
        features: (0..f).collect(),
        per_split: (per_split < f).then_some(per_split),
        spare: &spare,
    };
    let mut trees = Vec::with_capacity(p.n_estimators);
    let mut importances = vec![0.0; f];
    let mut sums = vec![0.0; n * dims];
    let mut history = Vec::new();
    for t in 0..p.n_estimators {
        if cancel.is_cancelled() {
            return Err(MlError::Cancelled);
        }
        let mut rows: Vec<u32> = if p.bootstrap {
            let mut r: Vec<u32> = (0..n).map(|_| rng.below(n) as u32).collect();
            r.sort_unstable();
            r
        } else {
            (0..n as u32).collect()
        };
        let (tree, _) = grower.grow(&mut rows, &mut rng, &mut importances);
        for r in 0..n {
            for (s, v) in sums[r * dims..][..dims].iter_mut().zip(tree.leaf(x.row(r))) {
                *s += v;
            }
        }
        let m = (t + 1) as f64;
        history.push(match target {
            EnsembleTarget::Classes(y, _) => {
                let wrong = (0..n)
                    .filter(|&r| crate::prediction::argmax(&sums[r * dims..][..dims]) != y[r])
                    .count();
                wrong as f64 / n as f64
            }
            EnsembleTarget::Values(y) => {
                (0..n).map(|r| (sums[r] / m - y[r]).powi(2)).sum::<f64>() / n as f64
            }
        });
        trees.push(tree);
    }
    let (head, n_outputs) = match target {
        EnsembleTarget::Classes(_, c) => (EnsembleHead::Probabilities, c),
        EnsembleTarget::Values(_) => (EnsembleHead::Value, 1),
    };
    let tree_output = vec![None; trees.len()];
    Ok((
        TreeEnsembleModel {
            trees,
            tree_output,
            n_outputs,
            base: vec![0.0; n_outputs],
            average: true,
            head,
            n_features: f,
            feature_importances: normalised(importances),
        },
        history,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XOR of two features: no linear model separates it.
    fn xor(n: usize) -> (Matrix, Vec<usize>) {
        let mut rng = SplitMix64::new(3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
            x.extend([a, b, rng.uniform(-1.0, 1.0)]);
            y.push(usize::from((a > 0.0) != (b > 0.0)));
        }
        (Matrix::new(n, 3, x).unwrap(), y)
    }

    fn accuracy(m: &TreeEnsembleModel, x: &Matrix, y: &[usize]) -> f64 {
        let Prediction::Classes { labels, .. } = m.predict(x).unwrap() else {
            panic!()
        };
        labels.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
    }

    #[test]
    fn boosting_and_forests_learn_what_no_line_separates() {
        let (x, y) = xor(2000);
        let (test_x, test_y) = xor(500);
        let (gb, history) = fit_boosting(
            &x,
            EnsembleTarget::Classes(&y, 2),
            None,
            &BoostingParams::default(),
            &Cancel::new(),
        )
        .unwrap();
        assert!(accuracy(&gb, &test_x, &test_y) > 0.95);
        assert!(history.last().unwrap() < &history[0], "{history:?}");
        // The noise feature matters least.
        assert!(
            gb.feature_importances[2] < 0.05,
            "{:?}",
            gb.feature_importances
        );
        let (rf, _) = fit_forest(
            &x,
            EnsembleTarget::Classes(&y, 2),
            &ForestParams {
                n_estimators: 30,
                ..ForestParams::default()
            },
            &Cancel::new(),
        )
        .unwrap();
        assert!(accuracy(&rf, &test_x, &test_y) > 0.9);
    }

    #[test]
    fn the_same_seed_gives_the_same_trees_and_another_seed_other_trees() {
        let (x, y) = xor(500);
        let p = ForestParams {
            n_estimators: 5,
            ..ForestParams::default()
        };
        let fit = |seed| {
            fit_forest(
                &x,
                EnsembleTarget::Classes(&y, 2),
                &ForestParams { seed, ..p.clone() },
                &Cancel::new(),
            )
            .unwrap()
            .0
        };
        assert_eq!(fit(1), fit(1));
        assert_ne!(fit(1), fit(2));
    }

    /// `n` rows of four features, the label a noisy function of them.
    fn noisy(n: usize) -> (Matrix, Vec<usize>) {
        let mut rng = SplitMix64::new(7);
        let mut values = Vec::with_capacity(n * 4);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let row: Vec<f64> = (0..4).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let score = row[0] * row[1] + 0.5 * row[2] - row[3].abs() + rng.uniform(-0.3, 0.3);
            y.push(usize::from(score > 0.0));
            values.extend(row);
        }
        (Matrix::new(n, 4, values).unwrap(), y)
    }

    type Grown = ((TreeEnsembleModel, Vec<f64>), (TreeEnsembleModel, Vec<f64>));

    /// A boosted classifier (4 rounds) and a regression forest (2 trees)
    /// grown on `x`, `y` by a pool of `threads` threads.
    fn grown_on(x: &Matrix, y: &[usize], threads: usize) -> Grown {
        let pool = rayon_core::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let boosted = fit_boosting(
                x,
                EnsembleTarget::Classes(y, 2),
                None,
                &BoostingParams {
                    n_estimators: 4,
                    ..BoostingParams::default()
                },
                &Cancel::new(),
            )
            .unwrap();
            let targets: Vec<f64> = y.iter().map(|&c| c as f64).collect();
            let forest = fit_forest(
                x,
                EnsembleTarget::Values(&targets),
                &ForestParams {
                    n_estimators: 2,
                    ..ForestParams::default()
                },
                &Cancel::new(),
            )
            .unwrap();
            (boosted, forest)
        })
    }

    /// Grows on 1, 2 and 3 threads and asserts the same trees, of more
    /// than `nodes` nodes each.
    fn assert_same_trees_on_any_number_of_threads(x: &Matrix, y: &[usize], nodes: usize) {
        let one = grown_on(x, y, 1);
        assert!(one.0.0.trees.iter().all(|t| t.nodes.len() > nodes));
        // (Not assert_eq: the models' debug form is megabytes.)
        assert!(
            one == grown_on(x, y, 2),
            "1 and 2 threads grew different trees"
        );
        assert!(
            one == grown_on(x, y, 3),
            "1 and 3 threads grew different trees"
        );
    }

    #[test]
    fn the_trees_do_not_depend_on_the_number_of_threads() {
        // Enough rows for every parallel path: gradients and scores by
        // runs of rows, partitions and histograms by shares.
        let (x, y) = noisy(PARALLEL_PARTITION + 4_000);
        assert_same_trees_on_any_number_of_threads(&x, &y, 20);
    }

    #[test]
    fn the_trees_of_a_wide_table_do_not_depend_on_the_number_of_threads() {
        // Wide: histograms by ranges of features, from small nodes on.
        let cols = BY_FEATURES_FROM + 8;
        let n = 3_000;
        assert!(n * cols > 5 * PARALLEL_FEATURE_CELLS);
        let (narrow, y) = noisy(n);
        let mut rng = SplitMix64::new(11);
        let mut values = Vec::with_capacity(n * cols);
        for i in 0..n {
            // The four informative columns, then noise.
            values.extend((0..4).map(|j| narrow.get(i, j)));
            values.extend((4..cols).map(|_| rng.uniform(-1.0, 1.0)));
        }
        let x = Matrix::new(n, cols, values).unwrap();
        assert_same_trees_on_any_number_of_threads(&x, &y, 20);
    }

    #[test]
    fn a_partition_keeps_each_side_in_order_on_any_number_of_threads() {
        let mut rng = SplitMix64::new(3);
        let column: Vec<u8> = (0..300_000).map(|_| rng.below(256) as u8).collect();
        let rows: Vec<u32> = (0..300_000u32).filter(|_| rng.below(3) > 0).collect();
        let bin = 100;
        let expected: Vec<u32> = rows
            .iter()
            .filter(|&&r| usize::from(column[r as usize]) <= bin)
            .chain(
                rows.iter()
                    .filter(|&&r| usize::from(column[r as usize]) > bin),
            )
            .copied()
            .collect();
        let first = expected
            .iter()
            .take_while(|&&r| usize::from(column[r as usize]) <= bin)
            .count();
        for threads in [1, 2, 3] {
            let pool = rayon_core::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut got = rows.clone();
            let mut spare = vec![0; got.len()];
            let left = pool.install(|| partition(&mut got, &mut spare, &column, bin));
            assert_eq!((left, &got), (first, &expected), "{threads} threads");
        }
    }

    #[test]
    fn bins_of_a_large_table_are_placed_by_a_fixed_sample_and_hold_every_row() {
        assert_eq!(Binned::sample(BIN_SAMPLE), None);
        let n = BIN_SAMPLE + 50_000;
        let sample = Binned::sample(n).unwrap();
        assert_eq!(
            sample,
            Binned::sample(n).unwrap(),
            "the same rows every time"
        );
        assert_eq!(sample.len(), BIN_SAMPLE);
        assert!(sample.windows(2).all(|w| w[0] < w[1]) && *sample.last().unwrap() < n as u32);
        // One feature of distinct values: the thresholds come from the
        // sample's quantiles, and every row, sampled or not, gets the bin
        // its value falls in.
        let x = Matrix::new(n, 1, (0..n).map(|i| ((i * 7919) % n) as f64).collect()).unwrap();
        let binned = Binned::new(&x, 255);
        let cuts = &binned.thresholds[0];
        assert_eq!(cuts.len(), 254);
        for (i, &bin) in binned.column(0).iter().enumerate() {
            let v = x.get(i, 0) as f32;
            assert_eq!(
                usize::from(bin),
                cuts.partition_point(|t| *t < v),
                "row {i}"
            );
        }
        // Quantiles of a uniform sample: about n / 255 rows per bin.
        let mut counts = [0usize; 255];
        binned
            .column(0)
            .iter()
            .for_each(|&b| counts[usize::from(b)] += 1);
        let per = n / 255;
        assert!(
            counts.iter().all(|&c| c > per / 2 && c < per * 2),
            "{counts:?}"
        );
    }

    #[test]
    fn boosted_regression_fits_a_step_and_early_stopping_keeps_the_best_round() {
        let n = 1000;
        let x: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| if *v < 0.3 { 1.0 } else { 5.0 }).collect();
        let x = Matrix::new(n, 1, x).unwrap();
        let (m, _) = fit_boosting(
            &x,
            EnsembleTarget::Values(&y),
            None,
            &BoostingParams {
                n_estimators: 500,
                early_stopping: true,
                ..BoostingParams::default()
            },
            &Cancel::new(),
        )
        .unwrap();
        assert!(m.trees.len() < 500, "stopped early: {}", m.trees.len());
        let Prediction::Values(v) = m.predict(&x).unwrap() else {
            panic!()
        };
        // 1,000 distinct values in 255 bins: the rows in the bin around the
        // step cannot be told apart; all others are fitted.
        for (i, (p, t)) in v.iter().zip(&y).enumerate() {
            if (i as f64 / n as f64 - 0.3).abs() > 0.01 {
                assert!((p - t).abs() < 0.05, "row {i}: {p} vs {t}");
            }
        }
    }

    #[test]
    fn early_stopping_watches_the_validation_rows_when_given() {
        let n = 1000;
        let x: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| if *v < 0.3 { 1.0 } else { 5.0 }).collect();
        let x = Matrix::new(n, 1, x).unwrap();
        let p = BoostingParams {
            n_estimators: 200,
            early_stopping: true,
            n_iter_no_change: 5,
            ..BoostingParams::default()
        };
        let fit = |vy: &[f64]| {
            let v = Validation {
                x: &x,
                target: EnsembleTarget::Values(vy),
            };
            fit_boosting(&x, EnsembleTarget::Values(&y), Some(v), &p, &Cancel::new())
                .unwrap()
                .0
        };
        // Rows like the training rows: the loss falls for many rounds.
        assert!(fit(&y).trees.len() > 20);
        // Rows whose targets are the opposite: every round makes their loss
        // worse, so the first round is the best and the rest are dropped.
        let opposite: Vec<f64> = y.iter().map(|v| 6.0 - v).collect();
        assert_eq!(fit(&opposite).trees.len(), 1);
    }

    #[test]
    fn a_multiclass_round_fits_every_class_to_the_same_scores() {
        // Three balanced classes; relabelling them in a cycle must give the
        // same round-one trees in the cycled order, which holds only if no
        // class's tree sees the scores another class's tree just changed.
        let n = 300;
        let x: Vec<f64> = (0..n).map(|i| ((i * 37) % n) as f64).collect();
        let y: Vec<usize> = x.iter().map(|v| (*v as usize * 3 / n) % 3).collect();
        let cycled: Vec<usize> = y.iter().map(|c| (c + 1) % 3).collect();
        let x = Matrix::new(n, 1, x).unwrap();
        let p = BoostingParams {
            n_estimators: 1,
            min_samples_leaf: 5,
            ..BoostingParams::default()
        };
        let fit = |y: &[usize]| {
            fit_boosting(&x, EnsembleTarget::Classes(y, 3), None, &p, &Cancel::new())
                .unwrap()
                .0
        };
        let (a, b) = (fit(&y), fit(&cycled));
        for c in 0..3 {
            assert_eq!(a.trees[c], b.trees[(c + 1) % 3], "class {c}");
        }
    }

    #[test]
    fn the_fast_exponential_is_libms_to_two_ulps() {
        let mut x = -708.0;
        while x < 709.0 {
            let (a, b) = (exp_fast(x), libm::exp(x));
            assert!((a - b).abs() <= 4.5e-16 * b, "e^{x}: {a} vs {b}");
            x += 0.0137;
        }
        for x in [0.0, -0.0, 1.0, -1.0, 1e-300, 0.5 * std::f64::consts::LN_2] {
            let (a, b) = (exp_fast(x), libm::exp(x));
            assert!((a - b).abs() <= 4.5e-16 * b, "e^{x}: {a} vs {b}");
        }
        // The same bits as the form with branches and an integer
        // conversion it replaced, so models trained before are unchanged.
        let mut x = -709.5;
        while x < 710.0 {
            assert_eq!(
                exp_fast(x).to_bits(),
                exp_with_branches(x).to_bits(),
                "e^{x}"
            );
            x += 0.00731;
        }
        for x in [-708.0, 709.0, -708.0000001, 709.0000001, 0.0, -0.0, 1e-300] {
            assert_eq!(
                exp_fast(x).to_bits(),
                exp_with_branches(x).to_bits(),
                "e^{x}"
            );
        }
        assert_eq!(exp_fast(710.0), f64::INFINITY);
        assert_eq!(exp_fast(-710.0), 0.0);
        assert!(exp_fast(f64::NAN).is_nan());
        assert_eq!(sigmoid_fast(0.0), 0.5);
        assert!((sigmoid_fast(-3.0) - crate::prediction::sigmoid(-3.0)).abs() < 1e-16);
    }

    /// `exp_fast` as it was written before it lost its branches.
    fn exp_with_branches(x: f64) -> f64 {
        const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
        const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
        const ROUND: f64 = 6_755_399_441_055_744.0;
        if x.is_nan() {
            return x;
        }
        if x > 709.0 {
            return f64::INFINITY;
        }
        if x < -708.0 {
            return 0.0;
        }
        let k = (x * std::f64::consts::LOG2_E + ROUND) - ROUND;
        let r = (x - k * LN2_HI) - k * LN2_LO;
        let mut p = 1.0 / 479_001_600.0;
        for d in FACTORIALS {
            p = p * r + 1.0 / d;
        }
        p * f64::from_bits(((k as i64 + 1023) as u64) << 52)
    }
}
