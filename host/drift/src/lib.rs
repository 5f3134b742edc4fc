//! Drift between a reference (training) distribution and a served one, in
//! one place: `sluice monitor` (`sluice-monitor`, on the host, from raw rows)
//! and `std:validate` (a guest step, from the statistics documents that
//! `std:statistics` writes) both call this crate, so the same data gives the
//! same score on both paths.
//!
//! # The binning
//!
//! A numeric column is summarised by a [`Histogram`] of [`SUMMARY_BINS`]
//! equal-mass bins: its edges are the column's 40-quantiles
//! ([`quantile_histogram`]). Drift is measured on **the reference's deciles
//! (every fourth edge of its summary) plus one cell below and one above its
//! range** ([`reference_cells`], [`shares`]). The reference's values fall
//! into those cells exactly; the served summary's counts are spread onto
//! them assuming values spread uniformly inside each of its (narrow) bins,
//! a zero-width bin being a point mass. Both sides of a comparison are
//! summaries, never raw rows: that is what lets `std:validate`, which only
//! sees two statistics documents, compute exactly what the monitor computes
//! from rows. The served summary is four times finer than the cells so that
//! spreading it costs little: on `examples/drift` the scores stay within
//! about 0.02 of binning the served rows exactly.
//!
//! Why this design and not `std:validate`'s former one (ten equal-width bins
//! from min to max on each side, re-binned onto the union of both sides'
//! edges):
//!
//! - Equal-width bins are at the mercy of outliers: one extreme value
//!   stretches the range and pushes nearly all the mass into one or two bins,
//!   so a shift of the bulk goes unseen, and tails are over-weighted. Decile
//!   cells hold a tenth of the reference each whatever the scale or the
//!   tails. (On `examples/drift`, the unshifted column `area_error` scored
//!   0.109 with the former binning — over the default threshold — against
//!   0.027 on deciles.)
//! - With a union grid the number and placement of bins depend on the served
//!   data too, so the same shift scores differently from batch to batch.
//!   Reference cells are fixed by the training data alone.
//! - The under/over cells make mass outside the training range explicit, and
//!   PSI is conventionally quoted on reference deciles, so its usual reading
//!   (< 0.1 stable, 0.1–0.25 moderate, > 0.25 large) holds.
//!
//! # The scores
//!
//! - [`jensen_shannon`] divergence (base 2: 0 = same, 1 = disjoint) of the
//!   binned shares: the drift score of numeric columns, as in TFDV; a column
//!   drifts when it is above [`DEFAULT_NUMERIC_THRESHOLD`] (or the threshold
//!   configured).
//! - [`categorical_l_infinity`] (the largest difference of one category's
//!   share): the drift score of categorical columns, as in TFDV; threshold
//!   [`DEFAULT_CATEGORICAL_THRESHOLD`].
//! - [`psi`], the population stability index: reported alongside.
//!
//! The crate is `no_std` with `alloc` and its only dependency is `libm`, so
//! that it builds into the host and into `wasm32-wasip2` steps alike, and
//! logarithms give the same bits on both.

#![no_std]

extern crate alloc;

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

/// The Jensen–Shannon divergence above which a numeric column has drifted,
/// unless configured otherwise (a schema's `drift.numeric`, `std:schema`'s
/// `drift-numeric`, the monitor's thresholds). 0.1 is TFDV's customary
/// value.
pub const DEFAULT_NUMERIC_THRESHOLD: f64 = 0.1;

/// The L-infinity distance (largest change of one category's share) above
/// which a categorical column has drifted, unless configured otherwise: a
/// category gaining or losing ten percentage points.
pub const DEFAULT_CATEGORICAL_THRESHOLD: f64 = 0.1;

/// Equal-mass bins of a numeric summary ([`quantile_histogram`]):
/// `std:statistics` records its `quantile_histogram` with this many, and the
/// monitor summarises rows with it, so both compare the same summaries. A
/// multiple of [`DRIFT_CELLS`], so that the reference's deciles are edges of
/// its summary.
pub const SUMMARY_BINS: usize = 40;

/// Cells of the reference's range that drift is measured on: deciles (plus
/// the cells below and above the range).
pub const DRIFT_CELLS: usize = 10;

/// Smallest share [`psi`] uses, so that an empty bin does not make it
/// infinite.
pub const PSI_FLOOR: f64 = 1e-4;

/// The `q` quantile (`q` in [0, 1]) of sorted values, interpolating linearly
/// between the closest ranks (numpy's default, "linear"); `None` when there
/// are no values. The one quantile of the std steps and the monitor.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * q;
    let lo = (libm::floor(h) as usize).min(last);
    let hi = (libm::ceil(h) as usize).min(last);
    let (a, b) = (sorted[lo], sorted[hi]);
    Some(if lo == hi {
        a
    } else {
        a + (h - lo as f64) * (b - a)
    })
}

/// A numeric summary: `counts[i]` values in bin `i`, where bin 0 is
/// `[edges[0], edges[1]]` and bin `i > 0` is `(edges[i], edges[i + 1]]`,
/// except that a value equal to zero-width bins (a repeated edge) is in the
/// last of them: a zero-width bin holds a point mass.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Bin edges, ascending; one more than `counts`.
    pub edges: Vec<f64>,
    /// Values per bin.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Whether the histogram can be compared: finite ascending edges, one
    /// more than the counts, and at least one value.
    pub fn is_well_formed(&self) -> bool {
        !self.counts.is_empty()
            && self.edges.len() == self.counts.len() + 1
            && self.edges.iter().all(|e| e.is_finite())
            && self.edges.windows(2).all(|w| w[0] <= w[1])
            && self.counts.iter().any(|&c| c > 0)
    }
}

/// The equal-mass summary of a numeric column: edges at the
/// `bins`-quantiles of its finite values ([`quantile`]; `bins + 1` edges,
/// repeated where values repeat) and the values per bin, by the rule of
/// [`Histogram`]. Non-finite values (NaN, ±∞) are left out, as missing.
/// `None` when there is no finite value or `bins` is 0.
pub fn quantile_histogram(values: &[f64], bins: usize) -> Option<Histogram> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() || bins == 0 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let edges: Vec<f64> = (0..=bins)
        .map(|k| quantile(&v, k as f64 / bins as f64).unwrap_or(0.0))
        .collect();
    let mut counts = alloc::vec![0u64; bins];
    for &x in &v {
        // Every value is inside [min, max], so never below or above.
        let i = cell(&edges, x).clamp(1, bins);
        counts[i - 1] += 1;
    }
    Some(Histogram { edges, counts })
}

/// The cell of `x` among the cells of `edges`: 0 below the first edge,
/// `edges.len()` above the last, else `i` for bin `i - 1` — the first bin
/// whose upper edge is ≥ `x`, or, when `x` is the value of zero-width bins
/// (a repeated value), the last of those, so that a repeated value is a
/// point mass of its own.
fn cell(edges: &[f64], x: f64) -> usize {
    let Some(&first) = edges.first() else {
        return 0;
    };
    if x < first {
        return 0;
    }
    let Some(mut i) = (1..edges.len()).find(|&i| x <= edges[i]) else {
        return edges.len();
    };
    while i + 1 < edges.len() && edges[i + 1] == x {
        i += 1;
    }
    i
}

/// The edges of the cells drift is measured on, from the reference's
/// summary: every `bins / DRIFT_CELLS`-th edge (its deciles) when its bin
/// count is a multiple of [`DRIFT_CELLS`] — as [`quantile_histogram`] with
/// [`SUMMARY_BINS`] makes it — else all its edges.
pub fn reference_cells(reference: &Histogram) -> Vec<f64> {
    let bins = reference.counts.len();
    if bins >= DRIFT_CELLS && bins.is_multiple_of(DRIFT_CELLS) {
        reference
            .edges
            .iter()
            .step_by(bins / DRIFT_CELLS)
            .copied()
            .collect()
    } else {
        reference.edges.clone()
    }
}

/// The shares of `summary`'s values in the cells of `reference_edges` (see
/// [`reference_cells`]): below the first edge, between consecutive edges
/// (the rule of [`Histogram`]), above the last edge;
/// `reference_edges.len() + 1` shares that sum to 1.
///
/// Counts are spread uniformly over the width of their bin and split by
/// overlap; a zero-width bin is a point mass, placed by the same rule. The
/// reference's own summary therefore falls into its cells exactly, with
/// nothing below or above. `None` when either is malformed (see
/// [`Histogram::is_well_formed`]).
pub fn shares(reference_edges: &[f64], summary: &Histogram) -> Option<Vec<f64>> {
    if reference_edges.is_empty()
        || reference_edges.iter().any(|e| !e.is_finite())
        || reference_edges.windows(2).any(|w| w[0] > w[1])
        || !summary.is_well_formed()
    {
        return None;
    }
    let k = reference_edges.len();
    // Cell j spans [lo(j), hi(j)]; the ends are unbounded.
    let lo = |j: usize| {
        if j == 0 {
            f64::NEG_INFINITY
        } else {
            reference_edges[j - 1]
        }
    };
    let hi = |j: usize| {
        if j == k {
            f64::INFINITY
        } else {
            reference_edges[j]
        }
    };
    let mut mass = alloc::vec![0.0; k + 1];
    let total: u64 = summary.counts.iter().sum();
    for (i, &count) in summary.counts.iter().enumerate() {
        let (a, b) = (summary.edges[i], summary.edges[i + 1]);
        if count == 0 {
            continue;
        }
        if b > a {
            for (j, m) in mass.iter_mut().enumerate() {
                let overlap = b.min(hi(j)) - a.max(lo(j));
                if overlap > 0.0 {
                    *m += count as f64 * (overlap / (b - a));
                }
            }
        } else {
            mass[cell(reference_edges, a)] += count as f64;
        }
    }
    for m in &mut mass {
        *m /= total as f64;
    }
    Some(mass)
}

/// A numeric column's drift: the binned shares of both sides and the
/// distances between them.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericDrift {
    /// The edges of the cells ([`reference_cells`]).
    pub cells: Vec<f64>,
    /// The reference's share per cell (below, between edges, above; see
    /// [`shares`]).
    pub reference: Vec<f64>,
    /// The served share per cell.
    pub served: Vec<f64>,
    /// [`jensen_shannon`] of the shares: the drift score.
    pub jensen_shannon: f64,
    /// [`l_infinity`] of the shares.
    pub l_infinity: f64,
    /// [`psi`] of the shares.
    pub psi: f64,
}

/// Compares the summaries of a numeric column (each a [`quantile_histogram`]
/// with [`SUMMARY_BINS`]) on the [`reference_cells`] plus the cells below and
/// above. `None` when either is malformed.
pub fn numeric_drift(reference: &Histogram, served: &Histogram) -> Option<NumericDrift> {
    let cells = reference_cells(reference);
    let r = shares(&cells, reference)?;
    let s = shares(&cells, served)?;
    Some(NumericDrift {
        jensen_shannon: jensen_shannon(&r, &s),
        l_infinity: l_infinity(&r, &s),
        psi: psi(&r, &s),
        reference: r,
        served: s,
        cells,
    })
}

/// Jensen–Shannon divergence of two distributions (shares summing to 1),
/// base 2: between 0 (the same) and 1 (disjoint).
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl_to_mid = |x: &[f64], y: &[f64]| -> f64 {
        x.iter()
            .zip(y)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| a * libm::log2(2.0 * a / (a + b)))
            .sum()
    };
    (0.5 * kl_to_mid(p, q) + 0.5 * kl_to_mid(q, p)).clamp(0.0, 1.0)
}

/// The largest difference between the shares of one bin or category.
pub fn l_infinity(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// Population stability index of `served` against `reference`:
/// Σ (s − r) ln(s / r), each share floored at [`PSI_FLOOR`].
pub fn psi(reference: &[f64], served: &[f64]) -> f64 {
    reference
        .iter()
        .zip(served)
        .map(|(r, s)| {
            let (r, s) = (r.max(PSI_FLOOR), s.max(PSI_FLOOR));
            (s - r) * libm::log(s / r)
        })
        .sum()
}

/// Category counts of one side: every category (`complete`) or only the
/// most frequent ones (a statistics document's truncated `top` list).
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryCounts<'a> {
    /// Categories and their counts; the smallest listed count bounds the
    /// unlisted ones when not `complete`.
    pub counts: Vec<(&'a str, u64)>,
    /// Non-missing values in all.
    pub total: u64,
    /// Whether `counts` lists every category.
    pub complete: bool,
}

/// L-infinity distance between the category shares of two sides: the
/// largest |p(v) − q(v)| over the categories either lists — the drift score
/// of categorical columns. 0 when either side has no values.
///
/// Exact when both lists are complete (then it equals [`l_infinity`] of the
/// shares). A category missing from a truncated list has an unknown share
/// between 0 and that list's smallest listed share; the distance then takes
/// the closest the two could be, so it is a lower bound and never a false
/// alarm.
pub fn categorical_l_infinity(p: &CategoryCounts<'_>, q: &CategoryCounts<'_>) -> f64 {
    if p.total == 0 || q.total == 0 {
        return 0.0;
    }
    fn share(c: &CategoryCounts<'_>, v: &str) -> (f64, f64) {
        let n = c.total as f64;
        if let Some((_, count)) = c.counts.iter().find(|(k, _)| *k == v) {
            let f = *count as f64 / n;
            (f, f)
        } else if c.complete {
            (0.0, 0.0)
        } else {
            let smallest = c.counts.iter().map(|t| t.1).min().unwrap_or(c.total);
            (0.0, smallest as f64 / n)
        }
    }
    let values: BTreeSet<&str> = p.counts.iter().chain(&q.counts).map(|t| t.0).collect();
    values
        .into_iter()
        .map(|v| {
            let (a1, b1) = share(p, v);
            let (a2, b2) = share(q, v);
            (a1 - b2).max(a2 - b1).max(0.0)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests;
