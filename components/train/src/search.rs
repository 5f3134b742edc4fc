//! The tuner's decision logic, free of host calls: the `search` param, the
//! candidates it expands to (grid or seeded random), and picking the best
//! trial.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Map, Number, Value as Json};
use sluice_sdk::ml::Direction;
use sluice_sdk::rng::SplitMix64;

/// At most this many candidates per search (grid combinations or random trials).
pub const MAX_CANDIDATES: usize = 1000;

/// Random search trials when the `search` param does not say.
pub const DEFAULT_TRIALS: usize = 10;

/// How candidates are drawn from the space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every combination of the listed values.
    Grid,
    /// `trials` seeded draws.
    Random,
}

impl Method {
    /// `grid` or `random`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Random => "random",
        }
    }
}

/// The `search` param.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Grid or random.
    pub method: Method,
    /// The eval metric that picks the best trial; the task's default if absent.
    #[serde(default)]
    pub metric: Option<String>,
    /// Random search: how many candidates to draw.
    #[serde(default)]
    pub trials: Option<usize>,
    /// Random search: the sampler's seed (0 if absent).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Trainer param name → a list of values, or (random search only) a
    /// range `{"min", "max", "log", "integer"}`.
    pub space: Map<String, Json>,
}

/// One searched dimension.
#[derive(Debug, Clone, PartialEq)]
pub enum Dimension {
    /// One of these values.
    Values(Vec<Json>),
    /// A number in `min ..= max`, uniform or (with `log`) log-uniform;
    /// `integer` draws whole numbers.
    Range {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Draw log-uniformly (min must be > 0).
        log: bool,
        /// Draw whole numbers.
        integer: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeSpec {
    min: f64,
    max: f64,
    #[serde(default)]
    log: bool,
    #[serde(default)]
    integer: bool,
}

impl Search {
    /// Reads the `search` param; any problem is described for the user.
    pub fn from_json(json: Json) -> Result<Self, String> {
        let search: Search = serde_json::from_value(json).map_err(|e| {
            format!(
                "parameter `search` is not a valid search ({e}); expected e.g. \
                 {{\"method\": \"grid\", \"metric\": \"accuracy\", \"space\": {{\"c\": [0.1, 1, 10]}}}} \
                 or {{\"method\": \"random\", \"trials\": 20, \"seed\": 7, \"space\": \
                 {{\"c\": {{\"min\": 0.01, \"max\": 100, \"log\": true}}}}}}"
            )
        })?;
        if search.space.is_empty() {
            return Err(
                "parameter `search`: `space` is empty; name at least one trainer \
                        param and the values to try"
                    .into(),
            );
        }
        match search.method {
            Method::Grid if search.trials.is_some() => {
                return Err("parameter `search`: `trials` is for random search; a grid \
                            search tries every combination (remove `trials` or use \
                            \"method\": \"random\")"
                    .into());
            }
            Method::Grid if search.seed.is_some() => {
                return Err(
                    "parameter `search`: `seed` is for random search; a grid search \
                            draws nothing (remove `seed`)"
                        .into(),
                );
            }
            Method::Random if search.trials == Some(0) => {
                return Err("parameter `search`: `trials` must be at least 1".into());
            }
            Method::Random if search.trials.is_some_and(|t| t > MAX_CANDIDATES) => {
                return Err(format!(
                    "parameter `search`: `trials` is {}, at most {MAX_CANDIDATES} are allowed",
                    search.trials.unwrap_or_default()
                ));
            }
            _ => {}
        }
        search.dimensions()?;
        Ok(search)
    }

    /// The space's dimensions, in the space's key order.
    pub fn dimensions(&self) -> Result<Vec<(String, Dimension)>, String> {
        self.space
            .iter()
            .map(|(name, spec)| Ok((name.clone(), dimension(name, spec, self.method)?)))
            .collect()
    }

    /// The trainer-param overrides of each candidate, in trial order: every
    /// grid combination (the last dimension varying fastest), or `trials`
    /// distinct seeded random draws (fewer if the space has fewer
    /// combinations).
    pub fn candidates(&self) -> Result<Vec<Map<String, Json>>, String> {
        let dims = self.dimensions()?;
        match self.method {
            Method::Grid => grid(&dims),
            Method::Random => Ok(random(
                &dims,
                self.trials.unwrap_or(DEFAULT_TRIALS),
                self.seed.unwrap_or(0),
            )),
        }
    }
}

fn dimension(name: &str, spec: &Json, method: Method) -> Result<Dimension, String> {
    match spec {
        Json::Array(values) if values.is_empty() => Err(format!(
            "parameter `search`: space `{name}` is an empty list; list at least one value"
        )),
        Json::Array(values) => Ok(Dimension::Values(values.clone())),
        Json::Object(_) if method == Method::Grid => Err(format!(
            "parameter `search`: space `{name}` is a range, but a grid search needs a list \
             of values (use \"method\": \"random\" to sample ranges)"
        )),
        Json::Object(_) => {
            let r: RangeSpec = serde_json::from_value(spec.clone()).map_err(|e| {
                format!(
                    "parameter `search`: space `{name}` is not a range ({e}); expected \
                     {{\"min\": 0.01, \"max\": 10, \"log\": true}} (`log` and `integer` optional)"
                )
            })?;
            let (mut min, mut max) = (r.min, r.max);
            if r.integer {
                (min, max) = (min.ceil(), max.floor());
            }
            if !(min.is_finite() && max.is_finite()) || min > max {
                return Err(format!(
                    "parameter `search`: space `{name}` needs finite `min` <= `max`{}, found \
                     min {} and max {}",
                    if r.integer {
                        " with a whole number between"
                    } else {
                        ""
                    },
                    r.min,
                    r.max
                ));
            }
            if r.log && min <= 0.0 {
                return Err(format!(
                    "parameter `search`: space `{name}` is log-scaled, so `min` must be \
                     greater than 0, found {}",
                    r.min
                ));
            }
            Ok(Dimension::Range {
                min,
                max,
                log: r.log,
                integer: r.integer,
            })
        }
        other => Err(format!(
            "parameter `search`: space `{name}` must be a list of values{}, found {other}",
            if method == Method::Random {
                " or a range {\"min\", \"max\", \"log\"}"
            } else {
                ""
            }
        )),
    }
}

fn grid(dims: &[(String, Dimension)]) -> Result<Vec<Map<String, Json>>, String> {
    let mut total: usize = 1;
    for (_, d) in dims {
        let Dimension::Values(v) = d else {
            unreachable!("grid dimensions are lists (checked in `dimension`)")
        };
        total = total.saturating_mul(v.len());
    }
    if total > MAX_CANDIDATES {
        return Err(format!(
            "parameter `search`: the grid has {total} combinations, at most {MAX_CANDIDATES} are \
             allowed; list fewer values or use random search"
        ));
    }
    let mut out = vec![Map::new()];
    for (name, d) in dims {
        let Dimension::Values(values) = d else {
            unreachable!()
        };
        out = out
            .into_iter()
            .flat_map(|partial| {
                values.iter().map(move |v| {
                    let mut c = partial.clone();
                    c.insert(name.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    Ok(out)
}

fn random(dims: &[(String, Dimension)], trials: usize, seed: u64) -> Vec<Map<String, Json>> {
    let mut rng = SplitMix64::new(seed);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    // Draws that repeat an earlier candidate are skipped; give up after
    // enough of them (a small discrete space has fewer combinations).
    let mut attempts = trials.saturating_mul(20);
    while out.len() < trials && attempts > 0 {
        attempts -= 1;
        let candidate: Map<String, Json> = dims
            .iter()
            .map(|(name, d)| (name.clone(), draw(d, &mut rng)))
            .collect();
        if seen.insert(Json::Object(candidate.clone()).to_string()) {
            out.push(candidate);
        }
    }
    out
}

fn draw(dim: &Dimension, rng: &mut SplitMix64) -> Json {
    match dim {
        Dimension::Values(values) => {
            values[(rng.next_u64() % values.len() as u64) as usize].clone()
        }
        &Dimension::Range {
            min,
            max,
            log,
            integer,
        } => {
            if integer {
                let (lo, hi) = (min as i64, max as i64);
                let span = (hi - lo) as u64 + 1;
                let v = if log {
                    // Log-uniform over the real range, rounded into it.
                    let x = (min.ln() + rng.next_f64() * ((max + 1.0).ln() - min.ln())).exp();
                    (x.floor() as i64).clamp(lo, hi)
                } else {
                    lo + (rng.next_u64() % span) as i64
                };
                Json::from(v)
            } else {
                let u = rng.next_f64();
                let x = if log {
                    (min.ln() + u * (max.ln() - min.ln())).exp()
                } else {
                    min + u * (max - min)
                };
                Number::from_f64(x.clamp(min, max)).map_or(Json::Null, Json::Number)
            }
        }
    }
}

/// `base` with `overrides` on top.
pub fn merge(base: &Map<String, Json>, overrides: &Map<String, Json>) -> Map<String, Json> {
    let mut out = base.clone();
    for (k, v) in overrides {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// `c=0.1, l2=0` — a candidate for logs and progress.
pub fn describe(candidate: &Map<String, Json>) -> String {
    if candidate.is_empty() {
        return "default params".into();
    }
    candidate
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the best value (`None` entries are failed trials); the
/// first of equal values wins.
pub fn best(values: &[Option<f64>], direction: Direction) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = *v else { continue };
        if best.is_none_or(|(_, b)| direction.is_better(v, b)) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn search(j: Json) -> Search {
        Search::from_json(j).unwrap()
    }

    fn err(j: Json) -> String {
        Search::from_json(j).unwrap_err()
    }

    #[test]
    fn grid_expands_every_combination_in_order() {
        let s =
            search(json!({"method": "grid", "space": {"c": [0.1, 1, 10], "tol": [1e-4, 1e-3]}}));
        let c = s.candidates().unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(Json::Object(c[0].clone()), json!({"c": 0.1, "tol": 1e-4}));
        assert_eq!(Json::Object(c[1].clone()), json!({"c": 0.1, "tol": 1e-3}));
        assert_eq!(Json::Object(c[5].clone()), json!({"c": 10, "tol": 1e-3}));
        // Values may be anything a trainer param takes, e.g. layer lists.
        let s = search(json!({"method": "grid", "space": {"hidden_layers": [[8], [16, 8]]}}));
        assert_eq!(s.candidates().unwrap()[1]["hidden_layers"], json!([16, 8]));
    }

    #[test]
    fn grid_is_bounded() {
        let many: Vec<i64> = (0..40).collect();
        let s = search(json!({"method": "grid", "space": {"a": many, "b": many}}));
        let e = s.candidates().unwrap_err();
        assert!(e.contains("1600 combinations"), "{e}");
    }

    #[test]
    fn random_is_seeded_and_in_range() {
        let spec = json!({"method": "random", "trials": 25, "seed": 42, "space": {
            "c": {"min": 0.01, "max": 100, "log": true},
            "learning_rate": {"min": 0.001, "max": 0.1},
            "epochs": {"min": 10, "max": 50, "integer": true},
            "hidden_layers": [[8], [16], [32, 16]],
        }});
        let a = search(spec.clone()).candidates().unwrap();
        let b = search(spec.clone()).candidates().unwrap();
        assert_eq!(a, b, "same seed, same candidates");
        assert_eq!(a.len(), 25);
        for c in &a {
            let x = c["c"].as_f64().unwrap();
            assert!((0.01..=100.0).contains(&x), "{x}");
            let lr = c["learning_rate"].as_f64().unwrap();
            assert!((0.001..=0.1).contains(&lr), "{lr}");
            let e = c["epochs"].as_i64().expect("integer");
            assert!((10..=50).contains(&e), "{e}");
            assert!([json!([8]), json!([16]), json!([32, 16])].contains(&c["hidden_layers"]));
        }
        // Log-uniform: about half the draws below the geometric middle (1).
        let below = a.iter().filter(|c| c["c"].as_f64().unwrap() < 1.0).count();
        assert!((5..=20).contains(&below), "{below}");
        let mut other = spec;
        other["seed"] = json!(43);
        assert_ne!(
            search(other).candidates().unwrap(),
            a,
            "another seed draws others"
        );
    }

    #[test]
    fn random_draws_distinct_candidates() {
        let s = search(json!({"method": "random", "trials": 10, "space": {"c": [1, 2, 3]}}));
        let c = s.candidates().unwrap();
        assert_eq!(c.len(), 3, "only 3 distinct candidates exist");
        let s = search(json!({"method": "random", "space": {"c": {"min": 0, "max": 1}}}));
        assert_eq!(s.candidates().unwrap().len(), DEFAULT_TRIALS);
        assert_eq!(s.seed, None);
    }

    #[test]
    fn integer_log_range_stays_in_bounds() {
        let s = search(json!({"method": "random", "trials": 50, "seed": 1,
            "space": {"batch_size": {"min": 8, "max": 256, "log": true, "integer": true}}}));
        for c in s.candidates().unwrap() {
            let v = c["batch_size"].as_i64().unwrap();
            assert!((8..=256).contains(&v), "{v}");
        }
    }

    #[test]
    fn bad_searches_say_what_is_wrong() {
        assert!(err(json!({"method": "bayes", "space": {"c": [1]}})).contains("bayes"));
        assert!(err(json!({"method": "grid", "space": {}})).contains("empty"));
        assert!(err(json!({"method": "grid", "space": {"c": []}})).contains("empty list"));
        assert!(
            err(json!({"method": "grid", "space": {"c": {"min": 1, "max": 2}}}))
                .contains("needs a list")
        );
        assert!(
            err(json!({"method": "grid", "trials": 3, "space": {"c": [1]}}))
                .contains("`trials` is for random")
        );
        assert!(
            err(json!({"method": "random", "trials": 0, "space": {"c": [1]}}))
                .contains("at least 1")
        );
        assert!(
            err(json!({"method": "random", "space": {"c": {"min": 2, "max": 1}}}))
                .contains("min` <= `max")
        );
        assert!(
            err(json!({"method": "random", "space": {"c": {"min": 0, "max": 1, "log": true}}}))
                .contains("greater than 0")
        );
        assert!(
            err(json!({"method": "random", "space": {"c": {"min": 0, "mx": 1}}}))
                .contains("not a range")
        );
        assert!(err(json!({"method": "random", "space": {"c": 3}})).contains("must be a list"));
        assert!(err(json!({"method": "grid", "spaces": {"c": [1]}})).contains("spaces"));
        assert!(err(json!({"method": "random", "space": {"e": {"min": 1.2, "max": 1.8, "integer": true}}}))
            .contains("whole number"));
    }

    #[test]
    fn merge_and_describe() {
        let base = json!({"c": 1.0, "seed": 7}).as_object().unwrap().clone();
        let over = json!({"c": 10}).as_object().unwrap().clone();
        assert_eq!(
            Json::Object(merge(&base, &over)),
            json!({"c": 10, "seed": 7})
        );
        assert_eq!(describe(&over), "c=10");
        assert_eq!(describe(&Map::new()), "default params");
    }

    #[test]
    fn best_follows_the_metric_direction() {
        let v = [Some(0.9), None, Some(0.95), Some(0.95), Some(0.7)];
        assert_eq!(
            best(&v, Direction::Maximize),
            Some(2),
            "first of equals wins"
        );
        assert_eq!(best(&v, Direction::Minimize), Some(4));
        assert_eq!(best(&[None, None], Direction::Maximize), None);
        assert_eq!(best(&[], Direction::Minimize), None);
    }
}
