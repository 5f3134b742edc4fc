//! Linear models: ridge regression (closed form) and L2-penalised logistic
//! regression (Newton's method, or L-BFGS for large problems).

use serde::Serialize;

use crate::cancel::Cancel;
use crate::data::Matrix;
use crate::error::{MlError, Result};
use crate::kernels::{MatRef, backend};
use crate::params::{LinearParams, LogisticParams};
use crate::prediction::{Prediction, sigmoid, softmax_in_place};

/// How a linear model turns its scores into a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearKind {
    /// The score is the prediction (one output).
    Regression,
    /// Two classes, one score: P(class 1) = sigmoid(score), like
    /// scikit-learn's binary `LogisticRegression` (one row of coefficients).
    Binary,
    /// K ≥ 3 classes, one score each, softmax.
    Multinomial,
}

/// A fitted linear model: `scores = X · coefficientsᵀ + intercepts`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    /// How scores become predictions.
    pub kind: LinearKind,
    /// K × F, one row per score, laid out like scikit-learn's `coef_`
    /// (K = 1 for regression and binary classification).
    pub coefficients: Matrix,
    /// K intercepts, like scikit-learn's `intercept_`.
    pub intercepts: Vec<f64>,
}

impl LinearModel {
    /// The raw scores (n × K) for the rows of `x`.
    pub fn decision_function(&self, x: &Matrix) -> Result<Matrix> {
        if x.cols() != self.coefficients.cols() {
            return Err(MlError::InvalidData(format!(
                "the model takes {} features, got {}",
                self.coefficients.cols(),
                x.cols()
            )));
        }
        let k = self.coefficients.rows();
        let mut z = Matrix::zeros(x.rows(), k);
        backend().matmul(
            MatRef::new(x.as_slice(), x.rows(), x.cols()),
            MatRef::new(self.coefficients.as_slice(), k, x.cols()).t(),
            z.as_mut_slice(),
            false,
        );
        for row in z.as_mut_slice().chunks_exact_mut(k) {
            for (v, b) in row.iter_mut().zip(&self.intercepts) {
                *v += b;
            }
        }
        Ok(z)
    }

    /// Native predictions, in `f64`.
    pub(crate) fn predict(&self, x: &Matrix) -> Result<Prediction> {
        let z = self.decision_function(x)?;
        Ok(match self.kind {
            LinearKind::Regression => Prediction::Values(z.into_vec()),
            LinearKind::Binary => {
                let mut p = Vec::with_capacity(2 * z.rows());
                for &s in z.as_slice() {
                    let p1 = sigmoid(s);
                    p.extend([1.0 - p1, p1]);
                }
                Prediction::from_probabilities(Matrix::new(z.rows(), 2, p)?)
            }
            LinearKind::Multinomial => {
                let mut p = z;
                for row in p.as_mut_slice().chunks_exact_mut(self.intercepts.len()) {
                    softmax_in_place(row);
                }
                Prediction::from_probabilities(p)
            }
        })
    }
}

/// Ridge regression: minimises `‖y − Xw − b‖² + l2·‖w‖²` exactly, by
/// centring (so the intercept is not penalised) and a Cholesky solve of the
/// normal equations. The loss history has one entry: the mean squared error
/// of the fit plus `l2·‖w‖²/n`.
pub(crate) fn fit_ridge(
    x: &Matrix,
    y: &[f64],
    p: &LinearParams,
    feature_names: &[String],
) -> Result<(LinearModel, Vec<f64>)> {
    let (n, f) = (x.rows(), x.cols());
    let (mean_x, mean_y) = if p.fit_intercept {
        (column_means(x), y.iter().sum::<f64>() / n as f64)
    } else {
        (vec![0.0; f], 0.0)
    };
    let mut xc = x.clone();
    for row in xc.as_mut_slice().chunks_exact_mut(f) {
        for (v, m) in row.iter_mut().zip(&mean_x) {
            *v -= m;
        }
    }
    let yc: Vec<f64> = y.iter().map(|v| v - mean_y).collect();
    let xv = MatRef::new(xc.as_slice(), n, f);
    let mut gram = vec![0.0; f * f];
    backend().symmetric_matmul(xv.t(), xv, &mut gram);
    for j in 0..f {
        gram[j * f + j] += p.l2;
    }
    let mut w = vec![0.0; f];
    backend().matmul(xv.t(), MatRef::new(&yc, n, 1), &mut w, false);
    cholesky(&mut gram, f).map_err(|j| {
        MlError::Singular(format!(
            "feature `{}` is constant or a linear combination of the features before it; \
             set `l2` > 0 or drop it",
            feature_names.get(j).map_or("?", String::as_str)
        ))
    })?;
    cholesky_solve(&gram, f, &mut w);
    let intercept = mean_y - mean_x.iter().zip(&w).map(|(m, w)| m * w).sum::<f64>();
    let model = LinearModel {
        kind: LinearKind::Regression,
        coefficients: Matrix::new(1, f, w)?,
        intercepts: vec![intercept],
    };
    let pred = model.decision_function(x)?;
    let sse: f64 = pred
        .as_slice()
        .iter()
        .zip(y)
        .map(|(p, y)| (p - y) * (p - y))
        .sum();
    let penalty: f64 = model.coefficients.as_slice().iter().map(|w| w * w).sum();
    let loss = (sse + p.l2 * penalty) / n as f64;
    if !loss.is_finite() {
        return Err(MlError::Diverged(format!("the fit's loss is {loss}")));
    }
    Ok((model, vec![loss]))
}

fn column_means(x: &Matrix) -> Vec<f64> {
    let mut m = vec![0.0; x.cols()];
    for row in x.as_slice().chunks_exact(x.cols()) {
        for (a, v) in m.iter_mut().zip(row) {
            *a += v;
        }
    }
    for a in &mut m {
        *a /= x.rows() as f64;
    }
    m
}

/// In-place Cholesky factorisation `a = L·Lᵀ` of a symmetric positive
/// definite `d × d` matrix (lower triangle used and overwritten by L). Fails
/// with the index of the first pivot that is not clearly positive.
pub(crate) fn cholesky(a: &mut [f64], d: usize) -> std::result::Result<(), usize> {
    let scale = (0..d).map(|j| a[j * d + j].abs()).fold(0.0, f64::max);
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        // NaN fails too.
        if s.is_nan() || s <= 1e-12 * scale.max(f64::MIN_POSITIVE) {
            return Err(j);
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    Ok(())
}

/// Solves `L·Lᵀ·x = b` in place, with L from [`cholesky`].
pub(crate) fn cholesky_solve(l: &[f64], d: usize, b: &mut [f64]) {
    for i in 0..d {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * d + k] * b[k];
        }
        b[i] = s / l[i * d + i];
    }
    for i in (0..d).rev() {
        let mut s = b[i];
        for k in i + 1..d {
            s -= l[k * d + i] * b[k];
        }
        b[i] = s / l[i * d + i];
    }
}

/// The penalised logistic loss as a function of the flat parameter vector
/// `θ = [w₀ (F), b₀, w₁, b₁, …]` (no `b` without intercepts), scaled like
/// scikit-learn's: `(1/n)·Σᵢ loss(i) + (1/(2Cn))·‖W‖²`.
struct Logistic<'a> {
    x: &'a Matrix,
    y: &'a [usize],
    /// Scores per sample: 1 (binary, sigmoid) or K (softmax).
    k: usize,
    fit_intercept: bool,
    /// `1/(C·n)`.
    penalty: f64,
}

/// The objective at a point, and what else one pass over the rows was
/// asked for.
struct Eval {
    value: f64,
    /// The gradient (P values, P = k·d), when asked for.
    grad: Vec<f64>,
    /// The Hessian (P × P, row-major), when asked for.
    hess: Vec<f64>,
}

/// What a pass over the rows computes besides the objective.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    Value,
    Gradient,
    Hessian,
}

impl Logistic<'_> {
    fn n(&self) -> usize {
        self.x.rows()
    }

    fn f(&self) -> usize {
        self.x.cols()
    }

    /// Parameters per score: F, plus one for the intercept.
    fn d(&self) -> usize {
        self.f() + usize::from(self.fit_intercept)
    }

    fn split(&self, theta: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (f, d) = (self.f(), self.d());
        let mut w = Vec::with_capacity(self.k * f);
        let mut b = Vec::with_capacity(self.k);
        for c in theta.chunks_exact(d) {
            w.extend_from_slice(&c[..f]);
            b.push(if self.fit_intercept { c[f] } else { 0.0 });
        }
        (w, b)
    }

    /// The objective at `theta` and, as `want` says, its gradient and
    /// Hessian, in one pass over the rows. `theta` is k × d row-major (each
    /// score's weights, then its intercept), so with a column of ones
    /// appended to X (chunk by chunk, never the whole matrix) the scores are
    /// `X₁·θᵀ`, the gradient `Rᵀ·X₁` and each Hessian block `X₁ᵀ·D·X₁`.
    ///
    /// The rows go in fixed chunks on every core and the chunks' sums are
    /// added in chunk order, so the result does not depend on the number of
    /// threads; memory is a few chunks', whatever the number of rows.
    fn eval(&self, theta: &[f64], want: Want) -> Eval {
        let (n, f, d, k) = (self.n(), self.f(), self.d(), self.k);
        let p_total = k * d;
        let x = self.x.as_slice();
        let parts = chunked(n, |first, rows| {
            let xs = &x[first * f..(first + rows) * f];
            let with_ones;
            let x1: &[f64] = if self.fit_intercept {
                let mut m = Vec::with_capacity(rows * d);
                for row in xs.chunks_exact(f) {
                    m.extend_from_slice(row);
                    m.push(1.0);
                }
                with_ones = m;
                &with_ones
            } else {
                xs
            };
            // Scores, turned into probabilities in place.
            let mut probs = vec![0.0; rows * k];
            backend().matmul(
                MatRef::new(x1, rows, d),
                MatRef::new(theta, k, d).t(),
                &mut probs,
                false,
            );
            let mut loss = 0.0;
            let mut resid = if want >= Want::Gradient {
                vec![0.0; rows * k]
            } else {
                Vec::new()
            };
            for (i, z) in probs.chunks_exact_mut(k).enumerate() {
                let yi = self.y[first + i];
                if k == 1 {
                    let t = if yi == 1 { 1.0 } else { 0.0 };
                    // One exp for both the loss (softplus) and the sigmoid.
                    let zi = z[0];
                    let e = libm::exp(-zi.abs());
                    loss += zi.max(0.0) + libm::log1p(e) - t * zi;
                    z[0] = if zi >= 0.0 {
                        1.0 / (1.0 + e)
                    } else {
                        e / (1.0 + e)
                    };
                } else {
                    let zy = z[yi];
                    loss += softmax_in_place(z) - zy;
                }
                if let Some(r) = resid.get_mut(i * k..(i + 1) * k) {
                    r.copy_from_slice(z);
                    if k == 1 {
                        r[0] -= if yi == 1 { 1.0 } else { 0.0 };
                    } else {
                        r[yi] -= 1.0;
                    }
                }
            }
            let mut grad = Vec::new();
            if want >= Want::Gradient {
                grad = vec![0.0; p_total];
                backend().matmul(
                    MatRef::new(&resid, rows, k).t(),
                    MatRef::new(x1, rows, d),
                    &mut grad,
                    false,
                );
            }
            let mut hess = Vec::new();
            if want == Want::Hessian {
                hess = vec![0.0; p_total * p_total];
                let mut scaled = vec![0.0; rows * d];
                let mut block = vec![0.0; d * d];
                for a in 0..k {
                    for bb in a..k {
                        for (i, (src, dst)) in x1
                            .chunks_exact(d)
                            .zip(scaled.chunks_exact_mut(d))
                            .enumerate()
                        {
                            let pi = &probs[i * k..(i + 1) * k];
                            let wgt = if k == 1 {
                                pi[0] * (1.0 - pi[0])
                            } else if a == bb {
                                pi[a] * (1.0 - pi[a])
                            } else {
                                -pi[a] * pi[bb]
                            };
                            for (o, v) in dst.iter_mut().zip(src) {
                                *o = v * wgt;
                            }
                        }
                        backend().symmetric_matmul(
                            MatRef::new(x1, rows, d).t(),
                            MatRef::new(&scaled, rows, d),
                            &mut block,
                        );
                        for r in 0..d {
                            for c in 0..d {
                                let v = block[r * d + c];
                                hess[(a * d + r) * p_total + bb * d + c] = v;
                                hess[(bb * d + c) * p_total + a * d + r] = v;
                            }
                        }
                    }
                }
            }
            Eval {
                value: loss,
                grad,
                hess,
            }
        });
        let mut total = Eval {
            value: 0.0,
            grad: vec![0.0; if want >= Want::Gradient { p_total } else { 0 }],
            hess: vec![
                0.0;
                if want == Want::Hessian {
                    p_total * p_total
                } else {
                    0
                }
            ],
        };
        for part in parts {
            total.value += part.value;
            for (t, v) in total.grad.iter_mut().zip(&part.grad) {
                *t += v;
            }
            for (t, v) in total.hess.iter_mut().zip(&part.hess) {
                *t += v;
            }
        }
        let inv_n = 1.0 / n as f64;
        let (w, _) = self.split(theta);
        let sq: f64 = w.iter().map(|v| v * v).sum();
        total.value = total.value * inv_n + 0.5 * self.penalty * sq;
        for v in total.grad.iter_mut().chain(total.hess.iter_mut()) {
            *v *= inv_n;
        }
        for c in 0..k {
            for j in 0..f {
                if let Some(g) = total.grad.get_mut(c * d + j) {
                    *g += self.penalty * w[c * f + j];
                }
                if let Some(h) = total.hess.get_mut((c * d + j) * p_total + c * d + j) {
                    *h += self.penalty;
                }
            }
        }
        total
    }

    fn value(&self, theta: &[f64]) -> f64 {
        self.eval(theta, Want::Value).value
    }
}

/// Problems with at most this many parameters × (scores + 1) are solved by
/// Newton's method, larger ones by L-BFGS (whose iterations cost O(n·P)
/// rather than O(n·P·d)).
const NEWTON_LIMIT: usize = 1200;

/// L2-penalised logistic regression, scikit-learn's convention: minimises
/// `C·Σᵢ logloss(i) + ½‖W‖²` (intercepts not penalised), binary with one
/// sigmoid score when there are two classes, multinomial softmax otherwise.
/// Stops when the largest gradient component of the objective scaled by
/// `1/(C·n)` is at most `tol`, or after `max_iter` iterations. The loss
/// history holds that scaled objective at the start and after each
/// iteration.
pub(crate) fn fit_logistic(
    x: &Matrix,
    y: &[usize],
    n_classes: usize,
    p: &LogisticParams,
    cancel: &Cancel,
) -> Result<(LinearModel, Vec<f64>)> {
    let k = if n_classes == 2 { 1 } else { n_classes };
    let problem = Logistic {
        x,
        y,
        k,
        fit_intercept: p.fit_intercept,
        penalty: 1.0 / (p.c * x.rows() as f64),
    };
    let d = problem.d();
    let mut theta = vec![0.0; k * d];
    let history = if d * (k + 1) <= NEWTON_LIMIT {
        newton(&problem, &mut theta, p, cancel)?
    } else {
        lbfgs(&problem, &mut theta, p, cancel)?
    };
    let (w, mut b) = problem.split(&theta);
    if k > 1 {
        // Softmax is invariant to a common shift of the intercepts; report
        // the ones that sum to zero, as scikit-learn does.
        let mean = b.iter().sum::<f64>() / k as f64;
        for v in &mut b {
            *v -= mean;
        }
    }
    Ok((
        LinearModel {
            kind: if k == 1 {
                LinearKind::Binary
            } else {
                LinearKind::Multinomial
            },
            coefficients: Matrix::new(k, x.cols(), w)?,
            intercepts: b,
        },
        history,
    ))
}

/// Rows per chunk of [`chunked`]: fixed, so that sums over the chunks
/// round the same way on every machine. A chunk's scratch matrices (rows ×
/// (F + 1) values) stay under the allocator's mmap threshold for up to 15
/// features, so they are reused rather than mapped and faulted in anew.
const CHUNK_ROWS: usize = 1 << 13;

/// Runs `body(first_row, rows)` over `n` rows in fixed chunks of
/// [`CHUNK_ROWS`], on up to one thread per core, and returns the results in
/// chunk order.
fn chunked<T: Send>(n: usize, body: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let chunks = n.div_ceil(CHUNK_ROWS);
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(chunks)
        .max(1);
    let run = |i: usize| body(i * CHUNK_ROWS, CHUNK_ROWS.min(n - i * CHUNK_ROWS));
    if threads == 1 {
        return (0..chunks).map(run).collect();
    }
    // Thread t takes chunks t, t + threads, …; the results are put back in
    // chunk order.
    let run = &run;
    let mut lanes: Vec<std::vec::IntoIter<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || (t..chunks).step_by(threads).map(run).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("a chunk of rows does not panic")
                    .into_iter()
            })
            .collect()
    });
    (0..chunks)
        .map(|i| {
            lanes[i % threads]
                .next()
                .expect("each lane holds its chunks")
        })
        .collect()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check_finite(f: f64) -> Result<f64> {
    if f.is_finite() {
        Ok(f)
    } else {
        Err(MlError::Diverged(format!("the logistic loss is {f}")))
    }
}

/// Backtracking (Armijo) line search from `theta` along `dir`; on success
/// moves `theta` and returns the new objective value.
fn line_search(
    problem: &Logistic<'_>,
    theta: &mut [f64],
    f0: f64,
    slope: f64,
    dir: &[f64],
    mut step: f64,
) -> Option<f64> {
    let mut trial = vec![0.0; theta.len()];
    for _ in 0..60 {
        for ((t, th), d) in trial.iter_mut().zip(theta.iter()).zip(dir) {
            *t = th + step * d;
        }
        let f = problem.value(&trial);
        if f <= f0 + 1e-4 * step * slope {
            theta.copy_from_slice(&trial);
            return Some(f);
        }
        step *= 0.5;
    }
    None
}

fn newton(
    problem: &Logistic<'_>,
    theta: &mut [f64],
    p: &LogisticParams,
    cancel: &Cancel,
) -> Result<Vec<f64>> {
    let (f, d) = (problem.f(), problem.d());
    let p_total = theta.len();
    // One pass gives the objective, gradient and Hessian together: each
    // iteration reads the rows once when the full Newton step is taken
    // (the usual case), instead of once for the line search and twice more
    // for the derivatives.
    let mut at = problem.eval(theta, Want::Hessian);
    let mut history = vec![check_finite(at.value)?];
    for _ in 0..p.max_iter {
        if max_abs(&at.grad) <= p.tol {
            break;
        }
        cancel.check()?;
        let h = &at.hess;
        let max_diag = (0..p_total).map(|i| h[i * p_total + i]).fold(0.0, f64::max);
        // Softmax leaves a common shift of the intercepts free: a tiny ridge
        // there keeps the system definite without moving the optimum. If
        // the factorisation still fails (rounding), damp everything a bit
        // more each time; in the end fall back to the gradient.
        let gauge = if problem.k > 1 { 1e-10 * max_diag } else { 0.0 };
        let mut extra = 0.0;
        let mut dir: Vec<f64> = at.grad.iter().map(|g| -g).collect();
        for _ in 0..12 {
            let mut hd = h.clone();
            for i in 0..p_total {
                let intercept = problem.fit_intercept && i % d == f;
                hd[i * p_total + i] += extra + if intercept { gauge } else { 0.0 };
            }
            if cholesky(&mut hd, p_total).is_ok() {
                cholesky_solve(&hd, p_total, &mut dir);
                break;
            }
            extra = if extra == 0.0 {
                1e-10 * max_diag.max(f64::MIN_POSITIVE)
            } else {
                extra * 100.0
            };
        }
        let slope = dot(&at.grad, &dir);
        // The full step, evaluated with its derivatives; backtracking
        // (Armijo) when it does not decrease the objective enough.
        let mut trial: Vec<f64> = theta.iter().zip(&dir).map(|(t, s)| t + s).collect();
        let mut next = problem.eval(&trial, Want::Hessian);
        if next.value > at.value + 1e-4 * slope {
            if line_search(problem, theta, at.value, slope, &dir, 0.5).is_none() {
                break; // no decrease representable: as converged as it gets
            }
            trial.copy_from_slice(theta);
            next = problem.eval(&trial, Want::Hessian);
        }
        if problem.k > 1 && problem.fit_intercept {
            // A common shift of the intercepts changes nothing; keep them
            // centred. (The derivatives do not depend on it.)
            let mean = trial.iter().skip(f).step_by(d).sum::<f64>() / problem.k as f64;
            for b in trial.iter_mut().skip(f).step_by(d) {
                *b -= mean;
            }
        }
        theta.copy_from_slice(&trial);
        history.push(check_finite(next.value)?);
        at = next;
    }
    Ok(history)
}

fn lbfgs(
    problem: &Logistic<'_>,
    theta: &mut [f64],
    p: &LogisticParams,
    cancel: &Cancel,
) -> Result<Vec<f64>> {
    const M: usize = 10;
    let mut at = problem.eval(theta, Want::Gradient);
    let mut fx = check_finite(at.value)?;
    let mut grad = std::mem::take(&mut at.grad);
    let mut history = vec![fx];
    let mut pairs: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::new();
    for iter in 0..p.max_iter {
        if max_abs(&grad) <= p.tol {
            break;
        }
        cancel.check()?;
        // Two-loop recursion: dir = −H·grad.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, y, rho) in pairs.iter().rev() {
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push(a);
        }
        if let Some((s, y, _)) = pairs.back() {
            let gamma = dot(s, y) / dot(y, y);
            for qi in &mut q {
                *qi *= gamma;
            }
        }
        for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&grad, &dir);
        if slope >= 0.0 {
            pairs.clear();
            dir = grad.iter().map(|g| -g).collect();
            slope = dot(&grad, &dir);
        }
        let first = if iter == 0 {
            (1.0 / dot(&grad, &grad).sqrt()).min(1.0)
        } else {
            1.0
        };
        let old = theta.to_vec();
        let old_grad = grad.clone();
        if line_search(problem, theta, fx, slope, &dir, first).is_none() {
            break;
        }
        let next = problem.eval(theta, Want::Gradient);
        fx = check_finite(next.value)?;
        grad = next.grad;
        history.push(fx);
        let s: Vec<f64> = theta.iter().zip(&old).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = grad.iter().zip(&old_grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if pairs.len() == M {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_and_detects_singular() {
        // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0].
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        cholesky(&mut a, 2).unwrap();
        let mut b = vec![2.0, 1.0];
        cholesky_solve(&a, 2, &mut b);
        assert!((b[0] - 0.5).abs() < 1e-15 && b[1].abs() < 1e-15, "{b:?}");
        let mut s = vec![1.0, 2.0, 2.0, 4.0];
        assert_eq!(cholesky(&mut s, 2), Err(1));
    }

    #[test]
    fn ridge_recovers_an_exact_line() {
        let x = Matrix::from_rows(&[[0.0, 1.0], [1.0, 0.0], [2.0, 5.0], [3.0, 1.0]]).unwrap();
        let y: Vec<f64> = x
            .as_slice()
            .chunks(2)
            .map(|r| 3.0 * r[0] - 2.0 * r[1] + 0.5)
            .collect();
        let names = vec!["a".to_owned(), "b".to_owned()];
        let (m, loss) = fit_ridge(&x, &y, &LinearParams::default(), &names).unwrap();
        assert!((m.coefficients.get(0, 0) - 3.0).abs() < 1e-10);
        assert!((m.coefficients.get(0, 1) + 2.0).abs() < 1e-10);
        assert!((m.intercepts[0] - 0.5).abs() < 1e-10);
        assert!(loss[0] < 1e-18);
        // A duplicated column is singular without a penalty, fine with one.
        let dup = Matrix::from_rows(&[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]).unwrap();
        let e = fit_ridge(&dup, &[0.0, 1.0, 2.0], &LinearParams::default(), &names).unwrap_err();
        assert!(e.to_string().contains("feature `b`"), "{e}");
        let ridge = LinearParams {
            l2: 1.0,
            ..LinearParams::default()
        };
        let (m, _) = fit_ridge(&dup, &[0.0, 1.0, 2.0], &ridge, &names).unwrap();
        // Centred, the normal equations are [[3, 2], [2, 3]]·w = [2, 2].
        assert!((m.coefficients.get(0, 0) - 0.4).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn newton_and_lbfgs_agree() {
        let mut rng = crate::rng::SplitMix64::new(3);
        let (n, f, k) = (120, 4, 3);
        let data: Vec<f64> = (0..n * f).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let x = Matrix::new(n, f, data).unwrap();
        let y: Vec<usize> = (0..n)
            .map(|i| {
                let r = x.row(i);
                if r[0] + 0.3 * rng.uniform(-1.0, 1.0) > 0.5 {
                    2
                } else if r[1] > 0.0 {
                    1
                } else {
                    0
                }
            })
            .collect();
        let p = LogisticParams {
            tol: 1e-10,
            max_iter: 500,
            ..LogisticParams::default()
        };
        let problem = Logistic {
            x: &x,
            y: &y,
            k,
            fit_intercept: true,
            penalty: 1.0 / n as f64,
        };
        let mut a = vec![0.0; k * (f + 1)];
        let mut b = a.clone();
        let ha = newton(&problem, &mut a, &p, &Cancel::new()).unwrap();
        let hb = lbfgs(&problem, &mut b, &p, &Cancel::new()).unwrap();
        assert!(ha.windows(2).all(|w| w[1] <= w[0]), "{ha:?}");
        assert!(hb.windows(2).all(|w| w[1] <= w[0]));
        assert!(
            (ha.last().unwrap() - hb.last().unwrap()).abs() < 1e-12,
            "{ha:?} {hb:?}"
        );
        // Coefficients agree (intercepts up to a common shift).
        for c in 0..k {
            for j in 0..f {
                let (u, v) = (a[c * (f + 1) + j], b[c * (f + 1) + j]);
                assert!((u - v).abs() < 1e-6, "{u} vs {v}");
            }
        }
    }
}
