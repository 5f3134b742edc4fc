//! Algorithms and their training parameters, as a step passes them: a JSON
//! object of algorithm-specific fields.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::error::{MlError, Result};
pub use crate::forest::{BoostingParams, ForestParams};

impl Algorithm {
    /// The parameter names the algorithm accepts, aliases included.
    pub fn valid_params(self) -> &'static [&'static str] {
        match self {
            Algorithm::LinearRegression => LinearParams::NAMES,
            Algorithm::LogisticRegression => LogisticParams::NAMES,
            Algorithm::MlpClassifier | Algorithm::MlpRegressor => MlpParams::NAMES,
            Algorithm::GradientBoostingClassifier | Algorithm::GradientBoostingRegressor => {
                BoostingParams::NAMES
            }
            Algorithm::RandomForestClassifier | Algorithm::RandomForestRegressor => {
                ForestParams::NAMES
            }
        }
    }
}

impl FromStr for Algorithm {
    type Err = MlError;

    /// Parses `logistic_regression` (or `logistic-regression`).
    fn from_str(s: &str) -> Result<Algorithm> {
        let norm = s.trim().replace('-', "_");
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == norm)
            .ok_or_else(|| MlError::UnknownAlgorithm {
                name: s.to_owned(),
                valid: Algorithm::ALL.iter().map(|a| a.name()).collect(),
            })
    }
}

/// Parameters of [`Algorithm::LinearRegression`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearParams {
    /// L2 penalty strength on the coefficients (scikit-learn's `Ridge.alpha`:
    /// the objective is `‖y − Xw − b‖² + l2·‖w‖²`; the intercept is not
    /// penalised). Default 0: ordinary least squares.
    pub l2: f64,
    /// Whether to fit an intercept. Default true.
    pub fit_intercept: bool,
    /// Accepted for uniformity (a step may pass its seed to any algorithm);
    /// the closed-form solution does not use it.
    pub seed: u64,
}

impl LinearParams {
    const NAMES: &'static [&'static str] = &["l2", "fit_intercept", "seed"];
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            l2: 0.0,
            fit_intercept: true,
            seed: 0,
        }
    }
}

/// Parameters of [`Algorithm::LogisticRegression`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// Inverse L2 strength, scikit-learn's `C`: the objective is
    /// `C·Σᵢ logloss(i) + ½‖W‖²`, intercepts not penalised. Default 1.0.
    /// `C` is accepted as an alias.
    #[serde(alias = "C")]
    pub c: f64,
    /// Most solver iterations. Default 100.
    pub max_iter: usize,
    /// Stop when the largest absolute gradient component of the objective
    /// scaled by `1/(C·n)` (scikit-learn's scaling) is at most this.
    /// Default 1e-8.
    pub tol: f64,
    /// Whether to fit intercepts. Default true.
    pub fit_intercept: bool,
    /// Accepted for uniformity; the solver is deterministic without it.
    pub seed: u64,
}

impl LogisticParams {
    const NAMES: &'static [&'static str] = &["c", "C", "max_iter", "tol", "fit_intercept", "seed"];
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            c: 1.0,
            max_iter: 100,
            tol: 1e-8,
            fit_intercept: true,
            seed: 0,
        }
    }
}

/// Parameters of [`Algorithm::MlpClassifier`] and [`Algorithm::MlpRegressor`].
/// Defaults follow scikit-learn's `MLPClassifier`/`MLPRegressor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpParams {
    /// Units of each hidden (ReLU) layer, input side first. Default `[100]`.
    pub hidden_layers: Vec<usize>,
    /// Adam's step size. Default 0.001.
    pub learning_rate: f64,
    /// Most passes over the training data. Default 200.
    pub epochs: usize,
    /// Samples per mini-batch (the last batch of an epoch may be smaller;
    /// clipped to the number of samples). Default 200.
    pub batch_size: usize,
    /// L2 penalty on the weights (scikit-learn's `alpha`: each batch adds
    /// `l2/(2·batch)·‖W‖²`; biases are not penalised). Default 0.0001.
    pub l2: f64,
    /// Seed of the weight initialisation, the shuffling and the validation
    /// split. Default 0.
    pub seed: u64,
    /// Improvement below which an epoch counts as no improvement. Default 1e-4.
    pub tol: f64,
    /// Stop after this many epochs without improvement (of the training loss,
    /// or of the validation score with `early_stopping`). Default 10.
    pub n_iter_no_change: usize,
    /// Hold out `validation_fraction` of the training data, stop when its
    /// score (accuracy, or R² for regression) stops improving and keep the
    /// best weights. Default false.
    pub early_stopping: bool,
    /// Fraction held out for `early_stopping`. Default 0.1.
    pub validation_fraction: f64,
    /// Whether to reshuffle the samples every epoch. Default true.
    pub shuffle: bool,
}

impl MlpParams {
    const NAMES: &'static [&'static str] = &[
        "hidden_layers",
        "learning_rate",
        "epochs",
        "batch_size",
        "l2",
        "seed",
        "tol",
        "n_iter_no_change",
        "early_stopping",
        "validation_fraction",
        "shuffle",
    ];
}

impl Default for MlpParams {
    fn default() -> Self {
        MlpParams {
            hidden_layers: vec![100],
            learning_rate: 1e-3,
            epochs: 200,
            batch_size: 200,
            l2: 1e-4,
            seed: 0,
            tol: 1e-4,
            n_iter_no_change: 10,
            early_stopping: false,
            validation_fraction: 0.1,
            shuffle: true,
        }
    }
}

/// The algorithm to train and its parameters, defaults filled in.
///
/// Serialises as `{"algorithm": "...", "params": {...}}`, which is what a
/// model card records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", content = "params", rename_all = "snake_case")]
pub enum TrainParams {
    /// See [`Algorithm::LinearRegression`].
    LinearRegression(LinearParams),
    /// See [`Algorithm::LogisticRegression`].
    LogisticRegression(LogisticParams),
    /// See [`Algorithm::MlpClassifier`].
    MlpClassifier(MlpParams),
    /// See [`Algorithm::MlpRegressor`].
    MlpRegressor(MlpParams),
    /// See [`Algorithm::GradientBoostingClassifier`].
    GradientBoostingClassifier(BoostingParams),
    /// See [`Algorithm::GradientBoostingRegressor`].
    GradientBoostingRegressor(BoostingParams),
    /// See [`Algorithm::RandomForestClassifier`].
    RandomForestClassifier(ForestParams),
    /// See [`Algorithm::RandomForestRegressor`].
    RandomForestRegressor(ForestParams),
}

impl TrainParams {
    /// The algorithm with all parameters at their defaults.
    pub fn defaults(algorithm: Algorithm) -> TrainParams {
        match algorithm {
            Algorithm::LinearRegression => TrainParams::LinearRegression(LinearParams::default()),
            Algorithm::LogisticRegression => {
                TrainParams::LogisticRegression(LogisticParams::default())
            }
            Algorithm::MlpClassifier => TrainParams::MlpClassifier(MlpParams::default()),
            Algorithm::MlpRegressor => TrainParams::MlpRegressor(MlpParams::default()),
            Algorithm::GradientBoostingClassifier => {
                TrainParams::GradientBoostingClassifier(BoostingParams::default())
            }
            Algorithm::GradientBoostingRegressor => {
                TrainParams::GradientBoostingRegressor(BoostingParams::default())
            }
            Algorithm::RandomForestClassifier => {
                TrainParams::RandomForestClassifier(ForestParams::default())
            }
            Algorithm::RandomForestRegressor => {
                TrainParams::RandomForestRegressor(ForestParams::default())
            }
        }
    }

    /// About how many bytes training allocates for `rows` samples of
    /// `features` features with `outputs` scores (classes for a
    /// multinomial model, else 1), besides the data it is given: the
    /// feature matrix, targets, solver state and the exported model. What
    /// a host reserves against a memory limit before it starts, so that a
    /// request too big for the limit is refused rather than run.
    pub fn memory_estimate(&self, rows: usize, features: usize, outputs: usize) -> u64 {
        // In f64, so that absurd requests (a layer of 10^18 units) saturate
        // instead of overflowing.
        let (n, f, k) = (rows as f64, features as f64, outputs.max(1) as f64);
        // The f64 feature matrix and one target value per row.
        let data = n * f * 8.0 + n * 8.0;
        let solver = match self {
            // A centred copy of X and the normal equations.
            TrainParams::LinearRegression(_) => n * f * 8.0 + (f + 1.0) * (f + 1.0) * 16.0,
            // Per core: a chunk of X with its intercept column, its
            // weighted copy and the scores; the Hessian and its factor.
            TrainParams::LogisticRegression(_) => {
                let p = k * (f + 1.0);
                4.0 * 8192.0 * (f + 1.0 + k) * 16.0 + p * p * 32.0
            }
            TrainParams::MlpClassifier(m) | TrainParams::MlpRegressor(m) => {
                let mut sizes = vec![f];
                sizes.extend(m.hidden_layers.iter().map(|&h| h as f64));
                sizes.push(k);
                let params: f64 = sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
                let widest = sizes.iter().copied().fold(1.0, f64::max);
                let batch = (m.batch_size as f64).min(n).max(1.0);
                let val = if m.early_stopping {
                    (n * m.validation_fraction).ceil()
                } else {
                    0.0
                };
                // Weights, gradients, two Adam moments and the best model
                // so far; activations and deltas of one batch; the held-out
                // rows and their activations; the row order.
                6.0 * params * 8.0
                    + (batch * sizes.iter().sum::<f64>() + 2.0 * batch * widest) * 8.0
                    + val * (f + 2.0 * widest) * 8.0
                    + n * 8.0
            }
            // Binned features; per row its place in three row lists (the
            // round's, the tree's, the partition's scratch), its scores and
            // class probabilities, its gradient and hessian and their
            // gathered copy; the open nodes' histograms and one per core;
            // the trees.
            TrainParams::GradientBoostingClassifier(p)
            | TrainParams::GradientBoostingRegressor(p) => {
                let hist = f * (p.max_bins as f64) * 3.0 * 8.0;
                n * f
                    + n * (12.0 + 32.0 + 16.0 * k)
                    + hist * (p.max_leaves.min(1 << 16) as f64 + 3.0)
                    + p.n_estimators as f64 * k * p.max_leaves as f64 * 2.0 * 64.0
            }
            TrainParams::RandomForestClassifier(p) | TrainParams::RandomForestRegressor(p) => {
                let hist = f * (p.max_bins as f64) * (k + 2.0) * 8.0;
                let depth = p.max_depth.map_or(64.0, |d| d.min(64) as f64);
                // A fully grown tree has up to one leaf per row.
                let leaves = (n / p.min_samples_leaf.max(1) as f64).max(1.0);
                n * f
                    + n * (8.0 + 8.0 * (2.0 * k + 1.0))
                    + hist * 2.0 * depth
                    + p.n_estimators as f64 * leaves * 2.0 * (48.0 + 8.0 * k)
            }
        };
        // `as` saturates: infinity becomes u64::MAX.
        (data + solver) as u64
    }

    /// Parameters from a JSON object of the algorithm's fields, e.g.
    /// `{"c": 0.5, "max_iter": 50}`; absent fields take their defaults, an
    /// empty string or `null` means all defaults.
    ///
    /// A field the algorithm does not know is [`MlError::UnknownParam`]
    /// (naming it and listing the valid ones); a value of the wrong type or
    /// out of range is [`MlError::InvalidParam`].
    pub fn from_json(algorithm: Algorithm, json: &str) -> Result<TrainParams> {
        if json.trim().is_empty() {
            return Ok(TrainParams::defaults(algorithm));
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| MlError::ParamsJson(e.to_string()))?;
        TrainParams::from_value(algorithm, value)
    }

    /// Like [`TrainParams::from_json`], from a parsed JSON value.
    pub fn from_value(algorithm: Algorithm, value: Value) -> Result<TrainParams> {
        let map = match value {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            other => {
                return Err(MlError::ParamsJson(format!(
                    "got {}",
                    match other {
                        Value::Bool(_) => "a boolean",
                        Value::Number(_) => "a number",
                        Value::String(_) => "a string",
                        _ => "an array",
                    }
                )));
            }
        };
        let valid = algorithm.valid_params();
        if let Some(param) = map.keys().find(|k| !valid.contains(&k.as_str())) {
            return Err(MlError::UnknownParam {
                param: param.clone(),
                algorithm,
                valid: valid.to_vec(),
            });
        }
        let params = match algorithm {
            Algorithm::LinearRegression => TrainParams::LinearRegression(typed(&map)?),
            Algorithm::LogisticRegression => TrainParams::LogisticRegression(typed(&map)?),
            Algorithm::MlpClassifier => TrainParams::MlpClassifier(typed(&map)?),
            Algorithm::MlpRegressor => TrainParams::MlpRegressor(typed(&map)?),
            Algorithm::GradientBoostingClassifier => {
                TrainParams::GradientBoostingClassifier(typed(&map)?)
            }
            Algorithm::GradientBoostingRegressor => {
                TrainParams::GradientBoostingRegressor(typed(&map)?)
            }
            Algorithm::RandomForestClassifier => TrainParams::RandomForestClassifier(typed(&map)?),
            Algorithm::RandomForestRegressor => TrainParams::RandomForestRegressor(typed(&map)?),
        };
        params.validate()?;
        Ok(params)
    }

    /// The algorithm these parameters are for.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            TrainParams::LinearRegression(_) => Algorithm::LinearRegression,
            TrainParams::LogisticRegression(_) => Algorithm::LogisticRegression,
            TrainParams::MlpClassifier(_) => Algorithm::MlpClassifier,
            TrainParams::MlpRegressor(_) => Algorithm::MlpRegressor,
            TrainParams::GradientBoostingClassifier(_) => Algorithm::GradientBoostingClassifier,
            TrainParams::GradientBoostingRegressor(_) => Algorithm::GradientBoostingRegressor,
            TrainParams::RandomForestClassifier(_) => Algorithm::RandomForestClassifier,
            TrainParams::RandomForestRegressor(_) => Algorithm::RandomForestRegressor,
        }
    }

    /// The seed the training uses (0 for the deterministic solvers that
    /// ignore it).
    pub fn seed(&self) -> u64 {
        match self {
            TrainParams::LinearRegression(p) => p.seed,
            TrainParams::LogisticRegression(p) => p.seed,
            TrainParams::MlpClassifier(p) | TrainParams::MlpRegressor(p) => p.seed,
            TrainParams::GradientBoostingClassifier(p)
            | TrainParams::GradientBoostingRegressor(p) => p.seed,
            TrainParams::RandomForestClassifier(p) | TrainParams::RandomForestRegressor(p) => {
                p.seed
            }
        }
    }

    /// Checks every value's range; [`MlError::InvalidParam`] names the first
    /// bad one.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, param: &str, reason: &str) -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(MlError::InvalidParam {
                    param: param.to_owned(),
                    reason: reason.to_owned(),
                })
            }
        }
        match self {
            TrainParams::LinearRegression(p) => {
                check(p.l2.is_finite() && p.l2 >= 0.0, "l2", "must be ≥ 0")
            }
            TrainParams::LogisticRegression(p) => {
                check(p.c.is_finite() && p.c > 0.0, "c", "must be > 0")?;
                check(p.max_iter >= 1, "max_iter", "must be ≥ 1")?;
                check(p.tol.is_finite() && p.tol >= 0.0, "tol", "must be ≥ 0")
            }
            TrainParams::MlpClassifier(p) | TrainParams::MlpRegressor(p) => {
                check(
                    p.hidden_layers.iter().all(|&u| u >= 1),
                    "hidden_layers",
                    "every layer needs at least one unit",
                )?;
                check(
                    p.learning_rate.is_finite() && p.learning_rate > 0.0,
                    "learning_rate",
                    "must be > 0",
                )?;
                check(p.epochs >= 1, "epochs", "must be ≥ 1")?;
                check(p.batch_size >= 1, "batch_size", "must be ≥ 1")?;
                check(p.l2.is_finite() && p.l2 >= 0.0, "l2", "must be ≥ 0")?;
                check(p.tol.is_finite() && p.tol >= 0.0, "tol", "must be ≥ 0")?;
                check(p.n_iter_no_change >= 1, "n_iter_no_change", "must be ≥ 1")?;
                check(
                    p.validation_fraction > 0.0 && p.validation_fraction < 1.0,
                    "validation_fraction",
                    "must be in (0, 1)",
                )
            }
            TrainParams::GradientBoostingClassifier(p)
            | TrainParams::GradientBoostingRegressor(p) => {
                check(p.n_estimators >= 1, "n_estimators", "must be ≥ 1")?;
                check(
                    p.learning_rate.is_finite() && p.learning_rate > 0.0,
                    "learning_rate",
                    "must be > 0",
                )?;
                check(p.max_leaves >= 2, "max_leaves", "must be ≥ 2")?;
                check(p.max_depth != Some(0), "max_depth", "must be ≥ 1 (or null)")?;
                check(p.min_samples_leaf >= 1, "min_samples_leaf", "must be ≥ 1")?;
                check(p.l2.is_finite() && p.l2 >= 0.0, "l2", "must be ≥ 0")?;
                check((2..=256).contains(&p.max_bins), "max_bins", "must be 2–256")?;
                check(
                    p.subsample > 0.0 && p.subsample <= 1.0,
                    "subsample",
                    "must be in (0, 1]",
                )?;
                check(
                    p.colsample > 0.0 && p.colsample <= 1.0,
                    "colsample",
                    "must be in (0, 1]",
                )?;
                check(
                    p.validation_fraction > 0.0 && p.validation_fraction < 1.0,
                    "validation_fraction",
                    "must be in (0, 1)",
                )?;
                check(p.n_iter_no_change >= 1, "n_iter_no_change", "must be ≥ 1")?;
                check(p.tol.is_finite() && p.tol >= 0.0, "tol", "must be ≥ 0")
            }
            TrainParams::RandomForestClassifier(p) | TrainParams::RandomForestRegressor(p) => {
                check(p.n_estimators >= 1, "n_estimators", "must be ≥ 1")?;
                check(p.max_depth != Some(0), "max_depth", "must be ≥ 1 (or null)")?;
                check(p.min_samples_leaf >= 1, "min_samples_leaf", "must be ≥ 1")?;
                check(
                    p.max_features.is_none_or(|m| m > 0.0 && m <= 1.0),
                    "max_features",
                    "must be in (0, 1] (a fraction of the features) or null",
                )?;
                check((2..=256).contains(&p.max_bins), "max_bins", "must be 2–256")
            }
        }
    }
}

/// Deserialises `map` into `T`; on a type error, finds the field to blame by
/// deserialising each field alone, so that the error names it.
fn typed<T: serde::de::DeserializeOwned>(map: &Map<String, Value>) -> Result<T> {
    serde_json::from_value(Value::Object(map.clone())).map_err(|whole| {
        for (k, v) in map {
            let one = Map::from_iter([(k.clone(), v.clone())]);
            if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
                return MlError::InvalidParam {
                    param: k.clone(),
                    reason: e.to_string(),
                };
            }
        }
        MlError::ParamsJson(whole.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_estimates_grow_with_the_request_and_saturate() {
        let mlp = |hidden: &str| {
            TrainParams::from_json(
                Algorithm::MlpRegressor,
                &format!(r#"{{"hidden_layers": {hidden}}}"#),
            )
            .unwrap()
        };
        // Two layers of 6,000: 36M weights, six copies of f64 ≈ 1.7 GB.
        let huge = mlp("[6000, 6000]").memory_estimate(2000, 4, 1);
        assert!((1_700_000_000..1_800_000_000).contains(&huge), "{huge}");
        assert!(mlp("[10]").memory_estimate(2000, 4, 1) < 1 << 20);
        // Absurd sizes saturate rather than wrap.
        let absurd = mlp("[4000000000, 4000000000, 4000000000]").memory_estimate(10, 4, 1);
        assert!(absurd > 1 << 60, "{absurd}");
        // Logistic regression: about X plus the labels, whatever the rows.
        let lr = TrainParams::defaults(Algorithm::LogisticRegression);
        let est = lr.memory_estimate(14_000_000, 8, 1);
        let x = 14_000_000u64 * 9 * 8;
        assert!((x..x + (64 << 20)).contains(&est), "{est} for {x}");
    }

    #[test]
    fn defaults_and_overrides() {
        let p = TrainParams::from_json(Algorithm::LogisticRegression, r#"{"C": 0.5}"#).unwrap();
        let TrainParams::LogisticRegression(lp) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(lp.c, 0.5);
        assert_eq!(lp.max_iter, 100);
        assert_eq!(
            TrainParams::from_json(Algorithm::MlpClassifier, "").unwrap(),
            TrainParams::defaults(Algorithm::MlpClassifier)
        );
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.starts_with(r#"{"algorithm":"logistic_regression","params":{"c":0.5"#));
        assert_eq!(serde_json::from_str::<TrainParams>(&json).unwrap(), p);
    }

    #[test]
    fn unknown_param_names_it_and_lists_valid_ones() {
        let e = TrainParams::from_json(Algorithm::LogisticRegression, r#"{"hidden_layers": [3]}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown parameter `hidden_layers` for logistic_regression; valid parameters: \
             c, C, max_iter, tol, fit_intercept, seed"
        );
        assert!(matches!(e, MlError::UnknownParam { .. }));
    }

    #[test]
    fn bad_values_name_the_param() {
        let e = TrainParams::from_json(Algorithm::MlpClassifier, r#"{"epochs": "many", "l2": 0}"#)
            .unwrap_err();
        assert!(
            matches!(&e, MlError::InvalidParam { param, .. } if param == "epochs"),
            "{e}"
        );
        let e = TrainParams::from_json(Algorithm::LogisticRegression, r#"{"c": 0}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value for parameter `c`: must be > 0"
        );
        assert!(matches!(
            TrainParams::from_json(Algorithm::LinearRegression, "[1]"),
            Err(MlError::ParamsJson(_))
        ));
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(
            "mlp-classifier".parse::<Algorithm>().unwrap(),
            Algorithm::MlpClassifier
        );
        let e = "svm".parse::<Algorithm>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown algorithm `svm`; valid algorithms: linear_regression, \
             logistic_regression, mlp_classifier, mlp_regressor, gradient_boosting_classifier, \
             gradient_boosting_regressor, random_forest_classifier, random_forest_regressor"
        );
    }
}
