//! Every metric against values computed by hand.

use sluice_ml::Matrix;
use sluice_ml::metrics::*;

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

#[test]
fn binary_classification_metrics() {
    // TP = 3 (rows 1, 4, 5), FN = 1 (row 2), FP = 0, TN = 2.
    let t = [0, 1, 1, 0, 1, 1];
    let p = [0, 1, 0, 0, 1, 1];
    close(accuracy(&t, &p).unwrap(), 5.0 / 6.0);
    close(precision(&t, &p, 2).unwrap(), 1.0);
    close(recall(&t, &p, 2).unwrap(), 0.75);
    close(f1(&t, &p, 2).unwrap(), 2.0 * 0.75 / 1.75);
    let cm = confusion_matrix(&t, &p, 2).unwrap();
    assert_eq!(cm.counts, vec![vec![2, 0], vec![1, 3]]);
    assert_eq!((cm.tp(1), cm.fp(1), cm.fn_(1)), (3, 0, 1));
    // No predicted positive: precision 0 (zero_division), recall 0.
    close(precision(&[1, 0], &[0, 0], 2).unwrap(), 0.0);
    close(f1(&[1, 0], &[0, 0], 2).unwrap(), 0.0);
}

#[test]
fn multiclass_metrics_are_macro_averaged() {
    // class 0: P 1, R 1/2; class 1: P 1/2, R 1/2; class 2: P 2/3, R 1.
    let t = [0, 1, 2, 2, 1, 0];
    let p = [0, 2, 2, 2, 1, 1];
    close(precision(&t, &p, 3).unwrap(), (1.0 + 0.5 + 2.0 / 3.0) / 3.0);
    close(recall(&t, &p, 3).unwrap(), (0.5 + 0.5 + 1.0) / 3.0);
    close(f1(&t, &p, 3).unwrap(), (2.0 / 3.0 + 0.5 + 0.8) / 3.0);
    close(accuracy(&t, &p).unwrap(), 4.0 / 6.0);
    // A class in neither truth nor predictions is left out of the average.
    close(precision(&t, &p, 4).unwrap(), (1.0 + 0.5 + 2.0 / 3.0) / 3.0);
}

#[test]
fn roc_auc_binary_with_ties_and_multiclass() {
    let probs = |s: &[f64]| {
        Matrix::from_rows(&s.iter().map(|v| [1.0 - v, *v]).collect::<Vec<_>>()).unwrap()
    };
    // scikit-learn's docstring example.
    close(
        roc_auc(&[0, 0, 1, 1], &probs(&[0.1, 0.4, 0.35, 0.8])).unwrap(),
        0.75,
    );
    // A tie between a positive and a negative counts one half: 3.5 / 4.
    close(
        roc_auc(&[0, 1, 0, 1], &probs(&[0.5, 0.5, 0.2, 0.9])).unwrap(),
        0.875,
    );
    // One-vs-rest: class 0 → 1, class 1 → 6.5/8, class 2 → 1.
    let p = Matrix::from_rows(&[
        [0.7, 0.2, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.5, 0.4, 0.1],
        [0.3, 0.3, 0.4],
        [0.2, 0.2, 0.6],
    ])
    .unwrap();
    close(
        roc_auc(&[0, 1, 2, 0, 1, 2], &p).unwrap(),
        (1.0 + 0.8125 + 1.0) / 3.0,
    );
    let e = roc_auc(&[1, 1], &probs(&[0.2, 0.3])).unwrap_err();
    assert!(e.to_string().contains("only one class"), "{e}");
}

#[test]
fn log_loss_clips() {
    let p = Matrix::from_rows(&[[0.8, 0.2], [0.4, 0.6]]).unwrap();
    close(
        log_loss(&[0, 1], &p).unwrap(),
        -(0.8f64.ln() + 0.6f64.ln()) / 2.0,
    );
    let certain_and_wrong = Matrix::from_rows(&[[1.0, 0.0]]).unwrap();
    close(
        log_loss(&[1], &certain_and_wrong).unwrap(),
        -f64::EPSILON.ln(),
    );
}

#[test]
fn regression_metrics_match_hand_values() {
    let t = [3.0, -0.5, 2.0, 7.0];
    let p = [2.5, 0.0, 2.0, 8.0];
    close(rmse(&t, &p).unwrap(), 0.375f64.sqrt());
    close(mae(&t, &p).unwrap(), 0.5);
    // 1 − 1.5 / 29.1875 (scikit-learn's docstring example: 0.948…).
    close(r2(&t, &p).unwrap(), 1.0 - 1.5 / 29.1875);
    close(r2(&[1.0, 1.0], &[1.0, 1.0]).unwrap(), 1.0);
    close(r2(&[1.0, 1.0], &[1.0, 2.0]).unwrap(), 0.0);
    let all = regression_metrics(&t, &p).unwrap();
    close(all.mae, 0.5);
    assert!(rmse(&[1.0], &[]).is_err());
}

#[test]
fn classification_metrics_at_once() {
    let p = Matrix::from_rows(&[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]).unwrap();
    let m = classification_metrics(&[0, 1, 1, 0], &p).unwrap();
    close(m.accuracy, 0.5);
    close(m.precision, 0.5);
    close(m.recall, 0.5);
    // Positives score 0.8 and 0.4, negatives 0.1 and 0.7: 3 of 4 pairs.
    close(m.roc_auc.unwrap(), 0.75);
    assert_eq!(m.confusion_matrix.counts, vec![vec![1, 1], vec![1, 1]]);
}
