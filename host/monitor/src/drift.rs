//! Distances between a reference (training) distribution and a served one.
//!
//! Numeric columns are binned on the reference's deciles (so each bin holds
//! about a tenth of the training rows, and PSI reads the way it is usually
//! quoted), plus one bin below and one above the training range; categorical
//! columns compare category frequencies. The scores:
//!
//! - **Jensen–Shannon divergence** (base 2, 0 = same, 1 = disjoint): the
//!   drift score of numeric columns, as in TFDV.
//! - **L-infinity distance** (largest difference of a category's share): the
//!   drift score of categorical columns, as in TFDV.
//! - **Population stability index** (Σ (s − r) ln(s / r), shares floored at
//!   1e-4): reported for both; < 0.1 stable, 0.1–0.25 moderate, > 0.25 large.

use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
use serde::Serialize;
use std::collections::BTreeMap;

/// Smallest share PSI uses, so an empty bin does not make it infinite.
const PSI_FLOOR: f64 = 1e-4;

/// Jensen–Shannon divergence of two distributions (shares summing to 1),
/// base 2: between 0 and 1.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter()
            .zip(m)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| x * (x / y).log2())
            .sum()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| (a + b) / 2.0).collect();
    (0.5 * kl(p, &m) + 0.5 * kl(q, &m)).clamp(0.0, 1.0)
}

/// The largest difference between the shares of one bin or category.
pub fn l_infinity(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// Population stability index of `served` against `reference`.
pub fn psi(reference: &[f64], served: &[f64]) -> f64 {
    reference
        .iter()
        .zip(served)
        .map(|(r, s)| {
            let (r, s) = (r.max(PSI_FLOOR), s.max(PSI_FLOOR));
            (s - r) * (s / r).ln()
        })
        .sum()
}

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

/// The drift thresholds.
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
            numeric: 0.1,
            categorical: 0.1,
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
    let (kind, bins, r, s, out) = match (reference, served) {
        (Values::Numeric(a), Values::Numeric(b)) => {
            let edges = decile_edges(a);
            let (r, _) = numeric_shares(a, &edges);
            let (s, out) = numeric_shares(b, &edges);
            ("numeric", numeric_labels(&edges), r, s, out)
        }
        _ => {
            let a = as_text(reference);
            let b = as_text(served);
            let (bins, r, s, out) = categorical_shares(&a, &b);
            ("categorical", bins, r, s, out)
        }
    };
    let js = jensen_shannon(&r, &s);
    let linf = l_infinity(&r, &s);
    let (score, threshold) = if kind == "numeric" {
        (js, thresholds.numeric)
    } else {
        (linf, thresholds.categorical)
    };
    ColumnDrift {
        name: name.to_string(),
        kind,
        jensen_shannon: js,
        l_infinity: linf,
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

/// The distinct deciles of the reference's present values.
fn decile_edges(values: &[Option<f64>]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return Vec::new();
    }
    v.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (0..=10).map(|k| v[((v.len() - 1) * k) / 10]).collect();
    edges.dedup();
    edges
}

/// Shares of present values per bin: below the first edge, between
/// consecutive edges (upper edge included), above the last; and the share
/// outside the reference's range.
fn numeric_shares(values: &[Option<f64>], edges: &[f64]) -> (Vec<f64>, f64) {
    let bins = edges.len() + 1;
    let mut counts = vec![0usize; bins];
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    for &x in &present {
        let i = if edges.is_empty() || x < edges[0] {
            0
        } else {
            // The first edge is the minimum: values equal to it join the
            // first interior bin.
            edges
                .iter()
                .skip(1)
                .position(|&e| x <= e)
                .map_or(bins - 1, |p| p + 1)
        };
        counts[i] += 1;
    }
    let n = present.len().max(1) as f64;
    let out = (counts[0] + counts[bins - 1]) as f64 / n;
    (counts.iter().map(|&c| c as f64 / n).collect(), out)
}

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
/// frequency), and the share of served values the reference never had.
fn categorical_shares(
    reference: &[Option<String>],
    served: &[Option<String>],
) -> (Vec<String>, Vec<f64>, Vec<f64>, f64) {
    let count = |v: &[Option<String>]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for x in v.iter().flatten() {
            *m.entry(x.clone()).or_default() += 1;
        }
        m
    };
    let (a, b) = (count(reference), count(served));
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
    (bins, r, s, out_count as f64 / nb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn scores_match_hand_computed_values() {
        // M = (0.75, 0.25); KL(p‖M) = 0.5·log2(2/3) + 0.5·log2(2) = 0.2075187…;
        // KL(q‖M) = log2(4/3) = 0.4150375…; JS = their mean.
        let (p, q) = ([0.5, 0.5], [1.0, 0.0]);
        assert!(close(jensen_shannon(&p, &q), 0.311_278_124_459_132_8));
        assert!(close(jensen_shannon(&p, &p), 0.0));
        assert!(close(jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]), 1.0));
        assert!(close(l_infinity(&p, &q), 0.5));
        // (0.5 − 1e-4)·ln(0.5/1e-4) + (1 − 0.5)·ln(1/0.5)
        let expected = (0.5 - 1e-4) * (0.5f64 / 1e-4).ln() + 0.5 * 2f64.ln();
        assert!(close(psi(&q, &p), expected));
        // 0.4·ln(0.4/0.2) − 0.2·ln(0.6/0.8) … over three bins:
        let r = [0.2, 0.3, 0.5];
        let s = [0.4, 0.3, 0.3];
        let expected = 0.2 * 2f64.ln() + 0.0 + (-0.2) * (0.3f64 / 0.5).ln();
        assert!(close(psi(&r, &s), expected));
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
