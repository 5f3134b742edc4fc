//! Distances between a reference (training) distribution and a served one,
//! per column, for the monitor's report. The maths and the binning are
//! `sluice-drift`'s — the same crate `std:validate` uses — so `sluice
//! monitor` and a validation step give the same score for the same data.
//!
//! Numeric columns are summarised the way `std:statistics` summarises them
//! ([`sluice_drift::quantile_histogram`]) and compared on the reference's
//! deciles plus one cell below and one above the training range (see
//! `sluice-drift` for why); categorical columns compare category shares. The scores:
//!
//! - **Jensen–Shannon divergence** (base 2, 0 = same, 1 = disjoint): the
//!   drift score of numeric columns, as in TFDV.
//! - **L-infinity distance** (largest difference of a category's share): the
//!   drift score of categorical columns, as in TFDV.
//! - **Population stability index** (Σ (s − r) ln(s / r), shares floored at
//!   1e-4): reported for both; < 0.1 stable, 0.1–0.25 moderate, > 0.25 large.
//!
//! The default thresholds are [`sluice_drift::DEFAULT_NUMERIC_THRESHOLD`]
//! and [`sluice_drift::DEFAULT_CATEGORICAL_THRESHOLD`].

use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use serde::Serialize;
use sluice_drift::CategoryCounts;
use std::collections::BTreeMap;

pub use sluice_drift::{
    DEFAULT_CATEGORICAL_THRESHOLD, DEFAULT_NUMERIC_THRESHOLD, SUMMARY_BINS, jensen_shannon,
    l_infinity, psi,
};

/// A column's values: numbers (missing as `None`) or text.
#[derive(Debug, Clone)]
pub enum Values {
    /// Numeric (or boolean, as 0/1) values.
    Numeric(Vec<Option<f64>>),
    /// Categorical values.
    Categorical(Vec<Option<String>>),
}

impl Values {
    /// The values of an Arrow column, or `None` for types without a
    /// distribution here.
    pub fn of(array: &dyn Array) -> Option<Values> {
        let n = array.len();
        let any = array.as_any();
        let get = |i: usize, f: &dyn Fn(usize) -> f64| (!array.is_null(i)).then(|| f(i));
        Some(if let Some(a) = any.downcast_ref::<Float64Array>() {
            Values::Numeric(
                (0..n)
                    .map(|i| get(i, &|i| a.value(i)).filter(|v| v.is_finite()))
                    .collect(),
            )
        } else if let Some(a) = any.downcast_ref::<Int64Array>() {
            Values::Numeric((0..n).map(|i| get(i, &|i| a.value(i) as f64)).collect())
        } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
            Values::Categorical(
                (0..n)
                    .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                    .collect(),
            )
        } else if let Some(a) = any.downcast_ref::<StringArray>() {
            Values::Categorical(
                (0..n)
                    .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                    .collect(),
            )
        } else {
            return None;
        })
    }

    /// The values of an Arrow column read as categories, whatever their
    /// type: what a classifier's predicted labels are. Read as numbers,
    /// the labels `0` and `1` would be binned, and a move from 17 % to
    /// 100 % positive predictions could land in one bin and score 0.
    pub fn categorical(array: &dyn Array) -> Option<Values> {
        let n = array.len();
        let any = array.as_any();
        let text = |f: &dyn Fn(usize) -> String| -> Vec<Option<String>> {
            (0..n).map(|i| (!array.is_null(i)).then(|| f(i))).collect()
        };
        Some(Values::Categorical(
            if let Some(a) = any.downcast_ref::<Float64Array>() {
                text(&|i| a.value(i).to_string())
            } else if let Some(a) = any.downcast_ref::<Int64Array>() {
                text(&|i| a.value(i).to_string())
            } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                text(&|i| a.value(i).to_string())
            } else if let Some(a) = any.downcast_ref::<StringArray>() {
                text(&|i| a.value(i).to_string())
            } else {
                return None;
            },
        ))
    }

    fn len(&self) -> usize {
        match self {
            Values::Numeric(v) => v.len(),
            Values::Categorical(v) => v.len(),
        }
    }

    fn missing(&self) -> usize {
        match self {
            Values::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
            Values::Categorical(v) => v.iter().filter(|x| x.is_none()).count(),
        }
    }
}

/// How a column's served values compare with its reference values.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnDrift {
    /// The column.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// Jensen–Shannon divergence of the binned distributions.
    pub jensen_shannon: f64,
    /// L-infinity distance of the binned (or category) shares.
    pub l_infinity: f64,
    /// Population stability index.
    pub psi: f64,
    /// The score compared with the threshold: Jensen–Shannon for numeric
    /// columns, L-infinity for categorical ones.
    pub score: f64,
    /// Whether `score` is over the threshold.
    pub drifted: bool,
    /// Share of missing values in the reference.
    pub missing_reference: f64,
    /// Share of missing values served.
    pub missing_served: f64,
    /// Share of served values outside the reference's domain (numbers
    /// outside its range, categories it never had).
    pub out_of_domain: f64,
    /// The bins (or categories), for charts.
    pub bins: Vec<String>,
    /// Reference share per bin.
    pub reference: Vec<f64>,
    /// Served share per bin.
    pub served: Vec<f64>,
}

/// The drift thresholds; the default is `sluice-drift`'s, the same as
/// `std:schema`'s.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Thresholds {
    /// Jensen–Shannon divergence above which a numeric column drifted.
    pub numeric: f64,
    /// L-infinity distance above which a categorical column drifted.
    pub categorical: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            numeric: DEFAULT_NUMERIC_THRESHOLD,
            categorical: DEFAULT_CATEGORICAL_THRESHOLD,
        }
    }
}

/// Compares `served` with `reference` (both of the same column).
pub fn compare(
    name: &str,
    reference: &Values,
    served: &Values,
    thresholds: &Thresholds,
) -> ColumnDrift {
    let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    let missing_reference = share(reference.missing(), reference.len());
    let missing_served = share(served.missing(), served.len());
    let (kind, bins, r, s, out, score, threshold) = match (reference, served) {
        (Values::Numeric(a), Values::Numeric(b)) => match numeric(a, b) {
            Some((edges, d, out)) => (
                "numeric",
                numeric_labels(&edges),
                d.reference,
                d.served,
                out,
                d.jensen_shannon,
                thresholds.numeric,
            ),
            // A side without values: nothing to compare.
            None => (
                "numeric",
                Vec::new(),
                Vec::new(),
                Vec::new(),
                0.0,
                0.0,
                thresholds.numeric,
            ),
        },
        _ => {
            let a = as_text(reference);
            let b = as_text(served);
            let (bins, r, s, out, linf) = categorical(&a, &b);
            ("categorical", bins, r, s, out, linf, thresholds.categorical)
        }
    };
    ColumnDrift {
        name: name.to_string(),
        kind,
        jensen_shannon: jensen_shannon(&r, &s),
        l_infinity: l_infinity(&r, &s),
        psi: psi(&r, &s),
        score,
        drifted: score > threshold,
        missing_reference,
        missing_served,
        out_of_domain: out,
        bins,
        reference: r,
        served: s,
    }
}

fn as_text(v: &Values) -> Vec<Option<String>> {
    match v {
        Values::Categorical(c) => c.clone(),
        Values::Numeric(n) => n.iter().map(|x| x.map(|x| x.to_string())).collect(),
    }
}

/// Both sides summarised as `std:statistics` does and compared on the
/// reference's deciles (`sluice_drift::numeric_drift`): the cells' edges,
/// the drift, and the exact share of served values outside the reference's
/// range. `None` when either side has no value.
fn numeric(
    reference: &[Option<f64>],
    served: &[Option<f64>],
) -> Option<(Vec<f64>, sluice_drift::NumericDrift, f64)> {
    let present = |v: &[Option<f64>]| -> Vec<f64> { v.iter().flatten().copied().collect() };
    let (a, b) = (present(reference), present(served));
    let r = sluice_drift::quantile_histogram(&a, SUMMARY_BINS)?;
    let s = sluice_drift::quantile_histogram(&b, SUMMARY_BINS)?;
    let d = sluice_drift::numeric_drift(&r, &s)?;
    let (lo, hi) = (r.edges[0], r.edges[r.edges.len() - 1]);
    let edges = d.cells.clone();
    let finite = b.iter().filter(|x| x.is_finite()).count().max(1);
    let outside = b
        .iter()
        .filter(|x| x.is_finite() && (**x < lo || **x > hi))
        .count();
    Some((edges, d, outside as f64 / finite as f64))
}

/// Labels of the cells of `edges`: below, each bin, above.
fn numeric_labels(edges: &[f64]) -> Vec<String> {
    let mut labels = Vec::with_capacity(edges.len() + 1);
    labels.push(match edges.first() {
        Some(e) => format!("< {}", short(*e)),
        None => "all".into(),
    });
    for w in edges.windows(2) {
        labels.push(format!("{}–{}", short(w[0]), short(w[1])));
    }
    if let Some(e) = edges.last() {
        labels.push(format!("> {}", short(*e)));
    }
    labels
}

fn short(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) {
        format!("{x:.2e}")
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Category shares over the union of categories (reference's first, by
/// frequency), the share of served values the reference never had, and the
/// L-infinity distance (`sluice-drift`'s, as `std:validate` computes it).
fn categorical(
    reference: &[Option<String>],
    served: &[Option<String>],
) -> (Vec<String>, Vec<f64>, Vec<f64>, f64, f64) {
    let count = |v: &[Option<String>]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for x in v.iter().flatten() {
            *m.entry(x.clone()).or_default() += 1;
        }
        m
    };
    let (a, b) = (count(reference), count(served));
    fn counts(m: &BTreeMap<String, usize>) -> CategoryCounts<'_> {
        CategoryCounts {
            counts: m.iter().map(|(k, &n)| (k.as_str(), n as u64)).collect(),
            total: m.values().sum::<usize>() as u64,
            complete: true,
        }
    }
    let linf = sluice_drift::categorical_l_infinity(&counts(&a), &counts(&b));
    let mut bins: Vec<String> = a.keys().cloned().collect();
    bins.sort_by_key(|k| std::cmp::Reverse(a[k]));
    let mut unseen: Vec<String> = b.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
    unseen.sort_by_key(|k| std::cmp::Reverse(b[k]));
    let out_count: usize = unseen.iter().map(|k| b[k]).sum();
    bins.extend(unseen);
    let na = a.values().sum::<usize>().max(1) as f64;
    let nb = b.values().sum::<usize>().max(1) as f64;
    let r = bins
        .iter()
        .map(|k| *a.get(k).unwrap_or(&0) as f64 / na)
        .collect();
    let s = bins
        .iter()
        .map(|k| *b.get(k).unwrap_or(&0) as f64 / nb)
        .collect();
    (bins, r, s, out_count as f64 / nb, linf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// A deterministic, roughly normal sample (sum of uniforms).
    fn sample(n: usize, mean: f64, seed: u64) -> Vec<Option<f64>> {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| Some(mean + (0..12).map(|_| next()).sum::<f64>() - 6.0))
            .collect()
    }

    #[test]
    fn predicted_labels_are_compared_as_categories_whatever_their_type() {
        // A binary classifier's 0/1 predictions: 17 % positive in training,
        // 100 % served.
        let reference: Vec<i64> = (0..600).map(|i| i64::from(i % 6 == 0)).collect();
        let served = vec![1i64; 300];
        let (r, s) = (
            Int64Array::from(reference.clone()),
            Int64Array::from(served.clone()),
        );
        let t = Thresholds::default();
        let d = compare(
            "prediction",
            &Values::categorical(&r).unwrap(),
            &Values::categorical(&s).unwrap(),
            &t,
        );
        assert_eq!(d.kind, "categorical");
        // Shares of `1`: 1/6 → 1, so the L-infinity distance is 5/6.
        assert!(close(d.score, 5.0 / 6.0), "{}", d.score);
        assert!(d.drifted);
        // The same labels as floats and booleans read the same way.
        let as_floats = |v: &[i64]| Float64Array::from_iter_values(v.iter().map(|&x| x as f64));
        let f = compare(
            "prediction",
            &Values::categorical(&as_floats(&reference)).unwrap(),
            &Values::categorical(&as_floats(&served)).unwrap(),
            &t,
        );
        assert!(close(f.score, 5.0 / 6.0) && f.drifted, "{}", f.score);
    }

    #[test]
    fn numeric_scores_are_sluice_drifts_on_the_summaries() {
        // The monitor summarises rows exactly as std:statistics does and
        // compares the summaries with sluice-drift, as std:validate does.
        let (a, b) = (sample(500, 0.0, 1), sample(300, 1.5, 2));
        let t = Thresholds::default();
        let d = compare(
            "x",
            &Values::Numeric(a.clone()),
            &Values::Numeric(b.clone()),
            &t,
        );
        let flat = |v: &[Option<f64>]| v.iter().flatten().copied().collect::<Vec<f64>>();
        let r = sluice_drift::quantile_histogram(&flat(&a), SUMMARY_BINS).unwrap();
        let s = sluice_drift::quantile_histogram(&flat(&b), SUMMARY_BINS).unwrap();
        let expected = sluice_drift::numeric_drift(&r, &s).unwrap();
        assert_eq!(d.score, expected.jensen_shannon);
        assert_eq!(d.jensen_shannon, expected.jensen_shannon);
        assert_eq!(d.psi, expected.psi);
        assert_eq!(
            (d.reference, d.served),
            (expected.reference, expected.served)
        );
        assert_eq!(d.bins.len(), sluice_drift::DRIFT_CELLS + 2);
        assert!(d.drifted, "{}", d.score);
        // A side without values: nothing measured, nothing flagged.
        let none = compare("x", &Values::Numeric(a), &Values::Numeric(vec![None]), &t);
        assert!(!none.drifted && none.score == 0.0 && none.bins.is_empty());
    }

    #[test]
    fn a_shifted_sample_is_flagged_and_an_unshifted_one_is_not() {
        let t = Thresholds::default();
        let reference = Values::Numeric(sample(5000, 0.0, 1));
        let same = compare("x", &reference, &Values::Numeric(sample(1000, 0.0, 2)), &t);
        assert!(!same.drifted, "JS {}", same.jensen_shannon);
        assert!(same.psi < 0.1, "PSI {}", same.psi);
        assert!(same.out_of_domain < 0.01);
        let shifted = compare("x", &reference, &Values::Numeric(sample(1000, 1.5, 3)), &t);
        assert!(shifted.drifted, "JS {}", shifted.jensen_shannon);
        assert!(shifted.psi > 0.25, "PSI {}", shifted.psi);
        assert_eq!(shifted.bins.len(), shifted.reference.len());
        assert!(
            (shifted.reference.iter().sum::<f64>() - 1.0).abs() < 1e-9,
            "shares sum to 1"
        );
    }

    #[test]
    fn categories_compare_by_share_and_unseen_ones_are_out_of_domain() {
        let t = Thresholds::default();
        let cat = |v: &[&str]| Values::Categorical(v.iter().map(|s| Some(s.to_string())).collect());
        let reference = cat(&["a", "a", "a", "b"]);
        let d = compare("c", &reference, &cat(&["a", "b", "c", "c"]), &t);
        assert_eq!(d.bins, vec!["a", "b", "c"]);
        assert_eq!(d.reference, vec![0.75, 0.25, 0.0]);
        assert_eq!(d.served, vec![0.25, 0.25, 0.5]);
        assert!(close(d.l_infinity, 0.5));
        assert!(close(d.out_of_domain, 0.5));
        assert!(d.drifted);
        let same = compare("c", &reference, &cat(&["b", "a", "a", "a"]), &t);
        assert!(!same.drifted && close(same.score, 0.0));
        let missing = compare(
            "c",
            &reference,
            &Values::Categorical(vec![None, Some("a".into())]),
            &t,
        );
        assert!(close(missing.missing_served, 0.5));
    }
}
