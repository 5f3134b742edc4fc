//! Unit tests of the shared drift maths.

use super::*;
use alloc::vec;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn scores_match_hand_computed_values() {
    // M = (0.75, 0.25); KL(p‖M) = 0.5·log2(2/3) + 0.5·log2(2) = 0.2075187…;
    // KL(q‖M) = log2(4/3) = 0.4150375…; JS = their mean.
    let (p, q) = ([0.5, 0.5], [1.0, 0.0]);
    assert!(close(jensen_shannon(&p, &q), 0.311_278_124_459_132_8));
    assert!(close(jensen_shannon(&q, &p), 0.311_278_124_459_132_8));
    assert!(close(jensen_shannon(&p, &p), 0.0));
    assert!(close(jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]), 1.0));
    assert!(close(l_infinity(&p, &q), 0.5));
    // (0.5 − 1e-4)·ln(0.5/1e-4) + (1 − 0.5)·ln(1/0.5)
    let expected = (0.5 - 1e-4) * libm::log(0.5 / 1e-4) + 0.5 * libm::log(2.0);
    assert!(close(psi(&q, &p), expected));
    let r = [0.2, 0.3, 0.5];
    let s = [0.4, 0.3, 0.3];
    let expected = 0.2 * libm::log(2.0) + (-0.2) * libm::log(0.3 / 0.5);
    assert!(close(psi(&r, &s), expected));
}

#[test]
fn quantiles_match_numpy_linear() {
    let v = [1.0, 2.0, 3.0, 4.0];
    // numpy.quantile([1, 2, 3, 4], [0, .25, .5, .75, 1]) = [1, 1.75, 2.5, 3.25, 4]
    let got: Vec<f64> = [0.0, 0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|&q| quantile(&v, q).unwrap())
        .collect();
    assert_eq!(got, [1.0, 1.75, 2.5, 3.25, 4.0]);
    assert_eq!(quantile(&[5.0], 0.3), Some(5.0));
    assert_eq!(quantile(&[], 0.3), None);
    // numpy.quantile([0, 10, 20], 0.1) = 2.0
    assert!(close(quantile(&[0.0, 10.0, 20.0], 0.1).unwrap(), 2.0));
}

#[test]
fn quantile_histogram_has_equal_mass_bins() {
    let v: Vec<f64> = (0..=100).rev().map(f64::from).collect();
    let h = quantile_histogram(&v, 10).unwrap();
    assert_eq!(
        h.edges,
        [
            0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0
        ]
    );
    // [0, 10] holds 11 values, each (10k, 10k + 10] ten.
    assert_eq!(h.counts, [11, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
    // A repeated value repeats edges; it is a point mass in the last
    // zero-width bin at its value.
    let h = quantile_histogram(&[1.0, 1.0, 1.0, 2.0], 4).unwrap();
    assert_eq!(h.edges, [1.0, 1.0, 1.0, 1.25, 2.0]);
    assert_eq!(h.counts, [0, 3, 0, 1]);
    let h = quantile_histogram(&[3.0, 3.0, f64::NAN, f64::INFINITY], 10).unwrap();
    assert_eq!(h.edges, [3.0; 11]);
    assert_eq!(h.counts, [0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    assert_eq!(quantile_histogram(&[f64::NAN], 10), None);
    assert_eq!(quantile_histogram(&[1.0], 0), None);
}

#[test]
fn cells_are_the_reference_deciles() {
    let v: Vec<f64> = (0..=400).map(f64::from).collect();
    let h = quantile_histogram(&v, SUMMARY_BINS).unwrap();
    assert_eq!(h.edges.len(), SUMMARY_BINS + 1);
    let cells = reference_cells(&h);
    let deciles: Vec<f64> = (0..=10).map(|k| f64::from(k * 40)).collect();
    assert_eq!(cells, deciles);
    // The reference falls into its deciles exactly: 41 values in [0, 40],
    // 40 in each later cell, none below or above.
    let r = shares(&cells, &h).unwrap();
    let mut expected = vec![0.0, 41.0 / 401.0];
    expected.extend([40.0 / 401.0; 9]);
    expected.push(0.0);
    assert_eq!(r.len(), expected.len());
    assert!(r.iter().zip(&expected).all(|(a, b)| close(*a, *b)), "{r:?}");
    // A histogram of another bin count: compared on all its edges.
    let odd = Histogram {
        edges: vec![0.0, 1.0, 2.0],
        counts: vec![1, 1],
    };
    assert_eq!(reference_cells(&odd), odd.edges);
}

#[test]
fn repeated_values_are_point_masses_on_both_sides() {
    // Half zeros: the atom at 0 stays apart from the spread values above it.
    let mut v = vec![0.0; 200];
    v.extend((1..=200).map(f64::from));
    let r = quantile_histogram(&v, SUMMARY_BINS).unwrap();
    let same = numeric_drift(&r, &r).unwrap();
    assert_eq!(same.jensen_shannon, 0.0);
    // Served: the same spread part, but no zeros at all.
    let served: Vec<f64> = (1..=200).map(f64::from).collect();
    let s = quantile_histogram(&served, SUMMARY_BINS).unwrap();
    let d = numeric_drift(&r, &s).unwrap();
    // The reference's half at 0 is a cell of its own that the served side
    // misses; the rest is spread alike. So about JS((.5, .5), (0, 1)).
    let zeros = reference_cells(&r).iter().filter(|e| **e == 0.0).count();
    assert_eq!(d.reference[zeros - 1], 0.5, "{d:?}");
    assert_eq!(d.served[zeros - 1], 0.0, "{d:?}");
    assert!((d.jensen_shannon - 0.311_278).abs() < 0.01, "{d:?}");
}

#[test]
fn a_reference_maps_onto_its_own_bins_exactly() {
    let h = Histogram {
        edges: vec![0.0, 1.0, 3.0, 4.0],
        counts: vec![2, 1, 1],
    };
    assert_eq!(shares(&h.edges, &h).unwrap(), [0.0, 0.5, 0.25, 0.25, 0.0]);
    let d = numeric_drift(&h, &h).unwrap();
    assert_eq!((d.jensen_shannon, d.l_infinity, d.psi), (0.0, 0.0, 0.0));
}

#[test]
fn served_mass_is_spread_by_overlap_with_under_and_over_cells() {
    let reference = Histogram {
        edges: vec![0.0, 2.0, 4.0],
        counts: vec![5, 5],
    };
    // [1, 5] with 4 values: 1 in [0, 2], 2 in (2, 4], 1 above 4.
    let served = Histogram {
        edges: vec![1.0, 5.0],
        counts: vec![4],
    };
    let s = shares(&reference.edges, &served).unwrap();
    assert_eq!(s, [0.0, 0.25, 0.5, 0.25]);
    // [-2, 0] is wholly below; a point mass at 2 joins the bin closed at 2,
    // one at 4.5 is above.
    let served = Histogram {
        edges: vec![-2.0, 0.0, 2.0, 2.0, 4.5, 4.5],
        counts: vec![2, 0, 1, 0, 1],
    };
    assert_eq!(
        shares(&reference.edges, &served).unwrap(),
        [0.5, 0.25, 0.0, 0.25]
    );
    // P = [0, .5, .5, 0], Q = [0, .25, .5, .25], M = [0, .375, .5, .125]:
    // KL(P‖M) = .5·log2(4/3); KL(Q‖M) = .25·log2(2/3) + .25·log2(2).
    let d = numeric_drift(
        &reference,
        &Histogram {
            edges: vec![1.0, 5.0],
            counts: vec![4],
        },
    )
    .unwrap();
    let expected = 0.5 * (0.5 * libm::log2(4.0 / 3.0))
        + 0.5 * (0.25 * libm::log2(2.0 / 3.0) + 0.25 * libm::log2(2.0));
    assert!(close(d.jensen_shannon, expected), "{}", d.jensen_shannon);
    assert!(close(d.l_infinity, 0.25));
}

#[test]
fn constant_columns_compare_as_point_masses() {
    let a = quantile_histogram(&[2.0; 5], 10).unwrap();
    let b = quantile_histogram(&[2.0; 9], 10).unwrap();
    let c = quantile_histogram(&[3.0; 5], 10).unwrap();
    assert!(close(numeric_drift(&a, &b).unwrap().jensen_shannon, 0.0));
    assert!(close(numeric_drift(&a, &c).unwrap().jensen_shannon, 1.0));
    let spread = quantile_histogram(&[0.0, 4.0], 10).unwrap();
    assert!(close(
        numeric_drift(&a, &spread).unwrap().jensen_shannon,
        1.0
    ));
}

#[test]
fn malformed_histograms_are_refused() {
    let good = Histogram {
        edges: vec![0.0, 1.0],
        counts: vec![1],
    };
    for bad in [
        Histogram {
            edges: vec![0.0, 1.0],
            counts: vec![0],
        },
        Histogram {
            edges: vec![1.0, 0.0],
            counts: vec![2],
        },
        Histogram {
            edges: vec![0.0, 1.0],
            counts: vec![1, 1],
        },
        Histogram {
            edges: vec![0.0, f64::INFINITY],
            counts: vec![1],
        },
    ] {
        assert_eq!(numeric_drift(&good, &bad), None, "{bad:?}");
        assert_eq!(numeric_drift(&bad, &good), None, "{bad:?}");
    }
}

/// A deterministic, roughly normal sample (sum of uniforms).
fn sample(n: usize, mean: f64, seed: u64) -> Vec<f64> {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| mean + (0..12).map(|_| next()).sum::<f64>() - 6.0)
        .collect()
}

#[test]
fn a_shift_is_over_the_default_threshold_and_noise_is_not() {
    let reference = quantile_histogram(&sample(5000, 0.0, 1), SUMMARY_BINS).unwrap();
    let same = quantile_histogram(&sample(1000, 0.0, 2), SUMMARY_BINS).unwrap();
    let shifted = quantile_histogram(&sample(1000, 1.5, 3), SUMMARY_BINS).unwrap();
    let d = numeric_drift(&reference, &same).unwrap();
    assert!(d.jensen_shannon < DEFAULT_NUMERIC_THRESHOLD, "{d:?}");
    assert!(d.psi < 0.1, "{d:?}");
    let d = numeric_drift(&reference, &shifted).unwrap();
    assert!(d.jensen_shannon > DEFAULT_NUMERIC_THRESHOLD, "{d:?}");
    assert!(d.psi > 0.25, "{d:?}");
    assert_eq!(d.reference.len(), DRIFT_CELLS + 2);
    assert!(close(d.reference.iter().sum::<f64>(), 1.0));
    assert!(close(d.served.iter().sum::<f64>(), 1.0));
}

#[test]
fn categorical_l_infinity_exact_and_bounded() {
    let counts = |v: &[(&'static str, u64)], complete: bool| CategoryCounts {
        counts: v.to_vec(),
        total: v.iter().map(|t| t.1).sum(),
        complete,
    };
    // p = {a: .5, b: .3, c: .2}, q = {a: .4, b: .2, c: .1, d: .3} → 0.3.
    let p = counts(&[("a", 5), ("b", 3), ("c", 2)], true);
    let q = counts(&[("a", 4), ("d", 3), ("b", 2), ("c", 1)], true);
    assert!(close(categorical_l_infinity(&p, &q), 0.3));
    assert!(close(categorical_l_infinity(&p, &p), 0.0));
    // Complete lists: the same as l_infinity of the shares.
    let ps = [0.5, 0.3, 0.2, 0.0];
    let qs = [0.4, 0.2, 0.1, 0.3];
    assert!(close(categorical_l_infinity(&p, &q), l_infinity(&ps, &qs)));
    // q lists only a (.4 of 10); b's share in q is somewhere in [0, .4]:
    // b = .5 in p → at least .1; a: |.5 − .4| = .1.
    let p = counts(&[("a", 5), ("b", 5)], true);
    let q = CategoryCounts {
        counts: vec![("a", 4)],
        total: 10,
        complete: false,
    };
    assert!(close(categorical_l_infinity(&p, &q), 0.1));
    let empty = counts(&[], true);
    assert_eq!(categorical_l_infinity(&p, &empty), 0.0);
}
