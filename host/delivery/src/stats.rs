//! The statistics of comparing two versions on live traffic: confidence
//! intervals for a proportion (Wilson's score interval) and for the
//! difference of two independent proportions (Newcombe's hybrid score
//! interval), the two-proportion z-test, and the normal distribution they
//! rest on.
//!
//! Rollouts ([`crate::rollout`]) judge a stage with [`one_sided_z`] and
//! [`z_quantile`]; A/B reports ([`crate::ab`]) print intervals and
//! p-values.
//!
//! References: E. B. Wilson, "Probable inference, the law of succession,
//! and statistical inference", JASA 22 (1927); R. G. Newcombe, "Two-sided
//! confidence intervals for the single proportion: comparison of seven
//! methods" and "Interval estimation for the difference between
//! independent proportions: comparison of eleven methods", Statistics in
//! Medicine 17 (1998) — the hybrid score interval is method 10 of the
//! latter.

use serde::Serialize;

/// A confidence interval: `low` to `high`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether `x` lies in the interval, bounds included.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// A proportion measured on a sample: `successes` of `trials`, its
/// estimate and its Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    /// How many of the trials counted (errors, right answers).
    pub successes: u64,
    /// How many trials there were.
    pub trials: u64,
    /// `successes / trials`.
    pub estimate: f64,
    /// The Wilson score interval at the report's confidence.
    pub low: f64,
    /// See `low`.
    pub high: f64,
}

impl Proportion {
    /// `successes` of `trials` with its Wilson interval at `confidence`;
    /// `None` when there were no trials (nothing was measured).
    pub fn new(successes: u64, trials: u64, confidence: f64) -> Option<Proportion> {
        let ci = wilson(successes, trials, confidence)?;
        Some(Proportion {
            successes,
            trials,
            estimate: successes as f64 / trials as f64,
            low: ci.low,
            high: ci.high,
        })
    }
}

/// The difference of two proportions, `a − b`, with Newcombe's hybrid
/// score interval and a two-sided two-proportion z-test of "no
/// difference".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    /// `p_a − p_b`.
    pub estimate: f64,
    /// The lower bound of Newcombe's hybrid score interval.
    pub low: f64,
    /// Its upper bound.
    pub high: f64,
    /// The z statistic of the pooled two-proportion test (0 when both
    /// sides are all successes or all failures).
    pub z: f64,
    /// The two-sided p-value of that test.
    pub p_value: f64,
}

impl Difference {
    /// `xa/na − xb/nb` at `confidence`; `None` when either side has no
    /// trials.
    pub fn new(xa: u64, na: u64, xb: u64, nb: u64, confidence: f64) -> Option<Difference> {
        let ci = newcombe(xa, na, xb, nb, confidence)?;
        let (z, p_value) = two_proportion_test(xa, na, xb, nb)?;
        Some(Difference {
            estimate: xa as f64 / na as f64 - xb as f64 / nb as f64,
            low: ci.low,
            high: ci.high,
            z,
            p_value,
        })
    }

    /// Whether the interval excludes zero: the difference is significant
    /// at the interval's confidence.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The z of a two-sided interval at `confidence` (0.95 → 1.96); `None`
/// unless `confidence` is strictly between 0 and 1.
pub fn z_two_sided(confidence: f64) -> Option<f64> {
    (confidence > 0.0 && confidence < 1.0).then(|| z_quantile(1.0 - (1.0 - confidence) / 2.0))
}

/// Wilson's score interval for `successes` of `trials` at `confidence`
/// (0.95 for 95 %): the proportions `p` for which `|p̂ − p| ≤ z·√(p(1−p)/n)`.
/// It stays within 0 and 1 and is never empty, even at 0 of n and n of n,
/// where the normal ("Wald") interval collapses to a point. `None` when
/// `trials` is 0 or `confidence` is not strictly between 0 and 1.
pub fn wilson(successes: u64, trials: u64, confidence: f64) -> Option<Interval> {
    let z = z_two_sided(confidence)?;
    if trials == 0 {
        return None;
    }
    let successes = successes.min(trials);
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 of n and n of n the bound is exactly 0 or 1; rounding must not
    // make it a hair off.
    let low = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if successes == trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some(Interval { low, high })
}

/// Newcombe's hybrid score interval (method 10 of Newcombe 1998) for the
/// difference `xa/na − xb/nb` of two independent proportions at
/// `confidence`: from each side's Wilson interval `(la, ua)`, `(lb, ub)`,
/// `d − √((p̂a − la)² + (ub − p̂b)²)` to `d + √((ua − p̂a)² + (p̂b − lb)²)`.
/// Good coverage at small samples and at proportions near 0 or 1, where
/// the Wald interval fails. `None` when a side has no trials or
/// `confidence` is not strictly between 0 and 1.
pub fn newcombe(xa: u64, na: u64, xb: u64, nb: u64, confidence: f64) -> Option<Interval> {
    let a = wilson(xa, na, confidence)?;
    let b = wilson(xb, nb, confidence)?;
    let pa = xa.min(na) as f64 / na as f64;
    let pb = xb.min(nb) as f64 / nb as f64;
    let d = pa - pb;
    let below = ((pa - a.low).powi(2) + (b.high - pb).powi(2)).sqrt();
    let above = ((a.high - pa).powi(2) + (pb - b.low).powi(2)).sqrt();
    Some(Interval {
        low: (d - below).max(-1.0),
        high: (d + above).min(1.0),
    })
}

/// The two-sided two-proportion z-test of `xa/na = xb/nb` with the pooled
/// proportion: `(z, p-value)`. When both sides are all successes or all
/// failures there is no variance and no evidence of a difference: `(0,
/// 1)`. `None` when a side has no trials.
pub fn two_proportion_test(xa: u64, na: u64, xb: u64, nb: u64) -> Option<(f64, f64)> {
    if na == 0 || nb == 0 {
        return None;
    }
    let (xa, xb) = (xa.min(na), xb.min(nb));
    let excess = xa as f64 / na as f64 - xb as f64 / nb as f64;
    let z = one_sided_z(excess, xa + xb, na + nb, na, nb);
    Some((z, (2.0 * normal_sf(z.abs())).min(1.0)))
}

/// The z statistic of a two-proportion test of `excess` (a difference of
/// proportions, less any allowed margin), with the pooled proportion
/// `hits / total` and sides of `n1` and `n2`: what a one-sided test
/// compares with [`z_quantile`]`(1 − alpha)`. Infinite when there is no
/// variance but a positive excess; 0 when there is neither.
pub fn one_sided_z(excess: f64, hits: u64, total: u64, n1: u64, n2: u64) -> f64 {
    let pooled = hits as f64 / total as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se > 0.0 {
        excess / se
    } else if excess > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// The upper tail of the standard normal distribution, `P(Z > z)`, from
/// the complementary error function (relative error below 1.2e-7).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`, a
/// Chebyshev fit with relative error below 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The standard normal quantile at `p` (Acklam's rational approximation,
/// relative error below 1.2e-9): the z a one-sided test compares with.
pub fn z_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -39.696_830_286_653_76,
        220.946_098_424_520_5,
        -275.928_510_446_968_7,
        138.357_751_867_269,
        -30.664_798_066_147_16,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -54.476_098_798_224_06,
        161.585_836_858_040_9,
        -155.698_979_859_886_6,
        66.801_311_887_719_72,
        -13.280_681_552_885_72,
    ];
    const C: [f64; 6] = [
        -0.007_784_894_002_430_293,
        -0.322_396_458_041_136_5,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        0.007_784_695_709_041_462,
        0.322_467_129_070_039_8,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds to the 4 decimals the papers print.
    fn r4(x: f64) -> f64 {
        (x * 10_000.0).round() / 10_000.0
    }

    fn wilson4(x: u64, n: u64) -> (f64, f64) {
        let ci = wilson(x, n, 0.95).unwrap();
        (r4(ci.low), r4(ci.high))
    }

    fn newcombe4(xa: u64, na: u64, xb: u64, nb: u64) -> (f64, f64) {
        let ci = newcombe(xa, na, xb, nb, 0.95).unwrap();
        (r4(ci.low), r4(ci.high))
    }

    #[test]
    fn the_normal_quantile_is_right_where_tests_use_it() {
        assert!((z_quantile(0.95) - 1.644_853_626_951).abs() < 1e-6);
        assert!((z_quantile(0.975) - 1.959_963_984_540).abs() < 1e-6);
        assert!((z_quantile(0.999) - 3.090_232_306_168).abs() < 1e-6);
        assert!((z_quantile(0.5)).abs() < 1e-12);
        assert!((z_two_sided(0.95).unwrap() - 1.959_963_984_540).abs() < 1e-6);
        assert!((z_two_sided(0.99).unwrap() - 2.575_829_303_549).abs() < 1e-6);
        assert_eq!(z_two_sided(1.0), None);
        assert_eq!(z_two_sided(0.0), None);
        assert_eq!(z_two_sided(f64::NAN), None);
    }

    #[test]
    fn the_normal_tail_matches_tables() {
        // Values from standard normal tables.
        for (z, want) in [
            (0.0, 0.5),
            (1.0, 0.158_655_253_9),
            (1.959_963_985, 0.025),
            (2.575_829_304, 0.005),
            (3.719_016_485, 0.000_1),
            (-1.0, 0.841_344_746_1),
        ] {
            let got = normal_sf(z);
            assert!(
                ((got - want) / want).abs() < 2e-7,
                "P(Z > {z}) = {got}, want {want}"
            );
        }
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single
    /// proportion", Table I, method 3 (score interval without continuity
    /// correction).
    #[test]
    fn wilson_intervals_match_newcombes_published_values() {
        assert_eq!(wilson4(81, 263), (0.2553, 0.3662));
        assert_eq!(wilson4(15, 148), (0.0624, 0.1605));
        assert_eq!(wilson4(0, 20), (0.0, 0.1611));
        assert_eq!(wilson4(1, 29), (0.0061, 0.1718));
    }

    #[test]
    fn wilson_at_the_edges() {
        // 0 of n: the lower bound is exactly 0; n of n: the upper exactly 1;
        // the two mirror each other.
        let none = wilson(0, 10, 0.95).unwrap();
        let all = wilson(10, 10, 0.95).unwrap();
        assert_eq!((none.low, all.high), (0.0, 1.0));
        assert!((none.high - (1.0 - all.low)).abs() < 1e-12);
        assert_eq!(r4(none.high), 0.2775);
        // One trial still gives an interval, a wide one.
        let one = wilson(1, 1, 0.95).unwrap();
        assert!(one.low > 0.1 && one.low < 0.3 && one.high == 1.0, "{one:?}");
        // No trials: nothing measured.
        assert_eq!(wilson(0, 0, 0.95), None);
        assert_eq!(Proportion::new(0, 0, 0.95), None);
        // A higher confidence widens it; the estimate stays inside.
        let p95 = wilson(30, 100, 0.95).unwrap();
        let p99 = wilson(30, 100, 0.99).unwrap();
        assert!(p99.low < p95.low && p99.high > p95.high);
        assert!(p95.contains(0.3));
        let p = Proportion::new(30, 100, 0.95).unwrap();
        assert_eq!((p.estimate, p.low, p.high), (0.3, p95.low, p95.high));
        assert_eq!(wilson(1, 2, 1.0), None);
    }

    /// Newcombe (1998), "Interval estimation for the difference between
    /// independent proportions", Table II, method 10 (hybrid score).
    #[test]
    fn newcombe_intervals_match_the_published_examples() {
        assert_eq!(newcombe4(56, 70, 48, 80), (0.0524, 0.3339));
        assert_eq!(newcombe4(9, 10, 3, 10), (0.1705, 0.8090));
        assert_eq!(newcombe4(6, 7, 2, 7), (0.0582, 0.8062));
        assert_eq!(newcombe4(5, 56, 0, 29), (-0.0381, 0.1926));
        assert_eq!(newcombe4(0, 10, 0, 20), (-0.1611, 0.2775));
        assert_eq!(newcombe4(0, 10, 0, 10), (-0.2775, 0.2775));
        assert_eq!(newcombe4(10, 10, 0, 20), (0.6791, 1.0));
        assert_eq!(newcombe4(10, 10, 0, 10), (0.6075, 1.0));
        let d = Difference::new(56, 70, 48, 80, 0.95).unwrap();
        assert!((d.estimate - 0.2).abs() < 1e-12);
        assert!(d.significant());
    }

    #[test]
    fn newcombe_mirrors_and_needs_both_sides() {
        let ab = newcombe(56, 70, 48, 80, 0.95).unwrap();
        let ba = newcombe(48, 80, 56, 70, 0.95).unwrap();
        assert!((ab.low + ba.high).abs() < 1e-12 && (ab.high + ba.low).abs() < 1e-12);
        assert_eq!(newcombe(1, 0, 1, 2, 0.95), None);
        assert_eq!(newcombe(1, 2, 0, 0, 0.95), None);
        assert_eq!(Difference::new(1, 2, 0, 0, 0.95), None);
        // Equal proportions: the interval straddles 0, not significant.
        let same = Difference::new(40, 100, 40, 100, 0.95).unwrap();
        assert!(!same.significant() && same.low < 0.0 && same.high > 0.0);
        assert_eq!((same.z, same.p_value), (0.0, 1.0));
    }

    #[test]
    fn the_two_proportion_test_matches_a_worked_example() {
        // 56/70 vs 48/80: pooled 104/150; z = 0.2 / √(p(1−p)(1/70+1/80)).
        let (z, p) = two_proportion_test(56, 70, 48, 80).unwrap();
        let pooled: f64 = 104.0 / 150.0;
        let want = 0.2 / (pooled * (1.0 - pooled) * (1.0 / 70.0 + 1.0 / 80.0)).sqrt();
        assert!((z - want).abs() < 1e-12, "{z} {want}");
        assert!((z - 2.6502).abs() < 1e-4, "{z}");
        assert!((p - 0.008_045).abs() < 1e-6, "{p}");
        // No variance: no evidence.
        assert_eq!(two_proportion_test(0, 10, 0, 20), Some((0.0, 1.0)));
        assert_eq!(two_proportion_test(10, 10, 20, 20), Some((0.0, 1.0)));
        assert_eq!(two_proportion_test(0, 0, 1, 2), None);
        // The sign says which side is higher; the p-value is two-sided.
        let (z2, p2) = two_proportion_test(48, 80, 56, 70).unwrap();
        assert!((z2 + z).abs() < 1e-12 && (p2 - p).abs() < 1e-15);
    }
}
