//! Multi-layer perceptrons: dense ReLU layers, softmax + cross-entropy or
//! linear + squared error, trained by Adam on seeded mini-batches. Follows
//! scikit-learn's `MLPClassifier`/`MLPRegressor` (initialisation, loss
//! scaling, Adam, stopping rule), except that a binary classifier has two
//! softmax outputs rather than one sigmoid.

use serde::Serialize;

use crate::cancel::Cancel;
use crate::data::{Matrix, Validation};
use crate::error::{MlError, Result};
use crate::kernels::{MatRef, backend};
use crate::params::MlpParams;
use crate::prediction::{Prediction, argmax, softmax_in_place};
use crate::rng::SplitMix64;

/// One dense layer: `out = in · weights + bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Inputs × outputs (scikit-learn's `coefs_[i]` layout).
    pub weights: Matrix,
    /// One bias per output.
    pub bias: Vec<f64>,
}

/// What the last layer's outputs become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MlpOutput {
    /// Class probabilities (one output per class, two for binary problems).
    Softmax,
    /// The value itself (regression, one output).
    Identity,
}

/// A trained perceptron: ReLU after every layer but the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// Input side first.
    pub layers: Vec<Dense>,
    /// The last layer's activation.
    pub output: MlpOutput,
}

impl Mlp {
    /// The outputs (n × outputs) for the rows of `x`: probabilities or values.
    pub fn forward(&self, x: &Matrix) -> Result<Matrix> {
        let inputs = self.layers[0].weights.rows();
        if x.cols() != inputs {
            return Err(MlError::InvalidData(format!(
                "the model takes {inputs} features, got {}",
                x.cols()
            )));
        }
        let mut a = x.as_slice().to_vec();
        for (l, layer) in self.layers.iter().enumerate() {
            let last = l + 1 == self.layers.len();
            a = dense_forward(&a, x.rows(), layer, !last);
        }
        let outs = self.layers.last().expect("a layer").bias.len();
        if self.output == MlpOutput::Softmax {
            for row in a.chunks_exact_mut(outs) {
                softmax_in_place(row);
            }
        }
        Matrix::new(x.rows(), outs, a)
    }

    /// Native predictions, in `f64`.
    pub(crate) fn predict(&self, x: &Matrix) -> Result<Prediction> {
        let out = self.forward(x)?;
        Ok(match self.output {
            MlpOutput::Softmax => Prediction::from_probabilities(out),
            MlpOutput::Identity => Prediction::Values(out.into_vec()),
        })
    }
}

/// `relu?(a · W + b)` for `rows` rows of `a`.
fn dense_forward(a: &[f64], rows: usize, layer: &Dense, relu: bool) -> Vec<f64> {
    let (fan_in, fan_out) = (layer.weights.rows(), layer.weights.cols());
    let mut z = vec![0.0; rows * fan_out];
    dense_forward_into(a, rows, fan_in, fan_out, layer, relu, &mut z);
    z
}

fn dense_forward_into(
    a: &[f64],
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    layer: &Dense,
    relu: bool,
    z: &mut [f64],
) {
    backend().matmul(
        MatRef::new(&a[..rows * fan_in], rows, fan_in),
        MatRef::new(layer.weights.as_slice(), fan_in, fan_out),
        z,
        false,
    );
    for row in z.chunks_exact_mut(fan_out) {
        for (v, b) in row.iter_mut().zip(&layer.bias) {
            *v += b;
            if relu && *v < 0.0 {
                *v = 0.0;
            }
        }
    }
}

/// What the perceptron learns.
#[derive(Clone, Copy)]
pub(crate) enum MlpTarget<'a> {
    /// Class indices and the number of classes.
    Classes(&'a [usize], usize),
    /// Real values.
    Values(&'a [f64]),
}

impl MlpTarget<'_> {
    fn outputs(&self) -> usize {
        match self {
            MlpTarget::Classes(_, k) => *k,
            MlpTarget::Values(_) => 1,
        }
    }
}

/// Adam's moment estimates for one parameter array.
struct Moments {
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Moments {
    fn new(len: usize) -> Self {
        Moments {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    fn step(&mut self, params: &mut [f64], grad: &[f64], lr_t: f64) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        const EPS: f64 = 1e-8;
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p -= lr_t * *m / (v.sqrt() + EPS);
        }
    }
}

/// Trains a perceptron; returns it and the training loss of every epoch
/// (mean over samples of the per-batch loss, L2 term included, as
/// scikit-learn's `loss_curve_`).
pub(crate) fn fit_mlp(
    x: &Matrix,
    target: MlpTarget<'_>,
    validation: Option<Validation<'_, MlpTarget<'_>>>,
    p: &MlpParams,
    cancel: &Cancel,
) -> Result<(Mlp, Vec<f64>)> {
    let mut rng = SplitMix64::new(p.seed);
    let f = x.cols();
    let outputs = target.outputs();
    let mut sizes = vec![f];
    sizes.extend(&p.hidden_layers);
    sizes.push(outputs);

    // Glorot-uniform initialisation, weights then biases, layer by layer.
    let mut layers = Vec::with_capacity(sizes.len() - 1);
    for w in sizes.windows(2) {
        let bound = (6.0 / (w[0] + w[1]) as f64).sqrt();
        let weights: Vec<f64> = (0..w[0] * w[1])
            .map(|_| rng.uniform(-bound, bound))
            .collect();
        let bias = (0..w[1]).map(|_| rng.uniform(-bound, bound)).collect();
        layers.push(Dense {
            weights: Matrix::new(w[0], w[1], weights)?,
            bias,
        });
    }
    let output = match target {
        MlpTarget::Classes(..) => MlpOutput::Softmax,
        MlpTarget::Values(_) => MlpOutput::Identity,
    };
    let mut model = Mlp { layers, output };

    // With early stopping, the score watched is that of the validation rows
    // when given, else of `validation_fraction` of the rows held out.
    let validation = validation.filter(|v| p.early_stopping && v.x.rows() > 0);
    let (train, val) = match &validation {
        Some(v) => ((0..x.rows()).collect(), (0..v.x.rows()).collect()),
        None if p.early_stopping => {
            validation_split(x.rows(), &target, p.validation_fraction, &mut rng)?
        }
        None => ((0..x.rows()).collect(), Vec::new()),
    };
    let (val_x, val_target) = match &validation {
        Some(v) => (v.x.clone(), v.target),
        None => (x.select_rows(&val), target),
    };

    let n = train.len();
    let batch = p.batch_size.min(n);
    let n_layers = model.layers.len();
    // acts[0]: the batch's inputs; acts[l + 1]: layer l's outputs.
    let mut acts: Vec<Vec<f64>> = sizes.iter().map(|&s| vec![0.0; batch * s]).collect();
    let mut delta = vec![0.0; batch * sizes.iter().max().copied().unwrap_or(1)];
    let mut delta_prev = delta.clone();
    let mut grad_w: Vec<Vec<f64>> = model
        .layers
        .iter()
        .map(|l| vec![0.0; l.weights.as_slice().len()])
        .collect();
    let mut grad_b: Vec<Vec<f64>> = model
        .layers
        .iter()
        .map(|l| vec![0.0; l.bias.len()])
        .collect();
    let mut mom_w: Vec<Moments> = grad_w.iter().map(|g| Moments::new(g.len())).collect();
    let mut mom_b: Vec<Moments> = grad_b.iter().map(|g| Moments::new(g.len())).collect();
    let (mut beta1_t, mut beta2_t) = (1.0f64, 1.0f64);

    let mut order = train.clone();
    let mut history = Vec::with_capacity(p.epochs);
    let mut best_loss = f64::INFINITY;
    let mut best_score = f64::NEG_INFINITY;
    let mut best_model = None;
    let mut no_improvement = 0usize;

    for epoch in 0..p.epochs {
        if p.shuffle {
            rng.shuffle(&mut order);
        }
        let mut epoch_loss = 0.0;
        for idx in order.chunks(batch) {
            cancel.check()?;
            let b = idx.len();
            // Gather the batch.
            for (dst, &i) in acts[0].chunks_exact_mut(f).zip(idx) {
                dst.copy_from_slice(x.row(i));
            }
            // Forward.
            for l in 0..n_layers {
                let (lo, hi) = acts.split_at_mut(l + 1);
                let relu = l + 1 < n_layers;
                dense_forward_into(
                    &lo[l],
                    b,
                    sizes[l],
                    sizes[l + 1],
                    &model.layers[l],
                    relu,
                    &mut hi[0][..b * sizes[l + 1]],
                );
            }
            // Loss and the output layer's delta, both per batch mean.
            let out = &mut acts[n_layers][..b * outputs];
            let inv_b = 1.0 / b as f64;
            let mut loss = 0.0;
            let d = &mut delta[..b * outputs];
            match &target {
                MlpTarget::Classes(y, _) => {
                    for ((row, dr), &i) in out
                        .chunks_exact_mut(outputs)
                        .zip(d.chunks_exact_mut(outputs))
                        .zip(idx)
                    {
                        let zy = row[y[i]];
                        loss += softmax_in_place(row) - zy;
                        for (dv, pv) in dr.iter_mut().zip(row.iter()) {
                            *dv = pv * inv_b;
                        }
                        dr[y[i]] -= inv_b;
                    }
                }
                MlpTarget::Values(y) => {
                    for ((o, dv), &i) in out.iter().zip(d.iter_mut()).zip(idx) {
                        let r = o - y[i];
                        loss += 0.5 * r * r;
                        *dv = r * inv_b;
                    }
                }
            }
            let penalty: f64 = model
                .layers
                .iter()
                .map(|l| l.weights.as_slice().iter().map(|w| w * w).sum::<f64>())
                .sum();
            let batch_loss = loss * inv_b + 0.5 * p.l2 * penalty * inv_b;
            epoch_loss += batch_loss * b as f64;

            // Backward.
            for l in (0..n_layers).rev() {
                let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
                let a_in = MatRef::new(&acts[l][..b * fan_in], b, fan_in);
                let dl = MatRef::new(&delta[..b * fan_out], b, fan_out);
                backend().matmul(a_in.t(), dl, &mut grad_w[l], false);
                let layer = &model.layers[l];
                for (g, w) in grad_w[l].iter_mut().zip(layer.weights.as_slice()) {
                    *g += p.l2 * inv_b * w;
                }
                let gb = &mut grad_b[l];
                gb.fill(0.0);
                for row in delta[..b * fan_out].chunks_exact(fan_out) {
                    for (g, v) in gb.iter_mut().zip(row) {
                        *g += v;
                    }
                }
                if l > 0 {
                    let w = MatRef::new(layer.weights.as_slice(), fan_in, fan_out);
                    let dp = &mut delta_prev[..b * fan_in];
                    backend().matmul(dl, w.t(), dp, false);
                    for (dv, av) in dp.iter_mut().zip(&acts[l][..b * fan_in]) {
                        if *av <= 0.0 {
                            *dv = 0.0;
                        }
                    }
                    std::mem::swap(&mut delta, &mut delta_prev);
                }
            }
            // Adam, with scikit-learn's bias-corrected step size.
            beta1_t *= 0.9;
            beta2_t *= 0.999;
            let lr_t = p.learning_rate * (1.0 - beta2_t).sqrt() / (1.0 - beta1_t);
            for l in 0..n_layers {
                let layer = &mut model.layers[l];
                mom_w[l].step(layer.weights.as_mut_slice(), &grad_w[l], lr_t);
                mom_b[l].step(&mut layer.bias, &grad_b[l], lr_t);
            }
        }
        let epoch_loss = epoch_loss / n as f64;
        if !epoch_loss.is_finite() {
            return Err(MlError::Diverged(format!(
                "the loss of epoch {} is {epoch_loss}; lower `learning_rate` or scale the features",
                epoch + 1
            )));
        }
        history.push(epoch_loss);

        if p.early_stopping {
            let score = validation_score(&model, &val_x, &val, &val_target)?;
            if score < best_score + p.tol {
                no_improvement += 1;
            } else {
                no_improvement = 0;
            }
            if score > best_score {
                best_score = score;
                best_model = Some(model.clone());
            }
        } else {
            if epoch_loss > best_loss - p.tol {
                no_improvement += 1;
            } else {
                no_improvement = 0;
            }
            best_loss = best_loss.min(epoch_loss);
        }
        if no_improvement > p.n_iter_no_change {
            break;
        }
    }
    Ok((best_model.unwrap_or(model), history))
}

/// Holds out `fraction` of the samples (stratified by class for
/// classifiers), seeded; returns (train, validation) indices.
fn validation_split(
    n: usize,
    target: &MlpTarget<'_>,
    fraction: f64,
    rng: &mut SplitMix64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let groups: Vec<Vec<usize>> = match target {
        MlpTarget::Classes(y, k) => (0..*k)
            .map(|c| (0..n).filter(|&i| y[i] == c).collect())
            .collect(),
        MlpTarget::Values(_) => vec![(0..n).collect()],
    };
    let mut val = Vec::new();
    for mut g in groups {
        rng.shuffle(&mut g);
        let take = ((g.len() as f64 * fraction).round() as usize).min(g.len().saturating_sub(1));
        val.extend_from_slice(&g[..take]);
    }
    val.sort_unstable();
    let train: Vec<usize> = (0..n).filter(|i| val.binary_search(i).is_err()).collect();
    if val.is_empty() || train.is_empty() {
        return Err(MlError::InvalidData(format!(
            "{n} samples are too few for early_stopping with validation_fraction {fraction}"
        )));
    }
    Ok((train, val))
}

/// Accuracy (classifier) or R² (regressor) on the validation rows.
fn validation_score(
    model: &Mlp,
    x: &Matrix,
    rows: &[usize],
    target: &MlpTarget<'_>,
) -> Result<f64> {
    let out = model.forward(x)?;
    Ok(match target {
        MlpTarget::Classes(y, k) => {
            let hits = out
                .as_slice()
                .chunks_exact(*k)
                .zip(rows)
                .filter(|(p, i)| argmax(p) == y[**i])
                .count();
            hits as f64 / rows.len() as f64
        }
        MlpTarget::Values(y) => {
            let truth: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
            crate::metrics::r2(&truth, out.as_slice())?
        }
    })
}
