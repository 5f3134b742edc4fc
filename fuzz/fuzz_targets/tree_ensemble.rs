//! A tree ensemble as a user-brought ONNX file can declare it: node and
//! leaf attributes of any length and value (dangling or cyclic children,
//! features out of range, unknown modes, absurd output counts), built and
//! evaluated on rows with NaN. Building must refuse what it cannot run;
//! evaluation must end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_ml::trees::{ClassLabels, TreeAttributes, TreeEnsemble};

/// Reads small integers and floats from the input, zero once exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn small(&mut self) -> i64 {
        i64::from(self.byte() % 16) - 2
    }
    fn float(&mut self) -> f32 {
        match self.byte() % 8 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            k => f32::from(self.byte()) / 16.0 - f32::from(k),
        }
    }
    fn list<T>(&mut self, f: impl Fn(&mut Self) -> T) -> Vec<T> {
        let n = usize::from(self.byte() % 24);
        (0..n).map(|_| f(self)).collect()
    }
}

const MODES: [&str; 8] = [
    "BRANCH_LEQ",
    "BRANCH_LT",
    "BRANCH_GTE",
    "BRANCH_GT",
    "BRANCH_EQ",
    "BRANCH_NEQ",
    "LEAF",
    "BOGUS",
];

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let n = usize::from(b.byte() % 24);
    let attrs = TreeAttributes {
        tree_ids: (0..n).map(|_| i64::from(b.byte() % 4)).collect(),
        node_ids: (0..n).map(|_| b.small()).collect(),
        feature_ids: (0..n).map(|_| b.small()).collect(),
        modes: (0..n)
            .map(|_| MODES[usize::from(b.byte() % 8)].to_string())
            .collect(),
        values: (0..n).map(|_| b.float()).collect(),
        true_ids: (0..n).map(|_| b.small()).collect(),
        false_ids: (0..n).map(|_| b.small()).collect(),
        missing_tracks_true: b.list(|b| i64::from(b.byte() % 2)),
        leaf_tree_ids: b.list(|b| i64::from(b.byte() % 4)),
        leaf_node_ids: b.list(|b| b.small()),
        leaf_targets: b.list(|b| b.small()),
        leaf_weights: b.list(|b| b.float()),
        base_values: b.list(|b| b.float()),
        post_transform: Some(
            ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT", "X"]
                [usize::from(b.byte() % 6)]
            .to_string(),
        ),
        aggregate: Some(
            ["SUM", "AVERAGE", "MIN", "MAX", "Y"][usize::from(b.byte() % 5)].to_string(),
        ),
    };
    let outputs = match b.byte() % 4 {
        0 => 1usize << 40,
        k => usize::from(k),
    };
    let classifier = b.byte() % 2 == 0;
    let ensemble = if classifier {
        let labels = (0..outputs.min(5) as i64).collect();
        TreeEnsemble::classifier(&attrs, ClassLabels::Int(labels))
    } else {
        TreeEnsemble::regressor(&attrs, outputs)
    };
    let Ok(ensemble) = ensemble else { return };
    let cols = usize::from(b.byte() % 6);
    let rows = usize::from(b.byte() % 20);
    let x: Vec<f32> = (0..rows * cols).map(|_| b.float()).collect();
    if classifier {
        let _ = ensemble.classify(&x, rows, cols);
    } else {
        let _ = ensemble.regress(&x, rows, cols);
    }
});
